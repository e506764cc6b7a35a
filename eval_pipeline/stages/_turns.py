"""Multi-turn samples: each later user turn is sent after the model's own earlier answers.

The prompt renders a sample's first turn (the ordinary request). Turn ``k`` then sends the
conversation so far (every earlier request's messages, the model's answer to each) plus
the ``k``-th user turn, as a request of its own with its own hash, so the response cache
works per turn. A turn that failed ends its conversation: its later turns are not sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import polars as pl

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse, Message
from eval_pipeline.engine import EngineResult, RunStats, request_hash


@dataclass(frozen=True)
class Conversation:
    """Every sample's last request and response, and its answer to each turn."""

    requests: list[GenerationRequest]
    result: EngineResult
    turn_completions: list[list[str | None]]


def user_turns(samples: pl.DataFrame, turns_field: str) -> list[list[str]]:
    """Each sample's user turns, from the ``turns_field`` list of its fields."""
    out = []
    for row_fields in samples["fields"].to_list():
        turns = json.loads(row_fields).get(turns_field) or []
        out.append([str(t) for t in turns])
    return out


def converse(
    model: ModelSpec,
    first: Sequence[GenerationRequest],
    first_result: EngineResult,
    turns: Sequence[Sequence[str]],
    send: Callable[[list[GenerationRequest]], EngineResult],
) -> Conversation:
    """Send every sample's later turns, one turn of every conversation per round.

    Args:
        model: The answering model (its identity goes into each request hash).
        first: The first turn's requests, one per sample.
        first_result: Their responses.
        turns: Each sample's user turns (the first one is already in ``first``).
        send: Answers a list of requests through the engine (cache, limits).

    Returns:
        Each sample's last request and response (what the generations row records), whether
        every turn of it came from the cache, summed statistics, and every turn's answer.
    """
    requests = list(first)
    responses = list(first_result.responses)
    cached = list(first_result.cached)
    stats = first_result.stats
    stopped = first_result.stopped
    answers: list[list[str | None]] = [
        [r.completion if r.ok else None] for r in first_result.responses
    ]
    identity = model.identity()
    rounds = max((len(t) for t in turns), default=1)
    for k in range(1, rounds):
        pending = [
            i
            for i, t in enumerate(turns)
            if len(t) > k and responses[i].ok and responses[i].completion is not None
        ]
        if not pending or stopped:
            break
        follow_ups = [_follow_up(identity, requests[i], responses[i], turns[i][k]) for i in pending]
        result = send(follow_ups)
        for i, request, response, was_cached in zip(
            pending, follow_ups, result.responses, result.cached, strict=True
        ):
            requests[i], responses[i] = request, response
            cached[i] = cached[i] and was_cached
            answers[i].append(response.completion if response.ok else None)
        stats = _add(stats, result)
        stopped = stopped or result.stopped
    return Conversation(
        requests=requests,
        result=EngineResult(responses=responses, cached=cached, stats=stats, stopped=stopped),
        turn_completions=answers,
    )


def _follow_up(
    identity: dict[str, object],
    previous: GenerationRequest,
    answer: GenerationResponse,
    user: str,
) -> GenerationRequest:
    messages = (
        *previous.messages,
        Message("assistant", answer.completion or ""),
        Message("user", user),
    )
    return GenerationRequest(
        request_hash=request_hash(
            identity, previous.sampling, messages, (), previous.prompt_format
        ),
        sample_id=previous.sample_id,
        messages=messages,
        sampling=previous.sampling,
        prompt_format=previous.prompt_format,
        extras=dict(previous.extras),
    )


def _add(stats: RunStats, result: EngineResult) -> RunStats:
    """The totals of both rounds (counts and sums add; live state is the latest round's)."""
    summed = {
        f.name: getattr(stats, f.name) + getattr(result.stats, f.name)
        for f in fields(RunStats)
        if f.name not in ("in_flight", "last_error")
    }
    return RunStats(**summed, last_error=result.stats.last_error or stats.last_error)
