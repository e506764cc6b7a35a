"""``newcomer``: a new user's first hour, timed on a fresh clone with an empty home.

- ``make_run_fresh_s``: ``make run`` in a fresh clone of the committed tree, ``HOME`` and
  ``XDG_CACHE_HOME`` empty, the virtualenv built from pip's download cache (the one thing
  kept), bubblewrap checked or installed by the project's script;
- ``make_run_warm_s``: ``make run`` again in the same clone (every request cached);
- ``default_partitions_ok`` against ``default_partitions``: partitions of the default run
  with an evaluated leaderboard row (must be equal);
- ``preflight_s``: the median of three ``eval-pipeline run`` commands in that clone that
  must refuse (an API model whose key variable is unset, a BIG-bench dataset with no task
  files): the whole command, process start to exit; goal at most 5 s;
- ``ci_run_s``: the whole ``.ci/run`` (the README's test command, with CI's empty home),
  as ``.ci/run`` last recorded it in ``.bench/ci_run.json``, or measured now with
  ``python -m eval_pipeline_tests.bench.newcomer --ci`` (about 25 minutes).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from eval_pipeline_tests.bench._common import BENCH_DIR
from eval_pipeline_tests.newcomer import (
    default_partitions,
    empty_home_env,
    fresh_clone,
    leaderboard_partitions,
    make,
)

NAME = "newcomer"
KEY_ENV = "EVAL_BENCH_NEWCOMER_UNSET_KEY"


def _refusing_runs(clone: Path, env: dict[str, str], times: int) -> list[tuple[float, int, str]]:
    """``times`` runs that must refuse; the clone's ``models.yaml`` is put back after."""
    path = clone / "models.yaml"
    original = path.read_text()
    models = yaml.safe_load(original)
    models["models"].append(
        {
            "slug": "api-no-key",
            "provider": "openai",
            "model_id": "gpt-x",
            "options": {"api_key_env": KEY_ENV, "base_url": "http://127.0.0.1:9/v1"},
        }
    )
    env = {k: v for k, v in env.items() if k != KEY_ENV}
    env.update(
        DAGSTER_HOME=str(clone / ".dagster_home"), EVAL_PIPELINE_STORE=str(clone / ".eval_store")
    )
    cmd = [
        str(clone / ".venv/bin/eval-pipeline"),
        "run",
        "--model",
        "api-no-key",
        "--dataset",
        "qa",
        "--dataset",
        "bigbench-navigate",
    ]
    path.write_text(yaml.safe_dump(models, sort_keys=False))
    out = []
    try:
        for _ in range(times):
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)
            out.append((time.perf_counter() - start, done.returncode, done.stderr))
    finally:
        path.write_text(original)  # the clone's own catalog again, for what runs next
    return out


def run(ci: bool = False) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        clone = fresh_clone(tmp)
        env = empty_home_env(tmp)
        fresh = make(clone, "run", env, tmp / "fresh.log", timeout_s=3600)
        out["make_run_fresh_s"] = round(fresh.seconds, 1)
        out["make_run_fresh_exit"] = fresh.returncode
        warm = make(clone, "run", env, tmp / "warm.log", timeout_s=3600)
        out["make_run_warm_s"] = round(warm.seconds, 1)
        out["make_run_warm_exit"] = warm.returncode
        expected = default_partitions(clone)
        out["default_partitions"] = len(expected)
        out["default_partitions_ok"] = len(expected & leaderboard_partitions(clone))
        refusals = _refusing_runs(clone, env, times=3)
        out["preflight_s"] = round(statistics.median(r[0] for r in refusals), 2)
        out["preflight_exits"] = [r[1] for r in refusals]
        out["preflight_output"] = refusals[-1][2].strip().splitlines()[-6:]
        if ci:
            start = time.perf_counter()
            done = subprocess.run(["bash", ".ci/run"], cwd=clone, env={**env, "CI": "true"})
            out["ci_run_s"] = round(time.perf_counter() - start, 1)
            out["ci_run_exit"] = done.returncode
    recorded = BENCH_DIR / "ci_run.json"
    if "ci_run_s" not in out and recorded.exists():
        data = json.loads(recorded.read_text())
        out["ci_run_s"] = data.get("ci_run_s")
        out["ci_run_exit"] = data.get("exit")
        out["ci_run_recorded_at"] = data.get("when")
    out["goals"] = {
        "default_partitions_ok": "== default_partitions",
        "preflight_s": "<= 5",
    }
    out["ratio"] = round(out["preflight_s"] / 5.0, 3)
    return out


if __name__ == "__main__":
    from eval_pipeline_tests.bench._common import write_result

    print(write_result(NAME, run(ci="--ci" in sys.argv[1:])))
