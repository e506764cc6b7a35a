"""Scoring and aggregating ``lm_eval`` datasets with lm-eval's own metrics.

A document's scores come from its task's filters and ``process_results`` (see
:meth:`eval_pipeline.catalog._lmeval.LmEvalSource.score`); one ``scores`` row per
document and metric key holds the number paired tests use (``value``) and, in ``detail``,
lm-eval's item itself (``{"item": ..., "answer": <filtered answer>}``), from which the
aggregate stage computes lm-eval's aggregations: a perplexity or an IFEval
instruction-level accuracy is not a mean of per-document numbers.

A document whose checker needs data that cannot be had here (IFEval's sentence and word
counts need NLTK's ``punkt`` tokenizer, which no package index reachable from these
machines ships) is left unscored: its rows have no value and say why in ``detail``, and
aggregates count only the documents scored the official way.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from eval_pipeline.catalog import Catalog, LmEvalSource, item_value, metric_key
from eval_pipeline.core.keys import PROBLEM_SEPARATOR, problem_id
from eval_pipeline.core.types import ChoiceScores
from eval_pipeline.scoring import parse_letter, stats
from eval_pipeline.stages.generate import LETTERS, doc_ref

BOOTSTRAP_SEED = 20240601
# The z of a two-sided 95% interval, for metrics whose interval comes from a stderr.
Z95 = 1.959963984540054


def score_frame(catalog: Catalog, model: str, dataset: str, joined: pl.DataFrame) -> pl.DataFrame:
    """``sample_id``, ``prompt_version``, ``request_hash``, ``metric``, ``value``, ``detail``.

    One row per document and metric. A task with ``repeats`` has several generations per
    document (``<doc>#<i>``); its filters (a majority vote, the first ``k``) read them
    together, so its rows carry the document's id and its first sample's request hash.
    """
    source: LmEvalSource = catalog.dataset(dataset).lm_eval
    letters = catalog.answer_mode(model, dataset) == "generate"
    scored: list[tuple[dict[str, Any], dict[str, tuple[Any, Any]] | None, str | None]] = []
    keys: dict[str, list[str]] = {}
    for document in _documents(joined):
        first = document[0]
        fields = json.loads(first["fields"])
        leaf, doc_id = doc_ref(first["sample_id"], fields)
        metrics, problem = _score_document(source, leaf, doc_id, fields["doc"], document, letters)
        scored.append((first, metrics, problem))
        if metrics:
            known = keys.setdefault(leaf, [])
            known += [k for k in metrics if k not in known]
    out: dict[str, list[Any]] = {
        k: [] for k in ("sample_id", "prompt_version", "request_hash", "metric", "value", "detail")
    }
    for row, metrics, problem in scored:
        leaf = json.loads(row["fields"])["task"]
        names = list(metrics) if metrics else keys.get(leaf) or _declared_keys(source, leaf)
        for name in names:
            if metrics is not None and name in metrics:
                item, answer = metrics[name]
                detail: dict[str, Any] = {"item": item}
                if answer is not None:
                    detail["answer"] = answer
                value = item_value(item)
            else:
                value, detail = None, {"unscored": problem or "no score"}
            out["sample_id"].append(problem_id(row["sample_id"]))
            out["prompt_version"].append(row["prompt_version"])
            out["request_hash"].append(row["request_hash"])
            out["metric"].append(name)
            out["value"].append(value)
            out["detail"].append(json.dumps(detail, sort_keys=True))
    return pl.DataFrame(
        out,
        schema={
            "sample_id": pl.String,
            "prompt_version": pl.String,
            "request_hash": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
            "detail": pl.String,
        },
    )


def _documents(joined: pl.DataFrame) -> list[list[dict[str, Any]]]:
    # The generations of each document, in the table's order, its samples by index.
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for row in joined.iter_rows(named=True):
        sample_id = row["sample_id"]
        _, _, index = sample_id.partition(PROBLEM_SEPARATOR)
        grouped.setdefault(problem_id(sample_id), []).append((int(index or 0), row))
    return [[row for _, row in sorted(rows, key=lambda r: r[0])] for rows in grouped.values()]


def _score_document(
    source: LmEvalSource,
    leaf: str,
    doc_id: int,
    doc: dict[str, Any],
    rows: list[dict[str, Any]],
    letters: bool,
) -> tuple[dict[str, tuple[Any, Any]] | None, str | None]:
    kind = source.leaves[leaf].OUTPUT_TYPE
    row = rows[0]
    missing = [r["sample_id"] for r in rows if r["completion"] is None]
    if missing:
        return None, f"no answer for {', '.join(missing)} (see the generation's error)"
    if letters and kind == "multiple_choice":
        # A model that only writes answered with a letter: accuracy alone, by letter.
        choices = list(row["choices"] or [])
        picked = parse_letter(row["completion"], len(choices))
        gold = set(row["targets"] or [])
        hit = picked is not None and choices[picked] in gold
        answer = LETTERS[picked] if picked is not None else None
        return {"acc": (float(hit), answer)}, None
    scores = ChoiceScores.from_columns(
        row["choice_logprobs"] or [], row.get("choice_tokens"), row.get("choice_greedy")
    )
    if kind in ("multiple_choice", "loglikelihood"):
        # lm-eval's (log-likelihood, is_greedy) per continuation; unknown greedy is False.
        responses: list[Any] = [(s.logprob, bool(s.greedy)) for s in scores.scores]
    elif kind == "loglikelihood_rolling":
        responses = [scores.scores[0].logprob]
    else:  # every sample of the document, in order (lm-eval's repeats)
        responses = [r["completion"] for r in rows]
    try:
        return source.score(leaf, doc, doc_id, responses), None
    except LookupError as exc:
        if "punkt" in str(exc):
            return None, (
                "needs NLTK's punkt tokenizer data, which no package index reachable here "
                "ships; not scored (lm-eval's checker could not run)"
            )
        raise


def _declared_keys(source: LmEvalSource, leaf: str) -> list[str]:
    task = source.leaves[leaf]
    return [metric_key(m, f.name) for f in task._filters for m in task._metric_fn_list]


def aggregate_rows(
    catalog: Catalog, dataset: str, scores: pl.DataFrame, letters: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Whole-dataset rows and per-slice rows (leaf tasks and subgroups) of lm-eval metrics.

    Each row: ``metric``, ``n``, ``mean`` (lm-eval's aggregated value), ``stderr``,
    ``ci_low``, ``ci_high`` and, for slices, ``slice``. A metric aggregated by a mean over
    all documents (a single task, or a group weighted by size) gets the seeded bootstrap
    interval every dataset gets; any other gets value ± 1.96 stderr where lm-eval has a
    stderr, else none.
    """
    source: LmEvalSource = catalog.dataset(dataset).lm_eval
    single = next(iter(source.leaves)) if not source.is_group else None
    items: dict[str, dict[str, list[Any]]] = {}
    values: dict[str, list[float]] = {}
    for sample_id, metric, value, detail in scores.select(
        "sample_id", "metric", "value", "detail"
    ).iter_rows():
        parsed = json.loads(detail) if detail else {}
        if "item" not in parsed:
            continue
        leaf = single or sample_id.rsplit("/", 1)[0]
        items.setdefault(leaf, {}).setdefault(metric, []).append(parsed["item"])
        if value is not None:
            values.setdefault(metric, []).append(value)
    leaves, groups = source.aggregate(items)
    if single is not None:
        top = leaves.get(single, {})
    elif source.name in groups:
        top = groups[source.name]
    else:
        top = _pooled(leaves)
    whole = []
    for metric, result in top.items():
        whole.append(_row(metric, result, values.get(metric) if _is_mean(source, metric) else None))
    slices = []
    if single is None:
        for name, metrics in [*leaves.items(), *groups.items()]:
            if name == source.name:
                continue
            for metric, result in metrics.items():
                slices.append({"slice": name, **_row(metric, result, None)})
    return whole, slices


def _is_mean(source: LmEvalSource, metric: str) -> bool:
    # Every leaf aggregates the metric by a mean, and a group weighs leaves by size: the
    # value is then the mean over all documents, which a bootstrap of them reproduces.
    from lm_eval.api.metrics import mean

    for leaf in source.leaves:
        agg = source.aggregation(leaf, metric)
        if agg is not None and agg is not mean:
            return False
    for group in source.groups:
        for config in group.aggregate_metric_list or []:
            if config.metric == metric.split(",", 1)[0] and not config.weight_by_size:
                return False
    return True


def _row(metric: str, result: dict[str, Any], bootstrap: list[float] | None) -> dict[str, Any]:
    value, stderr = result["value"], result["stderr"]
    if bootstrap:
        low, high = stats.bootstrap_ci(bootstrap, seed=BOOTSTRAP_SEED)
    elif stderr is not None:
        low, high = value - Z95 * stderr, value + Z95 * stderr
    else:
        low = high = None
    return {
        "metric": metric,
        "n": int(result["n"]),
        "mean": value,
        "stderr": stderr,
        "ci_low": low,
        "ci_high": high,
    }


def _pooled(leaves: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # A group without aggregate_metric_list (lm-eval reports its tasks alone): the
    # size-weighted mean of metrics every leaf reports, as MMLU-style groups do.
    shared = set.intersection(*(set(m) for m in leaves.values())) if leaves else set()
    out = {}
    for metric in sorted(shared):
        parts = [leaves[leaf][metric] for leaf in leaves]
        total = sum(p["n"] for p in parts)
        out[metric] = {
            "value": sum(p["value"] * p["n"] for p in parts) / total,
            "stderr": None,
            "n": total,
        }
    return out
