"""A regressed cell is held, and a passing rerun releases it.

Its run fails at the blocking check; the reports keep its last passing numbers while the
other cells publish.
"""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
import yaml

from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.holds import HELD_TAG, HELD_TAG_VALUE, held_cells
from eval_pipeline.regression import pin_baseline
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialization_metadata, materialize, report
from eval_pipeline_tests.opsupport import alerts_to, no_dangling_defs_state, receiver
from eval_pipeline_tests.projects import make_project

LIMIT = 60
CELL, STEADY = "qa|fake-model", "qa|fake-steady"


def _models(**options) -> dict:
    entry = {"provider": "fake", "options": {"mode": "reference"}}
    return {
        "models": [
            {
                **entry,
                "slug": "fake-model",
                "model_id": "fake/model",
                "revision": options.pop("revision", "r1"),
                "options": {"mode": "reference", **options},
            },
            {**entry, "slug": "fake-steady", "model_id": "fake/steady", "revision": "r1"},
        ]
    }


def _board(store: Store) -> dict[str, dict]:
    board = store.read("leaderboard")
    return {f"{r['dataset']}|{r['model']}": r for r in board.iter_rows(named=True)}


def _pin_then_regress(project, store_root, instance) -> None:
    """Both cells pass and are pinned as ``main``; the next revision of CELL answers 15% wrong."""
    for cell in (CELL, STEADY):
        assert materialize(project, store_root, cell, sample_limit=LIMIT, instance=instance).success
    pin_baseline(Store(store_root), project, "main", description="r1")
    (project / "models.yaml").write_text(
        yaml.safe_dump(_models(revision="r2", wrong_fraction=0.15))
    )


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """Two cells pass and a baseline is pinned; a new revision of one cell then regresses."""
    tmp = tmp_path_factory.mktemp("held")
    project = make_project(tmp / "project", models=_models(), datasets=("qa",))
    store_root = tmp / "store"
    with dg.instance_for_test() as instance:
        _pin_then_regress(project, store_root, instance)
        regressed = materialize(
            project, store_root, CELL, sample_limit=LIMIT, instance=instance, raise_on_error=False
        )
        # The steady cell runs again after the regression: it publishes as usual.
        assert materialize(
            project, store_root, STEADY, sample_limit=LIMIT, instance=instance
        ).success
        reporting = report(project, store_root, instance=instance)
        yield {
            "project": project,
            "store": Store(store_root),
            "instance": instance,
            "regressed": regressed,
            "reporting": reporting,
        }


def test_the_blocking_check_fails_the_run_of_a_regressed_cell(held):
    result = held["regressed"]
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["aggregates_aggregates_regression"]
    error = failures[0].step_failure_data.error
    assert error is not None and error.cls_name == "DagsterAssetCheckFailedError"
    # The cell was evaluated and stored: only what lies downstream is held back.
    assert result.asset_materializations_for_node("aggregates")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["aggregates_regression"].passed
    assert checks["aggregates_regression"].blocking
    assert checks["aggregates_sandbox"].passed  # the other checks still ran
    run = held["instance"].get_run_by_id(result.run_id)
    assert run.tags[HELD_TAG] == HELD_TAG_VALUE


def test_the_leaderboard_keeps_a_held_cells_last_passing_numbers(held):
    store = held["store"]
    latest = store.read("aggregates", dataset="qa", model="fake-model")
    current = latest.filter(pl.col("metric") == "answer_match")["mean"][0]
    assert current < 0.95  # the regressed numbers are in the store ...
    board = _board(store)
    assert board[CELL]["mean"] == 1.0 and board[CELL]["held"] is True  # ... not published
    assert board[STEADY]["mean"] == 1.0 and board[STEADY]["held"] is False
    meta = materialization_metadata(held["reporting"], "leaderboard")
    assert meta["held"] == 1
    table = meta["held_cells"]
    assert f"| {CELL} | answer_match | -0." in table
    assert "| main | [" in table and held["regressed"].run_id[:8] in table
    assert "last passing run" in table and STEADY not in table
    assert "1.000 (held)" in meta["leaderboard"]
    page = (store.root / "reports" / "leaderboard" / "index.html").read_text()
    assert "1.000 (held)" in page


def test_the_regression_report_lists_the_held_cell(held):
    meta = materialization_metadata(held["reporting"], "regression_report")
    assert meta["held"] == 1 and CELL in meta["held_cells"]
    # The report itself still compares the store as it stands: the regression shows there.
    assert meta["regressed"] is True


def test_a_passing_rerun_releases_the_hold(held):
    project, store, instance = held["project"], held["store"], held["instance"]
    (project / "models.yaml").write_text(yaml.safe_dump(_models(revision="r3")))
    rerun = materialize(project, store.root, CELL, sample_limit=LIMIT, instance=instance)
    assert rerun.success
    assert held_cells(instance, "http://ui") == []
    meta = materialization_metadata(report(project, store.root, instance=instance), "leaderboard")
    assert meta["held"] == 0 and meta["held_cells"] == "No cell is held."
    board = _board(store)
    assert board[CELL]["held"] is False and board[CELL]["mean"] == 1.0


def test_a_run_over_several_cells_holds_only_the_regressed_one(tmp_path):
    # A run covering a range of cells (a single-run backfill): one regressed cell fails the
    # run (the check blocks), and only that cell is held.
    project = make_project(tmp_path / "project", models=_models(), datasets=("qa",))
    store_root = tmp_path / "store"
    with dg.instance_for_test() as instance:
        _pin_then_regress(project, store_root, instance)
        defs = build_definitions(str(project), str(store_root))
        job = defs.resolve_job_def("regression_suite_job")
        failures = _FailureAlerts(defs.resolve_sensor_def("run_failure_sensor"), instance)
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"generations": {"config": {"sample_limit": LIMIT}}}},
            tags={
                "dagster/asset_partition_range_start": CELL,
                "dagster/asset_partition_range_end": STEADY,
            },
            raise_on_error=False,
        )
        assert not result.success
        verdicts = {
            e.partition: e.passed
            for e in result.get_asset_check_evaluations()
            if e.check_name == "aggregates_regression"
        }
        assert verdicts == {CELL: False, STEADY: True, None: False}
        assert [h.partition for h in held_cells(instance, "http://ui")] == [CELL]
        assert instance.get_run_by_id(result.run_id).tags[HELD_TAG] == HELD_TAG_VALUE
        # A run failed by the blocking check alone is regression_sensor's to alert on (with
        # its metrics): run_failure_sensor sends nothing for it.
        assert failures.alerts_after_tick() == []
        # Accepting the new numbers: re-pin the baseline from the store, rerun the cell
        # (the cache answers it), and its passing verdict releases the hold.
        pin_baseline(Store(store_root), project, "main", description="r2")
        rerun = materialize(project, store_root, CELL, sample_limit=LIMIT, instance=instance)
        assert rerun.success
        assert materialization_metadata(rerun, "generations")["model_calls"] == 0
        assert held_cells(instance, "http://ui") == []


class _FailureAlerts:
    """``run_failure_sensor`` ticked as the daemon does, posting to a loopback receiver."""

    def __init__(self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> None:
        self.sensor, self.instance = sensor, instance
        self.cursor = self._tick([])  # the first tick starts from now

    def _tick(self, bodies: list) -> str | None:
        with receiver() as hook, no_dangling_defs_state():
            context = dg.build_sensor_context(
                instance=self.instance,
                cursor=getattr(self, "cursor", None),
                resources={"alerts": alerts_to(hook.url)},
            )
            data = self.sensor.evaluate_tick(context)
            bodies.extend(hook.bodies)
        return data.cursor if data.cursor is not None else getattr(self, "cursor", None)

    def alerts_after_tick(self) -> list:
        bodies: list = []
        self.cursor = self._tick(bodies)
        return bodies
