"""Figures on how easy ``eval_pipeline/`` is to change: ``.bench/code_health.json``.

Measured on the package's source (never its tests):

- ``mypy_errors``: errors of ``mypy eval_pipeline`` under the project's configuration
  (``[tool.mypy]`` in ``pyproject.toml``); null, with ``mypy_note`` saying why, when mypy
  is not installed.
- ``any_count``: uses of ``typing.Any`` (the name ``Any`` or ``typing.Any`` anywhere but
  an import line, string annotations included).
- ``functions``, ``functions_over_100``, ``median_function_lines``, ``largest_function``:
  every ``def`` and ``async def`` (methods and nested functions too), its length from the
  ``def`` line to its last line.
- ``largest_module``: the longest ``.py`` file, in lines.
- ``duplicates``: the pairs the ``duplicates`` command lists for ``eval_pipeline/`` (six or
  more shared lines); null, with the reason, when the command is not on PATH.

Each run is a snapshot under a label (``--label before``, ``--label after``); the file keeps
every label, so a before/after table can be printed from it (``--table``)::

    python scripts/code_health.py --label before
    python scripts/code_health.py --label after --table
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeAlias

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / ".bench" / "code_health.json"
LONG_FUNCTION = 100

# A JSON value as this script writes it (no ``Any``: every field is one of these).
Json: TypeAlias = None | bool | int | float | str | list["Json"] | dict[str, "Json"]


@dataclass(frozen=True)
class Function:
    """One ``def``: its qualified name (``module:Class.method``) and its length in lines."""

    name: str
    lines: int


@dataclass(frozen=True)
class SourceFigures:
    """What the syntax trees of a package's modules say."""

    any_count: int
    functions: list[Function]
    largest_module: tuple[str, int]


class _FunctionWalker(ast.NodeVisitor):
    """Collects every function of one module with its qualified name."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.stack: list[str] = []
        self.found: list[Function] = []

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.stack.append(node.name)
        if not isinstance(node, ast.ClassDef):
            end = node.end_lineno or node.lineno
            name = f"{self.module}:{'.'.join(self.stack)}"
            self.found.append(Function(name, end - node.lineno + 1))
        self.generic_visit(node)
        self.stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # noqa: N802 (ast's name)
        self._enter(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:  # noqa: N802
        self._enter(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:  # noqa: N802
        self._enter(node)


def _count_any(tree: ast.AST) -> int:
    """Uses of ``Any`` outside import lines, quoted annotations included."""
    count = 0
    annotations: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "Any":
            count += 1
        elif isinstance(node, ast.Attribute) and node.attr == "Any":
            count += 1
        elif isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            annotations.append(node.returns)
    # A quoted annotation (``"dict[str, Any]"``) is a string to the parser: read it again.
    for annotation in annotations:
        for inner in ast.walk(annotation):
            if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                try:
                    count += _count_any(ast.parse(inner.value, mode="eval"))
                except SyntaxError:
                    continue
    return count


def source_figures(package: Path) -> SourceFigures:
    """Walk every ``.py`` file below ``package``."""
    any_count = 0
    functions: list[Function] = []
    largest = ("", 0)
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        relative = path.relative_to(package.parent).as_posix()
        lines = len(text.splitlines())
        if lines > largest[1]:
            largest = (relative, lines)
        try:
            tree = ast.parse(text, filename=str(path))
        except SyntaxError as exc:
            raise SystemExit(f"code_health: {relative}:{exc.lineno}: {exc.msg}") from exc
        any_count += _count_any(tree)
        walker = _FunctionWalker(relative.removesuffix(".py").replace("/", "."))
        walker.visit(tree)
        functions.extend(walker.found)
    return SourceFigures(any_count, functions, largest)


def mypy_figures(package: Path) -> dict[str, Json]:
    """``mypy_errors`` (and the files and error codes they fall in) under the project's config."""
    mypy = shutil.which("mypy") or _beside_python("mypy")
    if mypy is None:
        return {"mypy_errors": None, "mypy_note": "mypy is not installed (pip install -e .[dev])"}
    config = package.parent / "pyproject.toml"
    command = [mypy, "--config-file", str(config), "--no-color-output", "--no-error-summary"]
    # A cache folder of its own: the figure must not depend on an earlier run's cache.
    with tempfile.TemporaryDirectory(prefix="code-health-mypy-") as cache:
        done = subprocess.run(
            [*command, "--cache-dir", cache, package.name],
            cwd=package.parent,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode not in (0, 1):
        note = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"mypy_errors": None, "mypy_note": f"mypy failed ({done.returncode}): {note[0]}"}
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    codes: dict[str, int] = {}
    for line in errors:
        match = re.search(r"\[([a-z0-9-]+)\]$", line)
        code = match.group(1) if match else "other"
        codes[code] = codes.get(code, 0) + 1
    files = {line.split(":", 1)[0] for line in errors}
    version = subprocess.run([mypy, "--version"], capture_output=True, text=True).stdout.strip()
    ranked = sorted(codes.items(), key=lambda item: -item[1])  # most frequent first
    return {
        "mypy_errors": len(errors),
        "mypy_error_files": len(files),
        "mypy_error_codes": dict(ranked),
        "mypy_version": version,
    }


def _beside_python(name: str) -> str | None:
    """A console script installed next to this interpreter (a virtualenv not on PATH)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


_DUPLICATES_HEAD = re.compile(r"^(\d+) pairs? of places \((\d+) files? read\)")
_DUPLICATES_NONE = re.compile(r"^no duplicates.*?\((\d+) files? read\)")


def duplicates_figures(package: Path) -> dict[str, Json]:
    """The ``duplicates`` pairs in ``package`` (null with the reason when it cannot be run)."""
    command = shutil.which("duplicates")
    if command is None:
        return {
            "duplicates_pairs": None,
            "duplicates_note": "the duplicates command is not on PATH",
        }
    done = subprocess.run(
        [command, "--repo", str(package), "--most", "200", "--seconds", "120"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    head = lines[0] if lines else ""
    incomplete = [line for line in lines if line.startswith("incomplete:")]
    if match := _DUPLICATES_HEAD.match(head):
        pairs, files = int(match.group(1)), int(match.group(2))
    elif match := _DUPLICATES_NONE.match(head):
        pairs, files = 0, int(match.group(1))
    else:
        return {"duplicates_pairs": None, "duplicates_note": f"unreadable output: {head!r}"}
    rows = [line for line in lines if re.match(r"^D\d+ ", line)]
    return {
        "duplicates_pairs": pairs,
        "duplicates_files_read": files,
        "duplicates_summary": head,
        "duplicates_rows": list(rows),
        "duplicates_incomplete": list(incomplete),
    }


def measure(package: Path, *, run_mypy: bool = True) -> dict[str, Json]:
    """Every figure of one snapshot of ``package``."""
    source = source_figures(package)
    lengths = [function.lines for function in source.functions]
    longest = max(source.functions, key=lambda function: function.lines, default=None)
    over = sorted((f for f in source.functions if f.lines > LONG_FUNCTION), key=lambda f: -f.lines)
    figures: dict[str, Json] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git_commit(package.parent),
        "any_count": source.any_count,
        "functions": len(lengths),
        "functions_over_100": len(over),
        "functions_over_100_list": [asdict(f) for f in over],
        "median_function_lines": statistics.median(lengths) if lengths else None,
        "largest_function": asdict(longest) if longest else None,
        "largest_module": {"path": source.largest_module[0], "lines": source.largest_module[1]},
    }
    if run_mypy:
        figures.update(mypy_figures(package))
    else:
        figures.update({"mypy_errors": None, "mypy_note": "not run (--no-mypy)"})
    figures.update(duplicates_figures(package))
    return figures


def _git_commit(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return done.stdout.strip() or None


def record(out: Path, label: str, figures: dict[str, Json]) -> dict[str, Json]:
    """Store ``figures`` under ``label`` in ``out``, keeping the other labels; atomic."""
    snapshots: dict[str, Json] = {}
    if out.is_file():
        try:
            previous = json.loads(out.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"code_health: {out}: not JSON ({exc}); move it aside") from exc
        kept = previous.get("snapshots") if isinstance(previous, dict) else None
        if isinstance(kept, dict):
            snapshots.update(kept)
    snapshots[label] = figures
    document: dict[str, Json] = {"name": "code_health", "snapshots": snapshots}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=out.parent, prefix=f".{out.name}.", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(json.dumps(document, indent=2) + "\n")
    os.replace(handle.name, out)
    return document


_TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("type-checker errors (mypy)", "mypy_errors"),
    ("`Any` uses", "any_count"),
    ("functions", "functions"),
    ("functions over 100 lines", "functions_over_100"),
    ("median function length (lines)", "median_function_lines"),
    ("largest function", "largest_function"),
    ("largest module", "largest_module"),
    ("`duplicates` pairs", "duplicates_pairs"),
)


def _cell(value: Json) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        if "name" in value:
            return f"`{value['name']}` ({value['lines']})"
        return f"`{value.get('path')}` ({value.get('lines')})"
    return str(value)


def table(snapshots: dict[str, Json]) -> str:
    """A Markdown table with one column per label, in the order they were recorded."""
    labels = list(snapshots)
    out = ["| figure | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for title, key in _TABLE_ROWS:
        cells = []
        for label in labels:
            snapshot = snapshots[label]
            cells.append(_cell(snapshot.get(key)) if isinstance(snapshot, dict) else "n/a")
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--label", default="current", help="snapshot name (default: current)")
    parser.add_argument("--package", type=Path, default=REPO / "eval_pipeline")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-mypy", action="store_true", help="skip the type checker")
    parser.add_argument("--table", action="store_true", help="print the before/after table")
    args = parser.parse_args(argv)
    package: Path = args.package.resolve()
    if not package.is_dir():
        parser.error(f"--package {package}: not a folder")
    figures = measure(package, run_mypy=not args.no_mypy)
    document = record(args.out, args.label, figures)
    shown = {key: figures[key] for key in ("mypy_errors", "any_count", "functions_over_100")}
    print(f"code_health {args.label}: {shown} -> {args.out}")
    snapshots = document["snapshots"]
    if args.table and isinstance(snapshots, dict):
        print(table(snapshots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
