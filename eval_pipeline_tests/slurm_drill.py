"""A provider for SLURM drills, registered as ``drill`` when this module is imported.

SLURM jobs import it through ``ModelTask.imports`` (the ``slurm`` resource's
``imports``), so the node knows the provider too. It answers like the fake provider and
can be told to be slow on a job's first attempt (to be timed out, requeued and resumed),
to be slow always (to be cancelled), or to fail while loading.

Options: ``delay_s`` (seconds per request), ``slow_attempts`` (attempts that are slow;
None: all), ``fast_rows`` (rows answered at once even when slow), ``fail_load`` (raise
while loading), plus every fake provider option.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.providers import PROVIDERS, Provider
from eval_pipeline.providers.fake import FakeProvider

OWN_OPTIONS = ("delay_s", "slow_attempts", "fail_load", "fast_rows")


class DrillProvider(Provider):
    name = "drill"

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        options = dict(spec.options)
        self.delay_s = float(options.pop("delay_s", 0.0))
        self.slow_attempts = options.pop("slow_attempts", None)
        # Rows answered at once even on a slow attempt, so that some are cached however
        # early SLURM's warning signal arrives.
        self.fast_rows = int(options.pop("fast_rows", 0))
        self.served = 0
        if options.pop("fail_load", False):
            raise RuntimeError(f"drill: model {spec.slug} refuses to load")
        self.inner = FakeProvider(spec.model_copy(update={"options": options}))
        self.batch_size = 1  # one request per batch: the cache fills row by row

    def _slow(self) -> bool:
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        return self.slow_attempts is None or attempt < int(self.slow_attempts)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        self.served += len(requests)
        if self.delay_s and self._slow() and self.served > self.fast_rows:
            time.sleep(self.delay_s * len(requests))
        return self.inner.generate(requests)


PROVIDERS.setdefault("drill", f"{__name__}:DrillProvider")


def visible_gpus(_: object) -> str | None:
    """What a job sees of its GPUs (a node-side function for the GRES test)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")
