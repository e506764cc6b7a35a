"""The judge stage: one judge rates one partition's completions into ``judgements``."""

from __future__ import annotations

from eval_pipeline.catalog import Catalog
from eval_pipeline.engine import RunControls, RunStats
from eval_pipeline.judge import judge_frame, write_judgements
from eval_pipeline.providers import Provider
from eval_pipeline.stages.score import scoring_frame
from eval_pipeline.storage import Store


def judge_partition(
    catalog: Catalog,
    store: Store,
    judge: str,
    model: str,
    dataset: str,
    *,
    provider: Provider | None = None,
    controls: RunControls | None = None,
) -> RunStats:
    """Ask ``judge`` for every verdict the partition's ``llm_judge`` scorers need of it.

    Writes ``judge``'s rows of the partition's ``judgements`` (other judges' rows stay),
    where the judge task runs: in the Dagster step's process for an inline judge, in its
    SLURM job otherwise. :func:`eval_pipeline.stages.score` reads them from there.
    """
    judged = judge_frame(
        catalog,
        store,
        judge,
        model,
        dataset,
        scoring_frame(catalog, store, model, dataset),
        provider=provider,
        controls=controls,
    )
    write_judgements(store, dataset, model, judge, judged.rows)
    return judged.stats
