"""The CI workflow files: they parse, the commands they run exist and work locally."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from eval_pipeline_tests.opsupport import ONE_MODEL, run_suite
from eval_pipeline_tests.projects import REPO, make_project

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _steps(path: Path) -> list[dict]:
    doc = yaml.safe_load(path.read_text())
    return [step for job in doc["jobs"].values() for step in job["steps"]]


def _commands(path: Path) -> list[list[str]]:
    out = []
    for step in _steps(path):
        for line in step.get("run", "").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                out.append(shlex.split(line))
    return out


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))


def _cli_commands() -> set[str]:
    from eval_pipeline.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)


def test_there_is_a_pull_request_workflow_and_a_nightly_workflow():
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "nightly.yml"} <= names
    ci = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    # YAML reads the key `on` as True.
    assert "pull_request" in ci[True]
    nightly = yaml.safe_load((REPO / ".github/workflows/nightly.yml").read_text())
    assert nightly[True]["schedule"][0]["cron"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_every_command_a_workflow_runs_exists(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["jobs"] and all("runs-on" in job for job in doc["jobs"].values())
    targets, cli, checked = _make_targets(), _cli_commands(), 0
    for argv in _commands(path):
        if argv[0] == "make":
            assert set(argv[1:]) <= targets, f"{path.name}: {argv} names a missing make target"
        elif argv[0] == "bash" or argv[0].startswith("scripts/"):
            script = REPO / (argv[1] if argv[0] == "bash" else argv[0])
            assert script.is_file(), f"{path.name}: {script} does not exist"
        elif argv[0].endswith("eval-pipeline"):
            assert argv[1] in cli, f"{path.name}: eval-pipeline has no command {argv[1]!r}"
        else:
            raise AssertionError(f"{path.name}: unchecked command {argv}")
        checked += 1
    assert checked


def test_the_scripts_the_workflows_run_call_only_what_exists():
    targets = _make_targets()
    assert {"env", "test", "ui"} <= targets
    text = (REPO / "scripts" / "ci_suite.sh").read_text()
    assert "job execute -m eval_pipeline.definitions" in text
    for script in re.findall(r"scripts/[\w.-]+", text):
        assert (REPO / script).is_file(), script
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    for script in re.findall(r"scripts/[\w.-]+\.sh", test_sh):
        assert (REPO / script).is_file(), script


def _ci_suite(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    """``scripts/ci_suite.sh`` with ``env`` and ``extra`` variables."""
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "ci_suite.sh")],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.slow
def test_the_ci_suite_runs_dagster_job_execute_and_writes_a_markdown_summary(tmp_path):
    project = make_project(tmp_path / "project", ONE_MODEL, datasets=("qa", "json-extract"))
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "EVAL_PIPELINE_ROOT": str(project),
        "EVAL_PIPELINE_STORE": str(tmp_path / "store"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "GITHUB_STEP_SUMMARY": str(summary),
        "CI_MODEL": "fake-good",
        "BIN": str(BIN),
    }
    out = _ci_suite(env)
    # qa has enough samples to see a 10-point drop; json-extract's 128 are too few.
    assert out.returncode == 2, out.stderr[-3000:]
    text = summary.read_text()
    assert "## CI regression suite" in text and "**Result: inconclusive.**" in text
    assert "| `qa|fake-good` | SUCCESS" in text and "| `json-extract|fake-good` | SUCCESS" in text
    assert "answer_match 1.000" in text and "✅ generations_complete" in text
    assert "| `qa|fake-good` | 152 |" in text and "| ok |" in text
    assert "| `json-extract|fake-good` | 128 |" in text and "**inconclusive** |" in text
    assert "No baseline `main` is pinned" in text

    # With a pinned baseline the gate also runs the paired comparison.
    pin = [str(BIN / "eval-pipeline"), "baseline", "pin", "main", "--description", "ci test"]
    subprocess.run(pin, env=env, check=True, capture_output=True, timeout=120)
    summary.unlink()
    one_cell = {"CI_PARTITIONS": "qa|fake-good", "EVAL_PIPELINE_CI_DROP": "0.3"}
    again = _ci_suite(env, **one_cell)
    assert again.returncode == 0, summary.read_text() + again.stderr[-2000:]
    assert "**Result: no regression.**" in summary.read_text()
    assert "### eval-pipeline compare baseline:main" in summary.read_text()

    # A new revision answers 30% of qa wrong: the blocking regression check fails the
    # `dagster job execute` run, and the gate fails.
    regressed = {
        "models": [
            {
                **ONE_MODEL["models"][0],
                "revision": "r2",
                "options": {"mode": "reference", "wrong_fraction": 0.3},
            }
        ]
    }
    (project / "models.yaml").write_text(yaml.safe_dump(regressed))
    summary.unlink()
    failed = _ci_suite(env, **one_cell)
    text = summary.read_text()
    assert failed.returncode == 1, text + failed.stderr[-2000:]
    assert "**Result: regression or failure.**" in text
    assert "| `qa|fake-good` | FAILURE" in text and "❌ aggregates_regression" in text


def test_the_summary_fails_the_gate_when_the_regression_check_failed(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project", ONE_MODEL, datasets=("qa",))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run_suite(
            project,
            tmp_path / "store",
            "qa|fake-good",
            instance,
            regression=False,
            job="ci_suite_job",
            tags={"eval_pipeline/ci_batch": "b1"},
        )
    out = subprocess.run(
        [str(BIN / "python"), str(REPO / "scripts" / "ci_summary.py"), "--batch", "b1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "❌ aggregates_regression" in out.stdout
    assert "**Result: regression or failure.**" in out.stdout
