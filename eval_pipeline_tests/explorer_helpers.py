"""A store written by real pipeline runs (fake provider) for the results explorer's tests."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import yaml

from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.projects import FAKE_MODELS, make_project

PLANTED = "qa|fake-model"
LIMIT = 40


def _models(wrong_fraction: float | None = None) -> dict:
    planted: dict = {"mode": "reference"}
    if wrong_fraction is not None:
        planted["wrong_fraction"] = wrong_fraction
    return {
        "models": [
            *FAKE_MODELS["models"],
            {
                "slug": "fake-model",
                "provider": "fake",
                "model_id": "fake/model",
                "revision": "r2" if wrong_fraction else "r1",
                "options": planted,
            },
        ]
    }


def explorer_store(tmp: Path, partitions: tuple[str, ...] | None = None) -> dict:
    """Materialize the partitions, then a planted regression of ``qa|fake-model``.

    ``qa|fake-model`` runs twice: revision r1 (every answer right), then r2 whose
    answers are wrong on 15% of the samples. Returns the project, the store root and
    the sample ids the second run got wrong.
    """
    project = make_project(tmp / "project", models=_models(), datasets=("qa", "json-extract"))
    store = tmp / "store"
    partitions = partitions or (
        "qa|fake-good",
        "qa|fake-echo",
        "json-extract|fake-good",
        "json-extract|fake-echo",
    )
    for key in partitions:
        materialize(project, store, key, sample_limit=LIMIT)
    materialize(project, store, PLANTED, sample_limit=LIMIT)
    (project / "models.yaml").write_text(yaml.safe_dump(_models(wrong_fraction=0.15)))
    materialize(project, store, PLANTED, sample_limit=LIMIT)
    gens = pl.read_parquet(store / "generations/dataset=qa/model=fake-model/part-0.parquet")
    wrong = set(gens.filter(pl.col("completion") == "I do not know.")["sample_id"])
    return {"project": project, "store": store, "planted_wrong": wrong}


def read_data_file(path: Path) -> tuple[str, ...]:
    """The arguments of the ``window.__explorer_*(...)`` call a data file makes."""
    text = path.read_text(encoding="utf-8").replace("<\\/", "</")
    start, end = text.index("(") + 1, text.rindex(")")
    return tuple(json.loads(f"[{text[start:end]}]"))
