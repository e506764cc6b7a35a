"""Plain value types passed between the engine, the providers and the stages."""

from __future__ import annotations

from dataclasses import dataclass, field

# Any: provider-specific extras and info (any JSON value).
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
    # (``info["choice_greedy"]``); ``loglikelihood_rolling`` scores the one choice, a whole
    # text with no context, over rolling windows of the model's context length. Empty:
    # choice decoding when ``choices`` is set, generation otherwise.
    request_type: str = ""
    # Free-form extras for providers that need them (the fake provider reads the reference).
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


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

    @property
    def ok(self) -> bool:
        return self.error is None and self.completion is not None
