"""A new user's first commands: a fresh clone of the repository, an empty home, `make`.

Shared by the newcomer test (``test_newcomer.py``) and the ``newcomer`` benchmark. The
clone is of the committed tree (what CI and a new user get); the environment is the
caller's without anything a developer's shell or an outer ``make`` sets (``DAGSTER_HOME``,
``EVAL_PIPELINE_STORE``, a virtualenv, ``PYTHONPATH``), with ``HOME`` and
``XDG_CACHE_HOME`` pointed at empty folders. pip's download cache (``PIP_CACHE_DIR``) is
kept: it only saves downloads.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
# Set by a developer's shell or by the outer make/test.sh: a new user has none of them.
_DROPPED = (
    "DAGSTER_HOME",
    "EVAL_PIPELINE_STORE",
    "EVAL_PIPELINE_CACHE",
    "EVAL_PIPELINE_BIGBENCH_DIR",
    "EVAL_PIPELINE_DATA_ROOTS",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "PYTEST_CURRENT_TEST",
    "PYTEST_ADDOPTS",
)


@dataclass(frozen=True)
class MakeRun:
    returncode: int
    seconds: float
    log: Path


def fresh_clone(folder: Path) -> Path:
    """``git clone`` of the repository's committed tree into ``folder/clone``."""
    clone = folder / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    return clone


def empty_home_env(folder: Path) -> dict[str, str]:
    """The caller's environment as a new user's: empty home and cache, pip's cache kept."""
    home, cache = folder / "home", folder / "cache"
    home.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.setdefault(
        "PIP_CACHE_DIR",
        str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pip"),
    )
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache))
    return env


def make(clone: Path, target: str, env: dict[str, str], log: Path, timeout_s: float) -> MakeRun:
    """Run ``make <target>`` in ``clone``; its output goes to ``log``."""
    from eval_pipeline_tests.processes import started

    start = time.perf_counter()
    with (
        log.open("w") as out,
        started(["make", target], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT) as proc,
    ):
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = -1
    return MakeRun(code, time.perf_counter() - start, log)


def default_partitions(clone: Path) -> set[tuple[str, str]]:
    """Every (dataset, model) `make run` evaluates: the catalog's default run."""
    from eval_pipeline.catalog import load_catalog

    catalog = load_catalog(clone, load_rows=False)
    datasets = [n for n, s in catalog.dataset_specs.items() if not s.suite or s.in_default_run]
    return {(d, m) for d in datasets for m in catalog.model_slugs}


def leaderboard_partitions(clone: Path) -> set[tuple[str, str]]:
    """The (dataset, model) pairs with an evaluated row in the clone's leaderboard."""
    path = clone / ".eval_store" / "leaderboard" / "part-0.parquet"
    if not path.exists():
        return set()
    board = pl.read_parquet(path).filter(pl.col("n") > 0)
    return set(board.select("dataset", "model").iter_rows())
