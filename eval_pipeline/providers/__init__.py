"""Model providers: a small protocol, a name -> factory map, and a fake for tests.

Providers stay thin: they turn requests into responses. Caching, retries, rate limits
and progress live in ``eval_pipeline.engine`` above them. Heavy SDKs are imported inside
the factories, so importing this package is cheap.
"""

from eval_pipeline.providers.base import Provider
from eval_pipeline.providers.registry import PROVIDERS, create_provider

__all__ = ["PROVIDERS", "Provider", "create_provider"]
