"""Helpers for tests that materialize partitions in process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from eval_pipeline.defs import build_definitions


def materialize(
    project: Path,
    store_root: Path,
    partition: str,
    *,
    sample_limit: int | None = None,
    use_cache: bool = True,
    instance: dg.DagsterInstance | None = None,
    job: str = "evaluation_job",
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Run ``job`` for one ``dataset|model`` partition against a project and store.

    Then, as ``eval-pipeline run`` does, ``reporting_job`` (leaderboard and reports) when
    the partition succeeded; :func:`report` returns that run's result.
    """
    defs = build_definitions(str(project), str(store_root))
    job_def = defs.resolve_job_def(job)
    run_config = {
        "ops": {"generations": {"config": {"sample_limit": sample_limit, "use_cache": use_cache}}}
    }
    result = execute_partition(job_def, partition, run_config, instance, raise_on_error)
    if result.success:
        report(project, store_root, instance=instance)
    return result


def report(
    project: Path, store_root: Path, *, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """Run ``reporting_job`` (leaderboard, HTML report, regression report) over the store."""
    defs = build_definitions(str(project), str(store_root))
    job_def = defs.resolve_job_def("reporting_job")
    if instance is None:
        with dg.instance_for_test() as temp:
            return job_def.execute_in_process(instance=temp)
    return job_def.execute_in_process(instance=instance)


def execute_partition(
    job_def: dg.JobDefinition,
    partition: str,
    run_config: dict,
    instance: dg.DagsterInstance | None,
    raise_on_error: bool,
) -> dg.ExecuteInProcessResult:
    """Execute ``job_def`` for one partition, on a throwaway instance unless one is given."""
    if instance is None:
        with dg.instance_for_test() as temp:
            return job_def.execute_in_process(
                partition_key=partition,
                instance=temp,
                run_config=run_config,
                raise_on_error=raise_on_error,
            )
    return job_def.execute_in_process(
        partition_key=partition,
        instance=instance,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata values of ``asset``'s materialization in ``result``."""
    materializations = result.asset_materializations_for_node(asset)
    assert materializations, f"{asset} was not materialized"
    return {k: v.value for k, v in materializations[-1].metadata.items()}


def evaluate_stages(
    project: Path,
    store_root: Path,
    model: str,
    dataset: str,
    *,
    sample_limit: int | None = None,
    provider=None,
):
    """Run the stages of one partition without Dagster: tables, generate, score, aggregate.

    Returns the catalog, and the partition's generations, scores and aggregates.
    """
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.stages import (
        aggregate,
        build_dataset_samples,
        build_prompt_versions,
        generate,
        score,
    )
    from eval_pipeline.storage import Store

    catalog = load_catalog(project, load_rows=False)
    store = Store(store_root)
    build_prompt_versions(catalog, store, dataset)
    build_dataset_samples(catalog, store, dataset)
    generate(catalog, store, model, dataset, sample_limit=sample_limit, provider=provider)
    score(catalog, store, model, dataset)
    aggregates = aggregate(catalog, store, model, dataset).frame
    return (
        catalog,
        store.read("generations", dataset=dataset, model=model),
        store.read("scores", dataset=dataset, model=model),
        aggregates,
    )
