"""A deterministic, scripted provider that records its requests (for tests and demos).

Options (``models.yaml`` ``options:``):

- ``mode``: ``reference`` (answer the dataset's reference answer), ``echo`` (repeat the
  last user message), or ``fixed`` (always ``text``). Default ``reference``.
- ``answers``: ``{sample_id: completion}`` overrides for single samples.
- ``repeat_answers``: ``{sample_id: completion}`` given instead to a request whose sampling
  seed is not the model's own (a judge's repeated call, for self-consistency).
- ``wrong_fraction`` / ``wrong_text``: answer ``wrong_text`` instead for a fixed,
  hash-chosen fraction of samples (a planted regression).
- ``fail_samples``: sample ids whose requests come back with an error.
- ``choice_logprobs``: ``{sample_id: [log-likelihood per choice]}``, scripted
  log-likelihoods for choice requests, in the request's choice order.

The ``fake-choices`` provider (:class:`FakeChoicesProvider`) is the same fake with choice
decoding declared, for multiple-choice datasets scored by log-likelihood. (The plain
``fake`` declares none, so judges on it write their verdicts.) A choice request
(``request.choices``) is answered as a model with choice decoding would: the completion is the continuation of highest log-likelihood, and
``choice_scores`` holds every continuation's log-likelihood and token count (tokens: whitespace-separated words, at least 1).
Unscripted log-likelihoods are deterministic: ``-tokens * (0.5 + u)`` with ``u`` in
[0, 1) from a hash of the model, the context and the continuation; in ``reference``
mode the continuation whose text is the reference gets ``-0.1 * tokens`` instead, so it
wins.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationRequest,
    GenerationResponse,
)
from eval_pipeline.providers.base import Capabilities, Provider

# Every request any FakeProvider served in this process, as (model slug, request hash).
CALL_LOG: list[tuple[str, str]] = []
_LOCK = threading.Lock()


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = "reference"
    text: str = "42"
    answers: dict[str, str] = {}
    repeat_answers: dict[str, str] = {}
    wrong_fraction: float = 0.0
    wrong_text: str = "I do not know."
    fail_samples: list[str] = []
    choice_logprobs: dict[str, list[float]] = {}
    batch_size: int = 16


class FakeProvider(Provider):
    """Deterministic answers without a model."""

    name = "fake"
    holds_model = False

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.options = FakeOptions.model_validate(spec.options)
        self.batch_size = self.options.batch_size
        self.requests: list[GenerationRequest] = []

    def _wrong(self, sample_id: str) -> bool:
        if self.options.wrong_fraction <= 0:
            return False
        digest = hashlib.sha256(f"{self.spec.slug}:{sample_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.options.wrong_fraction

    def _answer(self, request: GenerationRequest) -> str:
        opts = self.options
        repeated = request.sampling.seed != self.spec.sampling.seed
        if repeated and request.sample_id in opts.repeat_answers:
            return opts.repeat_answers[request.sample_id]
        if request.sample_id in opts.answers:
            return opts.answers[request.sample_id]
        if self._wrong(request.sample_id):
            return opts.wrong_text
        if opts.mode == "reference":
            return str(request.extras.get("target", ""))
        if opts.mode == "echo":
            return request.messages[-1].content
        return opts.text

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        out = []
        for request in requests:
            with _LOCK:
                CALL_LOG.append((self.spec.slug, request.request_hash))
            self.requests.append(request)
            prompt_tokens = sum(len(m.content.split()) for m in request.messages)
            if request.sample_id in self.options.fail_samples:
                out.append(
                    GenerationResponse(
                        completion=None,
                        finish_reason="error",
                        input_tokens=prompt_tokens,
                        error="fake provider: scripted failure",
                    )
                )
                continue
            if request.choices:
                out.append(self._choose(request))
                continue
            text = self._answer(request)
            out.append(
                GenerationResponse(
                    completion=text,
                    finish_reason="stop",
                    input_tokens=prompt_tokens,
                    output_tokens=len(text.split()),
                )
            )
        return out

    def _choice_logprobs(self, request: GenerationRequest) -> list[float]:
        scripted = self.options.choice_logprobs.get(request.sample_id)
        if scripted is not None:
            if len(scripted) != len(request.choices):
                raise ValueError(
                    f"fake provider: {len(scripted)} scripted log-likelihoods for "
                    f"{len(request.choices)} choices of {request.sample_id!r}"
                )
            return [float(v) for v in scripted]
        context = "\x00".join(m.content for m in request.messages)
        target = str(request.extras.get("target", "")).strip()
        scores = []
        for continuation in request.choices:
            tokens = _tokens(continuation)
            if self.options.mode == "reference" and continuation.strip() == target:
                scores.append(-0.1 * tokens)
                continue
            digest = hashlib.sha256(
                f"{self.spec.slug}\x00{context}\x00{continuation}".encode()
            ).digest()
            scores.append(-tokens * (0.5 + int.from_bytes(digest[:8], "big") / 2**64))
        return scores

    def loglikelihood(self, requests: Sequence[GenerationRequest]) -> list[ChoiceScores]:
        """Scripted or hash-based scores per choice (see the module's docstring).

        Greedy: the best choice of several; a lone continuation (lm-eval's
        ``loglikelihood`` requests) when it is the reference in reference mode, else when
        it scores above -1 per token.
        """
        return [self._scores(r) for r in requests]

    def loglikelihood_rolling(
        self, requests: Sequence[GenerationRequest]
    ) -> list[ContinuationScore]:
        """A whole text scored as a lone continuation (see :meth:`loglikelihood`)."""
        return [self._scores(r).scores[0] for r in requests]

    def _scores(self, request: GenerationRequest) -> ChoiceScores:
        scores = self._choice_logprobs(request)
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # first of equals
        if len(scores) > 1:
            greedy = [i == best for i in range(len(scores))]
        else:
            target = str(request.extras.get("target", "")).strip()
            lone = request.choices[0]
            greedy = [
                (self.options.mode == "reference" and lone.strip() == target)
                or scores[0] > -_tokens(lone)
            ]
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        return ChoiceScores(
            tuple(
                ContinuationScore(c, lp, _tokens(c), g)
                for c, lp, g in zip(request.choices, scores, greedy, strict=True)
            ),
            prompt_tokens,
        )

    def _choose(self, request: GenerationRequest) -> GenerationResponse:
        scores = self._scores(request)
        return GenerationResponse(
            completion=request.choices[scores.best()],
            finish_reason="stop",
            input_tokens=scores.context_tokens,
            output_tokens=0,
            choice_scores=scores,
        )


class FakeChoicesProvider(FakeProvider):
    """The fake with choice decoding: scripted or hash-based log-likelihoods per choice."""

    name = "fake-choices"
    capabilities = Capabilities(choices=True)


def _tokens(text: str) -> int:
    return max(len(text.split()), 1)


def calls_for(slug: str) -> int:
    """How many requests the fake model ``slug`` has served in this process."""
    with _LOCK:
        return sum(1 for s, _ in CALL_LOG if s == slug)


def reset_calls() -> None:
    with _LOCK:
        CALL_LOG.clear()


__all__ = ["CALL_LOG", "FakeChoicesProvider", "FakeProvider", "calls_for", "reset_calls"]
