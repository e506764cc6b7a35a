"""The async engine's parts: limiter, retries, breaker, budget, failure kinds, progress."""

from __future__ import annotations

import asyncio

import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams
from eval_pipeline.engine.breaker import CircuitBreaker
from eval_pipeline.engine.budget import SpendBudget
from eval_pipeline.engine.ratelimit import RateLimiter
from eval_pipeline.engine.retry import retrying
from eval_pipeline.providers import create_provider
from eval_pipeline.providers._api import ApiOptions, RequestFailure, parse_retry_after, redact
from eval_pipeline.stages import build_dataset_samples, build_prompt_versions, generate
from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import ServerConfig, answer, api_model, make_api_project
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture

api_server = api_server_fixture()


_api_key = api_key_fixture()


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_request_limiter_paces_requests_evenly_from_the_first_one():
    fake = FakeTime()
    limiter = RateLimiter(rate_per_s=10.0, burst=1.0, clock=fake.clock, sleep=fake.sleep)

    async def take(n: int) -> list[float]:
        times = []
        for _ in range(n):
            await limiter.acquire()
            times.append(fake.now)
        return times

    times = asyncio.run(take(6))
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_the_token_limiter_lets_an_oversized_request_through_once_full_and_charges_the_debt():
    fake = FakeTime()
    limiter = RateLimiter(rate_per_s=100.0, burst=100.0, clock=fake.clock, sleep=fake.sleep)

    async def run() -> None:
        await limiter.acquire(250)  # bigger than the bucket: allowed, leaves 150 of debt
        await limiter.acquire(50)  # waits for the debt plus its own 50 tokens

    asyncio.run(run())
    assert fake.now == pytest.approx(2.0)


def _options(**overrides) -> ApiOptions:
    return ApiOptions(api_key_env=None, backoff_initial_s=0.1, backoff_max_s=1.0, **overrides)


async def _retry(options: ApiOptions, failures: list[RequestFailure], fake: FakeTime) -> int:
    calls = 0
    async for attempt in retrying(options, sleep=fake.sleep):
        with attempt:
            calls += 1
            if failures:
                raise failures.pop(0)
    return calls


def test_retries_honour_retry_after_and_back_off_with_jitter_otherwise():
    fake = FakeTime()
    failures = [
        RequestFailure("rate_limited", "slow down", status=429, retry_after_s=2.0),
        RequestFailure("server", "oops", status=503),
        RequestFailure("timeout", "deadline"),
    ]
    assert asyncio.run(_retry(_options(), failures, fake)) == 4
    assert 2.0 <= fake.sleeps[0] <= 2.2
    assert 0.0 <= fake.sleeps[1] <= 0.2 and 0.0 <= fake.sleeps[2] <= 0.4


@pytest.mark.parametrize(
    "status,kind", [(400, "bad_request"), (401, "auth"), (403, "auth"), (404, "bad_request")]
)
def test_client_errors_are_not_retried(status, kind):
    fake = FakeTime()
    with pytest.raises(RequestFailure):
        asyncio.run(_retry(_options(), [RequestFailure(kind, "no", status=status)], fake))
    assert fake.sleeps == []


def test_retries_are_bounded_and_a_long_retry_after_ends_them():
    fake = FakeTime()
    forever = [RequestFailure("server", "down", status=500) for _ in range(100)]
    with pytest.raises(RequestFailure):
        asyncio.run(_retry(_options(max_retries=3), forever, fake))
    assert len(fake.sleeps) == 3
    fake = FakeTime()
    quota = [RequestFailure("rate_limited", "quota", status=429, retry_after_s=86400.0)]
    with pytest.raises(RequestFailure):
        asyncio.run(_retry(_options(retry_after_max_s=60.0), quota, fake))
    assert fake.sleeps == []


def test_the_circuit_breaker_opens_after_k_consecutive_failures_only():
    breaker = CircuitBreaker(3)
    for _ in range(10):
        assert not breaker.failure("x") and not breaker.failure("x")
        breaker.success()
    assert not breaker.is_open
    assert [breaker.failure("x") for _ in range(4)] == [False, False, True, False]
    assert breaker.is_open


def test_the_budget_refuses_a_request_that_could_overshoot_and_stays_closed():
    budget = SpendBudget(1.0)
    assert budget.reserve(0.4) and budget.reserve(0.4)
    assert not budget.reserve(0.4)
    budget.settle(0.4, 0.1)
    assert not budget.reserve(0.1)  # once reached, no new requests in this run
    assert budget.spent_usd == pytest.approx(0.1)


def test_retry_after_is_read_in_milliseconds_seconds_or_as_a_date():
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


def test_redact_removes_every_occurrence_of_a_secret():
    assert redact("key sk-1 and sk-1 again", ("sk-1",)) == "key [redacted] and [redacted] again"


def _request(text: str, *, system: str | None = None) -> GenerationRequest:
    messages = ((Message("system", system),) if system else ()) + (Message("user", text),)
    return GenerationRequest("h" * 24, "s1", messages, SamplingParams(max_tokens=8))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "config,kind,status",
    [
        (ServerConfig(fail_status=400), "bad_request", 400),
        (ServerConfig(fail_status=401), "auth", 401),
        (ServerConfig(fail_status=403), "auth", 403),
        (ServerConfig(fail_status=404), "bad_request", 404),
        (ServerConfig(faults={"429": 1.0}, retry_after_s=7), "rate_limited", 429),
        (ServerConfig(faults={"500": 1.0}), "server", 500),
        (ServerConfig(faults={"503": 1.0}), "server", 503),
        (ServerConfig(faults={"drop": 1.0}), "connection", None),
        (ServerConfig(faults={"malformed": 1.0}), "malformed", None),
    ],
)
def test_each_server_failure_is_classified_for_the_engine(
    api_server, provider, config, kind, status
):
    api_server.configure(config)
    base_url = api_server.openai_base_url if provider == "openai" else api_server.url
    spec = ModelSpec.model_validate(
        {
            "slug": "m",
            "provider": provider,
            "model_id": "m",
            "options": {"base_url": base_url, "api_key_env": KEY_ENV},
        }
    )
    adapter = create_provider(spec)

    async def call() -> RequestFailure:
        try:
            with pytest.raises(RequestFailure) as info:
                await adapter.agenerate(_request("hello"))
            return info.value
        finally:
            await adapter.aclose()

    failure = asyncio.run(call())
    assert (failure.kind, failure.status) == (kind, status)
    if kind == "rate_limited":
        assert failure.retry_after_s == 7.0
    assert "sk-test-key" not in str(failure)


def test_the_anthropic_provider_sends_system_messages_as_the_system_parameter(api_server):
    api_server.configure(ServerConfig())
    spec = ModelSpec.model_validate(
        {
            "slug": "c",
            "provider": "anthropic",
            "model_id": "claude-x",
            "options": {"base_url": api_server.url, "api_key_env": KEY_ENV},
        }
    )
    adapter = create_provider(spec)
    request = _request("What is 2+2?", system="Be brief.")
    payload = adapter.payload(request)
    assert payload["system"] == "Be brief."
    assert payload["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    # The plain (sync) Provider interface works too, for callers outside the engine.
    (response,) = adapter.generate([request])
    assert response.completion == answer([{"role": "user", "content": "What is 2+2?"}])
    assert response.finish_reason == "stop" and response.output_tokens == 2


def test_progress_is_reported_at_a_steady_interval_with_retries_and_the_last_error(
    api_server, tmp_path
):
    api_server.configure(ServerConfig(latency_s=0.05, faults={"500": 0.3}, fault_seed=3))
    model = api_model(
        "api-model",
        "openai",
        api_server.openai_base_url,
        concurrency=4,
        api_key_env=KEY_ENV,
        backoff_initial_s=0.05,
    )
    project = make_api_project(tmp_path / "project", [model], 40)
    catalog, store = load_catalog(project), Store(tmp_path / "store")
    build_prompt_versions(catalog, store, "synth")
    build_dataset_samples(catalog, store, "synth")
    reports = []
    report = generate(
        catalog, store, "api-model", "synth", progress=reports.append, progress_every_s=0.1
    )
    assert report.errors == 0
    assert len(reports) >= 3
    last = reports[-1]
    assert (last.done, last.total, last.attempts) == (40, 40, api_server.stats()["requests"])
    assert last.retries == last.attempts - 40 > 0
    message = last.message()
    assert "40/40 requests" in message and "retries" in message and "HTTP 500" in message
    assert "ETA" in reports[0].message() and "$" in message
