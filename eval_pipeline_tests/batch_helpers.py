"""Helpers for the batch-route tests and bench: a project on the local server, kills, counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from eval_pipeline_tests import processes
from eval_pipeline_tests.apiserver import ApiServer, api_model, make_api_project
from eval_pipeline_tests.apiserver._process import REPO

KEY_ENV = "EVAL_TEST_API_KEY"
# Where a child process kills itself (SIGKILL), for the exactly-once tests and bench.
KILL_POINTS = ("upload", "create", "collect")


def batch_project(
    root: Path, server: ApiServer, samples: int, *, online_twins: bool = False
) -> Path:
    """A project whose models ``oa`` (OpenAI) and ``an`` (Anthropic) take the batch route.

    With ``online_twins`` it also has ``oa-online`` and ``an-online`` on the online route,
    under other model ids (so their requests have cache entries of their own).
    """
    models = []
    for slug, provider, url in (
        ("oa", "openai", server.openai_base_url),
        ("an", "anthropic", server.url),
    ):
        models.append({**api_model(slug, provider, url, api_key_env=KEY_ENV), "route": "batch"})
        if online_twins:
            twin = api_model(f"{slug}-online", provider, url, api_key_env=KEY_ENV, concurrency=64)
            # Another model id: its own cache entries (the server's answers ignore the id).
            models.append({**twin, "model_id": f"{provider}-online-model"})
    return make_api_project(root, models, samples)


def prepare(project: Path, store_root: Path) -> None:
    """Write the ``synth`` dataset's tables (what generation reads)."""
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.stages import build_dataset_samples, build_prompt_versions
    from eval_pipeline.storage import Store

    catalog = load_catalog(project)
    store = Store(store_root)
    build_prompt_versions(catalog, store, "synth")
    build_dataset_samples(catalog, store, "synth")


def generate_partition(project: Path, store_root: Path, model: str, **options: Any) -> Any:
    """Generate ``synth`` with ``model`` through the stage function; its GenerateReport."""
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.stages import generate
    from eval_pipeline.storage import Store

    return generate(load_catalog(project), Store(store_root), model, "synth", **options)


CHILD = """
import os, signal, sys
from pathlib import Path
from eval_pipeline.engine import batch as engine_batch
from eval_pipeline.providers.batch.anthropic import AnthropicBatchApi
from eval_pipeline.providers.batch.openai import OpenAIBatchApi
from eval_pipeline_tests.batch_helpers import generate_partition

project, store, model, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "upload":
    # OpenAI: the input file is uploaded, no batch created. Anthropic uploads in create.
    upload = OpenAIBatchApi.upload
    OpenAIBatchApi.upload = lambda self, lines: (upload(self, lines), die())[0]
    AnthropicBatchApi.create = lambda self, sid, lines: die()
elif point == "create":
    # The provider holds the batch; the record does not know its id.
    for cls in (OpenAIBatchApi, AnthropicBatchApi):
        def create(self, sid, lines, _orig=cls.create):
            _orig(self, sid, lines)
            die()
        cls.create = create
elif point == "collect":
    # Part of the results are in the cache; the record is not collected.
    collect = engine_batch.BatchRoute.collect
    def partial(self, record):
        for n, result in enumerate(collect(self, record)):
            yield result
            if n == 2:
                die()
    engine_batch.BatchRoute.collect = partial
generate_partition(project, store, model)
"""


def killed_run(project: Path, store_root: Path, model: str, point: str) -> int:
    """Generate in a child process that SIGKILLs itself at ``point``; its return code."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with processes.started(
        [sys.executable, "-c", CHILD, str(project), str(store_root), model, point],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        _, err = child.communicate(timeout=120)
    if child.returncode != -signal.SIGKILL:
        raise AssertionError(f"the child was not killed at {point}: rc {child.returncode}\n{err}")
    return child.returncode


def batch_count(server: ApiServer, flavour: str) -> int:
    """How many batches of ``flavour`` (openai, anthropic) the server has created."""
    return sum(1 for b in server.batches() if b["flavour"] == flavour)
