"""The schema of every Parquet table, in one place.

Key columns come first in every table, always in the same order: ``model``, ``dataset``,
``prompt_version``, ``sample_id`` (where the table has them).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl


def table_schema(columns: Mapping[str, pl.DataType | type[pl.DataType]]) -> pl.Schema:
    """A table's schema from its columns in order (a data type or its class, as polars takes)."""
    return pl.Schema(columns)


PROMPT_VERSIONS = table_schema(
    {
        "dataset": pl.String,
        "prompt_version": pl.String,
        "prompt_name": pl.String,
        "template_path": pl.String,
        "template_text": pl.String,
        "content_hash": pl.String,
    }
)

DATASET_SAMPLES = table_schema(
    {
        "dataset": pl.String,
        "sample_id": pl.String,
        "dataset_version": pl.String,
        "fields": pl.String,  # the row's fields as canonical JSON
        "target": pl.String,  # the first acceptable answer (the correct choice's text)
        "tags": pl.List(pl.String),
        "row_hash": pl.String,
        "targets": pl.List(pl.String),  # every acceptable answer / correct choice
        "choices": pl.List(pl.String),  # multiple choice: the choices' texts; else empty
    }
)

GENERATIONS = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "prompt_version": pl.String,
        "sample_id": pl.String,
        "dataset_version": pl.String,
        "provider": pl.String,
        "model_id": pl.String,
        "model_revision": pl.String,
        "sampling_params": pl.String,  # canonical JSON
        "messages": pl.String,  # canonical JSON of the rendered chat messages
        "request_hash": pl.String,
        "completion": pl.String,
        "finish_reason": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "error": pl.String,
        "code_version": pl.String,
        "prompt_format": pl.String,  # chat | completion
        # Chat prompts a local model rendered: the sha256 (16 hex digits) of its tokenizer's
        # chat template; null for completion prompts, API models and older cached answers.
        "chat_template_hash": pl.String,
        "fewshot_ids": pl.List(pl.String),  # sample ids of the few-shot examples, in order
        # A multi-turn sample's answer to each user turn, in order (null: single turn);
        # ``completion`` is the last turn's, ``messages`` the whole conversation.
        "turn_completions": pl.List(pl.String),
        # Multiple choice scored by log-likelihood: per choice, in the sample's choice
        # order, the continuation's summed log-probability and its token count.
        "choice_logprobs": pl.List(pl.Float64),
        "choice_tokens": pl.List(pl.Int64),
        # lm-eval ``loglikelihood`` requests: per choice, whether it is the model's greedy
        # continuation (null for other requests).
        "choice_greedy": pl.List(pl.Boolean),
        # How the model answered (see eval_pipeline.core.types.AnswerMode): loglikelihood,
        # generate (a multiple-choice question answered with a letter, too) or
        # not_applicable. Null in tables written before the column existed.
        "answer_mode": pl.String,
        # Canonical JSON, package -> version: python, torch, transformers, vllm, openai, ...
        "versions": pl.String,
        # Run-dependent columns (see VOLATILE_COLUMNS): they say how this run got the row.
        "latency_s": pl.Float64,
        "cached": pl.Boolean,
        "run_id": pl.String,  # the Dagster run (or CLI invocation) that wrote the row
        "slurm_job_id": pl.String,  # null unless a SLURM job produced the row
        "slurm_node": pl.String,
    }
)

SCORES = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "prompt_version": pl.String,
        "sample_id": pl.String,
        "metric": pl.String,
        "value": pl.Float64,  # null when the metric does not apply to the sample
        "detail": pl.String,
        "request_hash": pl.String,
        "code_version": pl.String,
        "answer_mode": pl.String,  # as in generations: two modes are never compared
    }
)

# A metric's estimate over a set of samples: count, mean, standard error and 95% interval.
_ESTIMATE: dict[str, type[pl.DataType]] = {
    "n": pl.Int64,
    "mean": pl.Float64,
    "stderr": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}

AGGREGATES = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "prompt_version": pl.String,
        "metric": pl.String,
        **_ESTIMATE,
        "pass_at_1": pl.Float64,  # code metrics only
        "answer_mode": pl.String,  # as in generations; not_applicable rows have n = 0
        "samples": pl.Int64,
        "error_count": pl.Int64,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "dataset_version": pl.String,
        "code_version": pl.String,
        "latency_p50_s": pl.Float64,
        "latency_p95_s": pl.Float64,
        "cache_hit_rate": pl.Float64,
        "suspicious": pl.Int64,  # code metrics only: samples whose code looks like tampering
        # From the partition's latest generation step (see TELEMETRY).
        "model_load_s": pl.Float64,
        "tokens_per_s": pl.Float64,
        "peak_rss_gb": pl.Float64,
        "gpu_peak_mem_gb": pl.Float64,
        "gpu_util_mean": pl.Float64,
    }
)

# One row per partition: how its latest generation step ran (inline or SLURM alike).
TELEMETRY = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "runs_on": pl.String,
        "node": pl.String,
        "job_id": pl.String,
        "model_load_s": pl.Float64,  # the task's one model load (shared by its datasets)
        "generation_s": pl.Float64,
        "new_output_tokens": pl.Int64,
        "tokens_per_s": pl.Float64,  # newly generated output tokens over generation time
        "peak_rss_gb": pl.Float64,
        "gpu_peak_mem_gb": pl.Float64,  # null without a GPU
        "gpu_util_mean": pl.Float64,  # mean utilisation (0-100) sampled through NVML
        # Local providers: forward passes of this partition, and the share of token
        # positions fed to the model that were padding (over the task so far).
        "batches": pl.Int64,
        "padding_share": pl.Float64,
    }
)

LEADERBOARD = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "prompt_version": pl.String,
        "metric": pl.String,
        "answer_mode": pl.String,
        "n": pl.Int64,
        "mean": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "error_count": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "latency_p50_s": pl.Float64,
        # True: the cell is held (its latest regression verdict failed); the row shows
        # the numbers it last passed with.
        "held": pl.Boolean,
    }
)

# One row per judged sample x judge metric x judge: the raw verdict and what became of it.
JUDGEMENTS = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "prompt_version": pl.String,
        "sample_id": pl.String,
        "metric": pl.String,
        "judge": pl.String,
        "judge_revision": pl.String,  # the judge's catalog revision (null: none pinned)
        "judge_identity": pl.String,  # hash of the judge's identity (provider, id, revision, adapter)
        "prompt_kind": pl.String,  # rubric (pointwise 1-5)
        "rubric_version": pl.String,  # the judge prompt's version (name@content hash)
        "request_hash": pl.String,  # the judge request's; null when nothing was sent
        "judged_hash": pl.String,  # request hash of the judged generation row
        "verdict": pl.String,  # the judge's reply as it came
        "status": pl.String,  # ok | malformed | out_of_range | no_response
        "score": pl.Float64,  # null unless status is ok
        "reason": pl.String,
        "problem": pl.String,
        "calibrated": pl.Float64,
        "calibration_version": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "cached": pl.Boolean,
        "latency_s": pl.Float64,
        "code_version": pl.String,
    }
)

# Per-slice aggregates: one row per metric x slice (a tag of the dataset's rows).
SLICE_AGGREGATES = table_schema(
    {
        "model": pl.String,
        "dataset": pl.String,
        "prompt_version": pl.String,
        "slice": pl.String,
        "metric": pl.String,
        **_ESTIMATE,
    }
)

TABLES: dict[str, pl.Schema] = {
    "prompt_versions": PROMPT_VERSIONS,
    "dataset_samples": DATASET_SAMPLES,
    # A dataset's train split (fine-tuning recipes), normalized like its test rows.
    "train_samples": DATASET_SAMPLES,
    "generations": GENERATIONS,
    "scores": SCORES,
    "aggregates": AGGREGATES,
    "leaderboard": LEADERBOARD,
    "judgements": JUDGEMENTS,
    "slice_aggregates": SLICE_AGGREGATES,
    "telemetry": TELEMETRY,
}

# Tables stored once per dataset rather than once per model x dataset.
PER_DATASET_TABLES = frozenset({"prompt_versions", "dataset_samples", "train_samples"})
# Tables stored once for the whole store.
GLOBAL_TABLES = frozenset({"leaderboard"})

# Columns that describe how a run went (timing, cache hits) rather than what it produced.
# Re-running the same inputs reproduces every other column exactly.
VOLATILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "generations": ("latency_s", "cached", "run_id", "slurm_job_id", "slurm_node"),
    "aggregates": (
        "latency_p50_s",
        "latency_p95_s",
        "cache_hit_rate",
        "model_load_s",
        "tokens_per_s",
        "peak_rss_gb",
        "gpu_peak_mem_gb",
        "gpu_util_mean",
    ),
    "telemetry": tuple(TELEMETRY.names()[2:]),
    "leaderboard": ("latency_p50_s",),
    "judgements": ("cached", "latency_s"),
}
