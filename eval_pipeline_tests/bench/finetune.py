"""Fine-tune, then evaluate: the json-extract LoRA recipe on SmolLM2-135M, on CPU.

The whole loop through Dagster, in a throwaway store and instance: ``training_job``
trains the shipped ``json-extract-lora`` recipe (``recipes.yaml``) from scratch;
``evaluation_job`` evaluates the base model's and then the adapter model's
``json-extract`` partition on the first ``FINETUNE_BENCH_SAMPLES`` (default 50) test rows;
the adapter run's ``adapter_vs_base`` check judges the adapter against its base with the
paired tests. Writes ``.bench/finetune.json`` with ``base``, ``adapter``, ``delta``,
``ci_low``, ``ci_high`` (field_accuracy, from the check's metadata) and ``train_wall_s``.
15 to 20 minutes on 2 shared cores, 7 of them training.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from eval_pipeline_tests.bench._common import REPO

RECIPE = "json-extract-lora"
METRIC = "field_accuracy"


def run() -> dict[str, Any]:
    import dagster as dg

    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.defs import build_definitions
    from eval_pipeline.storage import Store
    from eval_pipeline.training import adapter_slug, current_adapter, load_recipes

    samples = int(os.environ.get("FINETUNE_BENCH_SAMPLES", "50"))
    catalog = load_catalog(REPO, load_rows=False)
    recipe = load_recipes(REPO, catalog)[RECIPE]
    model = adapter_slug(recipe.base, recipe.name)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        store = Store(Path(tmp) / "store")
        defs = build_definitions(str(REPO), str(store.root))
        instance = dg.DagsterInstance.ephemeral()
        start = time.perf_counter()
        trained = defs.resolve_job_def("training_job").execute_in_process(
            partition_key=model, instance=instance
        )
        train_step_s = time.perf_counter() - start
        if not trained.success:
            raise RuntimeError("training_job failed")
        adapter = current_adapter(catalog, store, recipe)
        assert adapter is not None
        config = {"ops": {"generations": {"config": {"sample_limit": samples}}}}
        eval_s: dict[str, float] = {}
        for slug in (recipe.base, model):
            start = time.perf_counter()
            result = defs.resolve_job_def("evaluation_job").execute_in_process(
                partition_key=f"{recipe.dataset}|{slug}", instance=instance, run_config=config
            )
            eval_s[slug] = round(time.perf_counter() - start, 1)
            if not result.success:
                raise RuntimeError(f"evaluation_job failed for {slug}")
        [check] = [
            e.event_specific_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.event_specific_data.check_name == "adapter_vs_base"
        ]
    found = {k: v.value for k, v in check.metadata.items()}

    def verdict(metric: str) -> dict[str, Any]:
        names = ("base", "adapter", "delta", "ci_low", "ci_high", "p_value")
        return {name: found[f"{metric}/{name}"] for name in names}

    report = adapter.report
    return {
        "recipe": recipe.training_settings(),
        "samples": samples,
        "metric": METRIC,
        **verdict(METRIC),
        "improved": METRIC in found["improved_metrics"].split(","),
        "check_passed": check.passed,
        "check_description": check.description,
        "exact_object": verdict("exact_object"),
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
