"""Reads the model catalog, ``datasets/`` and ``prompts/`` into validated specs.

Adding a model, a dataset or a prompt version is a data change: edit ``models.yaml``,
add ``datasets/<name>/dataset.yaml`` with its data file, or edit ``prompts/<name>.jinja``.
"""

from eval_pipeline.catalog._catalog import (
    Catalog,
    Dataset,
    api_key_env_name,
    default_project_root,
    load_catalog,
)
from eval_pipeline.catalog._lmeval import (
    LmEvalOptions,
    LmEvalSource,
    dataset_spec_for,
    item_value,
    list_tasks,
    lm_eval_task_problem,
    metric_key,
    task_index,
)
from eval_pipeline.catalog._prompts import PromptTemplate, load_prompt
from eval_pipeline.core.specs import DatasetSpec, ModelSpec, Pricing, RateLimits, ScorerSpec

__all__ = [
    "Catalog",
    "Dataset",
    "DatasetSpec",
    "LmEvalOptions",
    "LmEvalSource",
    "ModelSpec",
    "Pricing",
    "PromptTemplate",
    "RateLimits",
    "ScorerSpec",
    "dataset_spec_for",
    "item_value",
    "list_tasks",
    "lm_eval_task_problem",
    "api_key_env_name",
    "default_project_root",
    "load_catalog",
    "load_prompt",
    "metric_key",
    "task_index",
]
