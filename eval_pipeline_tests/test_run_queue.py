"""The run queue's per-API and per-SLURM-profile limits hold for two backfills at once.

Runs tagged only as Dagster tags a UI backfill's runs (the partition and the backfill)
are queued through the project's coordinator, configured from ``deploy/dagster.yaml``
and ``dagster.yaml``, and drained by Dagster's run queue daemon one iteration at a time,
a few runs finishing between iterations.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.defs.partitions import grid_partitions
from eval_pipeline.defs.run_queue import queue_tags, run_model
from eval_pipeline_tests.projects import REPO, make_project
from eval_pipeline_tests.run_queue_drill import (
    finish,
    in_progress,
    over_limit,
    queue_daemon,
    queue_overrides,
    submit,
)

MODELS = {
    "models": [
        {"slug": "gpt-a", "provider": "openai", "model_id": "gpt-4o-mini"},
        {"slug": "gpt-b", "provider": "openai", "model_id": "gpt-4o"},
        {"slug": "claude", "provider": "anthropic", "model_id": "claude-haiku-4-5"},
        {
            "slug": "llama-server",
            "provider": "openai",
            "model_id": "meta-llama/Llama-3.1-8B-Instruct",
            "options": {"base_url": "http://gpu-node-07:8000/v1", "api_key_env": None},
        },
        {
            "slug": "llama-router",
            "provider": "openai",
            "model_id": "meta-llama/llama-3.1-70b-instruct",
            "options": {"base_url": "https://openrouter.ai/api/v1"},
        },
        {
            "slug": "llama-h100",
            "provider": "vllm",
            "model_id": "meta-llama/Llama-3.1-8B-Instruct",
            "runs_on": "slurm",
            "slurm_profile": "h100",
        },
        {
            "slug": "qwen-h100",
            "provider": "vllm",
            "model_id": "Qwen/Qwen2.5-7B-Instruct",
            "runs_on": "slurm",
            "slurm_profile": "h100",
        },
        {
            "slug": "smol-cluster",
            "provider": "transformers",
            "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "runs_on": "slurm",
        },
        {
            "slug": "smol",
            "provider": "transformers",
            "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        },
    ]
}
FAKE = {"slug": "fake-good", "provider": "fake", "model_id": "fake/reference"}
CONFIG_FILES = [REPO / "deploy" / "dagster.yaml", REPO / "dagster.yaml"]


def _limits(config_file: Path) -> list[dict]:
    return yaml.safe_load(config_file.read_text())["concurrency"]["runs"]["tag_concurrency_limits"]


def _backfill_tags(grid: dg.MultiPartitionsDefinition, key: str, backfill: str) -> dict[str, str]:
    """What Dagster tags a UI backfill's run of partition ``key`` with: nothing of ours."""
    return {**grid.get_tags_for_partition_key(key), "dagster/backfill": backfill}


def test_the_model_of_each_kind_gets_the_queue_tags_its_limits_read(tmp_path):
    catalog = load_catalog(make_project(tmp_path, MODELS, datasets=("qa",)), load_rows=False)
    tags = {slug: queue_tags(spec) for slug, spec in catalog.models.items()}
    assert tags["gpt-a"]["eval_pipeline/api"] == "openai"
    assert "eval_pipeline/api_server" not in tags["gpt-a"]
    assert tags["claude"]["eval_pipeline/api"] == "anthropic"
    assert tags["llama-server"]["eval_pipeline/api"] == "openai-compatible"
    assert tags["llama-server"]["eval_pipeline/api_server"] == "gpu-node-07:8000"
    assert tags["llama-router"]["eval_pipeline/api_server"] == "openrouter.ai"
    assert tags["llama-h100"]["eval_pipeline/slurm_profile"] == "h100"
    assert tags["smol-cluster"]["eval_pipeline/slurm_profile"] == "cpu"
    assert tags["smol"]["eval_pipeline/local_model"] == "inline"
    assert "eval_pipeline/local_model" not in tags["smol-cluster"]
    assert "eval_pipeline/api" not in tags["llama-h100"] | tags["smol"]
    # The fake provider holds no model: it is neither an API nor a local model to queue.
    fake = queue_tags(ModelSpec.model_validate(FAKE))
    assert "eval_pipeline/local_model" not in fake and "eval_pipeline/api" not in fake


def test_the_embedded_instance_has_the_production_limits():
    deploy, embedded = (_limits(path) for path in CONFIG_FILES)
    assert embedded == deploy


@pytest.mark.parametrize("config_file", CONFIG_FILES, ids=["deploy", "embedded"])
def test_two_backfills_never_exceed_an_api_or_a_slurm_profile_limit(
    tmp_path, monkeypatch, config_file
):
    project = make_project(tmp_path / "project", MODELS)
    monkeypatch.setenv("EVAL_PIPELINE_ROOT", str(project))
    grid = grid_partitions(load_catalog(project, load_rows=False))
    # 9 models x 3 datasets; the queue is first come, first served: OpenAI's partitions
    # first, then the H100 models', then the rest.
    first = ["gpt-a", "gpt-b", "llama-h100", "qwen-h100"]
    keys = sorted(
        grid.get_partition_keys(),
        key=lambda k: (
            first.index(k.keys_by_dimension["model"])
            if k.keys_by_dimension["model"] in first
            else 9
        ),
    )
    limits = _limits(config_file)
    max_runs = yaml.safe_load(config_file.read_text())["concurrency"]["runs"]["max_concurrent_runs"]
    with dg.instance_for_test(overrides=queue_overrides(config_file)) as instance:
        # Backfill A: every partition; backfill B, launched on top: every partition again.
        # (each backfill's 6 OpenAI runs, then its 6 on the H100 profile, then the others).
        runs = [submit(instance, _backfill_tags(grid, key, b)) for b in ("a", "b") for key in keys]
        queued = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        assert len(queued) == len(runs) == 54
        # The coordinator tagged each run as it queued it.
        assert all(
            {"eval_pipeline/api", "eval_pipeline/slurm_profile", "eval_pipeline/local_model"}
            & set(run.tags)
            for run in queued
        )
        peak: dict[str, int] = {}
        rounds = 0
        with queue_daemon(instance) as iterate:
            while instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
                rounds += 1
                assert rounds < 100, "the queue does not drain"
                iterate()
                running = in_progress(instance)
                assert running, "a queued run should have started"
                assert over_limit(running, limits, max_runs) == []
                for tag in ("eval_pipeline/api", "eval_pipeline/slurm_profile"):
                    for run in running:
                        if tag in run.tags:
                            group = f"{tag}={run.tags[tag]}"
                            count = sum(r.tags.get(tag) == run.tags[tag] for r in running)
                            peak[group] = max(peak.get(group, 0), count)
                # The oldest in-progress run of each model finishes before the next round.
                oldest: dict[str, dg.DagsterRun] = {}
                for run in reversed(running):
                    oldest.setdefault(run.tags["dagster/partition/model"], run)
                for run in oldest.values():
                    finish(instance, run)
        for run in in_progress(instance):
            finish(instance, run)
        done = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert len(done) == 54
    # No limit was passed (above), and the first ones were reached: the queue ran as
    # many OpenAI runs as it allowed, and (with 8 runs at once) as many H100 runs.
    assert peak["eval_pipeline/api=openai"] == 4
    if max_runs >= 8:
        assert peak["eval_pipeline/slurm_profile=h100"] == 4
    assert set(peak) == {
        "eval_pipeline/api=openai",
        "eval_pipeline/api=anthropic",
        "eval_pipeline/api=openai-compatible",
        "eval_pipeline/slurm_profile=h100",
        "eval_pipeline/slurm_profile=cpu",
    }


def test_a_run_over_several_models_gets_no_model():
    one = {
        "dagster/asset_partition_range_start": "qa|m",
        "dagster/asset_partition_range_end": "x|m",
    }
    two = {
        "dagster/asset_partition_range_start": "qa|m",
        "dagster/asset_partition_range_end": "qa|n",
    }
    assert run_model(one) == "m"
    assert run_model(two) is None
    assert run_model({"dagster/partition": "qa|n", "dagster/backfill": "b"}) == "n"
    assert run_model({"dagster/backfill": "b"}) is None
