"""Pydantic specs for catalog entries (models and datasets); the catalog package loads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import directory_hash
from eval_pipeline.core.keys import validate_slug
from eval_pipeline.core.types import SamplingParams

# Provider options that change what a local model answers (the weights it loads and the
# numerics it runs with); they are part of every request hash.
LOAD_OPTIONS = (
    "path",
    "gguf_package",
    "gguf_file",
    "dtype",
    "load_in_4bit",
    "load_in_8bit",
    "quantization",
    "kv_cache_dtype",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pricing(_Strict):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class RateLimits(_Strict):
    """Client-side limits for API providers (ignored by local providers)."""

    concurrency: int = Field(8, ge=1, le=4096)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)


class ModelSpec(_Strict):
    """One model in ``models.yaml``.

    ``options`` holds provider-specific settings (a GGUF file, a base URL, the name of
    the environment variable with the API key, a batch size); each provider validates
    its own.
    """

    slug: str
    provider: str
    model_id: str
    revision: str | None = None
    adapter: str | None = None
    description: str = ""
    sampling: SamplingParams = SamplingParams()
    pricing: Pricing = Pricing()
    limits: RateLimits = RateLimits()
    runs_on: Literal["inline", "slurm"] = "inline"
    slurm_profile: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        problem = validate_slug(value)
        if problem:
            raise ValueError(problem)
        return value

    def identity(self) -> dict[str, Any]:
        """What identifies the model's behaviour in a request hash.

        Provider, model id and revision; the adapter by the content of its files (a local
        adapter folder edited in place gets new requests), and every load option that
        changes answers (:data:`LOAD_OPTIONS`: which weights file, the dtype, quantization).
        Options that only change speed (batch size, threads, device placement) stay out,
        so tuning them reuses the cache.
        """
        identity: dict[str, Any] = {
            "provider": self.provider,
            "model_id": self.model_id,
            "revision": self.revision,
            "adapter": self.adapter,
        }
        if self.adapter:
            digest = directory_hash(self.adapter)
            if digest is not None:
                identity["adapter_sha256"] = digest
        load = {k: self.options[k] for k in LOAD_OPTIONS if self.options.get(k) is not None}
        if load:
            identity["load"] = load
        return identity


class ScorerSpec(_Strict):
    """A scorer named in a dataset spec, with its parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    metric: str | None = None  # column name in scores; defaults to the scorer name

    @property
    def metric_name(self) -> str:
        return self.metric or self.name


class DatasetSpec(_Strict):
    """``datasets/<name>/dataset.yaml``."""

    name: str
    description: str = ""
    source: str
    license: str
    loader: Literal["jsonl", "human_eval"] = "jsonl"
    data: str | None = None
    # The train split's data file beside ``data`` (same fields), read only by fine-tuning
    # recipes (see eval_pipeline.training); evaluation never reads it.
    train: str | None = None
    id_field: str = "id"
    target_field: str
    fields: list[str]
    tags_field: str | None = None
    prompt: str
    scorers: list[ScorerSpec] = Field(min_length=1)
    primary_metric: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    # Completions per problem for pass@k; sample ids of the extra samples read
    # ``<problem id>#<index>`` (see eval_pipeline.scoring.stats.problem_id).
    samples_per_problem: int = Field(1, ge=1, le=1000)

    @field_validator("name", "prompt")
    @classmethod
    def _slug(cls, value: str) -> str:
        # A prompt name is a file name under prompts/: a slug cannot leave that folder.
        problem = validate_slug(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def primary(self) -> str:
        return self.primary_metric or self.scorers[0].metric_name


def validation_error_to_catalog_error(
    file: Path | str, exc: ValidationError, prefix: str = ""
) -> CatalogError:
    """Turn pydantic's first error into a CatalogError naming file, field and problem."""
    err = exc.errors()[0]
    loc = ".".join(
        f"[{part}]" if isinstance(part, int) else str(part) for part in err.get("loc", ())
    ).replace(".[", "[")
    field = f"{prefix}{loc}" if prefix and loc else (prefix.rstrip(".") or loc)
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    return CatalogError(str(file), field, msg.removeprefix("Value error, "))
