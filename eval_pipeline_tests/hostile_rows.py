"""Hostile dataset rows: a project whose data file each case rewrites, and row generators.

:class:`RowBench` holds a tiny project with a generative dataset and a multiple-choice one;
:meth:`RowBench.load` writes a case's rows in a loader's format (``jsonl``, ``csv``,
``parquet``) and loads them as a run does. The outcome must be rows or a
:class:`~eval_pipeline.core.errors.CatalogError`; anything else is an unnamed error.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.catalog._catalog import _load_rows
from eval_pipeline.core.errors import CatalogError

LOADERS = ("jsonl", "csv", "parquet", "user")
USER_LOADER = "eval_pipeline_tests.hostile_rows:user_rows"
# What the ``user`` loader returns next (a user loader hands over Python objects).
_USER_ROWS: list[object] = []


def user_rows(split: str | None = None) -> list[object]:
    """A ``package.module:function`` loader returning the rows of the current case."""
    return list(_USER_ROWS)


FIELDS = ("id", "q", "answer", "choices", "tags")
LIMITS = {"max_row_bytes": 4096, "max_field_bytes": 1024, "max_rows": 50}


class RowBench:
    """A project under ``root`` with datasets ``gen-<loader>`` and ``mc-<loader>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "prompts").mkdir(parents=True, exist_ok=True)
        (root / "prompts" / "p.jinja").write_text("Q: {{ q }}\n")
        (root / "models.yaml").write_text(
            yaml.safe_dump({"models": [{"slug": "m", "provider": "fake", "model_id": "m"}]})
        )
        for loader in LOADERS:
            for kind in ("gen", "mc"):
                name = f"{kind}-{loader}"
                folder = root / "datasets" / name
                folder.mkdir(parents=True, exist_ok=True)
                spec: dict[str, Any] = {
                    "name": name,
                    "source": "generated",
                    "license": "CC0-1.0",
                    "loader": USER_LOADER if loader == "user" else loader,
                    "prompt": "p",
                    "fields": ["q"],
                    "target_field": "answer",
                    "tags_field": "tags",
                    "limits": LIMITS,
                    "scorers": [{"name": "acc"}] if kind == "mc" else [{"name": "exact_match"}],
                }
                if loader != "user":
                    spec["data"] = f"data.{loader}"
                if kind == "mc":
                    spec.update(task="multiple_choice", choices_field="choices")
                (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
                self.write(name, loader, [{"id": 1, "q": "x", "answer": 0, "choices": ["a", "b"]}])
        self.catalog = load_catalog(root, load_rows=False)

    def write(self, name: str, loader: str, rows: list[Any] | bytes) -> None:
        path = self.root / "datasets" / name / f"data.{loader}"
        if loader == "user":
            _USER_ROWS[:] = rows if isinstance(rows, list) else [rows]
        elif isinstance(rows, bytes):
            path.write_bytes(rows)
        elif loader == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif loader == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            # No tags column: a CSV cell is text, and tags are a list.
            writer.writerow(FIELDS[:-1])
            for row in rows:
                cells = [row.get(f, "") for f in FIELDS[:-1]] if isinstance(row, dict) else [row]
                writer.writerow([c if isinstance(c, str) else json.dumps(c) for c in cells])
            path.write_text(out.getvalue())
        else:
            import polars as pl

            objects = [r for r in rows if isinstance(r, dict)] or [{"id": None}]
            # Each column as JSON text where its values mix types (Parquet columns are typed).
            columns = {k for r in objects for k in r} - {"tags"}
            table = {
                k: [
                    r.get(k) if isinstance(r.get(k), str) else json.dumps(r.get(k)) for r in objects
                ]
                for k in sorted(columns)
            }
            pl.DataFrame(table).write_parquet(path)

    def load(self, kind: str, loader: str, rows: list[Any] | bytes) -> str:
        """``ok`` (rows loaded), ``named`` (a CatalogError), or raises what escaped."""
        name = f"{kind}-{loader}"
        self.write(name, loader, rows)
        spec = self.catalog.dataset_specs[name]
        try:
            _load_rows(self.root, spec, self.catalog.prompts["p"])
        except CatalogError:
            return "named"
        return "ok"


def _junk(rng: random.Random, depth: int = 0) -> Any:
    atoms: list[Any] = [
        None, True, 0, -1, 7, 2**70, 1.5, "", "a", "b", "²", " 1", "0", "\u2028", "\x00",
        "é" * 300, "x" * 1100,
    ]  # fmt: skip
    roll = rng.randrange(10 if depth < 2 else 7)
    if roll < 7:
        return rng.choice(atoms)
    if roll < 9:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(FIELDS): _junk(rng, depth + 1) for _ in range(rng.randrange(3))}


def random_rows(rng: random.Random) -> list[Any] | bytes:
    """A case: rows built field by field, valid or junk, or raw bytes."""
    if rng.randrange(12) == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(60))) + b"\n"
    rows: list[Any] = []
    for i in range(rng.choice([0, 1, 2, 3, 60])):
        if rng.randrange(15) == 0:
            rows.append(_junk(rng))
            continue
        row: dict[str, Any] = {}
        for name, valid in (
            ("id", [f"s{i}", i, f"s{i}"]),
            ("q", ["What?", "{{ q }}", "{% if %}"]),
            ("answer", [0, 1, "a", "b", [0, 1]]),
            ("choices", [["a", "b"], ["a", "b", "c"]]),
            ("tags", [["t"], None]),
        ):
            roll = rng.randrange(10)
            if roll == 0:
                continue  # the field is missing
            row[name] = _junk(rng) if roll == 1 else rng.choice(valid)
        rows.append(row)
    return rows
