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
