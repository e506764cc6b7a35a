"""A SIGKILLed partition resumes from the cache, repeating only what was in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import polars as pl

from eval_pipeline.storage import Store
from eval_pipeline_tests import processes
from eval_pipeline_tests.apiserver import ServerConfig, api_model, make_api_project, materialize_api
from eval_pipeline_tests.apiserver._process import REPO
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_server_fixture

api_server = api_server_fixture()

CONCURRENCY = 8
SAMPLES = 240

CHILD = """
import sys
from pathlib import Path
from eval_pipeline_tests.apiserver import materialize_api
materialize_api(Path(sys.argv[1]), Path(sys.argv[2]), "synth|api-model")
"""


def _wait_for_requests(server, at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = server.stats()["requests"]
        if seen >= at_least:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the run sent fewer than {at_least} requests in {timeout_s} s")


def test_a_sigkilled_partition_resumes_repeating_at_most_concurrency_requests(
    api_server, tmp_path, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, "sk-test-key")
    api_server.configure(ServerConfig(latency_s=0.2))
    model = api_model(
        "api-model",
        "openai",
        api_server.openai_base_url,
        concurrency=CONCURRENCY,
        api_key_env=KEY_ENV,
        request_timeout_s=5.0,
    )
    project = make_api_project(tmp_path / "project", [model], SAMPLES)
    store_root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    with processes.started(
        [sys.executable, "-c", CHILD, str(project), str(store_root)],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as child:
        _wait_for_requests(api_server, SAMPLES // 3, timeout_s=90)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    time.sleep(0.3)  # let requests already on the wire reach the server's count
    first = api_server.stats()["by_body"]
    assert SAMPLES // 3 <= len(first) < SAMPLES, "the kill came mid-partition"
    assert not Store(store_root).exists("generations", dataset="synth", model="api-model")

    api_server.reset()
    result = materialize_api(project, store_root, "synth|api-model")
    assert result.success
    second = api_server.stats()["by_body"]
    repeated = set(first) & set(second)
    assert len(repeated) <= CONCURRENCY
    assert len(second) == SAMPLES - len(first) + len(repeated)
    gens = Store(store_root).read("generations", dataset="synth", model="api-model")
    assert gens.height == SAMPLES and gens["sample_id"].n_unique() == SAMPLES
    assert gens["error"].null_count() == SAMPLES
    assert gens.filter(pl.col("cached"))["sample_id"].len() == SAMPLES - len(second)
