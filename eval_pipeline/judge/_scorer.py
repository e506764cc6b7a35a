"""The ``llm_judge`` scorer: judge models rate completions on a rubric.

Judge calls go through the same engine as generation (:func:`eval_pipeline.engine.run_requests`
with the store's response cache), so a re-run re-judges nothing that was judged before,
API judges get their rate limits, retries and circuit breaker, and every verdict records
its tokens and cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from eval_pipeline.calibration import load_calibration
from eval_pipeline.catalog import Catalog, PromptTemplate, ScorerSpec
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import code_version
from eval_pipeline.core.schemas import JUDGEMENTS
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.engine import (
    GenerationStopped,
    ResponseCache,
    RunControls,
    request_hash,
    run_requests,
)
from eval_pipeline.judge._rubrics import SCALE, JudgeParams, judge_metric_names, rubric_prompt
from eval_pipeline.judge._verdict import NO_RESPONSE, Verdict, parse_verdict
from eval_pipeline.providers import Provider, create_provider, provider_class
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class JudgeItem:
    """One response to judge."""

    sample_id: str
    question: str
    answer: str | None
    reference: str


@dataclass(frozen=True)
class JudgeCall:
    """A judged item: the request (None when nothing was sent), the reply and its verdict."""

    item: JudgeItem
    request: GenerationRequest | None
    response: GenerationResponse | None
    cached: bool
    verdict: Verdict

    @property
    def score(self) -> float | None:
        """The judge's score: None for an unreadable verdict.

        With choice decoding it is the probability-weighted mean over the scale (each
        score's weight is the model's probability of that verdict, normalised over the
        choices), which keeps the judge's uncertainty instead of only its top choice;
        otherwise the verdict's integer score.
        """
        if not self.verdict.ok:
            return None
        expected = expected_score(self.response)
        return expected if expected is not None else float(self.verdict.score)


@dataclass(frozen=True)
class JudgeOutput:
    """What one ``llm_judge`` scorer adds: score rows per metric and the verdict audit rows."""

    scores: list[pl.DataFrame]  # each: sample_id, metric, value, detail
    judgements: pl.DataFrame


def verdict_choices(provider: str) -> tuple[str, ...]:
    """The verdicts a judge on ``provider`` may choose from; empty means free-form JSON.

    Local judges (providers with choice decoding) pick the most likely of the scale's
    verdicts, ``{"score": 1}`` to ``{"score": 5}``: a small model that cannot be relied on
    to write the JSON object still gives a readable verdict, and it is the model's own
    ranking of the scores. Their verdicts carry no reason.
    """
    if not provider_class(provider).capabilities.choices:
        return ()
    return tuple(json.dumps({"score": s}) for s in range(SCALE[0], SCALE[1] + 1))


def expected_score(response: GenerationResponse | None) -> float | None:
    """The probability-weighted score of a choice-decoded verdict, or None.

    Reads ``choice_scores`` (verdict text -> log-likelihood); choices that do not parse as
    a verdict on the scale are left out.
    """
    scores = response.choice_scores if response else None
    logprobs = scores.logprobs() if scores else None
    if not logprobs:
        return None
    scored = [
        (float(v.score), float(lp))
        for text, lp in logprobs.items()
        if (v := parse_verdict(text)).ok and v.score is not None
    ]
    if not scored:
        return None
    values = np.array([s for s, _ in scored])
    weights = np.exp(np.array([lp for _, lp in scored]) - max(lp for _, lp in scored))
    return float(np.dot(values, weights) / weights.sum())


def run_judge(
    catalog: Catalog,
    store: Store,
    judge: str,
    prompt: PromptTemplate,
    items: Sequence[JudgeItem],
    *,
    max_tokens: int,
    provider: Provider | None = None,
    controls: RunControls | None = None,
) -> list[JudgeCall]:
    """Ask ``judge`` for a verdict on every item that has an answer; parse each strictly.

    ``controls`` bound API judges like generation (the run's budget, timeouts).

    Raises:
        GenerationStopped: An API judge stopped early (budget, credentials, breaker); the
            verdicts answered so far are cached.
    """
    spec = catalog.model(judge)
    # Greedy decoding: a verdict should not depend on the sampling seed.
    sampling = spec.sampling.merged({"temperature": 0.0, "max_tokens": max_tokens})
    identity = spec.identity()
    choices = verdict_choices(spec.provider)
    requests: list[GenerationRequest | None] = []
    for item in items:
        if item.answer is None:
            requests.append(None)
            continue
        messages = prompt.render(
            {"question": item.question, "answer": item.answer, "reference": item.reference}
        )
        requests.append(
            GenerationRequest(
                request_hash=request_hash(identity, sampling, messages, choices),
                sample_id=item.sample_id,
                messages=messages,
                sampling=sampling,
                choices=choices,
                extras={"target": item.reference, "role": "judge"},
            )
        )
    to_send = [r for r in requests if r is not None]
    responses: dict[int, tuple[GenerationResponse, bool]] = {}
    if to_send:
        own = provider is None
        provider = provider or create_provider(spec)
        try:
            result = run_requests(
                provider, spec, to_send, ResponseCache(store.cache_dir), controls=controls
            )
        finally:
            if own:
                provider.close()
        if result.stopped:
            raise GenerationStopped(f"judge {judge}: {result.stopped}")
        answered = iter(zip(result.responses, result.cached, strict=True))
        for i, r in enumerate(requests):
            if r is not None:
                responses[i] = next(answered)
    calls = []
    for i, (item, request) in enumerate(zip(items, requests, strict=True)):
        if request is None:
            calls.append(
                JudgeCall(
                    item,
                    None,
                    None,
                    False,
                    Verdict(NO_RESPONSE, None, problem="no answer to judge"),
                )
            )
            continue
        response, cached = responses[i]
        verdict = parse_verdict(response.completion if response.ok else None)
        if not response.ok:
            verdict = Verdict(NO_RESPONSE, None, problem=f"judge call failed: {response.error}")
        calls.append(JudgeCall(item, request, response, cached, verdict))
    return calls


def items_from_frame(frame: pl.DataFrame, question_field: str) -> list[JudgeItem]:
    """Judge items from a score-stage frame (``sample_id``, ``completion``, ``target``, ``fields``)."""
    items = []
    for row in frame.iter_rows(named=True):
        fields = json.loads(row["fields"]) if row["fields"] else {}
        items.append(
            JudgeItem(
                sample_id=row["sample_id"],
                question=str(fields.get(question_field, "")),
                answer=row["completion"],
                reference=row["target"] or "",
            )
        )
    return items


def judge_scores(
    catalog: Catalog,
    store: Store,
    model: str,
    dataset: str,
    scorer: ScorerSpec,
    frame: pl.DataFrame,
    *,
    providers: Mapping[str, Provider] | None = None,
) -> JudgeOutput:
    """Run one ``llm_judge`` scorer over a partition's completions.

    Args:
        catalog: The catalog (judges are catalog models).
        store: The store (response cache, calibrations).
        model: The judged model's slug.
        dataset: The dataset name.
        scorer: The dataset's ``llm_judge`` scorer spec.
        frame: ``sample_id``, ``prompt_version``, ``completion``, ``target``, ``fields``.
        providers: Providers to use instead of creating them, by judge slug (tests).

    Returns:
        Score frames for every metric of :func:`judge_metric_names` (null values where no
        verdict could be read; the detail says why) and the judgements audit rows.

    Raises:
        CatalogError: A judge is not in the catalog.
    """
    params = JudgeParams.model_validate(scorer.params)
    spec_file = f"datasets/{dataset}/dataset.yaml"
    for judge in params.judges:
        if judge not in catalog.models:
            raise CatalogError(
                spec_file,
                f"scorers[{scorer.metric_name}].params.judges",
                f"unknown judge model '{judge}' (known: {', '.join(catalog.model_slugs)})",
            )
    prompt = rubric_prompt(catalog.root, params.rubric)
    items = items_from_frame(frame, params.question_field)
    metric = scorer.metric_name
    sample_ids = frame["sample_id"].to_list()
    per_judge_raw: dict[str, list[float | None]] = {}
    per_judge_cal: dict[str, list[float | None]] = {}
    details: dict[str, list[str]] = {}
    audit = []
    prompt_versions = dict(zip(sample_ids, frame["prompt_version"].to_list(), strict=True))
    for judge in params.judges:
        calls = run_judge(
            catalog,
            store,
            judge,
            prompt,
            items,
            max_tokens=params.max_tokens,
            provider=(providers or {}).get(judge),
        )
        calibration = load_calibration(store, judge, params.rubric, prompt.version)
        raw = [c.score for c in calls]
        cal: list[float | None] = [None] * len(raw)
        if calibration is not None:
            mapped = calibration.apply([v if v is not None else np.nan for v in raw])
            cal = [None if v is None else float(m) for v, m in zip(raw, mapped, strict=True)]
        per_judge_raw[judge], per_judge_cal[judge] = raw, cal
        details[judge] = [
            c.verdict.reason if c.verdict.ok else f"{c.verdict.status}: {c.verdict.problem}"
            for c in calls
        ]
        spec = catalog.model(judge)
        for c, cal_value in zip(calls, cal, strict=True):
            response = c.response
            tokens_in = response.input_tokens if response else 0
            tokens_out = response.output_tokens if response else 0
            audit.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "prompt_version": prompt_versions[c.item.sample_id],
                    "sample_id": c.item.sample_id,
                    "metric": metric,
                    "judge": judge,
                    "rubric_version": prompt.version,
                    "request_hash": c.request.request_hash if c.request else None,
                    "verdict": response.completion if response else None,
                    "status": c.verdict.status,
                    "score": c.score,
                    "reason": c.verdict.reason,
                    "problem": c.verdict.problem,
                    "calibrated": cal_value,
                    "calibration_version": calibration.version
                    if calibration and cal_value is not None
                    else None,
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost_usd": spec.pricing.cost(tokens_in, tokens_out),
                    "cached": c.cached,
                    "latency_s": response.latency_s if response else 0.0,
                    "code_version": code_version(),
                }
            )
    names = judge_metric_names(metric, params)
    frames = [
        _frame(
            sample_ids, names[0], _mean_over(per_judge_raw), _panel_detail(details, params.judges)
        )
    ]
    if len(params.judges) > 1:
        for judge in params.judges:
            frames.append(
                _frame(sample_ids, f"{metric}:{judge}", per_judge_raw[judge], details[judge])
            )
    cal_versions = {
        j: (load_calibration(store, j, params.rubric, prompt.version) or None)
        for j in params.judges
    }
    cal_detail = ", ".join(
        f"{j}: {c.version}" if c is not None else f"{j}: uncalibrated"
        for j, c in cal_versions.items()
    )
    frames.append(
        _frame(
            sample_ids,
            f"{metric}:calibrated",
            _mean_over(per_judge_cal),
            [cal_detail] * len(sample_ids),
        )
    )
    return JudgeOutput(scores=frames, judgements=pl.DataFrame(audit, schema=JUDGEMENTS))


def _mean_over(per_judge: dict[str, list[float | None]]) -> list[float | None]:
    # A panel score averages the judges that gave a readable verdict; none: null.
    columns = list(per_judge.values())
    out: list[float | None] = []
    for values in zip(*columns, strict=True):
        got = [v for v in values if v is not None]
        out.append(float(np.mean(got)) if got else None)
    return out


def _panel_detail(details: dict[str, list[str]], judges: list[str]) -> list[str]:
    if len(judges) == 1:
        return details[judges[0]]
    return [
        "; ".join(f"{j}: {d}" for j, d in zip(judges, row, strict=True))
        for row in zip(*details.values(), strict=True)
    ]


def _frame(
    sample_ids: list[str], metric: str, values: list[float | None], detail: list[str]
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_id": sample_ids,
            "metric": [metric] * len(sample_ids),
            "value": values,
            "detail": detail,
        },
        schema={
            "sample_id": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
            "detail": pl.String,
        },
    )
