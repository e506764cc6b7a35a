"""Which tasks a set of partitions needs: one per model, so each model loads once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Any: limits forwarded to the task's fields; recipes (training is not imported here).
from typing import Any

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.judge import (
    JUDGE_SCORER,
    MT_BENCH_SCORER,
    PAIRWISE_SCORER,
    JudgeParams,
    MtBenchParams,
    PairwiseParams,
)
from eval_pipeline.model_task._task import ModelTask, Work
from eval_pipeline.storage import Store


def generation_tasks(
    catalog: Catalog,
    store: Store,
    keys: Iterable[PartitionKey],
    **limits: Any,
) -> list[ModelTask]:
    """One task per model generating every dataset of ``keys`` that it is paired with.

    ``limits`` are the run's :class:`ModelTask` fields (``sample_limit``,
    ``use_cache``, ``budget_usd``, ``partition_timeout_s``, ``request_timeout_s``,
    ``progress_every_s``).
    """
    by_model: dict[str, list[Work]] = {}
    for key in keys:
        by_model.setdefault(key.model, []).append(Work("generate", dataset=key.dataset))
    return [_task(catalog, store, model, work, **limits) for model, work in by_model.items()]


def judge_rubrics(catalog: Catalog, dataset: str) -> list[tuple[str, str]]:
    """Every (judge model, rubric) the ``llm_judge`` scorers of ``dataset`` use, in order.

    The catalog checked the judges when it loaded: each is a catalog model.
    """
    pairs: dict[tuple[str, str], None] = {}
    for scorer in catalog.dataset_specs[dataset].scorers:
        if scorer.name == JUDGE_SCORER:
            params = JudgeParams.model_validate(scorer.params)
            for judge in params.judges:
                pairs[(judge, params.rubric)] = None
    return list(pairs)


def mt_bench_judges(catalog: Catalog, dataset: str) -> list[str]:
    """The judges of the ``mt_bench`` and ``pairwise_judge`` scorers of ``dataset``, in order."""
    judges: dict[str, None] = {}
    for scorer in catalog.dataset_specs[dataset].scorers:
        if scorer.name == MT_BENCH_SCORER:
            judges.update(dict.fromkeys(MtBenchParams.model_validate(scorer.params).judges))
        elif scorer.name == PAIRWISE_SCORER:
            judges.update(dict.fromkeys(PairwiseParams.model_validate(scorer.params).judges))
    return list(judges)


def judging_tasks(
    catalog: Catalog, store: Store, keys: Sequence[PartitionKey], **limits: Any
) -> list[ModelTask]:
    """One task per judge model the partitions' datasets use: calibrate, then judge.

    A judge first calibrates each rubric it rates (reused when nothing changed), then
    rates every partition whose dataset names it. Datasets without judge metrics need no
    task at all, so evaluating them never loads a judge. ``limits`` are the run's
    :class:`ModelTask` fields (the budget and its scope, the request deadline).
    """
    by_judge: dict[str, dict[Work, None]] = {}
    for key in keys:
        for judge, rubric in judge_rubrics(catalog, key.dataset):
            work = by_judge.setdefault(judge, {})
            work[Work("calibrate", rubric=rubric)] = None
            work[Work("judge", dataset=key.dataset, judged_model=key.model)] = None
        for judge in mt_bench_judges(catalog, key.dataset):
            # MT-Bench grades on its own 1-10 scale: no calibration.
            by_judge.setdefault(judge, {})[
                Work("judge", dataset=key.dataset, judged_model=key.model)
            ] = None
    return [
        _task(catalog, store, judge, sorted(work, key=lambda w: w.kind != "calibrate"), **limits)
        for judge, work in by_judge.items()
    ]


def training_tasks(
    catalog: Catalog, store: Store, recipes: Sequence[Any], **limits: Any
) -> list[ModelTask]:
    """One task per base model training every recipe of ``recipes`` that sits on it.

    ``recipes`` are :class:`eval_pipeline.training.Recipe` values; each becomes a ``train``
    work item of its base model's task, so the base loads once and the task runs where
    the base's catalog entry says (``runs_on``: inline, or one SLURM job on its profile).
    """
    by_base: dict[str, list[Work]] = {}
    for recipe in recipes:
        by_base.setdefault(recipe.base, []).append(
            Work("train", dataset=recipe.dataset, recipe=recipe.name)
        )
    return [_task(catalog, store, base, work, **limits) for base, work in by_base.items()]


def calibration_task(catalog: Catalog, store: Store, judge: str, rubric: str) -> ModelTask:
    """The task that calibrates ``judge`` on ``rubric`` alone."""
    return _task(catalog, store, judge, [Work("calibrate", rubric=rubric)])


def _task(
    catalog: Catalog, store: Store, model: str, work: Sequence[Work], **limits: Any
) -> ModelTask:
    return ModelTask(
        project_root=str(catalog.root),
        store_root=str(store.root),
        model=model,
        work=tuple(work),
        **limits,
    )
