"""Plain value types passed between the engine, the providers and the stages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """How a model samples; every field is part of the request hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    seed: int = 0
    stop: tuple[str, ...] = ()
    n: int = Field(1, ge=1, le=100)

    def merged(self, overrides: dict[str, Any] | None) -> SamplingParams:
        """Return a copy with ``overrides`` applied (dataset settings over model defaults)."""
        if not overrides:
            return self
        return SamplingParams.model_validate({**self.model_dump(), **overrides})


PromptFormat = Literal["chat", "completion"]

# How a model answers a dataset (one model x dataset cell): ``loglikelihood`` scores each
# choice of a multiple-choice question; ``generate`` writes an answer (a generative
# dataset, or a multiple-choice question asked for a letter); ``not_applicable`` does not
# run (a log-likelihood dataset for a model that cannot score choices, where the dataset
# says so). Recorded on every generations, scores, aggregates and leaderboard row.
AnswerMode = Literal["loglikelihood", "generate", "not_applicable"]


@dataclass(frozen=True)
class Missing:
    """A requirement this machine does not meet, as the preflight reports it.

    Attributes:
        what: What is missing, in one clause (``the torch package is not installed``).
        fix: The command or setting that fixes it (``pip install torch``).
    """

    what: str
    fix: str


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationRequest:
    """One request to a model, identified by its content hash."""

    request_hash: str
    sample_id: str
    messages: tuple[Message, ...]
    sampling: SamplingParams
    # Choice decoding: when set, the completion is exactly one of these strings, the one
    # the model finds most likely (providers that support it: see providers.registry).
    choices: tuple[str, ...] = ()
    # ``chat``: ``messages`` go through the model's chat template. ``completion``: one user
    # message whose content is the exact context text, sent without any template (base
    # models; log-likelihoods as lm-evaluation-harness computes them).
    prompt_format: PromptFormat = "chat"
    # lm-evaluation-harness request types beyond choice decoding: ``loglikelihood`` scores
    # each choice and must say whether it is the greedy continuation
    # (``ContinuationScore.greedy``); ``loglikelihood_rolling`` scores the one choice, a whole
    # text with no context, over rolling windows of the model's context length. Empty:
    # choice decoding when ``choices`` is set, generation otherwise.
    request_type: str = ""
    # Free-form extras for providers that need them (the fake provider reads the reference).
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ContinuationScore:
    """How likely a model finds one continuation after its context.

    Attributes:
        continuation: The continuation's text, as the request listed it.
        logprob: The sum of the natural-log probabilities of the continuation's tokens,
            each conditioned on the context and the continuation's tokens before it.
        tokens: How many tokens were summed (the continuation's tokens, at least 1).
        greedy: Whether every one of those tokens is the model's most likely next token
            (lm-eval's ``is_greedy``); None where the provider cannot tell.
    """

    continuation: str
    logprob: float
    tokens: int
    greedy: bool | None = None


@dataclass(frozen=True)
class ChoiceScores:
    """The answer to one choice-scoring request: a score per choice, in request order.

    Attributes:
        scores: One :class:`ContinuationScore` per ``request.choices``, in that order.
        context_tokens: How many tokens the context was (the request's input tokens).
    """

    scores: tuple[ContinuationScore, ...]
    context_tokens: int = 0

    def best(self) -> int:
        """The index of the most likely continuation; the first of equals."""
        return max(range(len(self.scores)), key=lambda i: (self.scores[i].logprob, -i))

    def normalized(self, length: Callable[[str], float]) -> ChoiceScores:
        """Each log-likelihood divided by its continuation's length (at least 1).

        ``length`` measures a continuation's text (characters, bytes, words), as lm-eval's
        ``acc_norm`` / ``acc_bytes`` do.
        """
        return replace(
            self,
            scores=tuple(
                replace(s, logprob=s.logprob / max(length(s.continuation), 1.0))
                for s in self.scores
            ),
        )

    def logprobs(self) -> dict[str, float]:
        """Each continuation's log-likelihood, by its text."""
        return {s.continuation: s.logprob for s in self.scores}

    def token_counts(self) -> dict[str, int]:
        """Each continuation's token count, by its text."""
        return {s.continuation: s.tokens for s in self.scores}

    def greedy(self) -> list[bool] | None:
        """Each continuation's greedy flag in order; None unless every one is known."""
        flags = [s.greedy for s in self.scores]
        return None if any(f is None for f in flags) else [bool(f) for f in flags]

    @classmethod
    def from_columns(
        cls,
        logprobs: Sequence[float],
        tokens: Sequence[int] | None = None,
        greedy: Sequence[bool] | None = None,
        choices: Sequence[str] | None = None,
    ) -> ChoiceScores:
        """Scores from a generations row's ``choice_*`` columns.

        ``choice_logprobs``, ``choice_tokens`` and ``choice_greedy`` (null ones unknown);
        the continuations' texts are empty unless given.
        """
        n = len(logprobs)
        choices = choices if choices is not None else [""] * n
        counts: Sequence[int] = tokens if tokens is not None else [0] * n
        flags: Sequence[bool | None] = greedy if greedy is not None else [None] * n
        return cls(
            tuple(
                ContinuationScore(c, float(lp), int(k), g)
                for c, lp, k, g in zip(choices, logprobs, counts, flags, strict=True)
            )
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form (the response cache stores it); :meth:`from_json` reads it."""
        return {
            "context_tokens": self.context_tokens,
            "scores": [[s.continuation, s.logprob, s.tokens, s.greedy] for s in self.scores],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChoiceScores:
        """Read :meth:`to_json`'s form back (``data`` is parsed JSON: any JSON value)."""
        return cls(
            tuple(
                ContinuationScore(str(c), float(lp), int(n), None if g is None else bool(g))
                for c, lp, n, g in data["scores"]
            ),
            int(data.get("context_tokens", 0)),
        )


@dataclass
class GenerationResponse:
    """What a provider returns for one request; ``error`` is set instead of raising."""

    completion: str | None
    finish_reason: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    # Provider-specific facts worth keeping (e.g. the served model name); never secrets.
    info: dict[str, Any] = field(default_factory=dict)
    # The answer to a choice-scoring request (``request.choices``): every choice's score.
    choice_scores: ChoiceScores | None = None
    # The server's rate-limit headers (``x-ratelimit-*``) of an API answer, for the
    # engine's pacing; never cached.
    limit_headers: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.completion is not None
