"""Code-execution scorer: run each completion against its problem's tests in the sandbox.

Each score row's ``detail`` is a JSON object: ``status`` (a sandbox status, ``no completion``
or ``not scorable``), ``message`` (one human line), ``isolation`` (``bwrap``;
null where nothing ran) and ``suspicious`` (the tampering patterns found in the code, see
``suspicious_patterns``).
"""

from __future__ import annotations

import json
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from eval_pipeline.scoring._text import _result
from eval_pipeline.scoring.sandbox import (
    BWRAP,
    PASSED,
    PROCESS,
    PROCESS_REFUSED,
    IsolationRefused,
    check_isolation,
    run_tests,
)

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


def build_solution(fields: dict, completion: str) -> str:
    """The solution program for a HumanEval-style problem: the code under test, no tests.

    When the extracted code defines the entry point itself, the program is the part of the
    prompt before the entry point's ``def`` (imports and helper functions) followed by that
    code; otherwise the code continues the function body and follows the whole prompt. The
    problem's tests never go into it: they run in the sandbox's supervisor (``run_tests``).

    Args:
        fields: The problem: ``prompt``, ``test`` and ``entry_point``.
        completion: The model's completion.

    Returns:
        Python source that defines the entry point.
    """
    prompt, _, entry_point = (fields[key] for key in _REQUIRED_FIELDS)
    code = extract_code(completion)
    # A fenced block is often indented as a whole (inside a list item, say).
    full = textwrap.dedent(code)
    if _defines(full, entry_point):
        header = _defines(prompt, entry_point)
        head = prompt[: header.start()] if header else _import_lines(prompt)
        return f"{head}\n{full}\n"
    return prompt + code + "\n"


# Forms of tampering with the tests or the sandbox from inside the interpreter. Matching
# is on the text, so a mention in a comment counts too: a flag asks for a look, not a verdict.
SUSPICIOUS_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.MULTILINE)
    for name, pattern in {
        "builtins": r"\b__builtins__\b|\bbuiltins\b",
        "comparison_override": r"\b__(?:eq|ne|lt|le|gt|ge|hash|bool|instancecheck)__\b",
        "gc": r"\bgc\s*\.\s*\w|^[ \t]*(?:import|from)\b[^\n]*\bgc\b",
        "frame_introspection": (
            r"\b_getframe\b|\binspect\b|\bf_(?:back|locals|globals|code)\b|\btb_frame\b"
            r"|\b(?:gi|cr|ag)_frame\b|\bco_consts\b|\b_current_frames\b"
        ),
        "early_exit": (
            r"\bos\s*\.\s*_exit\b|\bsys\s*\.\s*exit\b|\bSystemExit\b|\b(?:exit|quit)\s*\("
        ),
        "hooks": r"\bexcepthook\b|\baddaudithook\b|\bsettrace\b|\bsetprofile\b|\batexit\b",
        "own_source": r"\b__file__\b|\b__loader__\b|\b__spec__\b",
        "native_code": r"\bctypes\b|\bcffi\b|/proc/",
        "processes": r"\bsubprocess\b|\bos\s*\.\s*(?:system|fork|exec\w*|spawn\w*|popen|kill)\b",
        "network": r"\bsocket\b|\burllib\b|\bhttp\.client\b",
    }.items()
}


def suspicious_patterns(code: str) -> list[str]:
    """The names of ``SUSPICIOUS_PATTERNS`` that ``code`` contains, in table order."""
    return [name for name, pattern in SUSPICIOUS_PATTERNS.items() if pattern.search(code)]


def _import_lines(source: str) -> str:
    lines = source.splitlines()
    return "\n".join(line for line in lines if re.match(r"(?:import|from)\s", line)) + "\n"


def code_execution(
    frame: pl.DataFrame,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    workers: int = 2,
    isolation: str = BWRAP,
) -> pl.DataFrame:
    """1.0 when the completion passes its problem's tests in the sandbox, else 0.0.

    The problem comes from ``fields`` (``prompt``, ``test``, ``entry_point``); ``target`` (the
    reference solution) is not used. Null (not applicable) where the fields lack the problem.
    The verdict comes from the sandbox's test supervisor, never from anything the completion
    prints or exits with (``run_tests``).

    Args:
        frame: Samples with ``sample_id``, ``completion`` and ``fields``.
        timeout_s: Wall-clock limit per program.
        memory_mb: Memory limit per program.
        workers: Programs run at the same time.
        isolation: ``bwrap``, the default and the only one: ``process`` is refused, as its
            verdict can be forged by the code it judges (docs/sandbox.md).

    Returns:
        ``sample_id``, ``value`` and ``detail`` (a JSON object: ``status``, ``message``,
        ``isolation``, ``suspicious``), in the order of ``frame``.

    Raises:
        ValueError: On an unknown isolation or ``process`` (``IsolationRefused``), or
            when bubblewrap is not installed (before any program runs).
    """
    if isolation == PROCESS:
        raise IsolationRefused(f"code_execution: {PROCESS_REFUSED}")
    problem = check_isolation(isolation)
    if problem:
        raise ValueError(f"code_execution: {problem}")

    def detail(status: str, message: str, ran: bool, suspicious: list[str]) -> str:
        fields = {
            "status": status,
            "message": message,
            "isolation": isolation if ran else None,
            "suspicious": suspicious,
        }
        return json.dumps(fields)

    def score(completion: str | None, fields_json: str | None) -> tuple[float | None, str]:
        if completion is None:
            return 0.0, detail("no completion", "no completion", False, [])
        fields = json.loads(fields_json or "{}")
        missing = [key for key in _REQUIRED_FIELDS if not isinstance(fields.get(key), str)]
        if missing:
            message = f"not scorable: fields lack {', '.join(missing)}"
            return None, detail("not scorable", message, False, [])
        suspicious = suspicious_patterns(extract_code(completion))
        result = run_tests(
            build_solution(fields, completion),
            fields["entry_point"],
            fields["test"],
            helpers=fields["prompt"],
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            isolation=isolation,
        )
        value = 1.0 if result.status == PASSED else 0.0
        return value, detail(result.status, result.detail, True, suspicious)

    rows = zip(frame["completion"].to_list(), frame["fields"].to_list(), strict=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # map keeps the input order whatever order the programs finish in.
        scored = list(pool.map(lambda row: score(*row), rows))
    values = [value for value, _ in scored]
    details = [text for _, text in scored]
    return _result(frame["sample_id"].to_list(), values, details)


def code_detail(detail: str | None) -> dict:
    """The parsed ``detail`` of a code-execution score row (empty for anything else)."""
    try:
        parsed = json.loads(detail or "")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def count_suspicious(details: list[str | None]) -> int:
    """How many code-execution score rows (by ``detail``) name a suspicious pattern."""
    return sum(1 for detail in details if code_detail(detail).get("suspicious"))
