"""Atomic writes: a file appears complete or not at all.

Every file the project writes for others to read (Parquet tables, JSON documents, reports,
plots, progress records read from another machine) goes through :func:`atomic_path`: the
content is written to a hidden temporary file in the target's folder and renamed over the
target, so a reader sees the whole new file or the previous one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``target``.

    The temporary file sits in the target's folder (created if missing) with a hidden name
    that ``*.parquet``/``*.json`` globs skip; it is removed when the block raises.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; returns the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; returns the target path."""
    return atomic_write_bytes(target, text.encode("utf-8"))
