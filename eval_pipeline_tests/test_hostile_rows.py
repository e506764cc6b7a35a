"""Hostile dataset rows: every case loads, or is a CatalogError naming file, line and field.

Hypothesis drives the row generator of ``hostile_rows`` (rows built field by field, valid
or junk, and raw bytes) through each file loader, as a generative and as a
multiple-choice dataset; the bounds and the preflight get tests of their own.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval_pipeline.catalog import load_catalog
from eval_pipeline.catalog._bounds import read_jsonl
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.core.specs import RowLimits
from eval_pipeline.operations import preflight
from eval_pipeline_tests.hostile_rows import LOADERS, RowBench, random_rows
from eval_pipeline_tests.projects import make_project


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RowBench]:
    yield RowBench(tmp_path_factory.mktemp("rows"))


@pytest.mark.parametrize("loader", LOADERS)
def test_every_generated_row_loads_or_is_a_named_error(loader: str, bench: RowBench) -> None:
    outcomes: set[str] = set()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.randoms(use_true_random=False))
    def check(rng: random.Random) -> None:
        rows = random_rows(rng)
        for kind in ("gen", "mc"):
            outcomes.add(bench.load(kind, loader, rows))  # raises anything unnamed

    check()
    assert outcomes == {"ok", "named"}  # both sides were reached


@pytest.mark.parametrize(
    "target,problem",
    [
        ("²", "neither a choice nor an index"),  # "²".isdigit() is true; int("²") fails
        ("٣", "neither a choice nor an index"),
        (7, "neither a choice nor an index"),
        ([], "names no choice"),
    ],
)
def test_a_multiple_choice_target_that_is_not_a_plain_index_names_file_line_and_field(
    bench: RowBench, target: object, problem: str
) -> None:
    rows = [{"id": "a", "q": "x", "answer": 0, "choices": ["p", "q"]}]
    rows.append({"id": "b", "q": "y", "answer": target, "choices": ["p", "q"]})
    with pytest.raises(CatalogError) as info:
        bench.write("mc-jsonl", "jsonl", rows)
        from eval_pipeline.catalog._catalog import _load_rows

        _load_rows(bench.root, bench.catalog.dataset_specs["mc-jsonl"], bench.catalog.prompts["p"])
    assert info.value.file.endswith("datasets/mc-jsonl/data.jsonl")
    assert info.value.field == "line 2: answer"
    assert problem in info.value.problem


def _lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_a_line_past_the_row_limit_is_refused_reading_no_more_than_the_limit(
    tmp_path: Path,
) -> None:
    row = b'{"id": 1, "q": "x", "answer": "a"}'
    huge = b'{"id": 2, "q": "' + b"x" * (20 << 20) + b'", "answer": "a"}'
    path = _lines(tmp_path / "d.jsonl", row, huge, row)
    tracemalloc.start()
    try:
        with pytest.raises(CatalogError) as info:
            read_jsonl(path, "d.jsonl", RowLimits())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.field == "line 2"
    assert "row of more than 1048576 bytes" in info.value.problem
    assert "limits.max_row_bytes" in info.value.problem
    assert peak < 4 << 20  # a 20 MB line, read no further than the 1 MiB limit


def test_rows_fields_and_row_counts_past_their_limits_are_named(tmp_path: Path) -> None:
    limits = RowLimits(max_row_bytes=200, max_field_bytes=50, max_rows=2)
    row = b'{"id": 1, "q": "x", "answer": "a"}'
    with pytest.raises(CatalogError, match="more than 2 rows"):
        read_jsonl(_lines(tmp_path / "a.jsonl", row, row, row), "a.jsonl", limits)
    with pytest.raises(CatalogError, match="not UTF-8 text: byte 0xff at column 8"):
        read_jsonl(_lines(tmp_path / "b.jsonl", row, b'{"q": "\xff"}'), "b.jsonl", limits)
    with pytest.raises(CatalogError, match="nested too deeply"):
        deep = b"[" * 100_000 + b"]" * 100_000
        read_jsonl(_lines(tmp_path / "c.jsonl", deep), "c.jsonl", RowLimits())
    from eval_pipeline.catalog._bounds import check_row_size

    with pytest.raises(CatalogError) as info:
        check_row_size("d.jsonl", "line 4", {"id": 1, "q": "é" * 30}, limits)
    assert (info.value.field, "more than 50 bytes" in info.value.problem) == ("line 4: q", True)
    with pytest.raises(CatalogError, match="row of more than 200 bytes"):
        check_row_size("d.jsonl", "line 5", {f"f{i}": "x" * 45 for i in range(5)}, limits)


def test_a_bad_row_stops_the_run_in_the_preflight_before_any_step(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", datasets=("qa",))
    data = project / "datasets" / "qa" / "data.jsonl"
    lines = data.read_bytes().splitlines()
    lines[4] = lines[4].replace(b'"answer": "', b'"answer": "\xff')
    data.write_bytes(b"\n".join(lines) + b"\n")
    catalog = load_catalog(project, load_rows=False)
    report = preflight(catalog, [PartitionKey(model=catalog.model_slugs[0], dataset="qa")])
    assert not report.ok
    (problem,) = report.problems
    assert "datasets/qa/data.jsonl: line 5: not UTF-8 text" in problem.what


def test_a_datasets_limits_are_read_from_its_spec(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", datasets=("qa",))
    spec_path = project / "datasets" / "qa" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["limits"] = {"max_rows": 3}
    spec_path.write_text(yaml.safe_dump(spec))
    with pytest.raises(CatalogError, match=r"more than 3 rows \(raise limits.max_rows"):
        load_catalog(project).dataset("qa")
    spec["limits"] = {"max_rowz": 3}
    spec_path.write_text(yaml.safe_dump(spec))
    with pytest.raises(CatalogError, match="max_rowz"):
        load_catalog(project)
    assert json.dumps(RowLimits().model_dump()) == (
        '{"max_row_bytes": 1048576, "max_field_bytes": 524288, "max_rows": 1000000}'
    )
