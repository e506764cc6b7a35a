"""The provider protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from eval_pipeline.core.types import GenerationRequest, GenerationResponse


@runtime_checkable
class Provider(Protocol):
    """Turns a batch of requests into one response per request, in order.

    A provider reports a failed request through ``GenerationResponse.error`` rather than
    raising, so one bad request never loses the rest of the batch. ``batch_size`` says how
    many requests the engine should hand over at once (local models batch on the device).
    """

    name: str
    batch_size: int

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]: ...

    def close(self) -> None: ...
