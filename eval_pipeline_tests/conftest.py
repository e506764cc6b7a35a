"""Shared fixtures: a throwaway project root (catalog) and Parquet store per test.

Only fixtures and hooks live here; helpers are in modules tests import
(``projects.py``: ``REPO``, ``FAKE_MODELS``, ``make_project``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eval_pipeline_tests.projects import make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with two fake models and the three shipped datasets."""
    return make_project(tmp_path / "project")


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(autouse=True)
def _reset_fake_calls():
    from eval_pipeline.providers.fake import reset_calls

    reset_calls()
    yield
    reset_calls()


@pytest.fixture(autouse=True)
def _fresh_defs_state_storage():
    # An instance a test created registers its defs-state storage in a context variable
    # and holds it by weak reference; once that instance is gone, the next test building
    # Definitions would trip over the dangling reference. Each test starts without one.
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


_LEFTOVERS = pytest.StashKey[list[str]]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # The safety net of eval_pipeline_tests.processes: a process group a test started and
    # did not stop is killed here, and the summary says so.
    from eval_pipeline_tests.processes import kill_leftovers

    killed = kill_leftovers()
    session.config.stash[_LEFTOVERS] = killed
    if killed and session.config.pluginmanager.get_plugin("terminalreporter") is None:
        print("processes a test left running, killed:", *killed, sep="\n  ", file=sys.stderr)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    killed = config.stash.get(_LEFTOVERS, [])
    if killed:
        terminalreporter.write_sep("!", "processes a test left running, killed", red=True)
        for line in killed:
            terminalreporter.write_line(f"  {line}", red=True)
