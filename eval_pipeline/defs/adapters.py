"""Fine-tune, then evaluate: the ``adapters`` asset, its check against the base, a sensor.

Every recipe of ``recipes.yaml`` is one partition of ``adapters``, keyed by the model it
makes, ``<base>__<recipe>``; the same key is a model of the evaluation grid. Materializing
the partition trains the LoRA adapter (or finds it in the store when nothing changed)
through the runner of its base model, so a base with ``runs_on: slurm`` trains in a SLURM
job. Once trained, the adapter is a catalog model (``CatalogResource`` with a store) and its
grid partitions evaluate like any other; ``adapter_vs_base`` judges each against its base
model on the same dataset with the paired tests of the regression gate, and
``adapter_sensor`` (off by default) evaluates a newly trained adapter on its dataset.
"""

import json
from dataclasses import dataclass

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs.check_results import grid_check_result
from eval_pipeline.defs.datasets import DatasetTable, refresh_dataset_tables, table_asset
from eval_pipeline.defs.dispatch import Metadata, collect, report_partitions, run_tasks, runners_for
from eval_pipeline.defs.jobs import TRAINING_GROUP, TRAINING_JOB
from eval_pipeline.defs.partitions import current_partitions
from eval_pipeline.defs.schedules import REGRESSION_SUITE_JOB, automation_status, run_tags
from eval_pipeline.model_task import training_tasks
from eval_pipeline.operations import partition_fingerprints
from eval_pipeline.resources import CatalogResource, StoreResource
from eval_pipeline.resources.slurm import SlurmResource
from eval_pipeline.stages import build_train_samples
from eval_pipeline.storage import Store
from eval_pipeline.training import (
    Recipe,
    TrainedAdapter,
    adapter_slug,
    compare_adapter,
    current_adapter,
    load_recipes,
)

ADAPTERS = dg.AssetKey("adapters")
# A dataset's train split, kept like the per-dataset tables of evaluation.
TRAIN_TABLE = DatasetTable(
    "train_samples",
    build_train_samples,
    "train_version",
    "A dataset's ``train`` split, normalized like its test rows, with its version.\n\n"
    "One partition per dataset a recipe trains on (``train_samples/dataset=<d>/``). "
    "``adapters`` writes and records it too whenever its version changed, so it need not be "
    "materialized first.",
)
AGGREGATES = dg.AssetKey("aggregates")
CHECK_NAME = "adapter_vs_base"


@dataclass(frozen=True)
class AdapterDefs:
    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]
    jobs: "list[dg.UnresolvedAssetJobDefinition]"
    sensors: list[dg.SensorDefinition]


def adapter_models(recipes: dict[str, Recipe]) -> list[str]:
    """The model slug ``<base>__<recipe>`` of every recipe, sorted."""
    return sorted(adapter_slug(r.base, r.name) for r in recipes.values())


def recipes_by_model(catalog: Catalog) -> dict[str, Recipe]:
    """The project's recipes keyed by the model slug of their adapter."""
    return {adapter_slug(r.base, r.name): r for r in load_recipes(catalog.root, catalog).values()}


def generation_deps(recipes: dict[str, Recipe]) -> list[dg.AssetDep]:
    """``generations``' lineage to ``adapters``: every cell lists every adapter upstream.

    Cell ``d|<base>__<r>`` loads adapter ``<base>__<r>`` (the grid's ``model`` key is the
    adapter's partition key) and cells of other models load none, but no Dagster
    partition mapping says that: ``StaticPartitionMapping`` maps only between two static
    partitionings (``dg check defs`` rejects it towards the grid), and
    ``MultiToSingleDimensionPartitionMapping`` needs the adapters' partitions to be the
    whole ``model`` dimension. So the dependency is on all the adapters' partitions
    (a handful); ``require_models`` fails a cell whose own adapter is not trained, and
    the evaluation assets' automation ignores adapter updates (``adapter_sensor``
    requests a retrained adapter's cells).
    """
    if not recipes:
        return []
    return [dg.AssetDep(ADAPTERS, partition_mapping=dg.AllPartitionMapping())]


def build_adapter_defs(
    grid: dg.MultiPartitionsDefinition, recipes: dict[str, Recipe], aggregates: dg.AssetsDefinition
) -> AdapterDefs:
    """The adapters asset, the ``adapter_vs_base`` check, ``training_job`` and the sensor.

    Without recipes only the check is defined (it passes: no partition is an adapter).
    """
    check = _build_check(grid, aggregates)
    if not recipes:
        return AdapterDefs(assets=[], checks=[check], jobs=[], sensors=[])
    partitions = dg.StaticPartitionsDefinition(adapter_models(recipes))
    # Which adapters each train split feeds.
    fed: dict[str, set[str]] = {}
    for recipe in recipes.values():
        fed.setdefault(recipe.dataset, set()).add(adapter_slug(recipe.base, recipe.name))

    train_samples = table_asset(
        TRAIN_TABLE, dg.StaticPartitionsDefinition(sorted(fed)), TRAINING_GROUP
    )

    adapters = _build_adapters_asset(partitions, train_samples, fed)
    training_job = _build_training_job()
    adapter_sensor = _build_adapter_sensor()
    return AdapterDefs(
        assets=[train_samples, adapters],
        checks=[check],
        jobs=[training_job],
        sensors=[adapter_sensor],
    )


def _build_adapters_asset(
    partitions: dg.StaticPartitionsDefinition,
    train_samples: dg.AssetsDefinition,
    fed: dict[str, set[str]],
) -> dg.AssetsDefinition:
    """The ``adapters`` asset: one partition per recipe, fed by its train split's table."""

    @dg.asset(
        partitions_def=partitions,
        deps=[dg.AssetDep(train_samples, partition_mapping=dg.StaticPartitionMapping(fed))],
        group_name=TRAINING_GROUP,
        kinds={"pytorch", "peft"},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def adapters(
        context: dg.AssetExecutionContext,
        catalog: CatalogResource,
        store: StoreResource,
        slurm: SlurmResource,
    ) -> None:
        """The LoRA adapter of a ``recipes.yaml`` recipe, trained on its base model.

        Keyed by the model the adapter makes, ``<base>__<recipe>``. Trains with the
        dataset's train split (QLoRA on a GPU, LoRA on CPU) where the base model's catalog
        entry says it runs (inline, or one SLURM job), or finds the adapter in the store
        when the recipe, the base and the train data are unchanged. The files live under
        ``<store>/adapters/recipe=<recipe>/<content hash>/``; the metadata has the hash,
        training loss, steps, wall time, tokens/s and peak memory.
        """
        cat, st = catalog.load(), store.get()
        by_model = recipes_by_model(cat)
        datasets = {by_model[k].dataset for k in context.partition_keys}
        refresh_dataset_tables(context, cat, st, datasets, tables=[TRAIN_TABLE])
        metadata: dict[str, Metadata] = {}
        todo = []
        for key in context.partition_keys:
            adapter = current_adapter(cat, st, by_model[key])
            if adapter is None:
                todo.append(by_model[key])
            else:
                # Recipe, base and train data unchanged: no task, no model load.
                context.log.info(f"{key}: adapter {adapter.content_hash} is current, not training")
                metadata[key] = adapter_metadata(adapter)
        failures: dict[str, str] = {}
        failure_metadata: Metadata = {}
        if todo:
            tasks = training_tasks(cat, st, todo, run_id=context.run.run_id)
            outcomes = run_tasks(context, cat, runners_for(slurm.runner(cat, st)), tasks)
            trained, failures, failure_metadata = collect(
                context, outcomes, lambda task, work: adapter_slug(task.model, work.recipe)
            )
            for key, values in trained.items():
                adapter = current_adapter(cat, st, by_model[key])
                if adapter is None:  # removed from the store since
                    failures[key] = "the adapter is not in the store after training"
                else:
                    metadata[key] = {**values, **adapter_metadata(adapter), "reused": False}
        report_partitions(context, metadata, failures, failure_metadata)

    return adapters


def _build_training_job() -> "dg.UnresolvedAssetJobDefinition":
    """``training_job``: materializes the adapters."""
    return dg.define_asset_job(
        TRAINING_JOB,
        # train_samples is partitioned by dataset: adapters records it as it trains.
        selection=dg.AssetSelection.assets(ADAPTERS),
        executor_def=dg.in_process_executor,
        description=(
            "Trains the LoRA adapters of recipes.yaml (one partition per recipe, keyed "
            "<base>__<recipe>); an unchanged recipe finds its adapter without training."
        ),
    )


def _build_adapter_sensor() -> dg.SensorDefinition:
    """``adapter_sensor``: evaluates each newly trained adapter."""

    @dg.sensor(
        name="adapter_sensor",
        job_name=REGRESSION_SUITE_JOB,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus(automation_status().value),
    )
    def adapter_sensor(
        context: dg.SensorEvaluationContext, catalog: CatalogResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Evaluates a newly trained adapter on its recipe's dataset, and its base if needed.

        For each ``adapters`` materialization newer than the cursor, requests
        ``regression_suite_job`` for ``<dataset>|<base>__<recipe>`` (its checks include
        ``adapter_vs_base``) and for ``<dataset>|<base>`` when the base has no
        ``aggregates`` there yet. Run keys carry the adapter's content hash: the same
        adapter is evaluated once.
        """
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ADAPTERS, after_storage_id=_cursor(context)),
            limit=1000,
            ascending=True,
        ).records
        if not records:
            return dg.SkipReason("no newly trained adapter")
        cat = catalog.load()
        by_model = recipes_by_model(cat)
        done = set(context.instance.get_materialized_partitions(AGGREGATES))
        requests: dict[str, dg.RunRequest] = {}
        for record in records:
            materialization = record.asset_materialization
            model = materialization.partition if materialization else None
            if materialization is None or model is None:
                continue
            if model not in by_model or model not in cat.models:
                continue  # a recipe since removed, or an adapter since retrained
            recipe = by_model[model]
            content = materialization.metadata.get("adapter_hash")
            keys = [PartitionKey(model=model, dataset=recipe.dataset).key]
            base_key = PartitionKey(model=recipe.base, dataset=recipe.dataset).key
            if base_key not in done:
                keys.append(base_key)
            fingerprints = partition_fingerprints(cat, keys)
            for key in keys:
                requests[key] = dg.RunRequest(
                    run_key=f"adapter:{key}:{content.value if content else ''}:{fingerprints[key]}",
                    partition_key=key,
                    tags=run_tags(cat, key, fingerprints[key], f"adapter {model} trained"),
                )
        cursor = json.dumps({"after": records[-1].storage_id})
        if not requests:
            return dg.SensorResult(skip_reason="nothing to evaluate", cursor=cursor)
        return dg.SensorResult(run_requests=list(requests.values()), cursor=cursor)

    return adapter_sensor


def adapter_metadata(adapter: TrainedAdapter) -> Metadata:
    """What the ``adapters`` materialization shows of a stored adapter."""
    report = adapter.report
    return {
        "dagster/row_count": adapter.report.examples,
        "model": adapter_slug(adapter.base, adapter.recipe),
        "adapter_hash": adapter.content_hash,
        "fingerprint": adapter.fingerprint,
        "path": dg.MetadataValue.path(adapter.path),
        "reused": adapter.reused,
        "train_version": adapter.train_version,
        "prompt_version": adapter.prompt_version,
        "train/steps": report.steps,
        "train/epochs": report.epochs,
        "train/examples": report.examples,
        "train/tokens": report.train_tokens,
        "train/loss_first": report.first_loss if report.first_loss is not None else float("nan"),
        "train/loss_final": report.final_loss if report.final_loss is not None else float("nan"),
        "train/wall_s": round(report.wall_s, 3),
        "train/tokens_per_s": round(report.tokens_per_s, 1),
        "train/peak_memory_gb": round(report.peak_memory_gb, 3),
        "train/device": report.device,
        "train/quantization": report.quantization,
        "train/optimizer": report.optimizer,
        "train/trainable_params": report.trainable_params,
    }


def _cursor(context: dg.SensorEvaluationContext) -> int | None:
    if not context.cursor:
        return None
    return int(json.loads(context.cursor)["after"])


def _build_check(
    grid: dg.MultiPartitionsDefinition, aggregates: dg.AssetsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=aggregates, name=CHECK_NAME, blocking=False, partitions_def=grid)
    def adapter_vs_base(
        context: dg.AssetCheckExecutionContext, catalog: CatalogResource, store: StoreResource
    ) -> dg.AssetCheckResult:
        """A fine-tuned model against its base on the same dataset: the paired tests.

        For partitions of an adapter model ``<base>__<recipe>``: compares its per-sample
        scores with the base model's on the same samples (McNemar for pass/fail metrics,
        paired bootstrap otherwise) and reports each metric's base, adapter, delta with its
        95% CI and p-value. Fails when a metric regressed significantly; a warning when the
        base is not evaluated on the dataset yet. Other partitions pass (not an adapter).
        """
        cat, st = catalog.load(), store.get()
        by_model = recipes_by_model(cat)
        outcomes = [(k, adapter_outcome(cat, st, by_model, k)) for k in current_partitions(context)]
        return grid_check_result(context, outcomes)

    return adapter_vs_base


def adapter_outcome(
    catalog: Catalog, store: Store, recipes: dict[str, Recipe], key: PartitionKey
) -> dg.AssetCheckResult:
    """The ``adapter_vs_base`` result of one grid partition."""
    recipe = recipes.get(key.model)
    if recipe is None:
        return dg.AssetCheckResult(passed=True, description="not a fine-tuned model")
    base_scores = store.read_optional("scores", key.dataset, recipe.base)
    if base_scores is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"{recipe.base} has no scores on {key.dataset} yet: evaluate partition "
                f"{PartitionKey(model=recipe.base, dataset=key.dataset).key} to compare"
            ),
            metadata={"base_model": recipe.base},
        )
    adapter_scores = store.read("scores", key.dataset, key.model)
    comparisons = compare_adapter(base_scores, adapter_scores).comparisons
    metadata: Metadata = {"base_model": recipe.base}
    spec = catalog.models.get(key.model)
    if spec is not None and spec.adapter:
        metadata["adapter"] = dg.MetadataValue.path(spec.adapter)
    lines = []
    for c in comparisons:
        metadata[f"{c.metric}/base"] = _number(c.baseline)
        metadata[f"{c.metric}/adapter"] = _number(c.current)
        metadata[f"{c.metric}/delta"] = _number(c.delta)
        metadata[f"{c.metric}/ci_low"] = _number(c.ci_low)
        metadata[f"{c.metric}/ci_high"] = _number(c.ci_high)
        metadata[f"{c.metric}/p_value"] = _number(c.p_value)
        verdict = (
            "improved" if c.improved else "regressed" if c.regressed else "no significant change"
        )
        lines.append(
            f"{c.metric}: {_fmt(c.baseline)} -> {_fmt(c.current)} ({_signed(c.delta)}, 95% CI "
            f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}], {c.test} p={_fmt(c.p_value)}, n={c.n}): "
            f"{verdict}"
        )
    improved = [c.metric for c in comparisons if c.improved]
    regressed = [c.metric for c in comparisons if c.regressed]
    metadata["improved_metrics"] = ",".join(improved)
    metadata["regressed_metrics"] = ",".join(regressed)
    return dg.AssetCheckResult(
        passed=not regressed,
        description=f"against {recipe.base}: " + "; ".join(lines or ["no metric in common"]),
        metadata=metadata,
    )


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"
