"""The ``webserver`` resource: asks the Dagster webserver to reload a code location.

The partition grid is read from the catalog when the definitions load, so a model or
dataset added to the catalog joins the grid when the code location reloads. The catalog
sensor asks for that reload through the webserver's GraphQL API
(``reloadRepositoryLocation``), the same call as the UI's Reload button.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import dagster as dg

from eval_pipeline.resources.alerts import UI_URL_ENV

DEFAULT_UI_URL = "http://127.0.0.1:3000"
LOCATION_ENV = "EVAL_PIPELINE_CODE_LOCATION"
# The location name workspace.yaml gives the definitions.
DEFAULT_LOCATION = "eval_pipeline"


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one reload request."""

    ok: bool
    seconds: float
    error: str | None = None


class WebserverResource(dg.ConfigurableResource):
    """The Dagster webserver (UI) that serves the code location."""

    url: str = DEFAULT_UI_URL
    """The webserver's address (``EVAL_PIPELINE_UI_URL``), as for the alerts' run links."""
    timeout_s: float = 30.0
    """How long a reload may take: the webserver answers once the location has loaded
    (2.5 s for 10,000 partitions); within the daemon's 60 s deadline for a sensor tick."""

    def reload_location(self, location: str) -> ReloadResult:
        """Reload ``location`` in the webserver; waits until it has loaded (or failed)."""
        # Deferred: gql and requests are only needed on the tick that asks for a reload.
        from dagster_graphql import (
            DagsterGraphQLClient,
            DagsterGraphQLClientError,
            ReloadRepositoryLocationStatus,
        )

        parts = urlsplit(self.url)
        start = time.perf_counter()
        try:
            client = DagsterGraphQLClient(
                parts.hostname or "127.0.0.1",
                port_number=parts.port,
                use_https=parts.scheme == "https",
                timeout=int(self.timeout_s),
                path_prefix=parts.path.rstrip("/"),
            )
            info = client.reload_repository_location(location)
        except (DagsterGraphQLClientError, OSError) as exc:
            # The client wraps the transport's error in a generic message: keep the cause.
            error = _first_line(exc.__cause__ or exc)
            return ReloadResult(False, time.perf_counter() - start, error)
        seconds = time.perf_counter() - start
        if info.status == ReloadRepositoryLocationStatus.SUCCESS:
            return ReloadResult(True, seconds)
        return ReloadResult(False, seconds, f"{info.failure_type}: {_first_line(info.message)}")


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0].strip()[:300] if text else type(error).__name__


def webserver_from_env() -> WebserverResource:
    """The resource as production configures it: ``EVAL_PIPELINE_UI_URL``."""
    return WebserverResource(url=os.environ.get(UI_URL_ENV, DEFAULT_UI_URL))


def location_name(origin_location: str | None) -> str:
    """The code location to reload: the sensor's own, else ``EVAL_PIPELINE_CODE_LOCATION``."""
    return origin_location or os.environ.get(LOCATION_ENV, DEFAULT_LOCATION)
