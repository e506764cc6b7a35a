"""The generate stage: render prompts, answer them (cache first), write ``generations``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from eval_pipeline.catalog import Catalog, ModelSpec, PromptTemplate
from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import code_version, stable_json
from eval_pipeline.core.keys import PROBLEM_SEPARATOR
from eval_pipeline.core.schemas import GENERATIONS
from eval_pipeline.core.types import GenerationRequest, SamplingParams
from eval_pipeline.engine import (
    GenerationStopped,
    Progress,
    ResponseCache,
    RunControls,
    RunStats,
    request_hash,
    run_requests,
)
from eval_pipeline.providers import Provider, create_provider
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class GenerateReport:
    path: Path
    rows: int
    new_rows: int
    reused_rows: int
    errors: int
    prompt_version: str
    dataset_version: str
    stats: RunStats


def load_inputs(store: Store, dataset: str) -> tuple[pl.DataFrame, PromptTemplate]:
    """Read the materialized samples and prompt of ``dataset`` from the store."""
    try:
        samples = store.read("dataset_samples", dataset=dataset)
        prompts = store.read("prompt_versions", dataset=dataset)
    except FileNotFoundError as exc:
        raise EvalPipelineError(
            f"{exc}. Materialize dataset_samples and prompt_versions for {dataset!r} first."
        ) from exc
    row = prompts.row(0, named=True)
    prompt = PromptTemplate(
        name=row["prompt_name"], path=Path(row["template_path"]), text=row["template_text"]
    )
    return samples, prompt


def sampling_for(catalog: Catalog, model: ModelSpec, dataset: str) -> SamplingParams:
    """Model defaults with the dataset's overrides on top."""
    return model.sampling.merged(catalog.dataset_specs[dataset].sampling)


def expand_samples(samples: pl.DataFrame, per_problem: int) -> pl.DataFrame:
    """One row per completion to generate: ``per_problem`` rows for every problem.

    With one completion per problem the sample ids stay as they are. With several,
    completion ``i`` of problem ``P`` gets the sample id ``P#i`` (what
    :func:`eval_pipeline.core.keys.problem_id` reads back) and ``sample_index`` ``i``;
    rows stay in dataset order, the completions of a problem together.

    Raises:
        EvalPipelineError: A sample id already contains ``#``.
    """
    if per_problem == 1:
        return samples.with_columns(pl.lit(0, dtype=pl.Int64).alias("sample_index"))
    clashing = samples.filter(pl.col("sample_id").str.contains(PROBLEM_SEPARATOR, literal=True))
    if clashing.height:
        raise EvalPipelineError(
            f"samples_per_problem needs sample ids without '{PROBLEM_SEPARATOR}'; "
            f"e.g. {clashing['sample_id'][0]!r}"
        )
    return (
        samples.with_columns(
            pl.lit(list(range(per_problem)), dtype=pl.List(pl.Int64)).alias("sample_index")
        )
        .explode("sample_index")
        .with_columns(
            pl.format("{}{}{}", "sample_id", pl.lit(PROBLEM_SEPARATOR), "sample_index").alias(
                "sample_id"
            )
        )
    )


def build_requests(
    model: ModelSpec, samples: pl.DataFrame, prompt: PromptTemplate, sampling: SamplingParams
) -> list[GenerationRequest]:
    """One request per row of ``samples``.

    Rows with a ``sample_index`` above 0 (extra completions of a problem) sample with the
    seed ``sampling.seed + sample_index``, so every completion is its own, reproducible
    draw with its own cache entry.
    """
    requests = []
    identity = model.identity()
    indices = (
        samples["sample_index"].to_list()
        if "sample_index" in samples.columns
        else [0] * samples.height
    )
    for row, index in zip(samples.iter_rows(named=True), indices, strict=True):
        messages = prompt.render(json.loads(row["fields"]))
        row_sampling = sampling.merged({"seed": sampling.seed + index}) if index else sampling
        requests.append(
            GenerationRequest(
                request_hash=request_hash(identity, row_sampling, messages),
                sample_id=row["sample_id"],
                messages=messages,
                sampling=row_sampling,
                extras={"target": row["target"]},
            )
        )
    return requests


def generate(
    catalog: Catalog,
    store: Store,
    model: str,
    dataset: str,
    *,
    sample_limit: int | None = None,
    use_cache: bool = True,
    provider: Provider | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 10.0,
    budget_usd: float | None = None,
    partition_timeout_s: float | None = None,
    request_timeout_s: float | None = None,
    budget_scope: str | None = None,
) -> GenerateReport:
    """Generate the completions of ``dataset`` with ``model`` and write them.

    One completion per sample, or ``samples_per_problem`` of them when the dataset asks
    for several (see :func:`expand_samples`); ``sample_limit`` counts problems.

    Requests whose hash is in the response cache are not sent again, so a re-run with
    nothing changed makes no model calls and an edited prompt re-generates only the rows
    whose rendered messages changed.

    ``budget_usd``, ``partition_timeout_s`` and ``request_timeout_s`` bound API providers;
    with ``budget_scope`` (a run's id) the budget is shared by everything of that run
    (see :class:`~eval_pipeline.engine.RunControls`).

    Raises:
        GenerationStopped: An API run stopped early (rejected credentials, circuit breaker,
            budget, wall-clock cap). The generations file is written first, with the rows
            not reached recorded as not attempted; the message says how to resume.
    """
    spec = catalog.model(model)
    samples, prompt = load_inputs(store, dataset)
    if sample_limit is not None:
        samples = samples.head(sample_limit)
    samples = expand_samples(samples, catalog.dataset_specs[dataset].samples_per_problem)
    sampling = sampling_for(catalog, spec, dataset)
    requests = build_requests(spec, samples, prompt, sampling)
    own_provider = provider is None
    provider = provider or create_provider(spec)
    try:
        result = run_requests(
            provider,
            spec,
            requests,
            ResponseCache(store.cache_dir),
            use_cache=use_cache,
            progress=progress,
            progress_every_s=progress_every_s,
            controls=RunControls(
                budget_usd=budget_usd,
                partition_timeout_s=partition_timeout_s,
                request_timeout_s=request_timeout_s,
                budget_ledger=str(store.budget_ledger(budget_scope)) if budget_scope else None,
                rate_leases=str(store.rate_leases_dir),
            ),
        )
    finally:
        if own_provider:
            provider.close()
    frame = generations_frame(spec, dataset, prompt.version, samples, requests, result)
    path = store.write("generations", frame, dataset=dataset, model=model)
    if result.stopped:
        raise GenerationStopped(f"{model} on {dataset}: {result.stopped} Rows so far: {path}")
    return GenerateReport(
        path=path,
        rows=frame.height,
        new_rows=frame.height - int(frame["cached"].sum()),
        reused_rows=int(frame["cached"].sum()),
        errors=int(frame["error"].is_not_null().sum()),
        prompt_version=prompt.version,
        dataset_version=samples["dataset_version"][0] if samples.height else "",
        stats=result.stats,
    )


def generations_frame(
    spec: ModelSpec,
    dataset: str,
    prompt_version: str,
    samples: pl.DataFrame,
    requests: list[GenerationRequest],
    result,  # EngineResult
) -> pl.DataFrame:
    """One row per request, in dataset order, with provenance and (for cached rows) reuse."""
    n = len(requests)
    responses = result.responses
    return pl.DataFrame(
        {
            "model": [spec.slug] * n,
            "dataset": [dataset] * n,
            "prompt_version": [prompt_version] * n,
            "sample_id": [r.sample_id for r in requests],
            "dataset_version": samples["dataset_version"].to_list(),
            "provider": [spec.provider] * n,
            "model_id": [spec.model_id] * n,
            "model_revision": [spec.revision or ""] * n,
            "sampling_params": [stable_json(r.sampling.model_dump(mode="json")) for r in requests],
            "messages": [stable_json([m.as_dict() for m in r.messages]) for r in requests],
            "request_hash": [r.request_hash for r in requests],
            "completion": [x.completion for x in responses],
            "finish_reason": [x.finish_reason for x in responses],
            "input_tokens": [x.input_tokens for x in responses],
            "output_tokens": [x.output_tokens for x in responses],
            "cost_usd": [spec.pricing.cost(x.input_tokens, x.output_tokens) for x in responses],
            "error": [x.error for x in responses],
            "code_version": [code_version()] * n,
            "latency_s": [x.latency_s for x in responses],
            "cached": result.cached,
        },
        schema=GENERATIONS,
    )
