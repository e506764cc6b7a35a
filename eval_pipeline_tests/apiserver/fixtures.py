"""A pytest fixture for tests against the local API server.

A test module binds it with ``api_server = api_server_fixture()``: one server subprocess
per module, which each test configures (configuring resets the counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from eval_pipeline_tests.apiserver._process import ApiServer


def _serve() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


def api_server_fixture() -> Any:
    """The module-scoped ``api_server`` fixture."""
    return pytest.fixture(scope="module", name="api_server")(_serve)


KEY_ENV = "EVAL_TEST_API_KEY"
TEST_KEY = "sk-test-key"


def _set_key(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)


def api_key_fixture() -> Any:
    """An autouse fixture that puts the test API key in ``$EVAL_TEST_API_KEY``.

    Bind it with ``_api_key = api_key_fixture()``.
    """
    return pytest.fixture(autouse=True, name="_api_key")(_set_key)
