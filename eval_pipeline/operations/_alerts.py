"""Alerts: regression events, the Slack-compatible bodies built from them, and their delivery.

The plain half of alerting (no Dagster). The Dagster half is the ``alerts`` resource
(``eval_pipeline/resources/alerts.py``: the webhook URL and retry settings) and the
``regression_sensor`` / ``run_failure_sensor`` that read check results and failed runs
and post these bodies (``eval_pipeline/defs/sensors.py``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

# Any: alert payloads and check metadata as JSON (any JSON type).
from typing import Any

from eval_pipeline.core.keys import PartitionKey

# Slack renders at most 50 blocks; an alert lists one line per regressed metric and is cut
# well before that so a bad night stays readable.
MAX_LINES = 20


@dataclass(frozen=True)
class RegressionEvent:
    """One metric of one model x dataset partition that got worse than its baseline."""

    model: str
    dataset: str
    metric: str
    delta: float | None
    p_value: float | None
    baseline: str
    run_id: str
    run_url: str
    check_storage_id: int

    @property
    def key(self) -> str:
        """Identifies the event across ticks and restarts (one check result, one metric)."""
        return f"{self.check_storage_id}:{self.dataset}|{self.model}:{self.metric}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}


def regression_events(
    metadata: Mapping[str, Any],
    *,
    partition: str,
    run_id: str,
    run_url: str,
    check_storage_id: int,
) -> list[RegressionEvent]:
    """The events of one failed ``aggregates_regression`` result.

    Reads ``regressed_metrics`` (comma-separated), ``baseline`` and per metric
    ``<metric>/delta`` and ``<metric>/p_value``. A failed result that names no metric still
    gives one event (metric ``*``), because a failing check must never go unreported.
    """
    key = PartitionKey.parse(partition)
    names = [m.strip() for m in str(metadata.get("regressed_metrics") or "").split(",")]
    metrics = [m for m in names if m] or ["*"]
    return [
        RegressionEvent(
            model=key.model,
            dataset=key.dataset,
            metric=metric,
            delta=_number(metadata.get(f"{metric}/delta")),
            p_value=_number(metadata.get(f"{metric}/p_value")),
            baseline=str(metadata.get("baseline") or "?"),
            run_id=run_id,
            run_url=run_url,
            check_storage_id=check_storage_id,
        )
        for metric in metrics
    ]


def regression_alert(events: Sequence[RegressionEvent]) -> dict[str, Any]:
    """A Slack incoming-webhook body (``text`` + ``blocks``) listing ``events``.

    The same events also travel as plain data under ``eval_pipeline`` for receivers that
    are not Slack (Slack ignores the extra key).
    """
    partitions = sorted({f"{e.dataset}|{e.model}" for e in events})
    text = f":rotating_light: Regression in {len(partitions)} partition(s): " + ", ".join(
        partitions
    )
    lines = [_event_line(e) for e in events[:MAX_LINES]]
    if len(events) > MAX_LINES:
        lines.append(f"… and {len(events) - MAX_LINES} more")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        ],
        "eval_pipeline": {"kind": "regression", "events": [e.as_dict() for e in events]},
    }


def run_failure_alert(
    *,
    job_name: str,
    run_id: str,
    run_url: str,
    partition: str | None,
    failures: Sequence[tuple[str | None, str]],
) -> dict[str, Any]:
    """A Slack incoming-webhook body for a failed run.

    Args:
        job_name: The failed run's job.
        run_id: Its run id.
        run_url: A link to the run in the UI.
        partition: The run's partition key, if any.
        failures: ``(step key or None, error message)`` per failed step; the run's own
            failure message when no step failed.
    """
    where = f" for `{partition}`" if partition else ""
    text = f":x: Run of `{job_name}`{where} failed: <{run_url}|{run_id[:8]}>"
    lines = [
        f"• `{step or 'run'}`: {_first_line(message)}" for step, message in failures[:MAX_LINES]
    ]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "\n".join(lines) or "(no detail)"},
            },
        ],
        "eval_pipeline": {
            "kind": "run_failure",
            "job_name": job_name,
            "run_id": run_id,
            "run_url": run_url,
            "partition": partition,
            "failures": [{"step": s, "error": m} for s, m in failures],
        },
    }


def _event_line(event: RegressionEvent) -> str:
    delta = "n/a" if event.delta is None else f"{event.delta:+.4f}"
    p = "" if event.p_value is None else f", p={event.p_value:.3g}"
    return (
        f"• `{event.dataset}|{event.model}` *{event.metric}* {delta}{p} "
        f"vs `{event.baseline}` (<{event.run_url}|run {event.run_id[:8]}>)"
    )


def _first_line(message: str, limit: int = 300) -> str:
    line = (message or "").strip().splitlines()[0] if (message or "").strip() else "(no message)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# -- delivery: a JSON body to a webhook, with bounded retries ---------------------------

# Statuses worth another try: the receiver is throttling or briefly broken. Any other
# 4xx means the URL or the body is wrong, and repeating the request cannot fix it.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class PostResult:
    """How a delivery went: ``ok`` once the receiver answered 2xx."""

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PostResult:
    """POST ``payload`` as JSON to ``url``, retrying timeouts, connection errors, 429 and 5xx.

    Waits ``backoff_s * 2**n`` (with jitter) between attempts, or the receiver's
    ``Retry-After`` when it sends one (capped at 30 s). Never raises for delivery problems:
    the result says what happened, so a sensor can keep the alert for a later tick.

    Args:
        url: The webhook URL (a Slack incoming webhook or any JSON receiver).
        payload: The JSON body.
        attempts: Tries in all, at least one.
        backoff_s: The first wait between tries.
        timeout_s: Per-request timeout.
        sleep: Injected for tests.
    """
    import httpx  # on use: every command imports this module, few post an alert

    last_status: int | None = None
    last_error: str | None = None
    for attempt in range(1, max(1, attempts) + 1):
        wait = backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        try:
            response = httpx.post(url, json=payload, timeout=timeout_s)
        except httpx.HTTPError as exc:
            last_status, last_error = None, f"{type(exc).__name__}: {exc}"
        else:
            last_status = response.status_code
            if response.is_success:
                return PostResult(ok=True, attempts=attempt, status=last_status)
            last_error = f"HTTP {last_status}: {response.text[:200]}"
            if last_status not in RETRY_STATUSES:
                return PostResult(ok=False, attempts=attempt, status=last_status, error=last_error)
            retry_after = _retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                wait = min(retry_after, MAX_RETRY_AFTER_S)
        if attempt < attempts:
            sleep(wait)
    return PostResult(ok=False, attempts=max(1, attempts), status=last_status, error=last_error)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
