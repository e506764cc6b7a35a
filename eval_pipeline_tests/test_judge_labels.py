"""Human ratings for judge calibration: the ``label`` session and which labels calibration uses."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_pipeline.core.errors import CatalogError, EvalPipelineError
from eval_pipeline.judge import (
    HUMAN_LABELS_FILE,
    calibrate_judge,
    label_session,
    labels_source,
    load_labels,
)
from eval_pipeline.storage import Store
from eval_pipeline_tests import processes
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project
from eval_pipeline_tests.projects import REPO


def _session(root, answers, rater="alice", **kwargs):
    queue = list(answers)
    shown: list[str] = []

    def ask(prompt):
        shown.append(prompt)
        return queue.pop(0) if queue else None

    return label_session(root, "helpfulness", rater, ask=ask, say=shown.append, **kwargs), shown


@pytest.fixture
def root(tmp_path):
    shutil.copytree(REPO / "datasets" / "judge-labels", tmp_path / "datasets" / "judge-labels")
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    return tmp_path


def _human_rows(root):
    path = root / HUMAN_LABELS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_session_saves_each_rating_and_the_next_one_resumes(root):
    session, shown = _session(root, ["4", "seven", "2", "s", "q"])
    assert (session.labelled, session.skipped, session.remaining) == (2, 1, 40)
    assert any("'seven' is not a rating" in line for line in shown)
    assert any(line.startswith("  5 = fully helpful") for line in shown)  # the anchors
    rows = _human_rows(root)
    assert [(r["id"], r["label"], r["labelled_by"]) for r in rows] == [
        ("jl-01-ideal", 4, "human:alice"),
        ("jl-01-terse", 2, "human:alice"),
    ]
    assert rows[0]["answer"] and rows[0]["question"] and rows[0]["rubric"] == "helpfulness"
    # Resuming: the skipped response comes first, the rated ones are not asked again.
    again, shown = _session(root, ["1"], limit=1)
    assert again.labelled == 1 and again.remaining == 39
    assert any("jl-01-partial" in line for line in shown)
    assert [r["id"] for r in _human_rows(root)][-1] == "jl-01-partial"
    # Another rater starts from the beginning.
    bob, _ = _session(root, ["3"], rater="bob", limit=1)
    assert bob.remaining == 41 and _human_rows(root)[-1]["labelled_by"] == "human:bob"


def test_bad_rubric_or_rater_is_refused_before_anything_is_written(root):
    with pytest.raises(EvalPipelineError, match="unknown rubric"):
        label_session(root, "charm", "alice", ask=lambda p: "3", say=lambda s: None)
    with pytest.raises(EvalPipelineError, match="rater name"):
        label_session(root, "helpfulness", "Alice Smith", ask=lambda p: "3", say=lambda s: None)
    assert not (root / HUMAN_LABELS_FILE).exists()


def test_human_ratings_replace_the_rule_labels_of_their_rubric(root):
    rule = load_labels(root, "helpfulness")
    assert len(rule) == 42 and labels_source(rule) == "rule"
    _session(root, ["5", "1"])
    _session(root, ["4"], rater="bob")
    human = load_labels(root, "helpfulness")
    assert [(r["id"], r["label"]) for r in human] == [
        ("jl-01-ideal", 5),
        ("jl-01-terse", 1),
        ("jl-01-ideal", 4),
    ]
    assert labels_source(human) == "human (2 raters)"
    # Other rubrics keep their rule labels.
    assert labels_source(load_labels(root, "grammar")) == "rule"


def test_a_bad_human_label_is_a_readable_error(root):
    path = root / HUMAN_LABELS_FILE
    path.write_text(json.dumps({"id": "x", "rubric": "helpfulness", "label": 7}) + "\n")
    with pytest.raises(CatalogError, match=r"human.jsonl.*label.*must be an integer 1-5"):
        load_labels(root, "helpfulness")
    path.write_text("{not json\n")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_labels(root, "helpfulness")


def test_calibration_fits_against_the_human_ratings_once_there_are_enough(tmp_path):
    project = judged_project(tmp_path / "p", answers=distorted_label_answers())
    # 25 ratings from one person; the fake judge's verdicts are the distorted rule labels.
    _session(project, ["3"] * 25, limit=25)
    from eval_pipeline.catalog import load_catalog

    report = calibrate_judge(
        load_catalog(project), Store(tmp_path / "s"), "fake-judge", "helpfulness"
    )
    assert report.status == "fitted"
    assert report.labels == 25 and report.labels_source == "human (1 rater)"
    # Every human label is 3: the calibrated scores sit at 3 whatever the judge says.
    assert report.result.after.mae < report.result.before.mae


def _label_command(root, rubric: str, answers: str = "") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "eval_pipeline.cli", "--root", str(root), "label"]
    return subprocess.run(
        [*command, "--rubric", rubric, "--rater", "carol"],
        input=answers,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=120,
    )


def test_the_label_command_reads_answers_from_standard_input(root):
    shutil.copy(REPO / "models.yaml", root / "models.yaml")
    done = _label_command(root, "helpfulness", "5\n4\n")
    assert done.returncode == 0, done.stderr
    assert "2 rated, 0 skipped, 40 left for carol on helpfulness" in done.stdout
    assert [r["label"] for r in _human_rows(root)] == [5, 4]
    bad = _label_command(root, "charm")
    assert bad.returncode == 2 and "unknown rubric 'charm'" in bad.stderr


def _read_until(stream, marker: bytes, timeout_s: float = 60) -> bytes:
    """What ``stream`` (a pipe) says up to and including ``marker``."""
    seen, deadline = b"", time.monotonic() + timeout_s
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen[-2000:]!r}"
        if select.select([stream], [], [], left)[0]:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"closed before {marker!r}: {seen[-2000:]!r}"
            seen += chunk
    return seen


def _wait_until_reading_a_pipe(pid: int, timeout_s: float = 30) -> None:
    """Until ``pid`` blocks reading a pipe: a signal just before that waits for the read."""
    deadline = time.monotonic() + timeout_s
    while "pipe_read" not in Path(f"/proc/{pid}/wchan").read_text():
        assert time.monotonic() < deadline, f"{pid} never waited for input"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_or_sigterm_at_the_prompt_ends_the_label_session(root, sig):
    shutil.copy(REPO / "models.yaml", root / "models.yaml")
    command = [sys.executable, "-m", "eval_pipeline.cli", "--root", str(root), "label"]
    command += ["--rubric", "helpfulness", "--rater", "dave"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Standard input stays open and silent: the session waits at its first prompt.
    with processes.started(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as proc:
        _read_until(proc.stdout, b"rating 1-5")
        _wait_until_reading_a_pipe(proc.pid)
        start = time.monotonic()
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - start
    out = proc.stdout.read().decode()  # all of it: the process is gone
    assert code == 0, f"exit code {code} after {seconds:.2f} s"
    assert "0 rated, 0 skipped, 42 left for dave on helpfulness" in out


def test_the_calibrations_command_prints_the_stored_calibrations(tmp_path, capsys):
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.cli import main

    project = judged_project(tmp_path / "p", answers=distorted_label_answers())
    store = tmp_path / "s"
    empty = ["--root", str(project), "--store", str(tmp_path / "empty"), "calibrations"]
    assert main(empty) == 3
    assert "no judge calibrations" in capsys.readouterr().err
    report = calibrate_judge(load_catalog(project), Store(store), "fake-judge", "helpfulness")
    assert main(["--root", str(project), "--store", str(store), "calibrations", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["judge"], row["rubric"], row["status"]) == ("fake-judge", "helpfulness", "fitted")
    assert row["labels"] == 42 and row["labels_source"] == "rule"
    assert row["result"]["map"]["method"] == report.result.method
    assert row["self_consistency"] == report.self_consistency and row["self_consistency"]["value"]
    assert row["judge_human_agreement"]["kappa"] == report.agreement["kappa"]
    assert main(["--root", str(project), "--store", str(store), "calibrations"]) == 0
    table = capsys.readouterr().out
    assert f"| fake-judge | helpfulness | 42 | rule | 42 | {report.result.method} |" in table
