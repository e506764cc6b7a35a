"""Content hashes: canonical JSON in, short hex digests out."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any


def stable_json(obj: Any) -> str:
    """Serialize ``obj`` canonically (sorted keys, no whitespace) so equal values hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(obj: Any, length: int = 16) -> str:
    """Return the first ``length`` hex digits of the SHA-256 of ``obj``.

    Strings and bytes are hashed as they are; anything else through :func:`stable_json`.
    """
    if isinstance(obj, bytes):
        data = obj
    elif isinstance(obj, str):
        data = obj.encode()
    else:
        data = stable_json(obj).encode()
    return hashlib.sha256(data).hexdigest()[:length]


@functools.cache
def code_version() -> str:
    """The package version plus a hash of its Python sources.

    Every result row records it, so a row can be traced to the code that made it even
    between releases. It depends only on file contents, never on timestamps or git.
    """
    from eval_pipeline import __version__

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:10]}"
