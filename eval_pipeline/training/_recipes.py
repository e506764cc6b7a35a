"""Fine-tuning recipes: ``recipes.yaml`` at the project root, validated at load.

A recipe names a base model of the catalog, a dataset with a ``train`` split, and the
LoRA settings to train with. Every problem is a :class:`CatalogError` naming the file,
the field (``recipes[<i>].<field>``) and what is wrong, before any model loads.
"""

from __future__ import annotations

import os
from pathlib import Path

# Any: what a YAML file holds; training settings as JSON.
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.keys import require_slug
from eval_pipeline.core.specs import validation_error_to_catalog_error

RECIPES_FILE = "recipes.yaml"
# The providers whose models the trainer can load (it reuses the provider's loader).
TRAINABLE_PROVIDERS = ("transformers",)
# Module names LoRA can target in the decoder architectures transformers ships (Llama,
# Mistral, Qwen, Gemma, Phi, GPT-2, GPT-NeoX, Falcon, MPT, OPT); ``all-linear`` is
# peft's own shorthand. A name outside this list is a typo far more often than a new
# architecture; the trainer checks the names against the loaded model again.
KNOWN_TARGET_MODULES = frozenset(
    {
        "all-linear",
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "qkv_proj",
        "gate_up_proj",
        "out_proj",
        "fc1",
        "fc2",
        "c_attn",
        "c_proj",
        "c_fc",
        "query_key_value",
        "dense",
        "dense_h_to_4h",
        "dense_4h_to_h",
        "Wqkv",
        "w1",
        "w2",
        "w3",
        "lm_head",
        "embed_tokens",
    }
)


class Recipe(BaseModel):
    """One fine-tuning recipe: what to train, on what, and how.

    Everything but ``name`` and ``description`` is part of the adapter's fingerprint: an
    edit trains a new adapter, an unchanged recipe reuses the stored one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    base: str
    """A catalog model slug (a ``transformers`` model): the model the adapter sits on."""
    dataset: str
    """A dataset with a ``train`` split; its own prompt renders the training examples."""
    rank: int = Field(8, ge=1, le=1024)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(("q_proj", "v_proj"), min_length=1)
    layers: tuple[int, ...] | None = None
    """Only these decoder layers get LoRA weights (default: every layer). Training the top
    layers only also spares the backward pass through the layers below them."""
    learning_rate: float = Field(2e-4, gt=0, le=1)
    warmup_steps: int = Field(0, ge=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps; when set, it wins over ``epochs``."""
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(512, ge=8)
    """Tokens per example (prompt + completion); longer prompts lose their start."""
    train_limit: int | None = Field(None, ge=1)
    """Train on the first rows of the split only."""
    seed: int = 0
    quantize: Literal["auto", "none", "4bit"] = "auto"
    """``auto``: QLoRA (bitsandbytes 4-bit NF4, double quantization, paged 8-bit AdamW)
    when a GPU is visible, plain LoRA in the base model's dtype otherwise."""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return require_slug(value)

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in KNOWN_TARGET_MODULES:
                raise ValueError(
                    f"unknown target module {name!r} (known: {', '.join(sorted(KNOWN_TARGET_MODULES))})"
                )
        return value

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 0):
            raise ValueError("layers must be a non-empty list of layer indexes >= 0")
        return value

    def training_settings(self) -> dict[str, Any]:
        """The fields that change the trained weights (the fingerprint's part of the recipe)."""
        return self.model_dump(exclude={"name", "description"}, mode="json")


def load_recipes(root: str | os.PathLike[str], catalog: Catalog) -> dict[str, Recipe]:
    """Read and validate ``<root>/recipes.yaml`` against ``catalog``.

    No file means no recipes. Checks each recipe's fields, that ``base`` is a catalog
    model the trainer can load, and that ``dataset`` exists and declares a ``train``
    split whose file exists.

    Raises:
        CatalogError: naming ``recipes.yaml``, the field and the problem.
    """
    path = Path(root).resolve() / RECIPES_FILE
    if not path.exists():
        return {}
    shown = RECIPES_FILE
    data = _read_yaml(path, shown)
    if not isinstance(data, dict) or not isinstance(data.get("recipes"), list):
        raise CatalogError(shown, "recipes", "must be a list of recipe entries")
    recipes: dict[str, Recipe] = {}
    for i, entry in enumerate(data["recipes"]):
        where = f"recipes[{i}]"
        try:
            recipe = Recipe.model_validate(entry)
        except ValidationError as exc:
            raise validation_error_to_catalog_error(shown, exc, prefix=f"{where}.") from exc
        if recipe.name in recipes:
            raise CatalogError(shown, f"{where}.name", f"duplicate recipe '{recipe.name}'")
        check_recipe(recipe, catalog, shown, where)
        recipes[recipe.name] = recipe
    return recipes


def _read_yaml(path: Path, shown: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(shown, "", f"not UTF-8 text ({exc.reason})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise CatalogError(shown, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc


def check_recipe(recipe: Recipe, catalog: Catalog, shown: str, where: str) -> None:
    """Check ``recipe``'s base model and dataset against the catalog (file ``shown``)."""
    if recipe.base not in catalog.models:
        raise CatalogError(
            shown,
            f"{where}.base",
            f"unknown model '{recipe.base}' (known: {', '.join(catalog.model_slugs)})",
        )
    provider = catalog.models[recipe.base].provider
    if provider not in TRAINABLE_PROVIDERS:
        raise CatalogError(
            shown,
            f"{where}.base",
            f"model '{recipe.base}' runs on provider '{provider}'; only "
            f"{', '.join(TRAINABLE_PROVIDERS)} models can be fine-tuned here",
        )
    if recipe.dataset not in catalog.dataset_specs:
        raise CatalogError(
            shown,
            f"{where}.dataset",
            f"unknown dataset '{recipe.dataset}' (known: {', '.join(catalog.dataset_names)})",
        )
    spec = catalog.dataset_specs[recipe.dataset]
    spec_file = f"datasets/{spec.name}/dataset.yaml"
    if not spec.train:
        raise CatalogError(
            shown,
            f"{where}.dataset",
            f"dataset '{spec.name}' has no train split (declare `train: <file>` in {spec_file})",
        )
    train_path = catalog.root / "datasets" / spec.name / spec.train
    if not train_path.is_file():
        raise CatalogError(spec_file, "train", f"datasets/{spec.name}/{spec.train} does not exist")
