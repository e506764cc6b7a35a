"""Nothing in the repository rots unrun: every bench and script is exercised here.

Each bench in ``eval_pipeline_tests/bench/`` runs at a tiny size (its figures are not
checked: ``make bench`` measures them); each script in ``scripts/`` runs its cheapest real
path. A bench or script nobody can run here is listed with the reason, and the lists are
checked against the files by name, so a new one cannot be forgotten. The tiny runs write
nothing to ``.bench/``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eval_pipeline_tests.chromium import CHROMIUM
from eval_pipeline_tests.processes import started
from eval_pipeline_tests.projects import REPO

BENCH = REPO / "eval_pipeline_tests" / "bench"
SCRIPTS = REPO / "scripts"

# Modules of the bench folder that are not benches: what the benches share, the side
# processes they start, and ``make bench``'s driver.
BENCH_HELPERS = {
    "__init__": "the package",
    "_common": "output files, machine facts, a prepared project",
    "_instant_launcher": "the run launcher scale's first night uses where it measures the "
    "queue alone",
    "_lmeval_side": "the lm-eval side process of lmeval_agreement",
    "_materialize": "a side process of api_peers",
    "reference_client": "the plain-SDK client api_throughput compares against",
    "run_all": "make bench: runs the others (covered by every bench below)",
}

# bench -> keyword arguments of its ``run`` at a tiny size (a few seconds each).
FAST: dict[str, dict[str, Any]] = {
    "api_throughput": {"requests": 20, "repeats": 1},
    "api_faults": {"requests": 20},
    "api_rate_limited": {"requests": 20},
    "api_over_limit": {"requests": 20},
    # Its figures at a tiny size are checked in test_fuzz_bench.py.
    "fuzz": {"shapes_per_provider": 50, "rows_per_loader": 10, "big_line_mb": 2, "attacks": []},
    "explorer_open": {
        "models": 2,
        "datasets": 2,
        "samples": 2,
        "deep": 20,
        "browser": Path(CHROMIUM).exists(),
    },
}

# Tiny, and still tens of seconds to minutes (a cache warm-up, lm-eval's task index, a
# 3 x 3 grid's definitions and webserver): behind ``slow``.
SLOW: dict[str, dict[str, Any]] = {
    "api_cached_rerun": {"requests": 20},
    "lmeval_tasks": {"tasks": 2},
    "scale": {},  # with EVAL_PIPELINE_SCALE_N=3 (below)
    # A real dagster-daemon: the seeded tick, then the first night on three instances
    # (make ui's, its queue with an instant launcher, the queue's limit lifted). Each
    # daemon waits for its schedule's minute: 3 to 4 minutes.
    "scale[daemon]": {"daemon": True},
}

# Benches whose tiny-size run lives beside the feature they measure.
ELSEWHERE = {
    "api_batch": "test_api_batch.py runs it at a tiny size against the loopback servers",
    "incremental": "test_automation.py runs it (the grid's four edits, slow)",
    "judging": "test_judgements_table.py runs it at a tiny size",
    "scale_daemon": "scale's daemon mode for make bench: scale[daemon] above runs it",
}

# Benches with no tiny size: each runs the real model or peer frameworks for minutes.
NOT_HERE = {
    "api_peers": "drives lm-eval and inspect_ai against the same server in their own "
    "processes: 3.5 minutes even at 5 requests (measured); make bench runs it",
    "local_generation": "loads SmolLM2-135M and times it against lm-eval and plain HF "
    "generation: minutes; test_local_generation.py runs its plain_generate path",
    "lmeval_agreement": "runs the real model through lm-eval and through the pipeline "
    "side by side: minutes; test_lm_eval_agreement.py checks the same agreement",
    "finetune": "trains a LoRA adapter: 15-20 minutes on 2 cores at any sample count",
    "newcomer": "clones the repository and runs `make run` twice on the real model: "
    "minutes; test_newcomer.py runs its refusal path",
}

# script (relative to scripts/) -> the arguments of its cheapest real run, or a reason.
SCRIPT_RUNS: dict[str, list[str]] = {
    "make_judge_data.py": ["--check"],
    "make_datasets.py": ["--check"],
    "ci_summary.py": ["--help"],  # its real run: test_workflows.py, on a CI batch
    "gpu_smoke.py": ["--help"],  # the real run needs a CUDA GPU
    "slurm/compare_inline.py": ["--help"],  # the real run needs the SLURM cluster up
    "code_health.py": ["--help"],  # its real run (mypy over the package): test_code_health.py
}
# Shell scripts install system packages, start services or run the suite: checked for
# syntax here; each reason says where the real run happens.
SHELL_SCRIPTS = {
    "ci_suite.sh": "make ci-suite (a Dagster instance and daemon)",
    "ensure-bwrap.sh": "installs bubblewrap (make system)",
    "ensure-chromium.sh": "installs Chromium (make system)",
    "ensure-prometheus.sh": "installs Prometheus (make system)",
    "lint.sh": "make lint, and scripts/test.sh before every suite",
    "postgres.sh": "starts PostgreSQL for test_postgres.py",
    "setup-run.sh": "make run's set-up step",
    "test.sh": "make test",
    "ui.sh": "make ui (the webserver and daemon)",
    "slurm/start-slurm.sh": "make slurm-up (a local SLURM cluster, root)",
    "slurm/stop-slurm.sh": "make slurm-down",
}


def _bench_names() -> set[str]:
    return {p.stem for p in BENCH.glob("*.py")}


def _module(name: str) -> str:
    """The bench module of ``name`` (``scale[daemon]``: a mode of ``scale``)."""
    return name.split("[")[0]


def test_every_bench_is_run_here_or_says_why_not():
    slow = {_module(name) for name in SLOW}
    listed = set(BENCH_HELPERS) | set(FAST) | slow | set(ELSEWHERE) | set(NOT_HERE)
    assert _bench_names() == listed


def test_make_bench_can_call_every_bench_it_lists():
    # ``make bench`` (run_all) calls each bench's ``run()`` with no argument.
    from eval_pipeline_tests.bench.run_all import BENCHMARKS

    for name in BENCHMARKS:
        run = importlib.import_module(f"eval_pipeline_tests.bench.{name}").run
        required = [
            p.name
            for p in inspect.signature(run).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        assert required == [], f"{name}.run needs {required}"


def test_every_script_is_run_here_or_says_why_not():
    found = {
        p.relative_to(SCRIPTS).as_posix()
        for p in SCRIPTS.rglob("*")
        if p.is_file() and p.suffix in (".py", ".sh")
    }
    assert found == set(SCRIPT_RUNS) | set(SHELL_SCRIPTS)


def _run_bench(name: str, kwargs: dict[str, Any], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EVAL_PIPELINE_BENCH_DIR", str(tmp_path / "bench"))
    monkeypatch.setenv("EVAL_PIPELINE_SCALE_N", "3")
    module = importlib.import_module(f"eval_pipeline_tests.bench.{_module(name)}")
    result = module.run(**kwargs)
    assert isinstance(result, dict) and result
    assert "error" not in result
    assert not (tmp_path / "bench").exists() or not any((tmp_path / "bench").iterdir())


@pytest.mark.parametrize("name", sorted(FAST))
def test_the_bench_runs_at_a_tiny_size(name, tmp_path, monkeypatch):
    _run_bench(name, FAST[name], tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_the_slow_bench_runs_at_a_tiny_size(name, tmp_path, monkeypatch):
    _run_bench(name, SLOW[name], tmp_path, monkeypatch)


def _run(args: list[str], timeout_s: float) -> tuple[int, str]:
    """Run ``args`` to the end (killed with the test); its exit code and output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with started(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        output, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, output


@pytest.mark.parametrize("script", sorted(SCRIPT_RUNS))
def test_the_script_runs(script):
    code, output = _run([sys.executable, str(SCRIPTS / script), *SCRIPT_RUNS[script]], 120)
    assert code == 0, output


def test_the_shell_scripts_parse():
    for script in sorted(SHELL_SCRIPTS):
        code, output = _run(["bash", "-n", str(SCRIPTS / script)], 30)
        assert code == 0, f"{script}: {output}"
