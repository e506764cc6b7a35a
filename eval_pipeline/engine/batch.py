"""The batch route: a partition's uncached requests as provider batches, answered into the cache.

Requests are split into submissions no larger than the provider allows (requests and
bytes, :class:`~eval_pipeline.providers.batch.BatchLimits`). Each submission is recorded
in a small JSON file under the store (``runs/batches/<submission id>.json``) through these
states:

1. ``intent``: written **before** anything is sent, with the submission id, the request
   hashes, their count and the time.
2. ``submitted``: the provider's batch id is known.
3. ``collected``: the results are in the response cache (under each request's hash, the
   batch's ``custom_id``), so later online and batch runs reuse them.

Exactly once, as far as each provider allows. A process killed at any point resumes from
the record: a submission in ``intent`` first looks for its batch at the provider before
creating one. OpenAI batches carry the submission id in their ``metadata``, so the lookup
is exact. Anthropic's create takes only the requests: the batch adopted is one created
since the intent with the submission's request count that no other record holds. The
window that remains is a kill inside Anthropic's create call after the provider accepted
it and while another submission of the same size was created in the same interval: the
two are told apart by count only. :func:`find_duplicates` lists provider batches no
record holds, :func:`cancel_open_batches` cancels them, and their cost is what the
provider reports for them (cancelled requests are not billed).

The submission id is a content hash of the model, the request hashes and a round number,
so a resumed run finds its own records; a set of requests whose earlier submission was
collected (every request expired, say) gets the next round.

The budget counts a submission's worst case (estimated input tokens plus ``max_tokens``,
at batch prices) before it is created, and settles at its real cost when collected.
Requests that a batch did not answer (expired, cancelled) or answered with a transient
error go into a new batch, up to ``max_rounds``; other errors are recorded.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.engine.budget import SpendBudget
from eval_pipeline.engine.cache import ResponseCache
from eval_pipeline.engine.run import RunStats
from eval_pipeline.providers import Provider, RequestFailure
from eval_pipeline.providers.batch import BatchApi, BatchResult, RemoteBatch

if TYPE_CHECKING:
    from eval_pipeline.engine.api import RunControls

# Anthropic's created_at comes from the provider's clock: look this far before the intent.
CLOCK_SLACK_S = 300.0


@dataclass
class Submission:
    """The record of one provider batch of this project, kept under ``runs/batches/``."""

    submission_id: str
    model: str
    provider: str
    request_hashes: list[str]
    bytes: int
    intent_at: float
    worst_usd: float
    state: str = "intent"  # intent, submitted, collected, cancelled, abandoned
    batch_id: str | None = None
    status: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    failed: int = 0
    missing: int = 0
    cost_usd: float = 0.0
    run_id: str | None = None
    submitted_at: float | None = None
    collected_at: float | None = None
    # The partition (``dataset|model``) whose requests these are, for the collecting run.
    partition: str | None = None
    # Polling by the sensor: how many looks so far, and not before this time.
    polls: int = 0
    next_poll_at: float = 0.0

    @property
    def count(self) -> int:
        return len(self.request_hashes)


class BatchesPending(EvalPipelineError):
    """The partition's batches are submitted and not yet ended; a later run collects them."""


class BatchBook:
    """The submission records of a store: one JSON file each, written atomically."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def path(self, submission_id: str) -> Path:
        return self.directory / f"{submission_id}.json"

    def get(self, submission_id: str) -> Submission | None:
        try:
            data = json.loads(self.path(submission_id).read_text())
        except FileNotFoundError:
            return None
        return Submission(**data)

    def put(self, record: Submission) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(record.submission_id)
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(asdict(record), sort_keys=True))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def all(self) -> list[Submission]:
        if not self.directory.exists():
            return []
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(Submission(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return records

    def open(self, model: str | None = None) -> list[Submission]:
        """Submissions not yet collected (or cancelled), optionally of one model."""
        return [
            r
            for r in self.all()
            if r.state in ("intent", "submitted") and (model is None or r.model == model)
        ]


@dataclass
class BatchOutcome:
    """What the batch route did for one partition."""

    stopped: str | None = None
    submissions: list[str] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    rounds: int = 0
    retried: int = 0  # requests sent again after a batch left them unanswered
    waited_s: float = 0.0
    planned_worst_usd: float = 0.0
    # Requests the last round's batches left unanswered (expired, cancelled, transient errors).
    unanswered: list[GenerationRequest] = field(default_factory=list)


def estimated_input_tokens(request: GenerationRequest) -> int:
    """About 4 characters per token of the rendered messages (the engine's estimate)."""
    return sum(len(m.content) for m in request.messages) // 4 + 1


def worst_cost(spec: ModelSpec, requests: Sequence[GenerationRequest]) -> float:
    """The most ``requests`` can cost through the batch API: every answer at ``max_tokens``."""
    return sum(
        spec.pricing.batch_cost(estimated_input_tokens(r), r.sampling.max_tokens) for r in requests
    )


def submission_id(model: str, hashes: Sequence[str], round_: int) -> str:
    return "sub-" + content_hash({"model": model, "requests": sorted(hashes), "round": round_}, 20)


def split(
    api: BatchApi, requests: Sequence[GenerationRequest], lines: dict[str, bytes]
) -> list[list[GenerationRequest]]:
    """Chunks of ``requests`` within the provider's request and byte limits."""
    limits = api.limits
    # Room for the envelope around the lines (the JSON array of Anthropic's body).
    max_bytes = int(limits.max_bytes * 0.98)
    chunks: list[list[GenerationRequest]] = []
    current: list[GenerationRequest] = []
    size = 0
    for r in requests:
        n = len(lines[r.request_hash]) + 1
        if current and (len(current) >= limits.max_requests or size + n > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(r)
        size += n
    if current:
        chunks.append(current)
    return chunks


class BatchRoute:
    """Submit, wait for and collect the provider batches of one partition's requests."""

    def __init__(
        self,
        provider: Provider,
        spec: ModelSpec,
        book: BatchBook,
        cache: ResponseCache | None,
        budget: SpendBudget,
        *,
        run_id: str | None = None,
        poll_initial_s: float = 1.0,
        poll_max_s: float = 60.0,
        max_rounds: int = 3,
        partition: str | None = None,
    ):
        self.partition = partition
        api = provider.batch_api()
        if api is None:
            raise EvalPipelineError(
                f"model {spec.slug!r}: provider {spec.provider!r} has no batch API; set "
                "route: online for it in models.yaml (or run without --batch)"
            )
        self.api = api
        self.provider = provider
        self.spec = spec
        self.book = book
        self.cache = cache
        self.budget = budget
        self.run_id = run_id
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self.max_rounds = max_rounds

    # -- submitting --------------------------------------------------------------------

    def _record_for(self, hashes: list[str], worst: float, size: int) -> Submission:
        """The open record of this set of requests, or a new intent (written before returning)."""
        round_ = 0
        while True:
            sid = submission_id(self.spec.slug, hashes, round_)
            record = self.book.get(sid)
            if record is None:
                record = Submission(
                    submission_id=sid,
                    model=self.spec.slug,
                    provider=self.spec.provider,
                    request_hashes=hashes,
                    bytes=size,
                    intent_at=time.time(),
                    worst_usd=worst,
                    run_id=self.run_id,
                    partition=self.partition,
                )
                self.book.put(record)  # the intent, before anything is sent
                return record
            if record.state in ("intent", "submitted"):
                return record
            round_ += 1

    def _adopt(self, record: Submission) -> RemoteBatch | None:
        """A batch the provider already holds for ``record`` (created before a kill)."""
        held = {r.batch_id for r in self.book.all() if r.batch_id}
        for remote in self.api.find(
            record.submission_id, record.count, record.intent_at - CLOCK_SLACK_S
        ):
            if remote.id not in held and remote.total == record.count:
                return remote
        return None

    def submit(self, requests: Sequence[GenerationRequest], lines: dict[str, bytes]) -> Submission:
        """Make sure ``requests`` are in a provider batch; returns its record.

        Raises:
            _BudgetStop: The batch's worst case does not fit the budget (nothing was sent).
        """
        hashes = [r.request_hash for r in requests]
        size = sum(len(lines[h]) for h in hashes)
        worst = worst_cost(self.spec, requests)
        record = self._record_for(hashes, worst, size)
        if record.state == "submitted":
            return record
        remote = self._adopt(record)
        if remote is None:
            if not self.budget.reserve(worst):
                raise _BudgetStop(
                    f"spend budget of ${self.budget.limit_usd:.4f} reached: a batch of "
                    f"{len(requests)} requests could cost up to ${worst:.4f} at batch prices "
                    f"and the run has spent ${self.budget.run_spent_usd:.4f}. Nothing of it "
                    "was sent; raise the budget and run again."
                )
            try:
                remote = self.api.create(record.submission_id, [lines[h] for h in hashes])
            except RequestFailure:
                self.budget.settle(worst, 0.0)
                raise
        else:
            self.budget.reserve(worst)  # already paid for: counted whatever the limit
        record.batch_id = remote.id
        record.state = "submitted"
        record.status = remote.status
        record.submitted_at = time.time()
        self.book.put(record)
        return record

    def resume(self, hashes: set[str]) -> list[Submission]:
        """The open submissions of this model holding any of ``hashes``, each with its batch.

        A run killed after submitting finds its batches here and collects them instead of
        sending their requests again. An intent whose batch the provider does not hold was
        never created: it is dropped (``abandoned``).
        """
        found = []
        for record in self.book.open(self.spec.slug):
            if not hashes.intersection(record.request_hashes):
                continue
            if record.batch_id is None:
                remote = self._adopt(record)
                if remote is None:
                    record.state = "abandoned"
                    self.book.put(record)
                    continue
                self.budget.reserve(record.worst_usd)
                record.batch_id, record.state = remote.id, "submitted"
                record.status, record.submitted_at = remote.status, time.time()
                self.book.put(record)
            else:
                self.budget.reserve(record.worst_usd)
            found.append(record)
        return found

    # -- waiting and collecting ---------------------------------------------------------

    def wait(
        self,
        records: Sequence[Submission],
        on_poll: Callable[[list[RemoteBatch]], None] | None = None,
    ) -> float:
        """Poll the batches of ``records`` with backoff until every one has ended; seconds waited."""
        start = time.monotonic()
        delay = self.poll_initial_s
        while True:
            remotes = []
            for record in records:
                assert record.batch_id is not None
                remote = self.api.retrieve(record.batch_id)
                record.status, record.counts = remote.status, remote.counts
                remotes.append(remote)
            if on_poll is not None:
                on_poll(remotes)
            if all(r.ended for r in remotes):
                return time.monotonic() - start
            time.sleep(delay)
            delay = min(self.poll_max_s, delay * 1.5)

    def collect(self, record: Submission) -> Iterator[BatchResult]:
        """The results of an ended batch; each answer is written to the cache as it is read."""
        assert record.batch_id is not None
        for result in self.api.results(record.batch_id):
            if result.response is not None and self.cache is not None:
                self.cache.put(result.custom_id, result.response)
            yield result


class _BudgetStop(Exception):
    """A batch's worst case would cross the spend budget."""


def run_batch_requests(
    provider: Provider,
    spec: ModelSpec,
    todo: Sequence[GenerationRequest],
    cache: ResponseCache | None,
    stats: RunStats,  # the caller's, updated in place
    results: dict[str, GenerationResponse],
    *,
    book: BatchBook,
    budget: SpendBudget,
    run_id: str | None = None,
    on_progress: Callable[[], None] | None = None,
    poll_initial_s: float = 1.0,
    poll_max_s: float = 60.0,
    max_rounds: int = 3,
    wait: bool = True,
    partition: str | None = None,
) -> BatchOutcome:
    """Answer ``todo`` (uncached, distinct requests) through the provider's batch API.

    With ``wait`` this process polls, with backoff, until every batch has ended; each
    answer lands in the response cache under its request hash and in ``results``.
    Without it, batches not yet ended raise :class:`BatchesPending` once submitted (their
    records say which ``partition`` they belong to); the run started when they have ended
    finds and collects them.
    """
    route = BatchRoute(
        provider,
        spec,
        book,
        cache,
        budget,
        run_id=run_id,
        poll_initial_s=poll_initial_s,
        poll_max_s=poll_max_s,
        max_rounds=max_rounds,
        partition=partition,
    )
    outcome = BatchOutcome()
    start = time.monotonic()
    by_hash = {r.request_hash: r for r in todo}
    pending = list(todo)

    def progress(_: list[RemoteBatch] | None = None) -> None:
        if on_progress is not None:
            on_progress()

    for round_ in range(max_rounds):
        if not pending:
            break
        outcome.rounds = round_ + 1
        lines, sendable = _encode_lines(route, pending, results, stats)
        records = _submit_round(route, sendable, lines, outcome, resume=round_ == 0)
        stats.in_flight = sum(r.count for r in records)
        progress()
        if not wait:
            _raise_if_open(route, records, partition or spec.slug)
        route.wait(records, progress)
        retry: list[GenerationRequest] = []
        for record in records:
            _collect_record(route, record, by_hash, results, stats, retry)
        stats.in_flight = 0
        if outcome.stopped:
            break
        if retry and round_ + 1 < max_rounds:
            outcome.retried += len(retry)
        pending = retry
    _fail_unanswered(todo, pending, outcome, results, stats)
    outcome.waited_s = time.monotonic() - start
    return outcome


def _encode_lines(
    route: BatchRoute,
    pending: Sequence[GenerationRequest],
    results: dict[str, GenerationResponse],
    stats: RunStats,
) -> tuple[dict[str, bytes], list[GenerationRequest]]:
    """Each request's batch line by hash, and the requests that have one.

    A request the provider cannot encode is answered with its error at once.
    """
    lines: dict[str, bytes] = {}
    sendable = []
    for r in pending:
        try:
            lines[r.request_hash] = route.api.line(r)
            sendable.append(r)
        except RequestFailure as failure:
            results[r.request_hash] = GenerationResponse(None, "error", error=str(failure))
            stats.errors += 1
    return lines, sendable


def _submit_round(
    route: BatchRoute,
    sendable: list[GenerationRequest],
    lines: dict[str, bytes],
    outcome: BatchOutcome,
    *,
    resume: bool,
) -> list[Submission]:
    """The submissions of one round, new ones sent until the budget stops them.

    On the first round the open submissions of an earlier run that cover these requests
    are taken up first.
    """
    records = route.resume({r.request_hash for r in sendable}) if resume else []
    covered = {h for record in records for h in record.request_hashes}
    sendable = [r for r in sendable if r.request_hash not in covered]
    try:
        for chunk in split(route.api, sendable, lines):
            records.append(route.submit(chunk, lines))
    except _BudgetStop as stop:
        outcome.stopped = str(stop)
    outcome.submissions += [r.submission_id for r in records]
    outcome.batch_ids += [r.batch_id for r in records if r.batch_id]
    outcome.planned_worst_usd += sum(r.worst_usd for r in records)
    return records


def _raise_if_open(route: BatchRoute, records: list[Submission], owner: str) -> None:
    """Raise :class:`BatchesPending` if any of ``records`` has not ended at the provider."""
    open_ = [r for r in records if not route.api.retrieve(str(r.batch_id)).ended]
    if open_:
        raise BatchesPending(
            f"{len(open_)} provider batches hold {sum(r.count for r in open_)} "
            f"requests of {owner} and have not ended: "
            f"{', '.join(str(r.batch_id) for r in open_)}. Nothing is waiting on "
            "them here; the batch sensor (batch_collect_sensor) requests the run "
            "that collects them once they end, or materialize the partition again."
        )


def _collect_record(
    route: BatchRoute,
    record: Submission,
    by_hash: dict[str, GenerationRequest],
    results: dict[str, GenerationResponse],
    stats: RunStats,
    retry: list[GenerationRequest],
) -> None:
    """Take one ended batch's answers into ``results`` and ``stats``.

    What it left missing or failed retryably goes on ``retry``. The record is saved as
    collected, its cost settled against the budget.
    """
    got: set[str] = set()
    cost = 0.0
    for result in route.collect(record):
        request = by_hash.get(result.custom_id)
        if request is None or result.custom_id in got:
            continue
        got.add(result.custom_id)
        if result.response is not None:
            response = result.response
            results[result.custom_id] = response
            stats.generated += 1
            stats.model_calls += 1
            stats.input_tokens += response.input_tokens
            stats.output_tokens += response.output_tokens
            cost += route.spec.pricing.batch_cost(response.input_tokens, response.output_tokens)
            record.answered += 1
            continue
        problem = result.failure or RequestFailure("other", "no result")
        if result.missing or problem.retryable:
            record.missing += 1
            retry.append(request)
        else:
            record.failed += 1
            results[result.custom_id] = GenerationResponse(None, "error", error=str(problem))
            stats.errors += 1
    # A request the provider did not mention at all was not answered either.
    for h in record.request_hashes:
        if h not in got and h in by_hash and h not in results:
            record.missing += 1
            retry.append(by_hash[h])
    record.cost_usd = cost
    record.state = "collected"
    record.collected_at = time.time()
    route.book.put(record)
    stats.cost_usd += cost
    route.budget.settle(record.worst_usd, cost)


def _fail_unanswered(
    todo: Sequence[GenerationRequest],
    pending: list[GenerationRequest],
    outcome: BatchOutcome,
    results: dict[str, GenerationResponse],
    stats: RunStats,
) -> None:
    """Answer with an error what the last round left unanswered, and what was never sent."""
    outcome.unanswered = [r for r in pending if r.request_hash not in results]
    for r in pending:
        if r.request_hash not in results:
            results[r.request_hash] = GenerationResponse(
                None,
                "error",
                error=f"not answered by {outcome.rounds} provider batches (expired or cancelled)",
            )
            stats.errors += 1
    for r in todo:
        if r.request_hash not in results:
            results[r.request_hash] = GenerationResponse(
                None, "error", error=f"not attempted: {outcome.stopped}"
            )
            stats.not_attempted += 1


def find_duplicates(provider: Provider, book: BatchBook, since: float) -> list[RemoteBatch]:
    """Provider batches created since ``since`` that no record of ``book`` holds."""
    api = provider.batch_api()
    if api is None:
        return []
    held = {r.batch_id for r in book.all() if r.batch_id}
    return [b for b in api.list_since(since) if b.id not in held]


def cancel_open_batches(provider: Provider, book: BatchBook, run_id: str | None = None) -> int:
    """Cancel the provider batches of the open submissions (of ``run_id`` if given)."""
    api = provider.batch_api()
    if api is None:
        return 0
    cancelled = 0
    for record in book.open(provider.spec.slug):
        if run_id is not None and record.run_id != run_id:
            continue
        if record.batch_id:
            api.cancel(record.batch_id)
            cancelled += 1
        record.state = "cancelled"
        book.put(record)
    return cancelled


def run_batch_route(
    provider: Provider,
    spec: ModelSpec,
    todo: Sequence[GenerationRequest],
    cache: ResponseCache | None,
    stats: RunStats,
    results: dict[str, GenerationResponse],
    controls: RunControls | None,
    report: Callable[[], None],
) -> str | None:
    """The engine's batch route: choice requests online, the rest as provider batches.

    Returns why the run stopped before answering every request (None: it did not).
    """
    from eval_pipeline.engine.api import RunControls, run_api_requests

    controls = controls or RunControls()
    if controls.batch_dir is None:
        raise EvalPipelineError(
            f"model {spec.slug!r}: the batch route needs a folder for its submission records"
        )
    # Choice decoding takes several calls per request (one per choice): online.
    online = [r for r in todo if r.choices]
    batched = [r for r in todo if not r.choices]
    stopped = None
    if online:
        stopped = run_api_requests(
            provider, spec, online, cache, stats, results, controls=controls, on_progress=report
        ).stopped
    if batched and stopped is None:
        outcome = run_batch_requests(
            provider,
            spec,
            batched,
            cache,
            stats,
            results,
            book=BatchBook(controls.batch_dir),
            budget=SpendBudget(controls.budget_usd, controls.budget_ledger),
            run_id=controls.run_id,
            on_progress=report,
            poll_initial_s=controls.batch_poll_s,
            wait=controls.batch_wait,
            partition=controls.partition,
        )
        stopped = outcome.stopped
        if outcome.unanswered and controls.batch_fallback_online and stopped is None:
            # What the batches never answered goes online, at online prices.
            for r in outcome.unanswered:
                results.pop(r.request_hash, None)
            stats.errors -= len(outcome.unanswered)
            stopped = run_api_requests(
                provider,
                spec,
                outcome.unanswered,
                cache,
                stats,
                results,
                controls=controls,
                on_progress=report,
            ).stopped
        stats.batch_ids = list(outcome.batch_ids)
        stats.batch_rounds = outcome.rounds
        stats.batch_retried = outcome.retried
        stats.batch_waited_s = outcome.waited_s
        stats.batch_worst_usd = outcome.planned_worst_usd
    return stopped


@dataclass
class PollResult:
    """What one look at the open batches found."""

    ready: dict[str, list[Submission]]  # partition -> its submissions, every batch ended
    looked_at: list[Submission]  # the submissions whose batch was asked about this time
    still_open: list[Submission]  # every open submission with a batch


def poll_open_batches(
    book: BatchBook,
    api_for: Callable[[str], BatchApi | None],
    *,
    now: float | None = None,
    base_s: float = 30.0,
    max_s: float = 1800.0,
) -> PollResult:
    """Look at the open submissions that are due, with backoff; the partitions ready to collect.

    A submission is looked at when its ``next_poll_at`` has come; if its batch has not
    ended, the next look is ``base_s * 1.5**polls`` later (at most ``max_s``). A
    partition is ready when every open submission of it has a batch that has ended.
    ``api_for(model)`` gives the batch API of a model (None: the model is gone).
    """
    now = time.time() if now is None else now
    by_partition: dict[str, list[Submission]] = {}
    for record in book.open():
        if record.partition and record.batch_id:
            by_partition.setdefault(record.partition, []).append(record)
    ready: dict[str, list[Submission]] = {}
    looked_at: list[Submission] = []
    for partition, records in by_partition.items():
        ended = True
        for record in records:
            if record.status.startswith("ended:"):
                continue
            if record.next_poll_at > now:
                ended = False
                continue
            api = api_for(record.model)
            if api is None:
                ended = False
                continue
            remote = api.retrieve(str(record.batch_id))
            record.status, record.counts = remote.status, remote.counts
            record.polls += 1
            looked_at.append(record)
            if remote.ended:
                record.status = f"ended:{remote.status}"
            else:
                ended = False
                record.next_poll_at = now + min(max_s, base_s * 1.5 ** (record.polls - 1))
            book.put(record)
        if ended:
            ready[partition] = records
    still_open = [r for records in by_partition.values() for r in records]
    return PollResult(ready=ready, looked_at=looked_at, still_open=still_open)
