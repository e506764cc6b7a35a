"""The generate stage: render prompts, answer them (cache first), write ``generations``."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Any: dataset rows (any JSON value).
from typing import Any

import polars as pl

from eval_pipeline.catalog import Catalog, DatasetSpec, ModelSpec, PromptTemplate
from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.hashing import code_version, stable_json
from eval_pipeline.core.keys import PROBLEM_SEPARATOR, PartitionKey
from eval_pipeline.core.provenance import versions_json
from eval_pipeline.core.schemas import GENERATIONS
from eval_pipeline.core.types import (
    AnswerMode,
    GenerationRequest,
    GenerationResponse,
    Message,
    PromptFormat,
    SamplingParams,
)
from eval_pipeline.engine import (
    EngineResult,
    GenerationStopped,
    Progress,
    ResponseCache,
    RunControls,
    RunStats,
    request_hash,
    run_requests,
)
from eval_pipeline.providers import Provider, create_provider
from eval_pipeline.stages._turns import converse, user_turns
from eval_pipeline.storage import Store

LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class RunOrigin:
    """Which run wrote a partition's rows, and the SLURM job when one did (provenance)."""

    run_id: str | None = None
    slurm_job_id: str | None = None
    slurm_node: str | None = None


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
    answer_mode: AnswerMode = "generate"


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


@dataclass(frozen=True)
class TaskPlan:
    """How a dataset's samples become requests for one model.

    ``prompt_format`` is the dataset's or else the model's; ``fewshot_pool`` the rows
    few-shot examples are drawn from (``same_split``: the dataset's own rows, so a
    sample is excluded by its id); ``answer_mode`` how the model answers
    (:meth:`eval_pipeline.catalog.Catalog.answer_mode`).
    """

    spec: DatasetSpec | None = None
    prompt_format: PromptFormat = "chat"
    fewshot_pool: tuple[dict[str, Any], ...] = ()
    same_split: bool = True
    answer_mode: AnswerMode = "generate"

    @classmethod
    def for_model(cls, catalog: Catalog, model: ModelSpec, dataset: str) -> TaskPlan:
        """The plan of ``dataset`` (from the catalog) for ``model``."""
        spec = catalog.dataset_specs[dataset]
        pool = catalog.dataset(dataset).fewshot_rows if spec.fewshot else ()
        return cls(
            spec=spec,
            prompt_format=spec.prompt_format_for(model),
            fewshot_pool=pool,
            same_split=not (spec.fewshot and spec.fewshot.source),
            answer_mode=catalog.answer_mode(model.slug, dataset),
        )


def select_fewshot(
    pool: Sequence[dict[str, Any]],
    sample_id: str,
    fields: dict[str, Any],
    n: int,
    seed: int,
    *,
    same_split: bool = True,
) -> list[dict[str, Any]]:
    """``n`` examples for one sample, drawn deterministically from ``seed`` and its id.

    Every candidate gets a rank from a hash of (seed, sample id, candidate id); the ``n``
    lowest ranks win, in rank order. The draw depends on nothing else (not the pool's
    order, not the other samples), and a sample is never its own example: excluded by
    id when the pool is the dataset's own rows, and by content in any pool.
    """
    candidates = [
        row
        for row in pool
        if not (same_split and row["sample_id"] == sample_id) and row["fields"] != fields
    ]

    def rank(row: dict[str, Any]) -> bytes:
        return hashlib.sha256(f"{seed}\x00{sample_id}\x00{row['sample_id']}".encode()).digest()

    return sorted(candidates, key=rank)[:n]


def lettered(user: str, choices: Sequence[str]) -> str:
    """A multiple-choice question for a model that writes: the choices as ``A.`` lines."""
    lines = [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices)]
    letters = f"A-{LETTERS[len(choices) - 1]}"
    return f"{user}\n\n" + "\n".join(lines) + f"\n\nAnswer with one letter ({letters}) only."


def render_request_messages(
    prompt: PromptTemplate,
    row: dict[str, Any],
    examples: Sequence[dict[str, Any]],
    plan: TaskPlan,
) -> tuple[Message, ...]:
    """The messages of one sample: few-shot examples, then the sample itself.

    ``row`` and each example carry ``fields``, ``target``/``targets`` and ``choices``.
    Chat format: the template's system message, then each example as a user turn and
    its answer as the assistant turn, then the sample's user turn. Completion format:
    one user message holding the exact context text: the system text, each example's
    prompt followed by the target delimiter and its answer, and the sample's prompt,
    joined by the few-shot separator.
    """
    spec = plan.spec
    fmt = plan.prompt_format
    generate_mc = spec is not None and spec.multiple_choice and plan.answer_mode == "generate"
    delimiter = spec.delimiter_for(fmt) if spec is not None else " "
    separator = spec.fewshot.separator if spec is not None and spec.fewshot else "\n\n"

    strip = spec.prompt_strip if spec is not None else False

    def user_text(item: dict[str, Any]) -> tuple[str | None, str]:
        messages = prompt.render(item["fields"], strip=strip)
        system = messages[0].content if messages[0].role == "system" else None
        user = messages[-1].content
        if generate_mc:
            user = lettered(user, item["choices"])
        return system, user

    def answer(item: dict[str, Any]) -> str:
        if generate_mc:
            return LETTERS[item["choices"].index(item["target"])]
        return item["target"]

    system, user = user_text(row)
    if fmt == "completion":
        parts = [system] if system else []
        parts += [f"{user_text(e)[1]}{delimiter}{answer(e)}" for e in examples]
        parts.append(user)
        return (Message("user", separator.join(parts)),)
    messages = [Message("system", system)] if system else []
    for example in examples:
        messages.append(Message("user", user_text(example)[1]))
        messages.append(Message("assistant", answer(example)))
    messages.append(Message("user", user))
    return tuple(messages)


def limit_samples(
    samples: pl.DataFrame, limit: int | None, *, per_task: bool = False
) -> pl.DataFrame:
    """The first ``limit`` samples, or the first ``limit`` of each task (``per_task``).

    ``per_task`` is for lm-eval groups, whose sample ids read ``<task>/<doc id>``: as
    lm-eval's ``--limit``, the limit applies to every task of the group.
    """
    if limit is None:
        return samples
    if not per_task:
        return samples.head(limit)
    task = pl.col("sample_id").str.split("/").list.first()
    return samples.filter(pl.int_range(pl.len()).over(task) < limit)


def doc_ref(sample_id: str, fields: dict[str, Any]) -> tuple[str, int]:
    """An lm-eval sample's (task, doc id), from its fields and its id ``[<task>/]<doc id>``."""
    base = sample_id.split(PROBLEM_SEPARATOR, 1)[0]
    return str(fields["task"]), int(base.rsplit("/", 1)[-1])


def build_lm_eval_requests(
    source: Any,
    model: ModelSpec,
    samples: pl.DataFrame,
    sampling: SamplingParams,
    plan: TaskPlan,
) -> list[GenerationRequest]:
    """One request per sample of an ``lm_eval`` dataset, as lm-eval's task builds it.

    ``source`` (an :class:`eval_pipeline.catalog._lmeval.LmEvalSource`) renders each
    document's context (few-shot examples and all, as chat turns or as one text) and
    its continuations or generation settings; this turns them into the engine's
    requests: choice scoring with lm-eval's continuations (``loglikelihood`` requests
    also report greedy flags, ``loglikelihood_rolling`` scores a whole text), or
    generation with the task's stop strings and token limit over the model's sampling.
    A model that cannot score choices answers a multiple-choice document with a letter.
    """
    chat = plan.prompt_format == "chat"
    rows = list(samples.iter_rows(named=True))
    refs = [doc_ref(r["sample_id"], json.loads(r["fields"])) for r in rows]
    built = source.requests(sorted(set(refs)), chat=chat)
    indices = (
        samples["sample_index"].to_list() if "sample_index" in samples.columns else [0] * len(rows)
    )
    identity = model.identity()
    out = []
    for row, ref, index in zip(rows, refs, indices, strict=True):
        lm = built[ref]
        if chat:
            messages = tuple(Message(role, content) for role, content in lm.messages)
        else:
            messages = (Message("user", lm.context),)
        choices: tuple[str, ...] = ()
        request_type = ""
        reference = row["target"]
        row_sampling = sampling
        if lm.kind == "generate_until" or plan.answer_mode == "generate":
            updates: dict[str, Any] = {}
            if lm.kind == "generate_until":
                updates = {"stop": lm.stop, "max_tokens": lm.max_tokens}
                if lm.temperature is not None:
                    updates["temperature"] = lm.temperature
                if lm.top_p is not None:
                    updates["top_p"] = lm.top_p
            else:  # a model that only writes: the choices as letters, one letter back
                choice_texts = list(row["choices"] or [])
                last = messages[-1]
                messages = (
                    *messages[:-1],
                    Message(last.role, lettered(last.content, choice_texts)),
                )
                reference = LETTERS[choice_texts.index(row["target"])]
                updates = {"max_tokens": 8}
            row_sampling = sampling.merged(updates)
        else:
            choices = lm.continuations
            if lm.kind in ("loglikelihood", "loglikelihood_rolling"):
                request_type = lm.kind
            if lm.kind == "loglikelihood_rolling":
                messages = (Message("user", ""),)
        if index:
            row_sampling = row_sampling.merged({"seed": row_sampling.seed + index})
        fmt: PromptFormat = (
            "completion" if request_type == "loglikelihood_rolling" else plan.prompt_format
        )
        out.append(
            GenerationRequest(
                request_hash=request_hash(
                    identity, row_sampling, messages, choices, fmt, request_type
                ),
                sample_id=row["sample_id"],
                messages=messages,
                sampling=row_sampling,
                choices=choices,
                prompt_format=fmt,
                request_type=request_type,
                extras={"target": reference, "fewshot_ids": []},
            )
        )
    return out


def build_requests(
    model: ModelSpec,
    samples: pl.DataFrame,
    prompt: PromptTemplate,
    sampling: SamplingParams,
    plan: TaskPlan | None = None,
) -> list[GenerationRequest]:
    """One request per row of ``samples``.

    Rows with a ``sample_index`` above 0 (extra completions of a problem) sample with the
    seed ``sampling.seed + sample_index``, so every completion is its own, reproducible
    draw with its own cache entry.

    ``plan`` adds what the dataset asks for: few-shot examples (their ids in
    ``extras["fewshot_ids"]``), the prompt format, and for a multiple-choice dataset
    scored by log-likelihood the ``choices``: each continuation exactly as scored, the
    target delimiter then the choice's text (lm-evaluation-harness style). Without a
    plan, requests are plain chat requests as before.
    """
    plan = plan or TaskPlan(prompt_format=model.prompt_format)
    spec = plan.spec
    requests = []
    identity = model.identity()
    indices = (
        samples["sample_index"].to_list()
        if "sample_index" in samples.columns
        else [0] * samples.height
    )
    columns = set(samples.columns)
    for row, index in zip(samples.iter_rows(named=True), indices, strict=True):
        item = {
            "sample_id": row["sample_id"],
            "fields": json.loads(row["fields"]),
            "target": row["target"],
            "targets": list(row["targets"] or []) if "targets" in columns else [row["target"]],
            "choices": list(row["choices"] or []) if "choices" in columns else [],
        }
        examples: list[dict[str, Any]] = []
        if spec is not None and spec.fewshot:
            examples = select_fewshot(
                plan.fewshot_pool,
                item["sample_id"],
                item["fields"],
                spec.fewshot.n,
                spec.fewshot.seed,
                same_split=plan.same_split,
            )
        messages = render_request_messages(prompt, item, examples, plan)
        choices: tuple[str, ...] = ()
        reference = row["target"]
        if spec is not None and spec.multiple_choice and plan.answer_mode == "loglikelihood":
            delimiter = spec.delimiter_for(plan.prompt_format)
            choices = tuple(f"{delimiter}{c}" for c in item["choices"])
        elif spec is not None and spec.multiple_choice:
            reference = LETTERS[item["choices"].index(item["target"])]  # the letter to write
        row_sampling = sampling.merged({"seed": sampling.seed + index}) if index else sampling
        requests.append(
            GenerationRequest(
                request_hash=request_hash(
                    identity, row_sampling, messages, choices, plan.prompt_format
                ),
                sample_id=row["sample_id"],
                messages=messages,
                sampling=row_sampling,
                choices=choices,
                prompt_format=plan.prompt_format,
                extras={
                    "target": reference,
                    "fewshot_ids": [e["sample_id"] for e in examples],
                },
            )
        )
    return requests


def partition_requests(
    catalog: Catalog, store: Store, model: str, dataset: str, sample_limit: int | None = None
) -> tuple[pl.DataFrame, PromptTemplate, list[GenerationRequest], AnswerMode]:
    """A partition's samples, prompt, requests (rendered, hashed) and answer mode; no model call."""
    spec = catalog.model(model)
    samples, prompt = load_inputs(store, dataset)
    mode = catalog.answer_mode(model, dataset)
    if mode == "not_applicable":
        # Nothing to ask: an empty table says the cell ran and holds no answers.
        samples = samples.head(0)
    samples = limit_samples(samples, sample_limit, per_task=catalog.limits_per_task(dataset))
    samples = expand_samples(samples, catalog.samples_per_problem(dataset))
    sampling = sampling_for(catalog, spec, dataset)
    plan = TaskPlan.for_model(catalog, spec, dataset)
    if catalog.dataset_specs[dataset].lm_eval:
        requests = build_lm_eval_requests(
            catalog.dataset(dataset).lm_eval, spec, samples, sampling, plan
        )
    else:
        requests = build_requests(spec, samples, prompt, sampling, plan)
    return samples, prompt, requests, mode


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
    run: RunOrigin | None = None,
    route: str | None = None,
    batch_wait: bool = True,
    batch_fallback_online: bool = False,
) -> GenerateReport:
    """Generate the completions of ``dataset`` with ``model`` and write them.

    One completion per sample, or ``samples_per_problem`` of them when the dataset asks
    for several (see :func:`expand_samples`); ``sample_limit`` counts problems.

    Requests whose hash is in the response cache are not sent again, so a re-run with
    nothing changed makes no model calls and an edited prompt re-generates only the rows
    whose rendered messages changed.

    ``budget_usd``, ``partition_timeout_s`` and ``request_timeout_s`` bound API providers;
    with ``budget_scope`` (a run's id) the budget is shared by everything of that run
    (see :class:`~eval_pipeline.engine.RunControls`). ``route`` (``batch`` or ``online``)
    overrides the model's catalog ``route``; without ``batch_wait`` the batch route
    submits and raises ``BatchesPending`` instead of waiting (nothing is written); with
    ``batch_fallback_online`` what the batches left unanswered is sent online.

    Raises:
        GenerationStopped: An API run stopped early (rejected credentials, circuit breaker,
            budget, wall-clock cap). The generations file is written first, with the rows
            not reached recorded as not attempted; the message says how to resume.
    """
    spec = catalog.model(model)
    samples, prompt, requests, mode = partition_requests(
        catalog, store, model, dataset, sample_limit
    )
    own_provider = provider is None
    provider = provider or create_provider(spec)
    controls = RunControls(
        budget_usd=budget_usd,
        partition_timeout_s=partition_timeout_s,
        request_timeout_s=request_timeout_s,
        budget_ledger=str(store.budget_ledger(budget_scope)) if budget_scope else None,
        rate_leases=str(store.rate_leases_dir),
        route=route,
        batch_wait=batch_wait,
        batch_fallback_online=batch_fallback_online,
        partition=PartitionKey(model=model, dataset=dataset).key,
        batch_dir=str(store.runs_dir / "batches"),
        run_id=run.run_id if run is not None else None,
    )

    def send(batch: list[GenerationRequest]) -> EngineResult:
        return run_requests(
            provider,
            spec,
            batch,
            ResponseCache(store.cache_dir),
            use_cache=use_cache,
            progress=progress,
            progress_every_s=progress_every_s,
            controls=controls,
        )

    turns_field = catalog.dataset_specs[dataset].turns_field
    turn_completions: list[list[str | None]] | None = None
    try:
        result = send(requests)
        if turns_field:
            # Later turns go out after the model's own earlier answers (stages/_turns.py).
            talk = converse(spec, requests, result, user_turns(samples, turns_field), send)
            requests, result, turn_completions = talk.requests, talk.result, talk.turn_completions
    finally:
        if own_provider:
            provider.close()
    frame = generations_frame(
        spec, dataset, prompt.version, samples, requests, result, run or RunOrigin(), mode
    )
    if turn_completions is not None:
        frame = frame.with_columns(
            pl.Series("turn_completions", turn_completions, dtype=pl.List(pl.String))
        )
    path = store.write("generations", frame, dataset=dataset, model=model)
    if result.stopped:
        raise GenerationStopped(f"{model} on {dataset}: {result.stopped} Rows so far: {path}")
    return _generate_report(path, frame, prompt.version, samples, result, mode)


def _generate_report(
    path: Path,
    frame: pl.DataFrame,
    prompt_version: str,
    samples: pl.DataFrame,
    result: EngineResult,
    mode: AnswerMode,
) -> GenerateReport:
    """What :func:`generate` wrote: rows new and reused, errors, versions and the run's stats."""
    return GenerateReport(
        path=path,
        rows=frame.height,
        new_rows=frame.height - int(frame["cached"].sum()),
        reused_rows=int(frame["cached"].sum()),
        errors=int(frame["error"].is_not_null().sum()),
        prompt_version=prompt_version,
        dataset_version=samples["dataset_version"][0] if samples.height else "",
        stats=result.stats,
        answer_mode=mode,
    )


def generations_frame(
    spec: ModelSpec,
    dataset: str,
    prompt_version: str,
    samples: pl.DataFrame,
    requests: list[GenerationRequest],
    result: EngineResult,
    run: RunOrigin,
    answer_mode: AnswerMode = "generate",
) -> pl.DataFrame:
    """One row per request, in dataset order, with provenance and (for cached rows) reuse.

    A choice request whose response lacks a log-likelihood for any choice is recorded as
    an error: without them the answer cannot be scored as the dataset asks.
    """
    n = len(requests)
    responses = result.responses
    logprobs: list[list[float] | None] = []
    tokens: list[list[int] | None] = []
    greedy: list[list[bool] | None] = []
    errors: list[str | None] = []
    completions: list[str | None] = []
    for request, response in zip(requests, responses, strict=True):
        lps, toks, flags, error = _choice_columns(request, response)
        logprobs.append(lps)
        tokens.append(toks)
        greedy.append(flags)
        errors.append(error)
        # A choice without its log-likelihood cannot be scored: no completion either.
        completions.append(None if error else response.completion)
    return pl.DataFrame(
        {
            "model": [spec.slug] * n,
            "dataset": [dataset] * n,
            "prompt_version": [prompt_version] * n,
            "sample_id": [r.sample_id for r in requests],
            "dataset_version": samples["dataset_version"].to_list(),
            "provider": [spec.provider] * n,
            "model_id": [spec.model_id] * n,
            "model_revision": [spec.revision_label()] * n,
            "sampling_params": [stable_json(r.sampling.model_dump(mode="json")) for r in requests],
            "messages": [stable_json([m.as_dict() for m in r.messages]) for r in requests],
            "request_hash": [r.request_hash for r in requests],
            "completion": completions,
            "finish_reason": [x.finish_reason for x in responses],
            "input_tokens": [x.input_tokens for x in responses],
            "output_tokens": [x.output_tokens for x in responses],
            "cost_usd": [spec.pricing.cost(x.input_tokens, x.output_tokens) for x in responses],
            "error": errors,
            "code_version": [code_version()] * n,
            "prompt_format": [r.prompt_format for r in requests],
            "chat_template_hash": [
                x.info.get("chat_template_sha256") if r.prompt_format == "chat" else None
                for r, x in zip(requests, responses, strict=True)
            ],
            "fewshot_ids": [list(r.extras.get("fewshot_ids", [])) for r in requests],
            "turn_completions": [None] * n,
            "choice_logprobs": logprobs,
            "choice_tokens": tokens,
            "choice_greedy": greedy,
            "answer_mode": [answer_mode] * n,
            "versions": [versions_json()] * n,
            "latency_s": [x.latency_s for x in responses],
            "cached": result.cached,
            "run_id": [run.run_id] * n,
            "slurm_job_id": [run.slurm_job_id] * n,
            "slurm_node": [run.slurm_node] * n,
        },
        schema=GENERATIONS,
    )


def _choice_columns(
    request: GenerationRequest, response: GenerationResponse
) -> tuple[list[float] | None, list[int] | None, list[bool] | None, str | None]:
    """A response's choice log-likelihoods, token counts and greedy flags, in request order.

    A ``loglikelihood`` request (lm-eval's) also needs each choice's greedy flag; without
    them the response is an error, like one missing a log-likelihood.
    """
    if not request.choices or not response.ok:
        return None, None, None, response.error
    scores = response.choice_scores
    if scores is None:
        return None, None, None, "provider returned no choice scores"
    if [s.continuation for s in scores.scores] != list(request.choices):
        return None, None, None, "provider's choice scores do not match the request's choices"
    lps = [s.logprob for s in scores.scores]
    toks = [s.tokens for s in scores.scores]
    greedy = scores.greedy()
    if request.request_type == "loglikelihood" and greedy is None:
        return None, None, None, "provider returned no greedy flags for a loglikelihood request"
    return lps, toks, greedy, None
