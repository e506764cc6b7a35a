"""`eval-pipeline run` on failures, and `eval-pipeline runs mark-dead` on killed runs.

The run history is a real SQLite instance under a temporary DAGSTER_HOME; the killed run
is a real process killed with SIGKILL while its run is STARTED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest

from eval_pipeline.cli import main
from eval_pipeline.defs import mark_dead_runs
from eval_pipeline_tests import processes
from eval_pipeline_tests.projects import make_project

# A model that fails at once: its API key variable is never set.
NO_KEY = {
    "slug": "api-no-key",
    "provider": "openai",
    "model_id": "gpt-x",
    "options": {"api_key_env": "EVAL_PIPELINE_TEST_UNSET_KEY", "base_url": "http://127.0.0.1:9"},
}
GOOD = {"slug": "fake-good", "provider": "fake", "model_id": "fake/reference"}

# Starts a run of a one-op job that hangs, and stays in it until killed.
_HANGING_RUN = """
import time
import dagster as dg

@dg.op
def hang():
    time.sleep(600)

@dg.job
def hanging_job():
    hang()

with dg.DagsterInstance.get() as instance:
    hanging_job.execute_in_process(instance=instance)
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("EVAL_PIPELINE_TEST_UNSET_KEY", raising=False)
    # Its storage is created now, not by a run process and the test at once: two processes
    # creating the SQLite tables together collide ("table ... already exists").
    with dg.DagsterInstance.get():
        pass
    return home


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get()


@contextmanager
def _hanging_run(*, other_than: str = "") -> Iterator[tuple[subprocess.Popen, str]]:
    """A process in the middle of a run, and that run's id (once it is STARTED)."""
    with processes.started(
        [sys.executable, "-c", _HANGING_RUN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        yield proc, _started_run(proc, other_than)


def _started_run(proc: subprocess.Popen, other_than: str) -> str:
    """The id of the STARTED run ``proc`` is in (not ``other_than``), once its step runs."""
    deadline = time.monotonic() + 120
    with _instance() as instance:
        while time.monotonic() < deadline:
            known = {r.dagster_run.run_id for r in instance.get_run_records()}
            started = instance.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            )
            for record in started:
                if record.dagster_run.run_id == other_than:
                    continue
                steps = instance.get_records_for_run(
                    record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START
                ).records
                if steps:
                    return record.dagster_run.run_id
            assert proc.poll() is None, f"the run process exited early; runs: {known}"
            time.sleep(0.5)
    raise AssertionError("the hanging run never reached its step")


def _status(run_id: str) -> dg.DagsterRunStatus:
    with _instance() as instance:
        return instance.get_run_by_id(run_id).status


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_failing_first_run_in_an_empty_store_says_there_is_no_leaderboard(tmp_path, home, capsys):
    project = make_project(tmp_path / "p", models={"models": [NO_KEY]}, datasets=("qa",))
    # Past the preflight (which would refuse the missing key before any run), into a run
    # whose generation step fails.
    argv = ["--root", str(project), "--store", str(tmp_path / "store"), "run", "--limit", "2"]
    code = main([*argv, "--no-preflight"])
    err = capsys.readouterr().err
    assert code == 1
    assert "failed partitions: qa|api-no-key" in err
    assert "no leaderboard yet" in err
    assert "Traceback" not in err


def test_mark_dead_marks_a_killed_run_failed_and_leaves_a_live_run_alone(home, capsys):
    with (
        _hanging_run() as (killed, killed_id),
        _hanging_run(other_than=killed_id) as (live, live_id),
    ):
        _kill(killed)
        assert _status(killed_id) == dg.DagsterRunStatus.STARTED  # what a kill leaves

        assert main(["runs", "mark-dead", "--dry-run"]) == 0
        assert f"would mark run {killed_id}" in capsys.readouterr().out
        assert _status(killed_id) == dg.DagsterRunStatus.STARTED

        assert main(["runs", "mark-dead"]) == 0
        out = capsys.readouterr().out
        assert f"marked run {killed_id} (hanging_job, pid {killed.pid}) as FAILURE" in out
        assert live_id not in out
        assert _status(killed_id) == dg.DagsterRunStatus.FAILURE
        assert _status(live_id) == dg.DagsterRunStatus.STARTED
        with _instance() as instance:
            failure = instance.get_records_for_run(
                killed_id, of_type=dg.DagsterEventType.RUN_FAILURE
            ).records
            assert "is gone: no such process" in failure[0].event_log_entry.dagster_event.message
            assert mark_dead_runs(instance) == []  # already marked: nothing left to do
        _kill(live)
    assert main(["runs", "mark-dead"]) == 0
    assert _status(live_id) == dg.DagsterRunStatus.FAILURE


def test_a_run_killed_on_another_host_is_left_to_that_host(home):
    with _hanging_run() as (proc, run_id):
        _kill(proc)
    with _instance() as instance:
        instance.add_run_tags(run_id, {"eval_pipeline/host": "some-other-node"})
        assert mark_dead_runs(instance) == []
    assert _status(run_id) == dg.DagsterRunStatus.STARTED


def test_eval_pipeline_run_marks_a_previously_killed_run_failed_when_it_starts(
    tmp_path, home, capsys
):
    with _hanging_run() as (proc, run_id):
        _kill(proc)
    project = make_project(tmp_path / "p", models={"models": [GOOD]}, datasets=("qa",))
    argv = ["--root", str(project), "--store", str(tmp_path / "store"), "run", "--limit", "2"]
    assert main(argv) == 0
    assert f"marked run {run_id}" in capsys.readouterr().err
    assert _status(run_id) == dg.DagsterRunStatus.FAILURE
    with _instance() as instance:
        ours = [r for r in instance.get_run_records() if r.dagster_run.run_id != run_id]
        assert ours and all(
            r.dagster_run.tags.get("eval_pipeline/host") == os.uname().nodename for r in ours
        )
