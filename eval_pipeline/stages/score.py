"""The score stage: run the dataset's scorers over one partition's generations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import code_version
from eval_pipeline.core.keys import PROBLEM_SEPARATOR
from eval_pipeline.core.schemas import SCORES
from eval_pipeline.judge import (
    JUDGE_SCORER,
    MT_BENCH_SCORER,
    PAIRWISE_SCORER,
    judge_scores,
    mt_bench_scores,
    pairwise_scores,
)
from eval_pipeline.scoring import run_scorer
from eval_pipeline.stages._lm_eval import score_frame as lm_eval_scores
from eval_pipeline.storage import Store

# Scorers whose verdicts the judge stage writes to ``judgements`` (eval_pipeline.judge).
JUDGED = (JUDGE_SCORER, MT_BENCH_SCORER, PAIRWISE_SCORER)
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
        {
            "choice_logprobs": pl.List(pl.Float64),
            "choice_greedy": pl.List(pl.Boolean),
            "turn_completions": pl.List(pl.String),
        },
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
        "turn_completions",
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


def score(catalog: Catalog, store: Store, model: str, dataset: str) -> ScoreReport:
    """Score every generation of ``model`` on ``dataset``; one row per sample x metric.

    Judge metrics read the partition's ``judgements`` (written by the judge stage); no
    judge is called or loaded here.

    Raises:
        VerdictsMissing: A judge metric lacks current verdicts (the message names the
            judge task to run).
    """
    spec = catalog.dataset_specs[dataset]
    if catalog.answer_mode(model, dataset) == "not_applicable":
        path = store.write("scores", pl.DataFrame(schema=SCORES), dataset=dataset, model=model)
        return ScoreReport(path=path, rows=0, means={})
    joined = scoring_frame(catalog, store, model, dataset)
    frames = []
    if spec.lm_eval:
        # lm-eval's filters and process_results score the documents (stages._lm_eval).
        frames.append(lm_eval_scores(catalog, model, dataset, joined))
    judgements = None
    if any(s.name in JUDGED for s in spec.scorers):
        # The judge stage wrote the verdicts (the judge task, inline or on SLURM).
        judgements = store.read_optional("judgements", dataset=dataset, model=model)
    for scorer in spec.scorers if not spec.lm_eval else ():
        if scorer.name in JUDGED:
            if scorer.name == PAIRWISE_SCORER:
                judged = pairwise_scores(catalog, store, model, dataset, scorer, joined, judgements)
            else:
                read = judge_scores if scorer.name == JUDGE_SCORER else mt_bench_scores
                judged = read(catalog, model, dataset, scorer, joined, judgements)
            for metric_frame in judged.frames:
                frames.append(
                    joined.select("sample_id", "prompt_version", "request_hash").hstack(
                        metric_frame.select("metric", "value", "detail")
                    )
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
    means = {
        m: (v if v is None else float(v))
        for m, v in scores.group_by("metric", maintain_order=True)
        .agg(pl.col("value").mean())
        .iter_rows()
    }
    return ScoreReport(path=path, rows=scores.height, means=means)
