"""``lmeval_tasks``: which lm-eval tasks run here by name, offline, and why the others do not.

Every task, group and tag of the installed lm-eval whose data the local roots hold (by the
cheap check of ``eval-pipeline lm-eval tasks --local``) is added as a dataset by name
(``eval-pipeline lm-eval add``'s spec) and evaluated on its first ``DOCS`` documents per
task through the pipeline's stages with the scripted ``fake-choices`` model (no model
weights: this is about tasks, prompts, filters and metrics, not about a model). The
variants of the 57 MMLU subjects are represented by MMLU's groups. A task that takes
longer than ``TIMEOUT_S`` counts as failed.

``.bench/lmeval_tasks.json``: ``checked`` (names with local data), ``ran`` (each with its
output types and metric keys), ``failed`` (each with the reason), and the counts.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

NAME = "lmeval_tasks"
DOCS = 3
TIMEOUT_S = 120


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout(f"took longer than {TIMEOUT_S} s")


def candidates() -> list[tuple[str, str]]:
    """(name, kind) of every lm-eval name with local data, MMLU subjects left to groups."""
    from eval_pipeline.catalog._lmeval import list_tasks

    out = []
    for listing in list_tasks(check_local=True):
        if listing.problem is not None:
            continue
        if listing.name.startswith("mmlu") and listing.kind != "group":
            continue
        out.append((listing.name, listing.kind))
    return out


def try_task(root: Path, name: str) -> dict[str, Any]:
    """Add ``name`` as a dataset and evaluate its first documents with the fake model."""
    from eval_pipeline.catalog._lmeval import dataset_spec_for
    from eval_pipeline_tests.helpers import evaluate_stages

    slug = "task"
    project = root / name
    (project / "datasets" / slug).mkdir(parents=True)
    (project / "prompts").mkdir()
    models = {"models": [{"slug": "fake", "provider": "fake-choices", "model_id": "fake"}]}
    (project / "models.yaml").write_text(yaml.safe_dump(models))
    spec = dataset_spec_for(name, slug)
    (project / "datasets" / slug / "dataset.yaml").write_text(yaml.safe_dump(spec))
    catalog, _, _, frame = evaluate_stages(
        project, root / f"{name}-store", "fake", slug, sample_limit=DOCS
    )
    source = catalog.dataset(slug).lm_eval
    return {
        "documents": len(catalog.dataset(slug).rows),
        "tasks": len(source.leaves),
        "output_types": sorted(source.output_types),
        "metrics": sorted(frame["metric"].to_list()),
    }


def run(tasks: int | None = None) -> dict:
    """Try every candidate name, or only the first ``tasks`` of them (a quick look)."""
    from eval_pipeline.core.errors import EvalPipelineError

    names = candidates()[:tasks]
    ran: dict[str, Any] = {}
    failed: dict[str, str] = {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, _kind in names:
                signal.alarm(TIMEOUT_S)
                try:
                    ran[name] = try_task(Path(tmp), name)
                except (_Timeout, EvalPipelineError, Exception) as exc:  # noqa: B014
                    failed[name] = f"{type(exc).__name__}: {exc}"[:400]
                finally:
                    signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return {
        "checked": len(names),
        "ran_count": len(ran),
        "failed_count": len(failed),
        "ran": ran,
        "failed": failed,
        "wall_s": round(time.perf_counter() - start, 1),
        "ratio": None,
    }


if __name__ == "__main__":
    from eval_pipeline_tests.bench._common import write_result

    print(write_result(NAME, run()))
