"""Fine-tune, then evaluate: the json-extract LoRA recipe on SmolLM2-135M, on CPU.

Trains the shipped ``json-extract-lora`` recipe (``recipes.yaml``) from scratch in a
throwaway store, evaluates the base model and the adapter model on the first
``FINETUNE_BENCH_SAMPLES`` (default 50) test rows through the ordinary generate and
score stages, and judges the adapter against its base with the paired tests
(:func:`eval_pipeline.training.compare_adapter`). Writes ``.bench/finetune.json`` with
``base``, ``adapter``, ``delta``, ``ci_low``, ``ci_high`` (field_accuracy) and
``train_wall_s``. Opt-in (15 to 20 minutes on 2 shared cores, 7 of them training)::

    python -m eval_pipeline_tests.bench.run_all finetune
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eval_pipeline_tests.bench._common import REPO

RECIPE = "json-extract-lora"
METRIC = "field_accuracy"


def run() -> dict[str, Any]:
    from eval_pipeline.catalog import Catalog, load_catalog
    from eval_pipeline.stages import build_dataset_samples, build_prompt_versions, generate, score
    from eval_pipeline.storage import Store
    from eval_pipeline.training import (
        adapter_model_spec,
        compare_adapter,
        load_recipes,
        train_recipe,
    )

    samples = int(os.environ.get("FINETUNE_BENCH_SAMPLES", "50"))
    catalog = load_catalog(REPO, load_rows=False)
    recipe = load_recipes(REPO, catalog)[RECIPE]
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        store = Store(Path(tmp) / "store")
        start = time.perf_counter()
        adapter = train_recipe(catalog, store, recipe)
        train_step_s = time.perf_counter() - start
        spec = adapter_model_spec(catalog.model(recipe.base), adapter)
        catalog = Catalog(
            root=catalog.root,
            models={**catalog.models, spec.slug: spec},
            dataset_specs=catalog.dataset_specs,
            prompts=catalog.prompts,
        )
        build_prompt_versions(catalog, store, recipe.dataset)
        build_dataset_samples(catalog, store, recipe.dataset)
        eval_s = {}
        for model in (recipe.base, spec.slug):
            start = time.perf_counter()
            generate(catalog, store, model, recipe.dataset, sample_limit=samples)
            score(catalog, store, model, recipe.dataset)
            eval_s[model] = round(time.perf_counter() - start, 1)
        base_scores = store.read("scores", dataset=recipe.dataset, model=recipe.base)
        tuned_scores = store.read("scores", dataset=recipe.dataset, model=spec.slug)
        verdicts = {
            v.metric: v
            for v in compare_adapter(base_scores, tuned_scores, metrics=[METRIC, "exact_object"])
        }
    main = verdicts[METRIC]
    report = adapter.report
    return {
        "recipe": recipe.training_settings(),
        "samples": main.n,
        "metric": METRIC,
        "base": main.base,
        "adapter": main.adapter,
        "delta": main.delta,
        "ci_low": main.ci_low,
        "ci_high": main.ci_high,
        "p_value": main.p_value,
        "improved": main.improved,
        "exact_object": asdict(verdicts["exact_object"]) if "exact_object" in verdicts else None,
        "train_wall_s": report.wall_s,
        "train_step_wall_s": round(train_step_s, 1),
        "train_steps": report.steps,
        "train_examples_seen": report.steps * recipe.batch_size,
        "train_tokens_per_s": report.tokens_per_s,
        "peak_memory_gb": report.peak_memory_gb,
        "loss_first": report.first_loss,
        "loss_final": report.final_loss,
        "loss_curve": list(report.loss_curve),
        "adapter_content_hash": adapter.content_hash,
        "eval_wall_s": eval_s,
        # The bench answers "does the recipe help", not a speed ratio.
        "ratio": None,
    }
