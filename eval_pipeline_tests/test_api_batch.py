"""The batch route against the local server's batch endpoints, through the real SDKs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from eval_pipeline.engine.batch import BatchBook
from eval_pipeline.providers.batch import BatchLimits
from eval_pipeline.providers.batch.openai import OpenAIBatchApi
from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import ApiServer
from eval_pipeline_tests.batch_helpers import (
    KEY_ENV,
    KILL_POINTS,
    batch_count,
    batch_project,
    generate_partition,
    killed_run,
    prepare,
)

FLAVOUR = {"oa": "openai", "an": "anthropic"}


@pytest.fixture
def server() -> Iterator[ApiServer]:
    # One server per test: batches live as long as the server, and adoption looks at them.
    with ApiServer() as started:
        yield started


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-key")


def _completions(store_root: Path, model: str) -> list[str | None]:
    return (
        Store(store_root).read("generations", dataset="synth", model=model)["completion"].to_list()
    )


def test_batch_answers_equal_online_answers_at_half_the_cost(
    server: ApiServer, tmp_path: Path
) -> None:
    server.configure_batches(complete_after_s=0.2)
    project = batch_project(tmp_path / "p", server, 30, online_twins=True)
    batch_store, online_store = tmp_path / "batch", tmp_path / "online"
    prepare(project, batch_store)
    prepare(project, online_store)
    for model in ("oa", "an"):
        batch = generate_partition(project, batch_store, model)
        online = generate_partition(project, online_store, f"{model}-online")
        assert batch.stats.route == "batch" and online.stats.route == "online"
        assert batch.errors == 0 and batch.new_rows == 30
        assert _completions(batch_store, model) == _completions(online_store, f"{model}-online")
        assert batch.stats.output_tokens == online.stats.output_tokens
        assert batch.stats.cost_usd == pytest.approx(online.stats.cost_usd * 0.5)
        assert batch_count(server, FLAVOUR[model]) == 1
    assert server.stats()["by_path"].get("/v1/chat/completions") == 30  # the online twin only


def test_a_batch_run_fills_the_cache_an_online_run_reuses(
    server: ApiServer, tmp_path: Path
) -> None:
    project = batch_project(tmp_path / "p", server, 12)
    prepare(project, tmp_path / "s")
    generate_partition(project, tmp_path / "s", "oa")
    again = generate_partition(project, tmp_path / "s", "oa", route="online")
    assert again.reused_rows == 12 and again.stats.model_calls == 0
    assert server.stats()["requests"] == 0  # no online request at all


def test_expired_and_failed_requests_go_again_in_a_new_batch(
    server: ApiServer, tmp_path: Path
) -> None:
    server.configure_batches(fail_fraction=0.1, expire_fraction=0.1, fault_seed=3)
    project = batch_project(tmp_path / "p", server, 40)
    prepare(project, tmp_path / "s")
    for model in ("oa", "an"):
        report = generate_partition(project, tmp_path / "s", model)
        assert report.errors == 0, "every request answered in the end"
        assert report.stats.batch_rounds >= 2 and report.stats.batch_retried > 0
        assert batch_count(server, FLAVOUR[model]) == report.stats.batch_rounds
        records = [r for r in BatchBook(Store(tmp_path / "s").runs_dir / "batches").all()]
        assert all(r.state == "collected" for r in records)


def test_a_cancelled_batch_leaves_its_requests_for_the_next_batch(
    server: ApiServer, tmp_path: Path
) -> None:
    server.configure_batches(complete_after_s=30)
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}
    uploaded = client.files.create(file=("b.jsonl", json.dumps(line).encode()), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    ended = client.batches.retrieve(batch.id)
    assert ended.status == "cancelled" and ended.output_file_id is None


def test_the_budget_counts_a_batch_worst_case_before_it_is_created(
    server: ApiServer, tmp_path: Path
) -> None:
    project = batch_project(tmp_path / "p", server, 20)
    prepare(project, tmp_path / "s")
    # 20 requests of 16 max_tokens at $1/$2 per Mtok, halved: about $0.0004 at worst.
    report = None
    with pytest.raises(Exception, match="spend budget") as raised:
        report = generate_partition(project, tmp_path / "s", "oa", budget_usd=0.0001)
    assert report is None and "batch of 20 requests" in str(raised.value)
    assert batch_count(server, "openai") == 0


def test_batches_split_at_the_provider_limits(
    server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OpenAIBatchApi, "limits", BatchLimits(max_requests=7, max_bytes=10**6))
    project = batch_project(tmp_path / "p", server, 20)
    prepare(project, tmp_path / "s")
    report = generate_partition(project, tmp_path / "s", "oa")
    assert report.errors == 0 and len(report.stats.batch_ids) == 3  # 7 + 7 + 6
    assert sorted(b["requests"] for b in server.batches()) == [6, 7, 7]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_sigkilled_batch_run_resumes_without_a_second_batch(
    server: ApiServer, tmp_path: Path, point: str
) -> None:
    project = batch_project(tmp_path / "p", server, 25)
    store_root = tmp_path / "s"
    prepare(project, store_root)
    for model in ("oa", "an"):
        killed_run(project, store_root, model, point)
        report = generate_partition(project, store_root, model)
        assert report.errors == 0 and report.rows == 25
        assert batch_count(server, FLAVOUR[model]) == 1, f"{model}: a duplicate batch at {point}"
        assert all(c and c.startswith("answer ") for c in _completions(store_root, model))


def test_run_batch_sends_an_online_model_through_batches_and_records_them(
    server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from eval_pipeline.cli import main
    from eval_pipeline.defs.jobs import ROUTE_TAG

    project = batch_project(tmp_path / "p", server, 10, online_twins=True)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    argv = ["--root", str(project), "--store", str(tmp_path / "s"), "run", "--batch"]
    assert main([*argv, "--model", "an-online", "--dataset", "synth", "--no-preflight"]) == 0
    assert server.stats()["requests"] == 0, "no online request"
    assert batch_count(server, "anthropic") == 1
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="evaluation_job"))
        assert run.tags[ROUTE_TAG] == "batch"
        event = instance.get_latest_materialization_event(dg.AssetKey("generations"))
        assert event is not None and event.asset_materialization is not None
        metadata = event.asset_materialization.metadata
    assert metadata["route"].value == "batch"
    assert metadata["batch/ids"].value == server.batches()[0]["id"]
    assert 0 < metadata["cost/actual_over_worst_case"].value < 1
    # Planned from a fresh store: characters / 4 in, max_tokens out, at batch prices.
    assert metadata["cost/planned_usd"].value == pytest.approx(
        metadata["cost/worst_case_usd"].value, rel=0.01
    )


def _plan(capsys: pytest.CaptureFixture[str], project: Path, store: Path, *args: str) -> list:
    from eval_pipeline.cli import main

    capsys.readouterr()
    argv = ["--root", str(project), "--store", str(store), "plan", "--dataset", "synth"]
    assert main([*argv, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_prints_requests_tokens_and_cost_per_route_before_any_request(
    server: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = batch_project(tmp_path / "p", server, 40, online_twins=True)
    store = tmp_path / "s"
    rows = {(r["model"], r["route"]): r for r in _plan(capsys, project, store, "--full")}
    assert server.stats()["requests"] == 0 and server.batches() == []
    batch, online = rows[("oa", "batch")], rows[("oa-online", "online")]
    assert batch["to_send"] == 40 and batch["basis"] == "estimated"
    assert batch["output_tokens_worst"] == 40 * 16  # the dataset's max_tokens
    assert batch["cost_worst_usd"] == pytest.approx(online["cost_worst_usd"] / 2, rel=1e-3)
    assert rows[("(total)", "batch")]["to_send"] == 80

    report = generate_partition(project, store, "oa")
    again = _plan(capsys, project, store, "--full", "--model", "oa")
    assert again[0]["cached"] == 40 and again[0]["to_send"] == 0
    assert again[0]["cost_expected_usd"] == 0
    # With earlier answers measured, the expected cost is close to what the run cost.
    (measured,) = [
        r
        for r in _plan(capsys, project, store, "--full", "--model", "oa", "--no-cache")
        if r["model"] == "oa"
    ]
    assert measured["basis"] == "measured"
    assert measured["cost_expected_usd"] == pytest.approx(report.stats.cost_usd, rel=0.2)


def test_the_api_batch_bench_runs_at_a_tiny_size() -> None:
    from eval_pipeline_tests.bench import api_batch

    # One kill point here: the three are each tested above.
    result = api_batch.run(rows=12, kill_rows=6, pending_s=1.0, points=("create",))
    assert result["cost_ratio"] == pytest.approx(0.5)
    assert result["answers_equal"] is True
    assert result["duplicate_batches_after_kill"] == 0
    assert result["process_held_s"] <= 10  # the submitting process ends; a later run collects
    assert abs(result["plan_error"]) <= 0.2


def test_a_submitting_run_ends_and_the_sensor_requests_the_collecting_run(
    server: ApiServer, tmp_path: Path
) -> None:
    import dagster as dg

    from eval_pipeline.defs import build_definitions
    from eval_pipeline.defs.batches import build_batch_sensors
    from eval_pipeline.defs.jobs import BATCH_WAIT_TAG, ROUTE_TAG, SAMPLE_LIMIT_TAG
    from eval_pipeline.resources import CatalogResource, StoreResource

    server.configure_batches(complete_after_s=3600)
    project = batch_project(tmp_path / "p", server, 8, online_twins=True)
    store = tmp_path / "s"
    defs = build_definitions(str(project), str(store))
    job = defs.resolve_job_def("evaluation_job")
    (collect, _) = build_batch_sensors(poll_base_s=0.0)
    resources = {
        "catalog": CatalogResource(root=str(project), store_root=str(store)),
        "store": StoreResource(root=str(store)),
    }
    tags = {ROUTE_TAG: "batch", BATCH_WAIT_TAG: "sensor", SAMPLE_LIMIT_TAG: "5"}
    with dg.instance_for_test() as instance:
        submitted = job.execute_in_process(
            partition_key="synth|oa-online", instance=instance, tags=tags, raise_on_error=False
        )
        assert not submitted.success  # pending: nothing materialized, no process waits
        assert batch_count(server, "openai") == 1
        assert not Store(store).exists("generations", dataset="synth", model="oa-online")

        def tick() -> list[dg.RunRequest]:
            context = dg.build_sensor_context(instance=instance, resources=resources)
            result = collect(context)
            seen.extend(result.asset_events or [])
            return list(result.run_requests or [])

        seen: list[dg.AssetObservation] = []
        assert tick() == []  # still pending
        (observed,) = seen
        assert observed.partition == "synth|oa-online"
        assert observed.metadata["batch/status"].value == "in_progress"
        assert observed.metadata["batch/id"].value == server.batches()[0]["id"]
        server.configure_batches(complete_after_s=0)
        (request,) = tick()
        assert request.partition_key == "synth|oa-online"
        # The collecting run evaluates what was submitted: the same 5 of the 8 samples.
        assert request.tags == tags
        collected = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            tags=request.tags,
            raise_on_error=False,
        )
        assert collected.success
    assert batch_count(server, "openai") == 1 and server.stats()["requests"] == 0
    completions = _completions(store, "oa-online")
    assert len(completions) == 5 and all(c and c.startswith("answer ") for c in completions)


def test_cancelling_a_run_s_open_batches_cancels_them_at_the_provider(
    server: ApiServer, tmp_path: Path
) -> None:
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.engine.batch import BatchesPending, cancel_open_batches
    from eval_pipeline.providers import create_provider
    from eval_pipeline.stages import RunOrigin

    server.configure_batches(complete_after_s=3600)
    project = batch_project(tmp_path / "p", server, 6)
    prepare(project, tmp_path / "s")
    for model in ("oa", "an"):
        with pytest.raises(BatchesPending, match="have not ended"):
            generate_partition(
                project, tmp_path / "s", model, batch_wait=False, run=RunOrigin(run_id="r1")
            )
    book = BatchBook(Store(tmp_path / "s").runs_dir / "batches")
    catalog = load_catalog(project)
    assert cancel_open_batches(create_provider(catalog.model("oa")), book, "other-run") == 0
    for model in ("oa", "an"):
        assert cancel_open_batches(create_provider(catalog.model(model)), book, "r1") == 1
    assert all(b["cancelled"] for b in server.batches()) and len(server.batches()) == 2
    assert book.open() == []


def test_what_every_batch_left_unanswered_goes_online_when_allowed(
    server: ApiServer, tmp_path: Path
) -> None:
    server.configure_batches(expire_fraction=1.0)  # every batch expires unanswered
    project = batch_project(tmp_path / "p", server, 6)
    prepare(project, tmp_path / "s")
    refused = generate_partition(project, tmp_path / "s", "an")
    assert refused.errors == 6 and server.stats()["requests"] == 0
    assert batch_count(server, "anthropic") == 3  # three rounds
    allowed = generate_partition(project, tmp_path / "s", "an", batch_fallback_online=True)
    assert allowed.errors == 0 and server.stats()["requests"] == 6
    assert allowed.stats.cost_usd > 0
