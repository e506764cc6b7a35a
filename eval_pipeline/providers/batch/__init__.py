"""Provider batch APIs (OpenAI Batch, Anthropic Message Batches) through the real SDKs.

A :class:`BatchApi` turns requests into a provider batch and reads its results back; it
keeps no state of its own (the engine's :mod:`eval_pipeline.engine.batch` records every
submission). An API provider offers one through
:meth:`eval_pipeline.providers.base.Provider.batch_api`.
"""

from eval_pipeline.providers.batch._base import (
    BatchApi,
    BatchLimits,
    BatchResult,
    RemoteBatch,
)

__all__ = ["BatchApi", "BatchLimits", "BatchResult", "RemoteBatch"]
