"""The calibration stage: judge the labelled responses, fit a map, store it.

Labels live in ``datasets/judge-labels/``: ``human.jsonl`` (ratings from ``eval-pipeline
label``) when a rubric has any, else the rule-assigned ``labels.jsonl`` (see the README
there for how they were made). One row per response x rubric (x rater) with the
response, its question, a reference answer and a 1-5 label.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Any: labels and calibration documents as JSON (any JSON type).
from typing import Any

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.engine import RunControls
from eval_pipeline.judge._agreement import agreement_interval
from eval_pipeline.judge._calibration_store import load_calibration_document, save_calibration
from eval_pipeline.judge._call import JudgeCall, JudgeItem, run_judge, verdict_choices
from eval_pipeline.judge._fit import (
    MIN_LABELS,
    CalibrationError,
    CalibrationResult,
    fit_calibration,
)
from eval_pipeline.judge._labelling import HUMAN_LABELS_FILE, RULE_LABELS_FILE, read_jsonl
from eval_pipeline.judge._rubrics import SCALE, discover_rubrics, rubric_prompt
from eval_pipeline.providers import Provider
from eval_pipeline.scoring import stats
from eval_pipeline.storage import Store

LABELS_FILE = RULE_LABELS_FILE
CALIBRATION_MAX_TOKENS = 64
# How many labelled responses are judged a second time for the self-consistency figure
# (the first ones with an answer); 0 turns it off. EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS
# overrides the default.
SELF_CONSISTENCY_ITEMS = 8
SELF_CONSISTENCY_ENV = "EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS"
# The repeated call's sampling seed is the judge's own plus this.
REPEAT_SEED_OFFSET = 1


@dataclass(frozen=True)
class CalibrationReport:
    """What the ``judge_calibration`` asset reports.

    ``status`` is ``fitted`` or ``refused``; a refused calibration carries the reason in
    ``message`` and no result, and scores stay uncalibrated.
    """

    judge: str
    rubric: str
    rubric_version: str
    status: str
    message: str
    labels: int
    parsed: int
    result: CalibrationResult | None
    path: Path
    reused: bool
    judge_calls: int
    labels_source: str = "rule"
    # Judge-human agreement of the raw scores with 95% bootstrap intervals:
    # {"kappa": {"value", "ci_low", "ci_high"}, "spearman": {...}}.
    agreement: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Self-consistency: {"value", "ci_low", "ci_high", "items", "same"} (empty when off).
    self_consistency: dict[str, float | None] = field(default_factory=dict)


def load_labels(root: str | Path, rubric: str) -> list[dict[str, Any]]:
    """The labelled responses for ``rubric`` that calibration fits against.

    Human ratings (``datasets/judge-labels/human.jsonl``, written by ``eval-pipeline
    label``) win: once a rubric has any, only they are used, one row per rating (a
    response rated by two people appears twice). Otherwise the rule-assigned labels of
    ``labels.jsonl``. Empty when neither file has rows for the rubric.

    Raises:
        CatalogError: A line is not JSON, or a label is not an integer 1-5.
    """
    root = Path(root)
    human = _rubric_rows(root / HUMAN_LABELS_FILE, HUMAN_LABELS_FILE, rubric)
    return human or _rubric_rows(root / LABELS_FILE, LABELS_FILE, rubric)


def labels_source(rows: list[dict[str, Any]]) -> str:
    """``human (<n> raters)``, ``rule`` or ``none``, from the rows' ``labelled_by``."""
    if not rows:
        return "none"
    raters = {str(r.get("labelled_by", "")) for r in rows}
    humans = {r for r in raters if r.startswith("human:")}
    if humans:
        return f"human ({len(humans)} rater{'s' if len(humans) != 1 else ''})"
    return "rule"


def _rubric_rows(path: Path, shown: Path, rubric: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in read_jsonl(path, str(shown)):
        if row.get("rubric") != rubric:
            continue
        label = row.get("label")
        if (
            isinstance(label, bool)
            or not isinstance(label, int)
            or not SCALE[0] <= label <= SCALE[1]
        ):
            raise CatalogError(
                str(shown), f"line {lineno}: label", f"must be an integer 1-5, got {label!r}"
            )
        rows.append(row)
    return rows


def calibrate_judge(
    catalog: Catalog,
    store: Store,
    judge: str,
    rubric: str,
    *,
    provider: Provider | None = None,
    max_tokens: int = CALIBRATION_MAX_TOKENS,
    min_labels: int | None = None,
    controls: RunControls | None = None,
    self_consistency_items: int | None = None,
) -> CalibrationReport:
    """Judge every labelled response of ``rubric`` with ``judge`` and fit a calibration.

    The fit is skipped (and the stored one reused) when the labels, the rubric version
    and the judge's identity are unchanged. Judge calls go through the response cache,
    so re-fitting after a code change costs no model calls either.

    The first ``self_consistency_items`` answered responses (default
    :data:`SELF_CONSISTENCY_ITEMS`, or ``$EVAL_PIPELINE_SELF_CONSISTENCY_ITEMS``; 0 turns
    it off) are judged again for the self-consistency figure (:func:`self_consistency`).
    """
    repeats = self_consistency_count(self_consistency_items)
    known = discover_rubrics(catalog.root)
    if rubric not in known:
        raise ValueError(f"unknown rubric {rubric!r}; known: {', '.join(known)}")
    if judge not in catalog.models:
        raise CatalogError(
            "models.yaml",
            "models",
            f"unknown judge model '{judge}' named by an llm_judge scorer "
            f"(known: {', '.join(catalog.model_slugs)})",
        )
    prompt = rubric_prompt(catalog.root, rubric)
    labels = load_labels(catalog.root, rubric)
    spec = catalog.model(judge)
    fingerprint = content_hash(
        {
            "labels": labels,
            "rubric_version": prompt.version,
            "judge": spec.identity(),
            "sampling": spec.sampling.model_dump(mode="json"),
            "max_tokens": max_tokens,
            "choices": list(verdict_choices(spec.provider)),
            "min_labels": min_labels,
            "self_consistency_items": repeats,
        },
        16,
    )
    stored = load_calibration_document(store, judge, rubric)
    if stored is not None and stored.get("fingerprint") == fingerprint:
        return _report(store, judge, rubric, prompt.version, stored, reused=True, calls=0)
    items = [
        JudgeItem(
            sample_id=str(row["id"]),
            question=str(row["question"]),
            answer=str(row["answer"]),
            reference=str(row.get("reference", "")),
        )
        for row in labels
    ]
    calls = run_judge(
        catalog,
        store,
        judge,
        prompt,
        items,
        max_tokens=max_tokens,
        provider=provider,
        controls=controls,
    )
    pairs = [
        (c.score, float(row["label"]))
        for c, row in zip(calls, labels, strict=True)
        if c.score is not None
    ]
    statuses: dict[str, int] = {}
    for c in calls:
        statuses[c.verdict.status] = statuses.get(c.verdict.status, 0) + 1
    document: dict[str, Any] = {
        "judge": judge,
        "rubric": rubric,
        "rubric_version": prompt.version,
        "fingerprint": fingerprint,
        "labels": len(labels),
        "labels_source": labels_source(labels),
        "parsed": len(pairs),
        "verdict_statuses": statuses,
        "verdicts": [
            {
                "id": c.item.sample_id,
                "label": row["label"],
                "status": c.verdict.status,
                "score": c.score,
            }
            for c, row in zip(calls, labels, strict=True)
        ],
    }
    document["judge_human_agreement"] = judge_human_agreement(
        [p[0] for p in pairs], [p[1] for p in pairs]
    )
    repeat_calls = 0
    if repeats > 0:
        first = [c for c in calls if c.request is not None][:repeats]
        again = run_judge(
            catalog,
            store,
            judge,
            prompt,
            [c.item for c in first],
            max_tokens=max_tokens,
            provider=provider,
            controls=controls,
            seed_offset=REPEAT_SEED_OFFSET,
            use_cache=False,
        )
        document["self_consistency"] = self_consistency(first, again)
        repeat_calls = sum(1 for c in again if c.request is not None)
    try:
        result = fit_calibration(
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            low=SCALE[0],
            high=SCALE[1],
            label=f"judge {judge} on rubric {rubric}",
            min_labels=MIN_LABELS if min_labels is None else min_labels,
        )
    except CalibrationError as exc:
        document.update(status="refused", message=str(exc))
    else:
        document.update(status="fitted", message=f"chose {result.method}", result=result.to_json())
    save_calibration(store, judge, rubric, document)
    sent = sum(1 for c in calls if c.request is not None and not c.cached) + repeat_calls
    return _report(store, judge, rubric, prompt.version, document, reused=False, calls=sent)


def _report(
    store: Store,
    judge: str,
    rubric: str,
    rubric_version: str,
    document: dict[str, Any],
    *,
    reused: bool,
    calls: int,
) -> CalibrationReport:
    result = (
        CalibrationResult.from_json(document["result"]) if document["status"] == "fitted" else None
    )
    return CalibrationReport(
        judge=judge,
        rubric=rubric,
        rubric_version=rubric_version,
        status=document["status"],
        message=document["message"],
        labels=document["labels"],
        parsed=document["parsed"],
        result=result,
        path=store.calibration_path(judge, rubric),
        reused=reused,
        judge_calls=calls,
        labels_source=document.get("labels_source", "rule"),
        agreement=document.get("judge_human_agreement", {}),
        self_consistency=document.get("self_consistency", {}),
    )


def self_consistency_count(items: int | None) -> int:
    """How many responses to judge twice: ``items``, else the environment's, else the default.

    Raises:
        ValueError: The count (or the environment variable) is not a whole number >= 0.
    """
    if items is None:
        raw = os.environ.get(SELF_CONSISTENCY_ENV, "").strip()
        try:
            items = int(raw) if raw else SELF_CONSISTENCY_ITEMS
        except ValueError:
            raise ValueError(
                f"{SELF_CONSISTENCY_ENV} must be a whole number >= 0, got {raw!r}"
            ) from None
    if items < 0:
        raise ValueError(f"self_consistency_items must be >= 0, got {items}")
    return items


def _verdict_key(call: JudgeCall) -> float:
    # The verdict as a number to compare: the chosen score, or -1 for no readable score
    # (two unreadable replies count as the same verdict).
    score = call.verdict.score
    return float(score) if call.verdict.ok and score is not None else -1.0


def self_consistency(first: list[JudgeCall], again: list[JudgeCall]) -> dict[str, float | None]:
    """The share of ``first``'s verdicts that ``again`` (the same items, asked anew) repeats.

    With its 95% seeded bootstrap interval over the items (:func:`agreement_interval`;
    None below 3 items). A verdict is its score on the scale (for a choice-decoding judge,
    the chosen verdict's), or "unreadable".
    """
    x = [_verdict_key(c) for c in first]
    y = [_verdict_key(c) for c in again]

    def share(a: Sequence[float], b: Sequence[float]) -> float:
        return float(sum(1 for u, v in zip(a, b, strict=True) if u == v) / len(a))

    interval = agreement_interval(share, x, y)
    same = sum(1 for u, v in zip(x, y, strict=True) if u == v)
    return {
        "value": share(x, y) if x else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "items": float(len(x)),
        "same": float(same),
    }


def judge_human_agreement(
    scores: list[float], labels: list[float]
) -> dict[str, dict[str, float | None]]:
    """Quadratic-weighted kappa and Spearman of judge scores with labels, with 95% CIs."""
    out: dict[str, dict[str, float | None]] = {}
    figures = {
        "kappa": lambda x, y: stats.quadratic_weighted_kappa(x, y, SCALE[0], SCALE[1]),
        "spearman": stats.spearman,
    }
    for name, statistic in figures.items():
        interval = agreement_interval(statistic, scores, labels)
        out[name] = {
            "value": statistic(scores, labels) if len(scores) >= 2 else None,
            "ci_low": interval[0] if interval else None,
            "ci_high": interval[1] if interval else None,
        }
    return out


def stored_calibrations(store: Store) -> list[CalibrationReport]:
    """Every calibration in the store, by judge and rubric."""
    reports = []
    for judge, rubric in store.calibration_pairs():
        document = load_calibration_document(store, judge, rubric)
        if document is not None:
            version = document.get("rubric_version", "")
            reports.append(_report(store, judge, rubric, version, document, reused=True, calls=0))
    return reports


def calibration_markdown(reports: list[CalibrationReport]) -> str:
    """A Markdown table of calibration reports (judge, rubric, method, agreement before/after)."""
    lines = [
        "| judge | rubric | labels | labelled by | readable verdicts | method | "
        "Spearman before/after | QW kappa before/after | MAE before/after | "
        "self-consistency [95% CI] (items) |",
        "|---|---|---:|---|---:|---|---|---|---|---|",
    ]

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def consistency(r: CalibrationReport) -> str:
        c = r.self_consistency
        if c.get("value") is None:
            return "-"
        items = int(c["items"] or 0)
        return f"{f(c['value'])} [{f(c.get('ci_low'))}, {f(c.get('ci_high'))}] ({items})"

    for r in reports:
        if r.result is None:
            lines.append(
                f"| {r.judge} | {r.rubric} | {r.labels} | {r.labels_source} | {r.parsed} | "
                f"refused | - | - | - | {consistency(r)} |"
            )
            continue
        b, a = r.result.before, r.result.after
        lines.append(
            f"| {r.judge} | {r.rubric} | {r.labels} | {r.labels_source} | {r.parsed} | "
            f"{r.result.method} | "
            f"{f(b.spearman)} / {f(a.spearman)} | {f(b.kappa)} / {f(a.kappa)} | "
            f"{f(b.mae)} / {f(a.mae)} | {consistency(r)} |"
        )
    return "\n".join(lines)
