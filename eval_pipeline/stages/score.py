"""The score stage: run the dataset's scorers over one partition's generations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import code_version
from eval_pipeline.core.keys import PROBLEM_SEPARATOR
from eval_pipeline.core.schemas import SCORES
from eval_pipeline.engine import RunControls, RunStats
from eval_pipeline.judge import (
    JUDGE_SCORER,
    JudgeParams,
    items_from_frame,
    judge_scores,
    rubric_prompt,
    run_judge,
)
from eval_pipeline.providers import Provider
from eval_pipeline.scoring import run_scorer
from eval_pipeline.stages._lm_eval import score_frame as lm_eval_scores
from eval_pipeline.storage import Store

# What a scorer sees (see eval_pipeline.scoring.registry).
SCORER_COLUMNS = (
    "sample_id",
    "completion",
    "target",
    "targets",
    "fields",
    "choices",
    "choice_logprobs",
)


@dataclass(frozen=True)
class ScoreReport:
    path: Path
    rows: int
    means: dict[str, float | None]


def scoring_frame(catalog: Catalog, store: Store, model: str, dataset: str) -> pl.DataFrame:
    """The partition's generations joined to their samples.

    Columns ``sample_id``, ``prompt_version``, ``completion``, ``request_hash``,
    ``choice_logprobs``, ``target``, ``targets``, ``choices``, ``fields``; several
    completions of a problem (``<problem>#<i>``) take their problem's sample row.
    """
    generations = _with_columns(
        store.read("generations", dataset=dataset, model=model),
        {"choice_logprobs": pl.List(pl.Float64), "choice_greedy": pl.List(pl.Boolean)},
    )
    samples = _with_columns(
        store.read("dataset_samples", dataset=dataset),
        {"targets": pl.List(pl.String), "choices": pl.List(pl.String)},
    ).select("sample_id", "target", "targets", "choices", "fields")
    generated = generations.select(
        "sample_id",
        "prompt_version",
        "completion",
        "request_hash",
        "choice_logprobs",
        "choice_greedy",
    )
    # Several completions per problem: ``<problem>#<index>`` rows take their problem's row.
    problem = (
        pl.col("sample_id").str.split(PROBLEM_SEPARATOR).list.first()
        if catalog.samples_per_problem(dataset) > 1
        else pl.col("sample_id")
    )
    return (
        generated.with_columns(problem.alias("_problem"))
        .join(
            samples.rename({"sample_id": "_problem"}),
            on="_problem",
            how="left",
            maintain_order="left",
        )
        .drop("_problem")
    )


def _with_columns(frame: pl.DataFrame, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    # Tables written before a column existed read without it: it is null there.
    missing = [pl.lit(None, dtype=t).alias(n) for n, t in columns.items() if n not in frame.columns]
    return frame.with_columns(missing) if missing else frame


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

    The verdicts land in the response cache, where :func:`score` finds them: a judge that
    runs elsewhere (a SLURM job) judges first, and scoring then makes no judge call.
    """
    spec = catalog.dataset_specs[dataset]
    joined = scoring_frame(catalog, store, model, dataset)
    stats = RunStats()
    for scorer in spec.scorers:
        if scorer.name != JUDGE_SCORER:
            continue
        params = JudgeParams.model_validate(scorer.params)
        if judge not in params.judges:
            continue
        calls = run_judge(
            catalog,
            store,
            judge,
            rubric_prompt(catalog.root, params.rubric),
            items_from_frame(joined, params.question_field),
            max_tokens=params.max_tokens,
            provider=provider,
            controls=controls,
        )
        for call in calls:
            if call.request is None:
                continue
            stats.total += 1
            if call.cached:
                stats.cached += 1
                continue
            response = call.response
            stats.model_calls += 1
            if response is not None:
                stats.input_tokens += response.input_tokens
                stats.output_tokens += response.output_tokens
                stats.wall_s += response.latency_s
                stats.cost_usd += catalog.model(judge).pricing.cost(
                    response.input_tokens, response.output_tokens
                )
    return stats


def score(catalog: Catalog, store: Store, model: str, dataset: str) -> ScoreReport:
    """Score every generation of ``model`` on ``dataset``; one row per sample x metric."""
    spec = catalog.dataset_specs[dataset]
    if catalog.answer_mode(model, dataset) == "not_applicable":
        path = store.write("scores", pl.DataFrame(schema=SCORES), dataset=dataset, model=model)
        return ScoreReport(path=path, rows=0, means={})
    joined = scoring_frame(catalog, store, model, dataset)
    frames = []
    judgements = []
    if spec.lm_eval:
        # lm-eval's filters and process_results score the documents (stages._lm_eval).
        frames.append(lm_eval_scores(catalog, model, dataset, joined))
    for scorer in spec.scorers if not spec.lm_eval else ():
        if scorer.name == JUDGE_SCORER:
            # Judging calls models: the judge package runs it through the engine.
            output = judge_scores(catalog, store, model, dataset, scorer, joined)
            judgements.append(output.judgements)
            for judged in output.scores:
                frames.append(
                    joined.select("sample_id", "prompt_version", "request_hash")
                    .with_columns(
                        pl.lit(judged["metric"][0] if judged.height else "").alias("metric")
                    )
                    .hstack(judged.select("value", "detail"))
                )
            continue
        result = run_scorer(scorer.name, joined.select(SCORER_COLUMNS), scorer.params)
        frames.append(
            joined.select("sample_id", "prompt_version", "request_hash")
            .with_columns(pl.lit(scorer.metric_name).alias("metric"))
            .hstack(result.select("value", "detail"))
        )
    scores = (
        pl.concat(frames, how="vertical_relaxed")
        .with_columns(
            pl.lit(model).alias("model"),
            pl.lit(dataset).alias("dataset"),
            pl.lit(code_version()).alias("code_version"),
            pl.lit(catalog.answer_mode(model, dataset)).alias("answer_mode"),
        )
        .select(SCORES.names())
    )
    path = store.write("scores", scores, dataset=dataset, model=model)
    if judgements:
        store.write("judgements", pl.concat(judgements), dataset=dataset, model=model)
    means = {
        m: (v if v is None else float(v))
        for m, v in scores.group_by("metric", maintain_order=True)
        .agg(pl.col("value").mean())
        .iter_rows()
    }
    return ScoreReport(path=path, rows=scores.height, means=means)
