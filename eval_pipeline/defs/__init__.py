"""Dagster definitions: assets, checks and jobs (thin glue over ``eval_pipeline.stages``).

Also the repair of the run history the CLI calls (``mark_dead_runs``). The definitions'
modules load when ``build_definitions`` is first used, so a command that only repairs
the run history does not build them.
"""

import contextlib
import functools
import warnings
from collections.abc import Iterator

# Any: names forwarded lazily to the module that defines them.
from typing import Any

from eval_pipeline.defs.run_history import mark_dead_runs

__all__ = ["build_definitions", "mark_dead_runs"]


def __getattr__(name: str) -> Any:
    if name == "build_definitions":
        with _quiet():
            from eval_pipeline.defs.build import build_definitions as build

        @functools.wraps(build)
        def build_definitions(*args: Any, **kwargs: Any) -> Any:
            with _quiet():
                return build(*args, **kwargs)

        return build_definitions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # The definitions knowingly use Dagster APIs marked beta or preview (a partition
    # mapping, backfill policies, partitioned checks); their warnings tell a user of
    # this project nothing they can act on, so building the definitions does not print them.
    import dagster as dg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield
