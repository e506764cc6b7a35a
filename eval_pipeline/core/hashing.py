"""Content hashes: canonical JSON in, short hex digests out."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

# Any: any JSON-serialisable value is hashed.
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


def directory_hash(path: str | Path) -> str | None:
    """A SHA-256 digest (hex, 16 digits) of every file under ``path``, names included.

    None when ``path`` is not a local file or directory (e.g. a model hub id). The digest is
    cached per path, file sizes and modification times, so an unchanged folder is read once.
    """
    root = Path(path).expanduser()
    if not root.exists():
        return None
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _files_digest(str(root), stamp)


@functools.lru_cache(maxsize=64)
def _files_digest(root: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(Path(name).relative_to(root).as_posix().encode() if name != root else b"")
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


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
