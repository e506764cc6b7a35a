"""Incremental re-evaluation: what one edit makes the declarative automation re-run.

Writes ``.bench/incremental.json``. A project of 3 fake models and a fake judge (the judge
is a catalog model, so the grid has 4 model rows) x 4 datasets (``qa``, ``qa2`` with its
own prompt, ``json-extract``, ``open-qa`` judged on the helpfulness rubric) is evaluated
once on a real Dagster instance. Then four edits, one at a time:

- ``rubric``: the helpfulness rubric's text;
- ``prompt``: ``qa2``'s prompt template;
- ``scorer``: a parameter of one of ``json-extract``'s scorers;
- ``revision``: one model's ``revision``.

After each: one tick of ``versions_sensor`` (the version it records), one evaluation of
the automation conditions (``dg.evaluate_automation_conditions``, as
``evaluation_automation`` does), the requested partitions materialized through
``evaluation_job``, and a second evaluation (which must request nothing). Per edit: the
partitions requested per asset, and the model and judge calls made (the fake provider's
call log).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TypedDict

import dagster as dg
import yaml

from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.automation import versions_sensor
from eval_pipeline.defs.partitions import grid_partitions
from eval_pipeline.providers.fake import CALL_LOG
from eval_pipeline.resources import CatalogResource
from eval_pipeline_tests.bench._common import REPO, write_result

MODELS = ("m1", "m2", "m3")
JUDGE = "fake-judge"
DATASETS = ("qa", "qa2", "json-extract", "open-qa")
EVALUATED = ("aggregates", "generations", "judgements", "scores")
SAMPLE_LIMIT = 3


class IncrementalResult(TypedDict):
    """What ``.bench/incremental.json`` holds (besides the machine's facts)."""

    grid: str
    sample_limit: int
    initial_s: float
    initial_requested: int
    edits: dict[str, EditOutcome]
    table: dict[str, dict[str, int]]


class EditOutcome(TypedDict):
    """What one edit made the automation do."""

    requested: dict[str, list[str]]
    model_calls: int
    judge_calls: int
    requested_after: int
    runs: int
    seconds: float


def make_project(root: Path) -> Path:
    """The 4 x 4 project (3 fake models and the fake judge; 4 datasets)."""
    models = [
        {"slug": m, "provider": "fake", "model_id": f"fake/{m}", "options": {"mode": "reference"}}
        for m in MODELS
    ]
    verdict = '{"score": 4, "reason": "clear"}'
    models.append(
        {
            "slug": JUDGE,
            "provider": "fake",
            "model_id": "fake/judge",
            "options": {"mode": "fixed", "text": verdict},
        }
    )
    root.mkdir(parents=True)
    (root / "models.yaml").write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    for name in ("qa", "json-extract", "open-qa", "judge-labels"):
        shutil.copytree(REPO / "datasets" / name, root / "datasets" / name)
    shutil.copytree(REPO / "prompts", root / "prompts")
    shutil.copy(root / "prompts" / "qa.jinja", root / "prompts" / "qa2.jinja")
    shutil.copytree(root / "datasets" / "qa", root / "datasets" / "qa2")
    spec = root / "datasets" / "qa2" / "dataset.yaml"
    spec.write_text(
        spec.read_text()
        .replace("name: qa\n", "name: qa2\n")
        .replace("prompt: qa\n", "prompt: qa2\n")
    )
    judged = root / "datasets" / "open-qa" / "dataset.yaml"
    doc = yaml.safe_load(judged.read_text())
    doc["scorers"][0]["params"]["judges"] = [JUDGE]
    judged.write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def edit(project: Path, which: str) -> None:
    """Apply one of the four edits to the project on disk."""
    if which == "rubric":
        path = project / "prompts" / "judge-helpfulness.jinja"
        path.write_text(path.read_text() + "\nBe strict about unsupported claims.\n")
    elif which == "prompt":
        path = project / "prompts" / "qa2.jinja"
        path.write_text("Answer briefly.\n" + path.read_text())
    elif which == "scorer":
        path = project / "datasets" / "json-extract" / "dataset.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["scorers"][0]["params"] = {"all_or_nothing": False}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    elif which == "revision":
        path = project / "models.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["models"][1]["revision"] = "r2"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    else:
        raise ValueError(f"unknown edit {which!r}")


class Harness:
    """The project, its store and instance, and the automation's state between edits."""

    def __init__(self, project: Path, store: Path, instance: dg.DagsterInstance) -> None:
        self.project, self.store, self.instance = project, store, instance
        self.sensor_cursor: str | None = None
        self.previous: dg.EvaluateAutomationConditionsResult | None = None

    def defs(self) -> dg.Definitions:
        # Built again after every edit, as a code location reload does.
        return build_definitions(str(self.project), str(self.store))

    def tick_versions(self) -> int:
        """One ``versions_sensor`` tick; the version events it recorded."""
        catalog = CatalogResource(root=str(self.project), store_root=str(self.store))
        grid = grid_partitions(catalog.load())
        sensor = versions_sensor(grid)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.sensor_cursor, resources={"catalog": catalog}
        )
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.sensor_cursor = result.cursor
        for event in result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        return len(result.asset_events or [])

    def evaluate(self, defs: dg.Definitions) -> dict[str, list[str]]:
        """One evaluation of the automation conditions: partitions requested per asset."""
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=self.instance,
            cursor=self.previous.cursor if self.previous else None,
        )
        self.previous = result
        return {
            name: sorted(str(k) for k in result.get_requested_partitions(dg.AssetKey(name)))
            for name in EVALUATED
        }

    def execute(self, defs: dg.Definitions, requested: dict[str, list[str]]) -> int:
        """Materialize the requested partitions; returns the number of runs.

        Partitions that need the same assets go in one run per rectangle of the grid
        (Dagster's partition range tags): one model's neighbouring datasets or one
        dataset's neighbouring models, whichever makes fewer runs.
        """
        assets_of: dict[str, tuple[str, ...]] = defaultdict(tuple)
        for name in EVALUATED:
            for key in requested.get(name, []):
                assets_of[key] = (*assets_of[key], name)
        grid = defs.resolve_job_def("evaluation_job").partitions_def
        assert isinstance(grid, dg.MultiPartitionsDefinition)
        runs = min((_rectangles(assets_of, grid, along) for along in ("dataset", "model")), key=len)
        job = defs.resolve_job_def("evaluation_job")
        for names, first, last in runs:
            config = {"ops": {"generations": {"config": {"sample_limit": SAMPLE_LIMIT}}}}
            job.execute_in_process(
                instance=self.instance,
                asset_selection=[dg.AssetKey(n) for n in names],
                run_config=config if "generations" in names else {},
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
        return len(runs)


def _rectangles(
    assets_of: dict[str, tuple[str, ...]], grid: dg.MultiPartitionsDefinition, along: str
) -> list[tuple[tuple[str, ...], str, str]]:
    """Runs ``(assets, first key, last key)`` over the requested partitions.

    A run holds partitions with the same assets that lie next to each other along the
    dimension ``along``, the other one fixed.
    """
    other = "model" if along == "dataset" else "dataset"
    order = grid.get_partitions_def_for_dimension(along).get_partition_keys()
    lines: dict[tuple[tuple[str, ...], str], list[int]] = defaultdict(list)
    for key, names in assets_of.items():
        cell = PartitionKey.parse(key)
        fixed, moving = (
            (cell.model, cell.dataset) if along == "dataset" else (cell.dataset, cell.model)
        )
        lines[(names, fixed)].append(order.index(moving))
    runs = []
    for (names, fixed), positions in sorted(lines.items()):
        positions.sort()
        start = prev = positions[0]
        for pos in [*positions[1:], None]:
            if pos is not None and pos == prev + 1:
                prev = pos
                continue
            ends = [{along: order[i], other: fixed} for i in (start, prev)]
            first, last = (PartitionKey(model=e["model"], dataset=e["dataset"]).key for e in ends)
            runs.append((names, first, last))
            if pos is not None:
                start = prev = pos
    return runs


def calls() -> tuple[int, int]:
    """(model calls, judge calls) in the fake provider's log so far."""
    judge = sum(1 for slug, _ in CALL_LOG if slug == JUDGE)
    return len(CALL_LOG) - judge, judge


def run_edit(harness: Harness, which: str) -> EditOutcome:
    start = time.perf_counter()
    edit(harness.project, which)
    harness.tick_versions()
    defs = harness.defs()
    requested = harness.evaluate(defs)
    before = calls()
    runs = harness.execute(defs, requested)
    after = calls()
    again = harness.evaluate(defs)
    return EditOutcome(
        requested=requested,
        model_calls=after[0] - before[0],
        judge_calls=after[1] - before[1],
        requested_after=sum(len(v) for v in again.values()),
        runs=runs,
        seconds=round(time.perf_counter() - start, 2),
    )


def run(scratch: Path | None = None) -> IncrementalResult:
    """The four edits on the stored grid (``make bench`` passes no folder: a temporary one)."""
    if scratch is None:
        with tempfile.TemporaryDirectory(prefix="incremental-bench-") as tmp:
            return run(Path(tmp))
    project = make_project(scratch / "project")
    store, home = scratch / "store", scratch / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        harness = Harness(project, store, instance)
        start = time.perf_counter()
        harness.tick_versions()
        defs = harness.defs()
        every = [f"{d}|{m}" for d in DATASETS for m in (*MODELS, JUDGE)]
        harness.execute(defs, {name: every for name in EVALUATED})
        first = harness.evaluate(defs)
        initial_s = round(time.perf_counter() - start, 2)
        edits = {
            which: run_edit(harness, which) for which in ("rubric", "prompt", "scorer", "revision")
        }
    return IncrementalResult(
        **{
            "grid": f"{len(MODELS) + 1} models (3 + the judge) x {len(DATASETS)} datasets",
            "sample_limit": SAMPLE_LIMIT,
            "initial_s": initial_s,
            "initial_requested": sum(len(v) for v in first.values()),
            "edits": edits,
            "table": {
                which: {
                    **{name: len(keys) for name, keys in outcome["requested"].items()},
                    "model_calls": outcome["model_calls"],
                    "judge_calls": outcome["judge_calls"],
                    "runs": outcome["runs"],
                }
                for which, outcome in edits.items()
            },
        }
    )


def main(argv: list[str]) -> int:
    result = run()
    path = write_result("incremental", dict(result))
    print(json.dumps(result["table"], indent=2), f"-> {path}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
