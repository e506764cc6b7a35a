"""The generation engine: cache lookups, batching and progress above the providers.

Every request has a content hash over the model identity (provider, model id, revision,
adapter), the sampling parameters (seed included) and the rendered messages. A response
cached under that hash is reused instead of calling the model again.
"""

from eval_pipeline.engine.api import GenerationStopped, RunControls
from eval_pipeline.engine.cache import ResponseCache, request_hash
from eval_pipeline.engine.run import EngineResult, Progress, RunStats, run_requests

__all__ = [
    "EngineResult",
    "GenerationStopped",
    "Progress",
    "ResponseCache",
    "RunControls",
    "RunStats",
    "request_hash",
    "run_requests",
]
