"""Where the project keeps files of its own outside the store: the user cache."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EVAL_PIPELINE_CACHE"


def user_cache_dir() -> Path:
    """``$EVAL_PIPELINE_CACHE``, else ``$XDG_CACHE_HOME/eval_pipeline``, else ``~/.cache/eval_pipeline``.

    Everything kept there can be rebuilt from what ``make`` installs (de-quantized model
    copies, indexes); deleting it costs time, never results.
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "eval_pipeline"
