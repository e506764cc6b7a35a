"""Code-execution scorer: run each completion against its problem's tests in the sandbox."""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from eval_pipeline.scoring._text import _result
from eval_pipeline.scoring.sandbox import PASSED, run_sandboxed

# Fenced blocks in order, paired opening to closing fence; an unclosed fence runs to the end,
# since a completion cut off at max_tokens still often holds a whole function.
_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.MULTILINE | re.DOTALL
)
_PYTHON_TAGS = frozenset({"", "python", "python3", "py"})
_REQUIRED_FIELDS = ("prompt", "test", "entry_point")


def extract_code(completion: str) -> str:
    """The first ```python (or untagged) fenced block of ``completion``, else the completion."""
    for match in _FENCE.finditer(completion):
        if match.group(1).lower() in _PYTHON_TAGS:
            return match.group(2)
    return completion


def _defines(code: str, name: str) -> re.Match[str] | None:
    return re.search(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE)


def build_program(fields: dict, completion: str) -> str:
    """The program that runs ``completion`` against a HumanEval-style problem's tests.

    When the extracted code defines the entry point itself, the program is the part of the
    prompt before the entry point's ``def`` (imports and helper functions) followed by that
    code; otherwise the code continues the function body and follows the whole prompt. The
    problem's ``test`` and ``check(<entry_point>)`` come last.

    Args:
        fields: The problem: ``prompt``, ``test`` and ``entry_point``.
        completion: The model's completion.

    Returns:
        Python source that exits with status 0 exactly when the tests pass.
    """
    prompt, test, entry_point = (fields[key] for key in _REQUIRED_FIELDS)
    code = extract_code(completion)
    # A fenced block is often indented as a whole (inside a list item, say).
    full = textwrap.dedent(code)
    if _defines(full, entry_point):
        header = _defines(prompt, entry_point)
        head = prompt[: header.start()] if header else _import_lines(prompt)
        body = f"{head}\n{full}"
    else:
        body = prompt + code
    return f"{body}\n\n{test}\n\ncheck({entry_point})\n"


def _import_lines(source: str) -> str:
    lines = source.splitlines()
    return "\n".join(line for line in lines if re.match(r"(?:import|from)\s", line)) + "\n"


def code_execution(
    frame: pl.DataFrame, timeout_s: float = 10.0, memory_mb: int = 512, workers: int = 2
) -> pl.DataFrame:
    """1.0 when the completion passes its problem's tests in the sandbox, else 0.0.

    The problem comes from ``fields`` (``prompt``, ``test``, ``entry_point``); ``target`` (the
    reference solution) is not used. Null (not applicable) where the fields lack the problem.

    Args:
        frame: Samples with ``sample_id``, ``completion`` and ``fields``.
        timeout_s: Wall-clock limit per program.
        memory_mb: Memory limit per program.
        workers: Programs run at the same time.

    Returns:
        ``sample_id``, ``value`` and ``detail`` ("passed", or the failure status and the end
        of the error output), in the order of ``frame``.
    """
    # Printed after check() returns: an exit status of 0 alone would also reward a completion
    # that calls sys.exit(0) or os._exit(0) before the tests run.
    marker = f"tests-finished-{uuid.uuid4().hex}"

    def score(completion: str | None, fields_json: str | None) -> tuple[float | None, str]:
        if completion is None:
            return 0.0, "no completion"
        fields = json.loads(fields_json or "{}")
        missing = [key for key in _REQUIRED_FIELDS if not isinstance(fields.get(key), str)]
        if missing:
            return None, f"not scorable: fields lack {', '.join(missing)}"
        program = build_program(fields, completion) + f"print({marker!r})\n"
        result = run_sandboxed(program, timeout_s=timeout_s, memory_mb=memory_mb)
        if result.status != PASSED:
            return 0.0, result.detail
        if marker not in result.stdout:
            return 0.0, "failed: the program exited before the tests finished"
        return 1.0, PASSED

    rows = zip(frame["completion"].to_list(), frame["fields"].to_list(), strict=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # map keeps the input order whatever order the programs finish in.
        scored = list(pool.map(lambda row: score(*row), rows))
    values = [value for value, _ in scored]
    details = [detail for _, detail in scored]
    return _result(frame["sample_id"].to_list(), values, details)
