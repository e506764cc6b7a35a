"""Train a LoRA adapter for a recipe, or find the one already trained.

:func:`train_recipe` is what the ``train`` work item, ``eval-pipeline train`` and the
Dagster side call: it fingerprints the recipe with its base model's identity and its
train data's version, returns the stored adapter when that fingerprint has one, and
otherwise trains (:func:`train_lora`) and stores the result.

The base model loads through the ``transformers`` provider's own loader (the same
weights, dtype and tokenizer evaluation uses) and is copied before LoRA layers go in,
because the loader keeps its models for the process and evaluation may still need the
base. On a GPU the recipe's ``quantize: auto`` trains QLoRA: the base in bitsandbytes
4-bit NF4 with double quantization, paged 8-bit AdamW, gradient checkpointing.
"""

from __future__ import annotations

import copy
import math
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Any: torch and transformers objects, imported on use.
from typing import Any

from eval_pipeline.catalog import Catalog, Dataset, ModelSpec
from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.storage import Store
from eval_pipeline.training._data import TrainExample, render_examples, train_split
from eval_pipeline.training._recipes import Recipe
from eval_pipeline.training._spec import adapter_model_spec
from eval_pipeline.training._store import (
    TrainedAdapter,
    TrainingReport,
    find_adapter,
    recipe_dir,
    store_adapter,
)

# Bumped when the training procedure changes what the same recipe trains.
TRAINING_FORMAT = 1
# Files peft writes next to the weights that are not the adapter (a generated model card).
_NOT_ADAPTER_FILES = ("README.md",)

Trainer = Callable[[Recipe, ModelSpec, Dataset, Path], TrainingReport]
"""Trains ``recipe`` on ``base`` with the train split and writes the adapter files to the folder."""
StepCallback = Callable[[int, int, float], None]


def fingerprint(catalog: Catalog, recipe: Recipe) -> tuple[str, str, str]:
    """``(fingerprint, train data version, prompt version)`` of ``recipe``.

    The fingerprint covers the recipe's training settings, the base model's identity
    (provider, model id, revision, adapter content, load options) and the train split's
    content and prompt: any change to them trains a new adapter. It needs no model load.
    """
    base = catalog.model(recipe.base)
    train = train_split(catalog, recipe.dataset)
    payload = {
        "format": TRAINING_FORMAT,
        "recipe": recipe.training_settings(),
        "base": base.identity(),
        "train": train.version,
        "prompt": train.prompt.version,
    }
    return content_hash(payload, 16), train.version, train.prompt.version


def current_adapter(catalog: Catalog, store: Store, recipe: Recipe) -> TrainedAdapter | None:
    """The stored adapter of ``recipe`` as it stands now, or None when it needs training."""
    key, _, _ = fingerprint(catalog, recipe)
    return find_adapter(store.root, recipe.name, key)


def with_adapter_models(catalog: Catalog, store: Store, recipes: dict[str, Recipe]) -> Catalog:
    """``catalog`` plus a model ``<base>__<recipe>`` for each recipe with a current adapter.

    Recipes whose adapter is not trained yet (or not for the recipe as it stands) add
    nothing. The catalog's own models and datasets are shared, not copied.
    """
    models = dict(catalog.models)
    for recipe in recipes.values():
        adapter = current_adapter(catalog, store, recipe)
        if adapter is not None:
            spec = adapter_model_spec(catalog.model(recipe.base), adapter)
            models[spec.slug] = spec
    return Catalog(
        root=catalog.root,
        models=models,
        dataset_specs=catalog.dataset_specs,
        prompts=catalog.prompts,
    )


def train_recipe(
    catalog: Catalog,
    store: Store,
    recipe: Recipe,
    *,
    force: bool = False,
    trainer: Trainer | None = None,
    on_step: StepCallback | None = None,
) -> TrainedAdapter:
    """The adapter of ``recipe``: found in the store, or trained and stored now.

    Args:
        catalog: The catalog with the recipe's base model and dataset.
        store: The store the adapter lives in (``<store>/adapters/recipe=<name>/``).
        recipe: The recipe (see :func:`~eval_pipeline.training.load_recipes`).
        force: Train even when the fingerprint has an adapter.
        trainer: What trains (default: :func:`train_lora` on the base model loaded by
            :func:`load_base`); tests pass a fake to see which calls train.
        on_step: Called after each optimizer step of the default trainer with
            ``(step, steps, loss)`` (the CLI prints it).

    Returns:
        The adapter; ``reused`` says whether it was found rather than trained.
    """
    key, train_version, prompt_version = fingerprint(catalog, recipe)
    if not force:
        found = find_adapter(store.root, recipe.name, key)
        if found is not None:
            return found
    base = catalog.model(recipe.base)
    dataset = train_split(catalog, recipe.dataset)
    staging_root = recipe_dir(store.root, recipe.name)
    staging_root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=staging_root))
    try:
        if trainer is None:
            report = train_on_base(recipe, base, dataset, staged, on_step=on_step)
        else:
            report = trainer(recipe, base, dataset, staged)
        for name in _NOT_ADAPTER_FILES:
            (staged / name).unlink(missing_ok=True)
        made = TrainedAdapter(
            recipe=recipe.name,
            base=recipe.base,
            path="",
            content_hash="",
            fingerprint=key,
            train_version=train_version,
            prompt_version=prompt_version,
            report=report,
            settings=recipe.training_settings(),
        )
        return store_adapter(store.root, staged, made)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def train_on_base(
    recipe: Recipe,
    base: ModelSpec,
    dataset: Dataset,
    out: Path,
    *,
    on_step: StepCallback | None = None,
) -> TrainingReport:
    """Load ``base`` (:func:`load_base`), render ``dataset``'s examples and :func:`train_lora`."""
    model, tokenizer, device, quantization = load_base(recipe, base)
    examples, cut = render_examples(
        dataset, tokenizer, max_length=recipe.max_length, limit=recipe.train_limit
    )
    if not examples:
        raise EvalPipelineError(f"recipe {recipe.name!r}: the train split has no rows")
    return train_lora(
        recipe,
        model,
        examples,
        out,
        device=device,
        quantization=quantization,
        pad_token_id=tokenizer.pad_token_id,
        examples_cut=cut,
        model_id=base.model_id,
        on_step=on_step,
    )


def resolve_quantization(recipe: Recipe) -> str:
    """``4bit`` (QLoRA) or ``none`` for ``recipe`` on this machine."""
    import torch

    if recipe.quantize == "auto":
        return "4bit" if torch.cuda.is_available() else "none"
    if recipe.quantize == "4bit" and not torch.cuda.is_available():
        raise EvalPipelineError(
            f"recipe {recipe.name!r}: quantize: 4bit needs a GPU (bitsandbytes 4-bit is "
            "CUDA-only); use quantize: auto or none on a CPU"
        )
    return recipe.quantize


def load_base(recipe: Recipe, base: ModelSpec) -> tuple[Any, Any, str, str]:
    """The base model (a private copy, ready for LoRA), its tokenizer, device and quantization.

    Loads through :func:`eval_pipeline.providers.transformers.load_model`: a process that
    already evaluated the base (the ``train`` work item runs after the provider loaded it)
    reuses that load.
    """
    from eval_pipeline.providers.transformers import load_model

    quantization = resolve_quantization(recipe)
    spec = base
    if quantization == "4bit":
        spec = base.model_copy(
            update={"options": {**base.options, "load_in_4bit": True, "device": "cuda"}}
        )
    loaded = load_model(spec)
    # The loader keeps the model for the process: LoRA layers go into a copy.
    model = copy.deepcopy(loaded.model)
    return model, loaded.tokenizer, loaded.device, quantization


def train_lora(
    recipe: Recipe,
    model: Any,
    examples: Sequence[TrainExample],
    out: Path,
    *,
    device: str,
    quantization: str = "none",
    pad_token_id: int = 0,
    examples_cut: int = 0,
    model_id: str | None = None,
    on_step: StepCallback | None = None,
) -> TrainingReport:
    """Train LoRA weights on ``model`` (modified in place) and save the adapter to ``out``.

    A plain torch loop: each step takes ``batch_size`` examples in a seeded order,
    left-pads them (so every completion ends at the last position and only the last
    positions' logits are computed), and minimizes the mean cross-entropy of the
    completion tokens. Constant learning rate after ``warmup_steps``; gradients clipped
    at norm 1.
    """
    import torch

    torch.manual_seed(recipe.seed)
    peft_model = _lora_model(recipe, model, quantization)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer, optimizer_name = _optimizer(params, recipe.learning_rate, quantization)

    steps = recipe.max_steps or max(1, math.ceil(recipe.epochs * len(examples) / recipe.batch_size))
    order = _batches(len(examples), recipe.batch_size, steps, recipe.seed)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses: list[float] = []
    tokens = completion_tokens = 0
    start = time.perf_counter()
    for step, batch_indexes in enumerate(order):
        batch = [examples[i] for i in batch_indexes]
        inputs, labels, keep = _collate(batch, pad_token_id, device)
        scale = min(1.0, (step + 1) / recipe.warmup_steps) if recipe.warmup_steps else 1.0
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate * scale
        logits = peft_model(**inputs, logits_to_keep=keep).logits
        # Logit j of the kept ones predicts label j + 1.
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]),
            labels[:, 1:].reshape(-1),
            ignore_index=-100,
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 5))
        tokens += int(inputs["attention_mask"].sum())
        completion_tokens += int((labels != -100).sum())
        if on_step is not None:
            on_step(step + 1, steps, losses[-1])
    wall = time.perf_counter() - start

    if model_id:
        # The adapter's config names the base by its catalog model id, not this machine's
        # path to the weights, so the same training gives the same files anywhere.
        peft_model.peft_config["default"].base_model_name_or_path = model_id
    # No embedding layers are trained; "auto" would look the base up on the hub to check.
    peft_model.save_pretrained(str(out), save_embedding_layers=False)
    peak = _peak_memory_gb(device)
    return TrainingReport(
        steps=steps,
        epochs=round(steps * recipe.batch_size / len(examples), 3),
        examples=len(examples),
        examples_cut=examples_cut,
        train_tokens=tokens,
        completion_tokens=completion_tokens,
        loss_curve=tuple(losses),
        wall_s=round(wall, 3),
        tokens_per_s=round(tokens / wall, 2) if wall > 0 else 0.0,
        peak_memory_gb=round(peak, 3),
        device=device,
        quantization=quantization,
        optimizer=optimizer_name,
        trainable_params=sum(p.numel() for p in params),
    )


def _lora_model(recipe: Recipe, model: Any, quantization: str) -> Any:
    """``model`` wrapped with the recipe's LoRA layers (prepared for k-bit training on 4bit)."""
    from peft import LoraConfig, get_peft_model

    if quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    config = LoraConfig(
        r=recipe.rank,
        # peft types it int; a float scales the update the same way (alpha / rank).
        lora_alpha=recipe.alpha,  # type: ignore[arg-type]
        lora_dropout=recipe.dropout,
        target_modules=list(recipe.target_modules)
        if recipe.target_modules != ("all-linear",)
        else "all-linear",
        layers_to_transform=list(recipe.layers) if recipe.layers else None,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # peft names the target modules the model does not have
        raise EvalPipelineError(f"recipe {recipe.name!r}: target_modules: {exc}") from exc


def _optimizer(params: list[Any], learning_rate: float, quantization: str) -> tuple[Any, str]:
    """The optimizer of the trainable parameters and its name (paged 8-bit AdamW on 4bit)."""
    if quantization == "4bit":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(params, lr=learning_rate), "paged_adamw_8bit"
    import torch

    return torch.optim.AdamW(params, lr=learning_rate), "adamw"


def _peak_memory_gb(device: str) -> float:
    """Peak memory of the training in GiB: the GPU's allocations on cuda, else the process's RSS."""
    if device == "cuda":
        import torch

        return float(torch.cuda.max_memory_allocated() / 2**30)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _batches(n: int, size: int, steps: int, seed: int) -> list[list[int]]:
    """``steps`` batches of ``size`` indexes: seeded shuffles of ``range(n)``, epoch after epoch."""
    rng = random.Random(seed)
    batches: list[list[int]] = []
    pool: list[int] = []
    while len(batches) < steps:
        if len(pool) < size:
            fresh = list(range(n))
            rng.shuffle(fresh)
            pool += fresh
        batches.append(pool[:size])
        pool = pool[size:]
    return batches


def _collate(batch: Sequence[TrainExample], pad: int, device: str) -> tuple[dict, Any, int]:
    """Left-padded inputs, labels (-100 outside completions) and how many logits to keep."""
    import torch

    width = max(e.length for e in batch)
    ids, mask, labels = [], [], []
    for e in batch:
        padding = width - e.length
        ids.append([pad] * padding + list(e.prompt_ids) + list(e.completion_ids))
        mask.append([0] * padding + [1] * e.length)
        labels.append([-100] * (padding + len(e.prompt_ids)) + list(e.completion_ids))
    input_ids = torch.tensor(ids, device=device)
    attention = torch.tensor(mask, device=device)
    # Positions count real tokens only, as generation numbers a left-padded prompt.
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    keep = min(width, max(len(e.completion_ids) for e in batch) + 1)
    inputs = {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions}
    return inputs, torch.tensor(labels, device=device)[:, width - keep :], keep
