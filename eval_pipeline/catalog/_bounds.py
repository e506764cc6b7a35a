"""Bounds on what a dataset loader reads: row size, field size, rows per dataset.

The limits are a dataset's ``limits:`` (:class:`~eval_pipeline.core.specs.RowLimits`). Each
one passed is a :class:`~eval_pipeline.core.errors.CatalogError` naming the file, the line
or row, the field and the limit to raise. JSONL files are read a line at a time and never
more than the row limit of a line, so a 200 MB line costs a megabyte of memory, not
200 MB, before it is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.specs import RowLimits


def _too_many(shown: str, limits: RowLimits) -> CatalogError:
    return CatalogError(
        shown,
        "",
        f"more than {limits.max_rows} rows (raise limits.max_rows in dataset.yaml to read more)",
    )


def check_row_count(shown: str, count: int, limits: RowLimits) -> None:
    """Refuse a dataset of more than ``limits.max_rows`` rows."""
    if count > limits.max_rows:
        raise _too_many(shown, limits)


def read_jsonl(path: Path, shown: str, limits: RowLimits) -> list[tuple[str, Any]]:
    """The rows of a JSONL file, read a bounded line at a time.

    Raises:
        CatalogError: a line past ``max_row_bytes``, a line that is not UTF-8 or not JSON
            (nested past the parser's depth included), or more than ``max_rows`` rows.
    """
    if not path.is_file():
        raise CatalogError(
            shown, "", "is not a regular file" if path.exists() else "file does not exist"
        )
    rows: list[tuple[str, Any]] = []
    with path.open("rb") as handle:
        lineno = 0
        while True:
            raw = handle.readline(limits.max_row_bytes + 2)  # the row and its b"\r\n"
            if not raw:
                break
            lineno += 1
            line = raw.rstrip(b"\r\n")
            if len(line) > limits.max_row_bytes or (
                not raw.endswith(b"\n") and len(raw) > limits.max_row_bytes
            ):
                raise CatalogError(
                    shown,
                    f"line {lineno}",
                    f"row of more than {limits.max_row_bytes} bytes (raise "
                    "limits.max_row_bytes in dataset.yaml to read it)",
                )
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CatalogError(
                    shown,
                    f"line {lineno}",
                    f"not UTF-8 text: byte 0x{line[exc.start]:02x} at column {exc.start + 1} "
                    "(save the file as UTF-8)",
                ) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CatalogError(
                    shown, f"line {lineno}", f"malformed row: not valid JSON ({exc.msg})"
                ) from exc
            except RecursionError:
                raise CatalogError(
                    shown, f"line {lineno}", "malformed row: JSON nested too deeply"
                ) from None
            rows.append((f"line {lineno}", row))
            if len(rows) > limits.max_rows:
                raise _too_many(shown, limits)
    return rows


def _size(value: Any) -> int:
    """A field's size in bytes: its UTF-8 text, or its JSON for anything else."""
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="surrogatepass"))
    if value is None or isinstance(value, (bool, int, float)):
        return 8
    try:
        return len(json.dumps(value, default=str, ensure_ascii=False).encode("utf-8", "replace"))
    except (RecursionError, ValueError):
        return 1 << 62  # nested past the encoder's depth (or circular): past any limit


def check_row_size(shown: str, where: str, row: Any, limits: RowLimits) -> None:
    """Refuse a row whose field, or whose fields together, pass the limits.

    Raises:
        CatalogError: naming the row and field and the limit in ``dataset.yaml``.
    """
    if not isinstance(row, dict):
        return  # the catalog names a row that is not an object
    total = 0
    for name, value in row.items():
        # A long string is measured without encoding it when it surely passes the limit.
        size = (
            len(value)
            if isinstance(value, str) and len(value) > limits.max_field_bytes
            else _size(value)
        )
        if size > limits.max_field_bytes:
            raise CatalogError(
                shown,
                f"{where}: {name}",
                f"field of more than {limits.max_field_bytes} bytes (raise "
                "limits.max_field_bytes in dataset.yaml to read it)",
            )
        total += size + len(str(name))
        if total > limits.max_row_bytes:
            raise CatalogError(
                shown,
                where,
                f"row of more than {limits.max_row_bytes} bytes (raise limits.max_row_bytes "
                "in dataset.yaml to read it)",
            )
