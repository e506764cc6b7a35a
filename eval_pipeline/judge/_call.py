"""The one path that calls a judge: render the rubric, send the requests, parse the verdicts.

Judge calls go through the same engine as generation (:func:`eval_pipeline.engine.run_requests`
with the store's response cache), so a re-run re-judges nothing that was judged before,
API judges get their rate limits, retries and circuit breaker, and every verdict records
its tokens and cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from eval_pipeline.catalog import Catalog, PromptTemplate
from eval_pipeline.core.types import GenerationRequest, GenerationResponse, Message
from eval_pipeline.engine import (
    GenerationStopped,
    ResponseCache,
    RunControls,
    request_hash,
    run_requests,
)
from eval_pipeline.judge._rubrics import SCALE
from eval_pipeline.judge._verdict import NO_RESPONSE, Verdict, parse_verdict
from eval_pipeline.providers import Provider, create_provider, provider_class
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class JudgeItem:
    """One response to judge."""

    sample_id: str
    question: str
    answer: str | None
    reference: str


@dataclass(frozen=True)
class JudgeCall:
    """A judged item: the request (None when nothing was sent), the reply and its verdict."""

    item: JudgeItem
    request: GenerationRequest | None
    response: GenerationResponse | None
    cached: bool
    verdict: Verdict

    @property
    def score(self) -> float | None:
        """The judge's score: None for an unreadable verdict.

        With choice decoding it is the probability-weighted mean over the scale (each
        score's weight is the model's probability of that verdict, normalised over the
        choices), which keeps the judge's uncertainty instead of only its top choice;
        otherwise the verdict's integer score.
        """
        if not self.verdict.ok:
            return None
        expected = expected_score(self.response)
        if expected is not None:
            return expected
        return None if self.verdict.score is None else float(self.verdict.score)


def verdict_choices(provider: str) -> tuple[str, ...]:
    """The verdicts a judge on ``provider`` may choose from; empty means free-form JSON.

    Local judges (providers with choice decoding) pick the most likely of the scale's
    verdicts, ``{"score": 1}`` to ``{"score": 5}``: a small model that cannot be relied on
    to write the JSON object still gives a readable verdict, and it is the model's own
    ranking of the scores. Their verdicts carry no reason.
    """
    if not provider_class(provider).capabilities.choices:
        return ()
    return tuple(json.dumps({"score": s}) for s in range(SCALE[0], SCALE[1] + 1))


def expected_score(response: GenerationResponse | None) -> float | None:
    """The probability-weighted score of a choice-decoded verdict, or None.

    Reads the response's ``choice_scores`` (verdict text -> log-likelihood); choices that do
    not parse as a verdict on the scale are left out.
    """
    scores = response.choice_scores if response else None
    logprobs = scores.logprobs() if scores else None
    if not logprobs:
        return None
    scored = [
        (float(v.score), float(lp))
        for text, lp in logprobs.items()
        if (v := parse_verdict(text)).ok and v.score is not None
    ]
    if not scored:
        return None
    values = np.array([s for s, _ in scored])
    weights = np.exp(np.array([lp for _, lp in scored]) - max(lp for _, lp in scored))
    return float(np.dot(values, weights) / weights.sum())


Answered = tuple[GenerationRequest, GenerationResponse, bool]


def ask_judge(
    catalog: Catalog,
    store: Store,
    judge: str,
    conversations: Sequence[tuple[str, tuple[Message, ...]] | None],
    choices: tuple[str, ...],
    *,
    max_tokens: int,
    provider: Provider | None = None,
    controls: RunControls | None = None,
    seed_offset: int = 0,
    use_cache: bool = True,
) -> list[Answered | None]:
    """Send each ``(sample id, messages)`` to ``judge`` through the engine; None stays None.

    ``seed_offset`` and ``use_cache=False`` make a repeated call (self-consistency): the
    judge's sampling seed moved by the offset, and nothing read from the response cache.

    Greedy decoding (a verdict should not depend on the sampling seed); with ``choices``
    the judge picks the most likely of them. Answers come from the response cache when
    the same request was answered before.

    Raises:
        GenerationStopped: An API judge stopped early (budget, credentials, breaker); the
            verdicts answered so far are cached.
    """
    spec = catalog.model(judge)
    sampling = spec.sampling.merged(
        {"temperature": 0.0, "max_tokens": max_tokens, "seed": spec.sampling.seed + seed_offset}
    )
    identity = spec.identity()
    requests: list[GenerationRequest | None] = [
        None
        if c is None
        else GenerationRequest(
            request_hash=request_hash(identity, sampling, c[1], choices),
            sample_id=c[0],
            messages=c[1],
            sampling=sampling,
            choices=choices,
            extras={"role": "judge"},
        )
        for c in conversations
    ]
    to_send = [r for r in requests if r is not None]
    if not to_send:
        return [None] * len(requests)
    own = provider is None
    provider = provider or create_provider(spec)
    try:
        result = run_requests(
            provider,
            spec,
            to_send,
            ResponseCache(store.cache_dir),
            use_cache=use_cache,
            controls=controls,
        )
    finally:
        if own:
            provider.close()
    if result.stopped:
        raise GenerationStopped(f"judge {judge}: {result.stopped}")
    replies = iter(zip(result.responses, result.cached, strict=True))
    out: list[Answered | None] = []
    for r in requests:
        if r is None:
            out.append(None)
        else:
            response, cached = next(replies)
            out.append((r, response, cached))
    return out


def run_judge(
    catalog: Catalog,
    store: Store,
    judge: str,
    prompt: PromptTemplate,
    items: Sequence[JudgeItem],
    *,
    max_tokens: int,
    provider: Provider | None = None,
    controls: RunControls | None = None,
    seed_offset: int = 0,
    use_cache: bool = True,
) -> list[JudgeCall]:
    """Ask ``judge`` for a verdict on every item that has an answer; parse each strictly.

    ``controls`` bound API judges like generation (the run's budget, timeouts);
    ``seed_offset`` and ``use_cache`` as :func:`ask_judge` takes them.

    Raises:
        GenerationStopped: An API judge stopped early (budget, credentials, breaker); the
            verdicts answered so far are cached.
    """
    spec = catalog.model(judge)
    choices = verdict_choices(spec.provider)
    conversations: list[tuple[str, tuple[Message, ...]] | None] = [
        None
        if item.answer is None
        else (
            item.sample_id,
            prompt.render(
                {"question": item.question, "answer": item.answer, "reference": item.reference}
            ),
        )
        for item in items
    ]
    answered = ask_judge(
        catalog,
        store,
        judge,
        conversations,
        choices,
        max_tokens=max_tokens,
        provider=provider,
        controls=controls,
        seed_offset=seed_offset,
        use_cache=use_cache,
    )
    requests = [a[0] if a is not None else None for a in answered]
    responses = {i: (a[1], a[2]) for i, a in enumerate(answered) if a is not None}
    calls = []
    for i, (item, request) in enumerate(zip(items, requests, strict=True)):
        if request is None:
            calls.append(
                JudgeCall(
                    item,
                    None,
                    None,
                    False,
                    Verdict(NO_RESPONSE, None, problem="no answer to judge"),
                )
            )
            continue
        response, cached = responses[i]
        verdict = parse_verdict(response.completion if response.ok else None)
        if not response.ok:
            verdict = Verdict(NO_RESPONSE, None, problem=f"judge call failed: {response.error}")
        calls.append(JudgeCall(item, request, response, cached, verdict))
    return calls


def items_from_frame(frame: pl.DataFrame, question_field: str) -> list[JudgeItem]:
    """Judge items from a score-stage frame (``sample_id``, ``completion``, ``target``, ``fields``)."""
    items = []
    for row in frame.iter_rows(named=True):
        fields = json.loads(row["fields"]) if row["fields"] else {}
        items.append(
            JudgeItem(
                sample_id=row["sample_id"],
                question=str(fields.get(question_field, "")),
                answer=row["completion"],
                reference=row["target"] or "",
            )
        )
    return items
