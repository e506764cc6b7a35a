"""Fine-tune, then evaluate: LoRA adapters trained from recipes, judged against their base.

- :func:`load_recipes` reads ``recipes.yaml`` (base model, dataset, LoRA settings);
- :func:`train_split` reads a dataset's ``train`` split and :func:`render_examples` turns
  it into (prompt, completion) token pairs with the dataset's prompt and the model's chat
  template;
- :func:`train_recipe` trains the adapter (LoRA on CPU, QLoRA on a GPU) or finds it in the
  store by its fingerprint, and returns a :class:`TrainedAdapter` with its report;
- :func:`adapter_model_spec` makes the adapter a catalog model ``<base>__<recipe>``
  (:func:`with_adapter_models` adds every recipe's current adapter to a catalog);
- :func:`compare_adapter` judges it against its base on the test split with the paired
  tests of the regression gate.

Plain Python, no Dagster; torch, transformers and peft load only when training starts.
"""

from eval_pipeline.training._adapter_vs_base import compare_adapter
from eval_pipeline.training._data import (
    TrainExample,
    check_disjoint,
    completion_text,
    render_examples,
    train_split,
)
from eval_pipeline.training._recipes import RECIPES_FILE, Recipe, load_recipes
from eval_pipeline.training._spec import ADAPTER_SEPARATOR, adapter_model_spec, adapter_slug
from eval_pipeline.training._store import (
    ADAPTERS_DIR,
    TrainedAdapter,
    TrainingReport,
    find_adapter,
    recipe_dir,
)
from eval_pipeline.training._train import (
    TRAINING_FORMAT,
    current_adapter,
    fingerprint,
    load_base,
    train_lora,
    train_on_base,
    train_recipe,
    with_adapter_models,
)

__all__ = [
    "ADAPTERS_DIR",
    "ADAPTER_SEPARATOR",
    "RECIPES_FILE",
    "TRAINING_FORMAT",
    "Recipe",
    "TrainExample",
    "TrainedAdapter",
    "TrainingReport",
    "adapter_model_spec",
    "adapter_slug",
    "check_disjoint",
    "compare_adapter",
    "completion_text",
    "current_adapter",
    "find_adapter",
    "fingerprint",
    "load_base",
    "load_recipes",
    "recipe_dir",
    "render_examples",
    "train_lora",
    "train_on_base",
    "train_recipe",
    "train_split",
    "with_adapter_models",
]
