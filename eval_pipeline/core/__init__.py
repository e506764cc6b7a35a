"""Value types, table schemas, partition keys and hashing shared by every layer."""

from eval_pipeline.core.errors import CatalogError, EvalPipelineError
from eval_pipeline.core.hashing import code_version, content_hash, stable_json
from eval_pipeline.core.keys import PartitionKey, validate_slug
from eval_pipeline.core.types import (
    GenerationRequest,
    GenerationResponse,
    Message,
    SamplingParams,
)

__all__ = [
    "CatalogError",
    "EvalPipelineError",
    "GenerationRequest",
    "GenerationResponse",
    "Message",
    "PartitionKey",
    "SamplingParams",
    "code_version",
    "content_hash",
    "stable_json",
    "validate_slug",
]
