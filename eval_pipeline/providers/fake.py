"""A deterministic, scripted provider that records its requests (for tests and demos).

Options (``models.yaml`` ``options:``):

- ``mode``: ``reference`` (answer the dataset's reference answer), ``echo`` (repeat the
  last user message), or ``fixed`` (always ``text``). Default ``reference``.
- ``answers``: ``{sample_id: completion}`` overrides for single samples.
- ``wrong_fraction`` / ``wrong_text``: answer ``wrong_text`` instead for a fixed,
  hash-chosen fraction of samples (a planted regression).
- ``fail_samples``: sample ids whose requests come back with an error.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.providers.base import Provider

# Every request any FakeProvider served in this process, as (model slug, request hash).
CALL_LOG: list[tuple[str, str]] = []
_LOCK = threading.Lock()


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = "reference"
    text: str = "42"
    answers: dict[str, str] = {}
    wrong_fraction: float = 0.0
    wrong_text: str = "I do not know."
    fail_samples: list[str] = []
    batch_size: int = 16


class FakeProvider(Provider):
    """Deterministic answers without a model."""

    name = "fake"

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


def calls_for(slug: str) -> int:
    """How many requests the fake model ``slug`` has served in this process."""
    with _LOCK:
        return sum(1 for s, _ in CALL_LOG if s == slug)


def reset_calls() -> None:
    with _LOCK:
        CALL_LOG.clear()


__all__ = ["CALL_LOG", "FakeProvider", "calls_for", "reset_calls"]
