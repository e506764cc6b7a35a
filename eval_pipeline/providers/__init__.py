"""Model providers: one base class, a name -> class map, and a fake for tests.

Providers stay thin: they turn requests into responses. Caching, retries, rate limits
and progress live in ``eval_pipeline.engine`` above them. Heavy SDKs are imported when a
provider is built, so importing this package is cheap.
"""

from eval_pipeline.core.types import ChoiceScores, ContinuationScore
from eval_pipeline.providers._answers import checked_response
from eval_pipeline.providers._api import ApiOptions, ApiProviderBase
from eval_pipeline.providers.base import (
    Capabilities,
    FailureKind,
    Provider,
    RequestFailure,
    UnsupportedRequest,
)
from eval_pipeline.providers.registry import PROVIDERS, create_provider, provider_class

__all__ = [
    "PROVIDERS",
    "ApiOptions",
    "ApiProviderBase",
    "Capabilities",
    "ChoiceScores",
    "ContinuationScore",
    "FailureKind",
    "Provider",
    "RequestFailure",
    "UnsupportedRequest",
    "create_provider",
    "provider_class",
    "checked_response",
]
