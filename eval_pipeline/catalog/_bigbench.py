r"""BIG-bench task files: fetched once from PyPI, cached, and read into dataset rows.

BIG-bench's published tasks (Apache-2.0) ship in the source distribution of
``bigbench==1.0.0`` on PyPI: a 358 MB ``.tar.gz`` whose
``bigbench/benchmark_tasks/<task>/task.json`` files (and ``<task>/<subtask>/task.json``)
hold the examples. Installing the package would pull TensorFlow, so the archive is
streamed once and only the ``task.json`` files (about 1,000 of them) are kept, under
``~/.cache/eval_pipeline/bigbench/1.0.0/`` (``EVAL_PIPELINE_BIGBENCH_DIR`` moves it).

A JSON task's examples carry ``input`` and ``target_scores`` (multiple choice: each
choice with a score, the best-scored ones correct) and/or ``target`` (generative: one
string or a list of acceptable strings). The task's own ``task_prefix`` and
``example_input_prefix`` / ``example_output_prefix`` (defaults ``"\\nQ: "`` and
``"\\nA: "``, as in BIG-bench's JSON task runner) frame each input; with
``append_choices_to_input`` (BIG-bench's default: true) a multiple-choice input lists its
choices after ``choice_prefix`` (default ``"\\n  choice: "``). BIG-bench puts the task
prefix once before its few-shot examples; here it frames every sample, examples included.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from eval_pipeline.core.errors import CatalogError

VERSION = "1.0.0"
INDEX_URL = "https://pypi.org/simple/bigbench/"
SDIST_NAME = f"bigbench-{VERSION}.tar.gz"
SDIST_SIZE_MB = 358
TASKS_PREFIX = "bigbench/benchmark_tasks/"
CACHE_ENV = "EVAL_PIPELINE_BIGBENCH_DIR"
_DONE = ".complete.json"


def cache_root() -> Path:
    """Where extracted task files live: ``$EVAL_PIPELINE_BIGBENCH_DIR`` or the user cache."""
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "eval_pipeline" / "bigbench"
    return base / VERSION


def is_cached(root: Path | None = None) -> bool:
    """Whether the task files have been fetched and extracted completely."""
    return ((root or cache_root()) / _DONE).is_file()


def _sdist_url(timeout_s: float) -> tuple[str, str]:
    """The sdist's download URL and sha256 from PyPI's simple index (PEP 503)."""

    class _Links(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.hrefs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self.hrefs += [v for k, v in attrs if k == "href" and v]

    with urllib.request.urlopen(INDEX_URL, timeout=timeout_s) as response:  # noqa: S310
        parser = _Links()
        parser.feed(response.read().decode("utf-8", "replace"))
    for href in parser.hrefs:
        url, _, fragment = href.partition("#")
        if url.rsplit("/", 1)[-1] == SDIST_NAME and fragment.startswith("sha256="):
            return url, fragment.removeprefix("sha256=")
    raise OSError(f"{INDEX_URL} lists no {SDIST_NAME}")


class _Hashing:
    """A read-only stream that hashes what passes through and reports progress."""

    def __init__(self, raw: BinaryIO, total: int, report: bool):
        self.raw, self.total, self.report = raw, total, report
        self.sha = hashlib.sha256()
        self.read_bytes = 0
        self._next_report = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.raw.read(n)
        self.sha.update(chunk)
        self.read_bytes += len(chunk)
        if self.report and self.read_bytes >= self._next_report:
            total = f" of {self.total / 1e6:.0f}" if self.total else ""
            print(f"  {self.read_bytes / 1e6:.0f}{total} MB", file=sys.stderr)
            self._next_report += 50_000_000
        return chunk


def fetch(root: Path | None = None, *, timeout_s: float = 60.0, verbose: bool = True) -> Path:
    """Download the sdist once and extract its ``task.json`` files into ``root``.

    Idempotent: a complete cache is returned as it is. The archive is streamed (never
    stored), its sha256 checked against PyPI's index, and the files land in a temporary
    folder renamed into place only when everything checked out.

    Raises:
        OSError: PyPI is unreachable or the download does not match its checksum.
    """
    root = root or cache_root()
    if is_cached(root):
        return root
    url, sha256 = _sdist_url(timeout_s)
    if verbose:
        print(
            f"Fetching BIG-bench task files: {SDIST_NAME} (about {SDIST_SIZE_MB} MB) from "
            f"PyPI; only the 1,041 task.json files (1.7 GB) are kept, in {root}",
            file=sys.stderr,
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root.parent))
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0)
            stream = _Hashing(response, total, verbose)
            count = 0
            with tarfile.open(fileobj=stream, mode="r|gz") as archive:  # type: ignore[arg-type]
                for member in archive:
                    relative = _task_file(member)
                    if relative is None:
                        continue
                    source = archive.extractfile(member)
                    if source is None:
                        continue
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(source.read())
                    count += 1
            while stream.read(1 << 20):  # the rest of the archive, for the checksum
                pass
        if stream.sha.hexdigest() != sha256:
            raise OSError(f"{url}: sha256 {stream.sha.hexdigest()} does not match {sha256}")
        (staging / _DONE).write_text(
            json.dumps({"url": url, "sha256": sha256, "task_files": count}, indent=1)
        )
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if verbose:
        print(f"Cached {count} BIG-bench task files in {root}", file=sys.stderr)
    return root


def _task_file(member: tarfile.TarInfo) -> str | None:
    """``<task>[/<subtask>]/task.json`` for an archive member that is one, else None."""
    if not member.isfile() or not member.name.endswith("/task.json"):
        return None
    _, _, inside = member.name.partition("/")  # drop ``bigbench-1.0.0/``
    if not inside.startswith(TASKS_PREFIX):
        return None
    relative = inside.removeprefix(TASKS_PREFIX)
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return relative


def task_dir(task: str, shown: str, field: str) -> Path:
    """The folder of ``task`` in the cache, fetching the task files first if needed.

    Raises:
        CatalogError: The files are not cached and PyPI cannot be reached, or the task
            does not exist; naming the spec ``shown`` and ``field``.
    """
    root = cache_root()
    if not is_cached(root):
        try:
            fetch(root)
        except (OSError, urllib.error.URLError, tarfile.TarError) as exc:
            raise CatalogError(
                shown,
                field,
                f"BIG-bench task files are not cached in {root} and could not be fetched "
                f"({exc}). Fetch them where PyPI is reachable with "
                f"`python scripts/fetch_bigbench.py` (downloads {SDIST_NAME}, about "
                f"{SDIST_SIZE_MB} MB) and copy the folder, or set {CACHE_ENV}.",
            ) from exc
    path = root / task
    if not (path / "task.json").is_file():
        raise CatalogError(shown, field, f"no BIG-bench task '{task}' in {root}")
    return path


def task_rows(
    task: str, subtask: str | None, multiple_choice: bool, shown: str, field: str
) -> list[dict[str, Any]]:
    """Rows of one BIG-bench JSON task (or one subtask), ids ``<task>[/<subtask>]-<n>``.

    Each row has ``id``, ``input`` (framed with the task's prefixes, ending with the
    output prefix without its trailing space), ``choices`` (from ``target_scores``;
    empty for a generative row) and ``target``: the correct choices of a
    ``multiple_choice`` row, the acceptable answers (``target``) of a generative one.

    Raises:
        CatalogError: The task or subtask is missing, its JSON is not a task, or an
            example lacks what the task type needs.
    """
    base = task_dir(task, shown, field)
    top = _read_task(base / "task.json", shown, field)
    if subtask:
        path = base / subtask / "task.json"
        if not path.is_file():
            known = sorted(p.parent.name for p in base.glob("*/task.json"))
            raise CatalogError(
                shown, field, f"BIG-bench task '{task}' has no subtask '{subtask}' (known: {known})"
            )
        tasks = [(f"{task}/{subtask}", _read_task(path, shown, field))]
    elif top.get("examples"):
        tasks = [(task, top)]
    else:  # a task made of subtasks: all of them, in name order
        tasks = [
            (f"{task}/{p.parent.name}", _read_task(p, shown, field))
            for p in sorted(base.glob("*/task.json"))
        ]
    rows: list[dict[str, Any]] = []
    for name, spec in tasks:
        merged = {**top, **spec} if spec is not top else top
        rows += _examples(name, merged, multiple_choice, shown, field)
    return rows


def _read_task(path: Path, shown: str, field: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(shown, field, f"cannot read BIG-bench file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(shown, field, f"BIG-bench file {path} is not a JSON task")
    return data


def _examples(
    name: str, spec: dict[str, Any], multiple_choice: bool, shown: str, field: str
) -> list[dict[str, Any]]:
    task_prefix = str(spec.get("task_prefix", ""))
    in_prefix = str(spec.get("example_input_prefix", "\nQ: "))
    out_prefix = str(spec.get("example_output_prefix", "\nA: "))
    choice_prefix = str(spec.get("choice_prefix", "\n  choice: "))
    append_choices = bool(spec.get("append_choices_to_input", True))
    rows = []
    for i, example in enumerate(spec.get("examples") or []):
        scores = example.get("target_scores")
        text = f"{task_prefix}{in_prefix}{example.get('input', '')}"
        if multiple_choice:
            if not isinstance(scores, dict) or not scores:
                raise CatalogError(
                    shown,
                    field,
                    f"BIG-bench {name} example {i} has no target_scores to choose from",
                )
            choices = [str(c) for c in scores]
            best = max(float(v) for v in scores.values())
            target = [c for c, v in zip(choices, scores.values(), strict=True) if float(v) == best]
            if append_choices:
                text += "".join(f"{choice_prefix}{c}" for c in choices)
        else:
            choices = []
            raw = example.get("target")
            if raw is None and isinstance(scores, dict) and scores:
                best = max(float(v) for v in scores.values())
                raw = [c for c, v in scores.items() if float(v) == best]
            if raw is None:
                raise CatalogError(shown, field, f"BIG-bench {name} example {i} has no target")
            target = [str(t) for t in raw] if isinstance(raw, list) else [str(raw)]
        text = f"{text}{out_prefix}".rstrip(" ")
        rows.append({"id": f"{name}-{i}", "input": text, "choices": choices, "target": target})
    return rows
