"""Declarative automation: per-partition versions, the versions sensor, incremental re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.defs.assets import evaluation_condition
from eval_pipeline.defs.versions import (
    SOURCES,
    changed_versions,
    current_versions,
    version_event,
)
from eval_pipeline_tests.bench import incremental


def test_each_version_changes_only_with_what_it_covers(tmp_path: Path) -> None:
    project = incremental.make_project(tmp_path / "project")
    models = [*incremental.MODELS, incremental.JUDGE]
    before = current_versions(load_catalog(project, load_rows=False), models)
    expected = {
        "rubric": {("judges", "open-qa")},
        "prompt": {("dataset", "qa2")},
        "scorer": {("scorers", "json-extract")},
        # The model's revision; no judge reads m2, so no judges version moves.
        "revision": {("model", "m2")},
    }
    for which, changed in expected.items():
        incremental.edit(project, which)
        after = current_versions(load_catalog(project, load_rows=False), models)
        assert {(n, p) for n, p, _ in changed_versions(after, before)} == changed, which
        before = after


def test_a_judge_models_revision_moves_the_judged_datasets_version(tmp_path: Path) -> None:
    import yaml

    project = incremental.make_project(tmp_path / "project")
    models = [*incremental.MODELS, incremental.JUDGE]
    before = current_versions(load_catalog(project, load_rows=False), models)
    path = project / "models.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["models"][-1]["revision"] = "judge-r2"
    path.write_text(yaml.safe_dump(doc))
    after = current_versions(load_catalog(project, load_rows=False), models)
    assert {(n, p) for n, p, _ in changed_versions(after, before)} == {
        ("model", incremental.JUDGE),
        ("judges", "open-qa"),
    }


def test_a_partition_never_recorded_is_not_a_change() -> None:
    assert changed_versions({"model": {"a": "1", "b": "2"}}, {"model": {"a": "1"}}) == []
    assert changed_versions({"model": {"a": "3"}}, {"model": {"a": "1"}}) == [("model", "a", "3")]


def test_a_version_event_carries_the_data_version() -> None:
    event = version_event("model", "m1", "abc")
    assert event.asset_key == SOURCES[0].key
    assert event.partition == "m1"
    assert event.tags == {"dagster/data_version": "abc"}


def test_the_versions_sensor_records_first_and_reports_changes_after(tmp_path: Path) -> None:
    project = incremental.make_project(tmp_path / "project")
    with dg.instance_for_test() as instance:
        harness = incremental.Harness(project, tmp_path / "store", instance)
        # The first tick records every version and reports none (no flood on switch-on).
        assert harness.tick_versions() == 0
        assert set(json.loads(harness.sensor_cursor or "{}")) == {s.name for s in SOURCES}
        assert harness.tick_versions() == 0
        incremental.edit(project, "prompt")
        assert harness.tick_versions() == 1
        record = instance.get_latest_materialization_event(dg.AssetKey(["versions", "dataset"]))
        assert record is not None and record.dagster_event is not None
        assert record.dagster_event.partition == "qa2"


def test_the_evaluation_assets_declare_code_versions_conditions_and_pools(tmp_path: Path) -> None:
    from eval_pipeline.defs import build_definitions

    project = incremental.make_project(tmp_path / "project")
    graph = build_definitions(str(project), str(tmp_path / "store")).resolve_asset_graph()
    for name in ("generations", "judgements", "scores", "aggregates", "leaderboard"):
        assert graph.get(dg.AssetKey(name)).code_version, name
    for name in ("generations", "judgements", "scores", "aggregates"):
        node = graph.get(dg.AssetKey(name))
        assert node.automation_condition is not None
        assert node.automation_condition.get_label() == "eager_on_versions"
    parents = graph.get(dg.AssetKey("generations")).parent_keys
    assert {dg.AssetKey(["versions", "model"]), dg.AssetKey(["versions", "dataset"])} <= parents
    parents = graph.get(dg.AssetKey("judgements")).parent_keys
    assert {dg.AssetKey("generations"), dg.AssetKey(["versions", "judges"])} <= parents
    parents = graph.get(dg.AssetKey("scores")).parent_keys
    assert {dg.AssetKey(["versions", "scorers"]), dg.AssetKey(["versions", "judges"])} <= parents


@pytest.mark.slow
def test_an_edit_rematerializes_only_the_cells_that_read_it(tmp_path: Path) -> None:
    result = incremental.run(tmp_path)
    assert result["initial_requested"] == 0
    edits = result["edits"]
    models = [*incremental.MODELS, incremental.JUDGE]

    def cells(datasets: list[str], row: list[str]) -> list[str]:
        return sorted(f"{d}|{m}" for d in datasets for m in row)

    # (a) a rubric: only the judged dataset's verdicts, scores and aggregates, nothing generated.
    rubric = edits["rubric"]
    assert rubric["requested"] == {
        "generations": [],
        "judgements": cells(["open-qa"], models),
        "scores": cells(["open-qa"], models),
        "aggregates": cells(["open-qa"], models),
    }
    assert rubric["model_calls"] == 0 and rubric["judge_calls"] > 0
    # (b) a dataset's prompt: only that dataset's cells, every asset.
    prompt = edits["prompt"]
    assert prompt["requested"] == {name: cells(["qa2"], models) for name in incremental.EVALUATED}
    assert prompt["model_calls"] == len(incremental.MODELS) * incremental.SAMPLE_LIMIT
    # (c) a scorer's parameter: that dataset's scores and aggregates, no model called.
    scorer = edits["scorer"]
    assert scorer["requested"] == {
        "generations": [],
        "judgements": [],
        "scores": cells(["json-extract"], models),
        "aggregates": cells(["json-extract"], models),
    }
    assert scorer["model_calls"] == 0 and scorer["judge_calls"] == 0
    # (d) a model's revision: only that model's cells.
    revision = edits["revision"]
    every = sorted(incremental.DATASETS)
    assert revision["requested"] == {name: cells(every, ["m2"]) for name in incremental.EVALUATED}
    assert revision["model_calls"] == len(every) * incremental.SAMPLE_LIMIT
    assert revision["judge_calls"] == 0
    # Once the requested runs are done, the next evaluation requests nothing.
    assert all(outcome["requested_after"] == 0 for outcome in edits.values())


CELLS = dg.StaticPartitionsDefinition([f"c{i}" for i in range(6)])


@dg.asset(partitions_def=CELLS, automation_condition=evaluation_condition())
def cell_input() -> None:
    """Stands in for generations."""


@dg.asset(partitions_def=CELLS, deps=[cell_input], automation_condition=evaluation_condition())
def cell_result() -> None:
    """Stands in for judgements."""


def test_a_cell_its_run_writes_during_the_ticks_evaluation_is_not_requested_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run writes ``cell_result`` while the automation sensor's tick is evaluating it.

    The run (every cell, both assets) has written ``cell_input`` before the tick and
    writes ``cell_result`` just after the tick first reads ``cell_result``'s state, as a
    run under ``make ui`` did in the daemon bench. Every cell was evaluated by its own run
    after its input: nothing is due, whichever way the writes fall.
    """
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView

    defs = dg.Definitions(
        assets=[cell_input, cell_result],
        jobs=[dg.define_asset_job("cells_job", partitions_def=CELLS)],
    )
    keys = CELLS.get_partition_keys()
    with dg.instance_for_test() as instance:

        def write(asset: dg.AssetsDefinition) -> None:
            for key in keys:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset.key, partition=key)
                )

        write(cell_input)
        write(cell_result)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        # The night's run over every cell, then its first step's results.
        instance.create_run_for_job(
            defs.resolve_job_def("cells_job"),
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        write(cell_input)

        reads: list[str] = []

        def on_read(name: str):
            original = getattr(AssetGraphView, name)

            async def read(self, *, key, **kwargs):
                result = await original(self, key=key, **kwargs)
                if key == cell_result.key:
                    reads.append(name)
                    if len(reads) == 1:
                        write(cell_result)  # the run's next step lands
                return result

            monkeypatch.setattr(AssetGraphView, name, read)

        on_read("compute_run_in_progress_subset")
        on_read("compute_updated_since_temporal_context_subset")
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after.total_requested == 0
    assert reads[0] == "compute_run_in_progress_subset"
