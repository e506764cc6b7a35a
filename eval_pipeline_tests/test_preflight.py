"""The preflight: a run refuses in seconds, before any model call, when something is missing.

`eval-pipeline run`, a Dagster materialization and `eval-pipeline doctor` give the same
lines.

The broken project has three problems: a model whose API key variable is unset, a
BIG-bench dataset with no task files (no EVAL_PIPELINE_BIGBENCH_DIR and an empty HOME),
and a code-execution dataset without bubblewrap (its detection answers "not installed").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.catalog._bigbench import DIR_ENV
from eval_pipeline.cli import main
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.operations import Note, catalog_preflight, preflight
from eval_pipeline.providers.fake import CALL_LOG
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.projects import make_project

KEY = "EVAL_PIPELINE_TEST_UNSET_KEY"
NO_KEY = {
    "slug": "api-no-key",
    "provider": "openai",
    "model_id": "gpt-x",
    "options": {"api_key_env": KEY, "base_url": "http://127.0.0.1:9"},
}
GOOD = {
    "slug": "fake-good",
    "provider": "fake",
    "model_id": "fake/reference",
    "options": {"mode": "reference"},
}
BROKEN_DATASETS = ("qa", "bigbench-navigate", "humaneval")
# Each problem line starts with what it is about and what is missing, then its fix.
EXPECTED = [
    "dataset bigbench-navigate: no BIG-bench task files on this machine; "
    f"fix: set {DIR_ENV} to a checkout of the BIG-bench repository",
    "dataset humaneval: bubblewrap (bwrap) is not installed, so model-written code cannot be "
    "isolated; fix: bash scripts/ensure-bwrap.sh (Debian: apt-get install bubblewrap)",
    f"model api-no-key: the API key environment variable {KEY} is not set; fix: export {KEY}=...",
]
# A process that runs `eval-pipeline` with bubblewrap's detection answering "not
# installed" (the machines that run the suite have it), then says what it imported.
HIDDEN_BWRAP_CLI = """
import json, sys
import eval_pipeline.scoring.sandbox as sandbox
sandbox.bwrap_path = lambda: None
from eval_pipeline.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "dagster_imported": "dagster" in sys.modules}))
"""


def _assert_the_three_problems(lines: list[str]) -> None:
    assert len(lines) == len(EXPECTED), "\n".join(lines)
    for line, expected in zip(lines, EXPECTED, strict=True):
        assert line.startswith(expected), line


@pytest.fixture
def broken(tmp_path, monkeypatch) -> Path:
    """A project with the three problems, on a machine set up to have them."""
    monkeypatch.delenv(KEY, raising=False)
    monkeypatch.delenv(DIR_ENV, raising=False)
    (tmp_path / "empty-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.setattr("eval_pipeline.scoring.sandbox.bwrap_path", lambda: None)
    return make_project(tmp_path / "p", models={"models": [GOOD, NO_KEY]}, datasets=BROKEN_DATASETS)


def _argv(project: Path, store: Path, *command: str) -> list[str]:
    return ["--root", str(project), "--store", str(store), *command]


def test_the_preflight_gives_one_line_per_problem_with_its_fix(broken):
    report = catalog_preflight(load_catalog(broken, load_rows=False))
    assert not report.ok
    _assert_the_three_problems(report.lines())
    # A missing key is one problem of its model, stopping each of its partitions.
    key_problem = report.problems[2]
    assert (key_problem.kind, key_problem.names) == ("model", ("api-no-key",))
    assert key_problem.partitions == (
        "bigbench-navigate|api-no-key",
        "humaneval|api-no-key",
        "qa|api-no-key",
    )
    assert report.notes == ()
    # The planned partitions alone: qa on the fake model needs nothing that is missing.
    only_qa = preflight(load_catalog(broken, load_rows=False), [PartitionKey("fake-good", "qa")])
    assert only_qa.ok and only_qa.partitions == ("qa|fake-good",)


def test_doctor_prints_the_same_lines_for_the_whole_catalog_and_exits_1(broken, tmp_path, capsys):
    assert main(_argv(broken, tmp_path / "store", "doctor")) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "preflight of 6 partitions (2 model(s) x 3 dataset(s)): 3 problem(s), 0 note(s)"
    )
    assert out[1] == "problems:"
    _assert_the_three_problems([line.removeprefix("  ") for line in out[2:]])

    assert main(_argv(broken, tmp_path / "store", "doctor", "--json")) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and len(report["problems"]) == 3
    assert report["problems"][0]["partitions"] == [
        "bigbench-navigate|api-no-key",
        "bigbench-navigate|fake-good",
    ]


def test_run_refuses_before_any_model_call_and_writes_nothing(broken, tmp_path, capsys):
    store = tmp_path / "store"
    datasets = [arg for name in BROKEN_DATASETS for arg in ("--dataset", name)]
    code = main(_argv(broken, store, "run", *datasets, "--limit", "2"))
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0] == "eval-pipeline: preflight: 3 problem(s); nothing was run:"
    _assert_the_three_problems([line.removeprefix("  ") for line in err[1:]])
    assert CALL_LOG == []
    assert not store.exists()


def test_a_refusing_run_as_a_process_answers_in_seconds_without_importing_dagster(broken, tmp_path):
    store = tmp_path / "store"
    datasets = [arg for name in BROKEN_DATASETS for arg in ("--dataset", name)]
    argv = _argv(broken, store, "run", *datasets, "--limit", "2")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", HIDDEN_BWRAP_CLI, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall_s = time.perf_counter() - start
    print(f"refusing eval-pipeline run: {wall_s:.2f} s wall")
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "code": 2,
        "dagster_imported": False,
    }
    err = out.stderr.splitlines()
    assert err[0] == "eval-pipeline: preflight: 3 problem(s); nothing was run:"
    _assert_the_three_problems([line.removeprefix("  ") for line in err[1:]])
    assert not store.exists()
    # The goal is under 5 s on 2 cores; the bound leaves room for a busy shared machine.
    assert wall_s < 20


def test_a_dagster_materialization_fails_at_generations_with_the_preflight_lines(broken, tmp_path):
    store = tmp_path / "store"
    result = materialize(broken, store, "humaneval|api-no-key", raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["generations"]
    description = failures[0].step_failure_data.user_failure_data.description
    lines = description.splitlines()
    # The partition's own problems: its dataset's sandbox and its model's key.
    assert lines[0] == "preflight: 2 problem(s); nothing was generated:"
    assert len(lines) == 3
    assert lines[1].removeprefix("  ").startswith(EXPECTED[1])
    assert lines[2].removeprefix("  ").startswith(EXPECTED[2])
    assert CALL_LOG == []
    assert not Store(store).exists("generations", dataset="humaneval", model="api-no-key")
    assert not Store(store).exists("dataset_samples", dataset="humaneval")


def test_dagster_job_execute_refuses_the_same_way(broken, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    tags = {
        "dagster/partition": "qa|api-no-key",
        "dagster/partition/dataset": "qa",
        "dagster/partition/model": "api-no-key",
    }
    environ = {
        **os.environ,
        "EVAL_PIPELINE_ROOT": str(broken),
        "EVAL_PIPELINE_STORE": str(tmp_path / "store"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "job", "execute", "-m", "eval_pipeline.definitions"]
    out = subprocess.run(
        [*command, "-j", "ci_suite_job", "--tags", json.dumps(tags)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "Failure: preflight: 1 problem(s); nothing was generated:\n  " + EXPECTED[2] in (
        out.stdout + out.stderr
    )
    assert not (tmp_path / "store").exists()


def test_a_clean_catalog_passes_and_a_set_key_is_never_shown(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY, "sk-do-not-print")
    project = make_project(
        tmp_path / "p", models={"models": [GOOD, NO_KEY]}, datasets=("qa", "json-extract")
    )
    report = catalog_preflight(load_catalog(project, load_rows=False))
    assert report.ok and report.problems == () and len(report.partitions) == 4
    assert main(_argv(project, tmp_path / "store", "doctor")) == 0
    assert main(_argv(project, tmp_path / "store", "doctor", "--json")) == 0
    out = capsys.readouterr().out
    assert "0 problem(s)" in out and "sk-do-not-print" not in out


def test_a_not_applicable_cell_is_a_note_not_a_problem(tmp_path, capsys):
    project = make_project(tmp_path / "p", models={"models": [GOOD]}, datasets=())
    folder = project / "datasets" / "mc"
    folder.mkdir(parents=True)
    rows = [{"id": f"s{i}", "q": f"q{i}", "choices": ["a", "b"], "answer": 0} for i in range(3)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "mc",
        "source": "test",
        "license": "CC0-1.0",
        "data": "data.jsonl",
        "prompt": "mc",
        "fields": ["q"],
        "target_field": "answer",
        "task": "multiple_choice",
        "choices_field": "choices",
        "without_loglikelihood": "not_applicable",
        "scorers": [{"name": "acc"}],
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (project / "prompts" / "mc.jinja").write_text("{{ q }}\n")

    report = catalog_preflight(load_catalog(project, load_rows=False))
    assert report.ok
    assert len(report.notes) == 1 and isinstance(report.notes[0], Note)
    assert report.notes[0].partition == "mc|fake-good"
    assert report.notes[0].text.startswith("not applicable: dataset 'mc' is scored by")
    assert main(_argv(project, tmp_path / "store", "doctor")) == 0
    out = capsys.readouterr().out
    assert "0 problem(s), 1 note(s)" in out
    assert "notes (not problems):\n  mc|fake-good: not applicable: " in out


def test_judge_models_are_checked_like_the_models_they_judge(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY, raising=False)
    judge = {**NO_KEY, "slug": "api-judge"}
    project = make_project(tmp_path / "p", models={"models": [GOOD, judge]}, datasets=("open-qa",))
    spec_path = project / "datasets" / "open-qa" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = ["api-judge"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))

    catalog = load_catalog(project, load_rows=False)
    report = preflight(catalog, [PartitionKey("fake-good", "open-qa")])
    assert report.judges == ("api-judge",)
    assert report.lines() == [
        f"judge api-judge: the API key environment variable {KEY} is not set; "
        f"fix: export {KEY}=... (or point the model's options.api_key_env in models.yaml "
        "at the variable that holds the key)"
    ]
    assert report.problems[0].partitions == ("open-qa|fake-good",)


def test_provider_packages_and_sbatch_are_checked_for_the_planned_models(tmp_path, monkeypatch):
    gguf = {"gguf_package": "no_such_model_package", "gguf_file": "m.gguf"}
    local = {"slug": "local", "provider": "transformers", "model_id": "m", "options": gguf}
    on_slurm = {**GOOD, "slug": "on-slurm", "runs_on": "slurm", "slurm_profile": "cpu"}
    project = make_project(tmp_path / "p", models={"models": [local, on_slurm]}, datasets=("qa",))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no sbatch
    catalog = load_catalog(project, load_rows=False)
    assert preflight(
        catalog, [PartitionKey("local", "qa"), PartitionKey("on-slurm", "qa")]
    ).lines() == [
        "model local: package 'no_such_model_package' with the model file is not installed; "
        "fix: pip install --no-deps no-such-model-package",
        "model on-slurm: it runs on SLURM (runs_on: slurm) but sbatch is not on the PATH; "
        "fix: install and configure the SLURM client here (make slurm-up starts a local "
        "single-node cluster), or set the model's runs_on: inline in models.yaml",
    ]
    # submitit's local cluster submits nothing to SLURM.
    assert preflight(catalog, [PartitionKey("on-slurm", "qa")], submits_to_slurm=False).ok


def test_every_built_in_loader_has_a_cheap_source_check(tmp_path, monkeypatch):
    from eval_pipeline.catalog._loaders import _OPTIONS, SOURCE_CHECKS

    assert set(_OPTIONS) <= set(SOURCE_CHECKS)
    # A Hugging Face id that is not cached, with downloads off, is a problem; online it is
    # fetched when its rows load.
    project = make_project(tmp_path / "p", models={"models": [GOOD]}, datasets=())
    folder = project / "datasets" / "hf"
    folder.mkdir(parents=True)
    spec = {
        "name": "hf",
        "source": "test",
        "license": "CC0-1.0",
        "loader": "huggingface",
        "loader_options": {"path": "someone/not-cached"},
        "prompt": "hf",
        "fields": ["q"],
        "target_field": "answer",
        "scorers": [{"name": "exact_match"}],
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (project / "prompts" / "hf.jinja").write_text("{{ q }}\n")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    catalog = load_catalog(project, load_rows=False)
    if catalog.source_problem("hf") is not None:  # the datasets package is not installed
        assert "pip install" in catalog.source_problem("hf").fix
        return
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    missing = catalog.source_problem("hf")
    assert missing is not None
    assert missing.what.startswith("'someone/not-cached' is not in the Hugging Face cache")
    (tmp_path / "hf-home" / "datasets" / "someone___not-cached").mkdir(parents=True)
    assert catalog.source_problem("hf") is None
