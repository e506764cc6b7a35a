"""A trained adapter as a catalog model: ``<base>__<recipe>``."""

from __future__ import annotations

from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.training._store import TrainedAdapter

# Joins the base slug and the recipe name in the adapter model's slug. Slugs allow only
# lowercase letters, digits, '.', '_' and '-' (no '+'), and a double underscore appears
# in no catalog slug, so the two parts stay readable apart.
ADAPTER_SEPARATOR = "__"


def adapter_slug(base: str, recipe: str) -> str:
    """The catalog slug of ``recipe``'s adapter on ``base``."""
    return f"{base}{ADAPTER_SEPARATOR}{recipe}"


def adapter_model_spec(base: ModelSpec, adapter: TrainedAdapter) -> ModelSpec:
    """The catalog entry of ``adapter``: ``base``'s settings with the adapter on top.

    Provider, model id, revision, sampling, pricing, limits, where it runs and provider
    options are the base's; ``adapter`` is the adapter's folder, so the request hash
    covers the adapter's files (:meth:`ModelSpec.identity` hashes them) and the
    transformers provider applies it with peft.
    """
    if base.slug != adapter.base:
        raise ValueError(
            f"adapter of recipe {adapter.recipe!r} was trained on {adapter.base!r}, not {base.slug!r}"
        )
    return ModelSpec.model_validate(
        {
            **base.model_dump(),
            "slug": adapter_slug(base.slug, adapter.recipe),
            "adapter": adapter.path,
            "description": (
                f"{base.slug} with the LoRA adapter of recipe {adapter.recipe} "
                f"({adapter.content_hash})"
            ),
        }
    )
