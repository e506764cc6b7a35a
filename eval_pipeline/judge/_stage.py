"""The judge stage: one judge rates one partition's completions and writes ``judgements``.

This is the only place a judge rates generations. It runs inside the judge task (the
Dagster ``judgements`` step's inline runner, or the judge's SLURM job), never inside the
score stage: ``scores`` reads the rows written here the way it reads ``generations``
(:func:`eval_pipeline.judge.judge_scores`).

Several judges may rate the same partition (a panel), each in its own task and perhaps
on another machine; each replaces only its own rows of the partition's file, under a lock
beside that file, so neither loses the other's verdicts.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import code_version, content_hash
from eval_pipeline.core.schemas import JUDGEMENTS
from eval_pipeline.core.types import GenerationRequest, GenerationResponse, Message
from eval_pipeline.engine import RunControls, RunStats
from eval_pipeline.judge._calibration_store import load_calibration
from eval_pipeline.judge._call import ask_judge, items_from_frame, run_judge, verdict_choices
from eval_pipeline.judge._mtbench import (
    MT_BENCH_SCORER,
    judge_messages,
    parse_rating,
    rating_choices,
)
from eval_pipeline.judge._pairwise import (
    PAIRWISE_SCORER,
    PREFERENCE_CHOICES,
    PairwiseParams,
    baseline_answers,
    model_outcome,
    pair_messages,
    pair_prompt,
    parse_preference,
)
from eval_pipeline.judge._rubrics import JUDGE_SCORER, JudgeParams, MtBenchParams, rubric_prompt
from eval_pipeline.judge._verdict import MALFORMED, NO_RESPONSE, OK
from eval_pipeline.providers import Provider
from eval_pipeline.storage import Store

RUBRIC = "rubric"  # prompt_kind of a pointwise rubric verdict
MT_BENCH_SINGLE = "mt-bench-single"  # prompt_kind of an MT-Bench single-answer rating
PAIRWISE = "pairwise"  # prompt_kind of a pairwise comparison with a baseline
# The metric suffix of each order's judgement: the model's answer shown first, or second.
ORDERS = (("model-first", True), ("model-second", False))


def judge_identity(catalog: Catalog, judge: str) -> str:
    """A short hash of what makes ``judge`` answer as it does (see ``ModelSpec.identity``)."""
    return content_hash(catalog.model(judge).identity(), 16)


@dataclass
class JudgedPartition:
    """What one judge wrote for one partition: its rows and how the calls went."""

    rows: pl.DataFrame
    stats: RunStats = field(default_factory=RunStats)


def judge_frame(
    catalog: Catalog,
    store: Store,
    judge: str,
    model: str,
    dataset: str,
    frame: pl.DataFrame,
    *,
    provider: Provider | None = None,
    controls: RunControls | None = None,
) -> JudgedPartition:
    """Rate every completion of ``frame`` on each rubric of the dataset that names ``judge``.

    Args:
        catalog: The catalog (the judge is a catalog model).
        store: The store (response cache, calibrations).
        judge: The judge model's slug.
        model: The judged model's slug.
        dataset: The dataset name.
        frame: The partition's scoring frame (``sample_id``, ``prompt_version``,
            ``completion``, ``request_hash``, ``target``, ``fields``).
        provider: The judge's loaded provider (the task's), or None to create one.
        controls: The run's limits for API judges (budget, deadline).

    Returns:
        One ``judgements`` row per sample x rubric: the raw verdict, its parsed score, the
        calibrated score where the judge's calibration of that rubric version is fitted,
        tokens and cost; and the call counts.

    Raises:
        GenerationStopped: An API judge stopped early (budget, credentials, breaker).
    """
    spec = catalog.dataset_specs[dataset]
    judge_spec = catalog.model(judge)
    identity = judge_identity(catalog, judge)
    stats = RunStats()
    rows: list[dict[str, object]] = []
    for scorer in spec.scorers:
        if scorer.name == MT_BENCH_SCORER:
            mt = MtBenchParams.model_validate(scorer.params)
            if judge in mt.judges:
                rows += _mt_bench_rows(
                    catalog,
                    store,
                    judge,
                    model,
                    dataset,
                    scorer.metric_name,
                    mt,
                    frame,
                    provider=provider,
                    controls=controls,
                    stats=stats,
                )
            continue
        if scorer.name == PAIRWISE_SCORER:
            pair = PairwiseParams.model_validate(scorer.params)
            if judge in pair.judges:
                rows += _pairwise_rows(
                    catalog,
                    store,
                    judge,
                    model,
                    dataset,
                    scorer.metric_name,
                    pair,
                    frame,
                    provider=provider,
                    controls=controls,
                    stats=stats,
                )
            continue
        if scorer.name != JUDGE_SCORER:
            continue
        params = JudgeParams.model_validate(scorer.params)
        if judge not in params.judges:
            continue
        prompt = rubric_prompt(catalog.root, params.rubric)
        calls = run_judge(
            catalog,
            store,
            judge,
            prompt,
            items_from_frame(frame, params.question_field),
            max_tokens=params.max_tokens,
            provider=provider,
            controls=controls,
        )
        calibration = load_calibration(store, judge, params.rubric, prompt.version)
        raw = [c.score for c in calls]
        calibrated: list[float | None] = [None] * len(raw)
        if calibration is not None:
            mapped = calibration.apply([np.nan if v is None else v for v in raw])
            calibrated = [None if v is None else float(m) for v, m in zip(raw, mapped, strict=True)]
        judged = frame.select("sample_id", "prompt_version", "request_hash").iter_rows()
        for call, cal, (sample_id, prompt_version, judged_hash) in zip(
            calls, calibrated, judged, strict=True
        ):
            response = call.response
            tokens_in = response.input_tokens if response else 0
            tokens_out = response.output_tokens if response else 0
            cost = judge_spec.pricing.cost(tokens_in, tokens_out)
            if call.request is not None:
                stats.total += 1
                if call.cached:
                    stats.cached += 1
                elif response is not None:
                    stats.model_calls += 1
                    stats.input_tokens += tokens_in
                    stats.output_tokens += tokens_out
                    stats.wall_s += response.latency_s
                    stats.cost_usd += cost
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "prompt_version": prompt_version,
                    "sample_id": sample_id,
                    "metric": scorer.metric_name,
                    "judge": judge,
                    "judge_revision": judge_spec.revision,
                    "judge_identity": identity,
                    "prompt_kind": RUBRIC,
                    "rubric_version": prompt.version,
                    "request_hash": call.request.request_hash if call.request else None,
                    "judged_hash": judged_hash,
                    "verdict": response.completion if response else None,
                    "status": call.verdict.status,
                    "score": call.score,
                    "reason": call.verdict.reason,
                    "problem": call.verdict.problem,
                    "calibrated": cal,
                    "calibration_version": calibration.version
                    if calibration is not None and cal is not None
                    else None,
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost_usd": cost,
                    "cached": call.cached,
                    "latency_s": response.latency_s if response else 0.0,
                    "code_version": code_version(),
                }
            )
    return JudgedPartition(rows=pl.DataFrame(rows, schema=JUDGEMENTS), stats=stats)


def _mt_bench_rows(
    catalog: Catalog,
    store: Store,
    judge: str,
    model: str,
    dataset: str,
    metric: str,
    params: MtBenchParams,
    frame: pl.DataFrame,
    *,
    provider: Provider | None,
    controls: RunControls | None,
    stats: RunStats,
) -> list[dict[str, object]]:
    """Rate every turn of every answered conversation 1-10 as MT-Bench does."""
    judge_spec = catalog.model(judge)
    choices = rating_choices() if verdict_choices(judge_spec.provider) else ()
    keys: list[tuple[str, str | None, str | None, int]] = []
    conversations: list[tuple[str, tuple[Message, ...]] | None] = []
    versions: list[str] = []
    for row in frame.iter_rows(named=True):
        fields = json.loads(row["fields"]) if row["fields"] else {}
        turns = [str(t) for t in fields.get("turns") or []]
        answers = list(row.get("turn_completions") or [row["completion"]])
        category = str(fields.get("category", ""))
        references = [str(r) for r in fields.get("references") or []]
        for turn in range(1, len(turns) + 1):
            keys.append((row["sample_id"], row["prompt_version"], row["request_hash"], turn))
            given = answers[:turn]
            prompt, messages = judge_messages(
                category, turn, turns, [a or "" for a in given], references
            )
            versions.append(prompt.version)
            done = len(given) == turn and all(a is not None for a in given)
            conversations.append((row["sample_id"], messages) if done else None)
    answered = ask_judge(
        catalog,
        store,
        judge,
        conversations,
        choices,
        max_tokens=params.max_tokens,
        provider=provider,
        controls=controls,
    )
    identity = judge_identity(catalog, judge)
    rows: list[dict[str, object]] = []
    for (sample_id, prompt_version, judged_hash, turn), version, reply in zip(
        keys, versions, answered, strict=True
    ):
        request, response, cached = reply if reply is not None else (None, None, False)
        text = _reply_text(response)
        score = _expected_rating(response) if choices else parse_rating(text)
        status, problem, tokens_in, tokens_out, cost = _settle(
            reply,
            score,
            judge_spec.pricing.cost,
            stats,
            unanswered=f"no answer to turn {turn} to judge",
            unreadable="no [[rating]] from 1 to 10 in the reply",
        )
        rows.append(
            _row(
                model,
                dataset,
                prompt_version,
                sample_id,
                f"{metric}:turn{turn}",
                judge,
                judge_spec.revision,
                identity,
                MT_BENCH_SINGLE,
                version,
                request.request_hash if request else None,
                judged_hash,
                response.completion if response else None,
                status,
                score,
                "",
                problem,
                tokens_in,
                tokens_out,
                cost,
                cached,
                response.latency_s if response else 0.0,
            )
        )
    return rows


def _pairwise_rows(
    catalog: Catalog,
    store: Store,
    judge: str,
    model: str,
    dataset: str,
    metric: str,
    params: PairwiseParams,
    frame: pl.DataFrame,
    *,
    provider: Provider | None,
    controls: RunControls | None,
    stats: RunStats,
) -> list[dict[str, object]]:
    """Judge every completion against its baseline in both orders."""
    judge_spec = catalog.model(judge)
    choices = PREFERENCE_CHOICES if verdict_choices(judge_spec.provider) else ()
    baselines = baseline_answers(store, params, dataset, frame)
    keys: list[tuple[str, str | None, str | None, str, bool]] = []
    conversations: list[tuple[str, tuple[Message, ...]] | None] = []
    for row, baseline in zip(frame.iter_rows(named=True), baselines, strict=True):
        fields = json.loads(row["fields"]) if row["fields"] else {}
        question = str(fields.get(params.question_field, ""))
        answer = row["completion"]
        for suffix, model_first in ORDERS:
            keys.append(
                (row["sample_id"], row["prompt_version"], row["request_hash"], suffix, model_first)
            )
            if answer is None or baseline is None:
                conversations.append(None)
                continue
            a, b = (answer, baseline) if model_first else (baseline, answer)
            conversations.append((row["sample_id"], pair_messages(question, a, b)))
    answered = ask_judge(
        catalog,
        store,
        judge,
        conversations,
        choices,
        max_tokens=params.max_tokens,
        provider=provider,
        controls=controls,
    )
    identity = judge_identity(catalog, judge)
    version = pair_prompt().version
    rows: list[dict[str, object]] = []
    for (sample_id, prompt_version, judged_hash, suffix, model_first), reply in zip(
        keys, answered, strict=True
    ):
        request, response, cached = reply if reply is not None else (None, None, False)
        preference = parse_preference(_reply_text(response))
        score = model_outcome(preference, model_first)
        status, problem, tokens_in, tokens_out, cost = _settle(
            reply,
            score,
            judge_spec.pricing.cost,
            stats,
            unanswered="no answer (or no baseline answer) to compare",
            unreadable="no [[A]], [[B]] or [[C]] in the reply",
        )
        rows.append(
            _row(
                model,
                dataset,
                prompt_version,
                sample_id,
                f"{metric}:{suffix}",
                judge,
                judge_spec.revision,
                identity,
                PAIRWISE,
                version,
                request.request_hash if request else None,
                judged_hash,
                response.completion if response else None,
                status,
                score,
                preference or "",
                problem,
                tokens_in,
                tokens_out,
                cost,
                cached,
                response.latency_s if response else 0.0,
            )
        )
    return rows


def _reply_text(response: GenerationResponse | None) -> str | None:
    """The judge's reply, or None when the call failed."""
    return response.completion if response is not None and response.ok else None


def _settle(
    reply: tuple[GenerationRequest, GenerationResponse, bool] | None,
    score: float | None,
    cost_of: Callable[[int, int], float],
    stats: RunStats,
    *,
    unanswered: str,
    unreadable: str,
) -> tuple[str, str, int, int, float]:
    """A judge reply's status, problem, tokens in and out, and cost; counted in ``stats``.

    ``unanswered`` is the problem when nothing was sent (no answer to judge), ``unreadable``
    when the reply held no verdict; ``score`` is the verdict read from the reply.
    """
    request, response, cached = reply if reply is not None else (None, None, False)
    status = (
        OK if score is not None else (NO_RESPONSE if _reply_text(response) is None else MALFORMED)
    )
    problem = ""
    if reply is None:
        problem = unanswered
    elif status == NO_RESPONSE:
        problem = f"judge call failed: {response.error if response else ''}"
    elif status == MALFORMED:
        problem = unreadable
    tokens_in = response.input_tokens if response else 0
    tokens_out = response.output_tokens if response else 0
    cost = cost_of(tokens_in, tokens_out)
    _count(stats, request, response, cached, cost)
    return status, problem, tokens_in, tokens_out, cost


def _count(
    stats: RunStats,
    request: GenerationRequest | None,
    response: GenerationResponse | None,
    cached: bool,
    cost: float,
) -> None:
    """Add one judge call to the task's counts."""
    if request is None:
        return
    stats.total += 1
    if cached:
        stats.cached += 1
    elif response is not None:
        stats.model_calls += 1
        stats.input_tokens += response.input_tokens
        stats.output_tokens += response.output_tokens
        stats.wall_s += response.latency_s
        stats.cost_usd += cost


def _row(
    model: str,
    dataset: str,
    prompt_version: str | None,
    sample_id: str,
    metric: str,
    judge: str,
    revision: str | None,
    identity: str,
    kind: str,
    version: str,
    request_hash: str | None,
    judged_hash: str | None,
    verdict: str | None,
    status: str,
    score: float | None,
    reason: str,
    problem: str,
    tokens_in: int,
    tokens_out: int,
    cost: float,
    cached: bool,
    latency_s: float,
) -> dict[str, object]:
    """One uncalibrated ``judgements`` row."""
    return {
        "model": model,
        "dataset": dataset,
        "prompt_version": prompt_version,
        "sample_id": sample_id,
        "metric": metric,
        "judge": judge,
        "judge_revision": revision,
        "judge_identity": identity,
        "prompt_kind": kind,
        "rubric_version": version,
        "request_hash": request_hash,
        "judged_hash": judged_hash,
        "verdict": verdict,
        "status": status,
        "score": score,
        "reason": reason,
        "problem": problem,
        "calibrated": None,
        "calibration_version": None,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "cached": cached,
        "latency_s": latency_s,
        "code_version": code_version(),
    }


def _expected_rating(response: GenerationResponse | None) -> float | None:
    """A choice-decoded rating: the probability-weighted mean over 1-10 (None if absent)."""
    scores = response.choice_scores if response else None
    logprobs = scores.logprobs() if scores else None
    if not logprobs:
        return parse_rating(response.completion) if response and response.ok else None
    scored = [(parse_rating(t), float(lp)) for t, lp in logprobs.items()]
    pairs = [(v, lp) for v, lp in scored if v is not None]
    if not pairs:
        return None
    top = max(lp for _, lp in pairs)
    weights = np.exp(np.array([lp - top for _, lp in pairs]))
    return float(np.dot(np.array([v for v, _ in pairs]), weights) / weights.sum())


def write_judgements(
    store: Store, dataset: str, model: str, judge: str, rows: pl.DataFrame
) -> Path:
    """Replace ``judge``'s rows of the partition's ``judgements`` with ``rows``.

    Other judges' rows stay; the read-merge-write runs under an exclusive lock beside
    the partition's file, so two judge tasks finishing together keep both their rows.
    """
    target = store.path("judgements", dataset, model)
    with _partition_lock(target):
        old = store.read_optional("judgements", dataset, model)
        kept = old.filter(pl.col("judge") != judge) if old is not None else None
        merged = rows if kept is None or kept.is_empty() else pl.concat([kept, rows])
        return store.write("judgements", merged, dataset=dataset, model=model)


@contextmanager
def _partition_lock(target: Path) -> Iterator[None]:
    # A hidden file beside the table's file: *.parquet globs never see it.
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".judgements.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
