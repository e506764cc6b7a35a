"""The ``alerts`` resource: where the sensors send alerts, and how runs are linked.

The bodies and their delivery are plain code in ``eval_pipeline/operations/_alerts.py``;
the sensors that post them are in ``eval_pipeline/defs/sensors.py``.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from eval_pipeline.operations import PostResult, post_json

WEBHOOK_ENV = "EVAL_PIPELINE_ALERT_WEBHOOK_URL"
UI_URL_ENV = "EVAL_PIPELINE_UI_URL"


class AlertsResource(dg.ConfigurableResource):
    """A Slack-compatible incoming webhook (any receiver of a JSON POST works).

    With no ``webhook_url`` the sensors still record regression events in the instance
    and log each alert; nothing is posted.
    """

    webhook_url: str | None = None
    """The URL alerts are POSTed to (a secret for Slack: pass it as an ``EnvVar``)."""
    ui_base_url: str = "http://127.0.0.1:3000"
    """The Dagster UI's address, for links to runs in alerts."""
    attempts: int = 4
    """Delivery tries per alert and tick (timeouts, connection errors, 429 and 5xx)."""
    backoff_s: float = 1.0
    """The first wait between tries; doubles on each retry."""
    timeout_s: float = 10.0
    """Per-request timeout."""

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def post(self, payload: dict[str, Any]) -> PostResult | None:
        """Deliver ``payload``; None when no webhook is configured."""
        if not self.webhook_url:
            return None
        return post_json(
            self.webhook_url,
            payload,
            attempts=self.attempts,
            backoff_s=self.backoff_s,
            timeout_s=self.timeout_s,
        )


def alerts_from_env() -> AlertsResource:
    """The resource as production configures it: the webhook URL from the environment."""
    # An EnvVar keeps the secret URL out of the UI's resource view; it is only used when
    # set, because an unset EnvVar fails the resource at run time.
    url = dg.EnvVar(WEBHOOK_ENV) if os.environ.get(WEBHOOK_ENV) else None
    return AlertsResource(
        webhook_url=url, ui_base_url=os.environ.get(UI_URL_ENV, "http://127.0.0.1:3000")
    )
