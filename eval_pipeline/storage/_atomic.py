"""The one atomic write: a temporary file beside the target, then a rename over it.

A reader sees the old file or the new one, never half of one. A writer killed between
creating its temporary file and renaming it leaves the temporary file behind; the next
write of the same target removes such leftovers once they are certainly dead (see
:func:`stale_temporaries`), so a store does not collect hidden garbage.

Temporary names are ``.<target name>.<host>.<pid>.<random>.tmp``: hidden (so
``*.parquet`` globs skip them), tied to their target, and naming the process that owns
them.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

# A temporary file untouched for this long belongs to a dead writer, whatever host it
# ran on: a live writer keeps writing (its mtime moves) and renames within seconds.
STALE_AFTER_S = 15 * 60
# A live process with the owner's pid on this host is the owner, unless the temporary is
# this old: then the pid has been reused by another process.
PID_REUSED_AFTER_S = 24 * 3600

_SUFFIX = ".tmp"
# Temporary files of the earlier ``tempfile.mkstemp(prefix=".", suffix=".tmp")`` writers,
# which cannot be tied to a target; only the age rule removes them.
_ANONYMOUS = re.compile(r"\.[a-z0-9_]{8}\.tmp")


def _host() -> str:
    # The separator and path characters must not appear inside one name field.
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temporary_name(target: Path) -> str:
    """A fresh temporary file name for ``target`` owned by this process."""
    return f".{target.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}"


def _owner(name: str, target: Path) -> tuple[str, int] | None:
    """``(host, pid)`` of a temporary file of ``target``, or None if ``name`` is not one."""
    prefix = f".{target.name}."
    if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
        return None
    parts = name[len(prefix) : -len(_SUFFIX)].split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_temporaries(target: Path, *, now: float | None = None) -> list[Path]:
    """Temporary files beside ``target`` that no live writer will rename.

    One is stale when its owner was a process on this host that no longer exists, or
    when it has not been modified for :data:`STALE_AFTER_S` (the only safe test for a
    writer on another host of a shared filesystem, or for an old anonymous temporary).
    A temporary whose owner on this host is alive is kept for
    :data:`PID_REUSED_AFTER_S`, and this process's own are always kept.
    """
    now = time.time() if now is None else now
    host, me = _host(), os.getpid()
    stale = []
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        owner = _owner(entry.name, target)
        if owner is None and not _ANONYMOUS.fullmatch(entry.name):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
        if owner is not None and owner[0] == host:
            if owner[1] == me or (_pid_alive(owner[1]) and age <= PID_REUSED_AFTER_S):
                continue
            stale.append(Path(entry.path))
        elif age > STALE_AFTER_S:
            stale.append(Path(entry.path))
    return stale


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``target``; returns those this call removed."""
    removed = []
    for path in stale_temporaries(target):
        with contextlib.suppress(FileNotFoundError):  # another writer removed it first
            path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically.

    The parent folder is created. The written file is flushed to disk before the
    rename, so a crash leaves the old file or the complete new one. If the body raises,
    the temporary file is removed and ``target`` is untouched. Stale temporary files of
    the same target left by killed writers are removed first.

    Example::

        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = target.parent / temporary_name(target)
    # O_EXCL: never write into another writer's file; 0o666 & umask like a plain open,
    # so a shared store stays readable by the group (mkstemp would make it 0600).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))
