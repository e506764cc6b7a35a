"""``eval-pipeline label import``: pointwise and pairwise ratings from JSONL or CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.judge import HUMAN_LABELS_FILE, PAIRWISE_LABELS_FILE, import_labels, load_labels
from eval_pipeline_tests.projects import make_project


def _pointwise(n: int) -> list[dict[str, object]]:
    return [
        {
            "prompt": f"Why is the sky blue? ({i})",
            "response": f"Rayleigh scattering, take {i}.",
            "rubric": "helpfulness",
            "score": 1 + i % 5,
            "rater": "alice",
        }
        for i in range(n)
    ]


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pointwise_jsonl_ratings_join_the_human_labels_that_calibration_reads(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    report = import_labels(project, _write_jsonl(tmp_path / "ratings.jsonl", _pointwise(6)))
    assert (report.kind, report.rows, report.added) == ("pointwise", 6, 6)
    labels = load_labels(project, "helpfulness")
    assert [row["label"] for row in labels] == [1, 2, 3, 4, 5, 1]
    assert {row["labelled_by"] for row in labels} == {"human:alice"}
    # The same file again adds nothing.
    again = import_labels(project, tmp_path / "ratings.jsonl")
    assert again.added == 0
    assert len((project / HUMAN_LABELS_FILE).read_text().splitlines()) == 6


def test_pairwise_csv_ratings_are_kept_with_their_preference(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["prompt", "answer_a", "answer_b", "preferred", "rater"]
        )
        writer.writeheader()
        writer.writerow(
            {"prompt": "Q", "answer_a": "a1", "answer_b": "b1", "preferred": "A", "rater": "bob"}
        )
        writer.writerow(
            {"prompt": "Q2", "answer_a": "a2", "answer_b": "b2", "preferred": "tie", "rater": "bob"}
        )
    report = import_labels(project, path)
    assert (report.kind, report.added) == ("pairwise", 2)
    rows = [json.loads(x) for x in (project / PAIRWISE_LABELS_FILE).read_text().splitlines()]
    assert [r["preferred"] for r in rows] == ["A", "tie"]


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        ({"score": 6}, "line 2: score", "must be an integer 1-5, got 6"),
        ({"score": "4"}, "line 2: score", "must be an integer 1-5"),  # JSON text is not a score
        ({"rubric": "tone"}, "line 2: rubric", "unknown rubric 'tone'"),
        ({"rater": "Alice Smith"}, "line 2: rater", "is not a slug"),
        ({"response": ""}, "line 2: response", "must be a non-empty string"),
    ],
)
def test_a_bad_row_is_refused_naming_its_line_and_field_and_nothing_is_written(
    tmp_path, change, where, problem
):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    rows = _pointwise(3)
    rows[1].update(change)
    with pytest.raises(CatalogError) as error:
        import_labels(project, _write_jsonl(tmp_path / "bad.jsonl", rows))
    assert where in str(error.value) and problem in str(error.value)
    assert not (project / HUMAN_LABELS_FILE).exists()


def test_a_pairwise_row_with_a_missing_field_or_an_unknown_preference_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    row = {"prompt": "Q", "answer_a": "a", "answer_b": "b", "preferred": "A", "rater": "bob"}
    bad = _write_jsonl(tmp_path / "pairs.jsonl", [row, {**row, "preferred": "left"}])
    with pytest.raises(CatalogError, match=r"line 2: preferred.*must be A, B or tie"):
        import_labels(project, bad)
    missing = _write_jsonl(
        tmp_path / "m.jsonl", [row, {k: v for k, v in row.items() if k != "answer_b"}]
    )
    with pytest.raises(CatalogError, match=r"line 2: answer_b.*missing"):
        import_labels(project, missing)


def test_the_command_line_imports_a_file_and_names_a_bad_line(tmp_path, capsys):
    from eval_pipeline.cli import EXIT_OK, EXIT_USAGE, main

    project = make_project(tmp_path / "p", datasets=("open-qa",))
    path = _write_jsonl(tmp_path / "ratings.jsonl", _pointwise(2))
    assert main(["--root", str(project), "label", "import", str(path)]) == EXIT_OK
    assert "2 pointwise labels read" in capsys.readouterr().out
    rows = _pointwise(2)
    rows[0]["score"] = 0
    bad = _write_jsonl(tmp_path / "bad.jsonl", rows)
    assert main(["--root", str(project), "label", "import", str(bad)]) == EXIT_USAGE
    assert "line 1: score" in capsys.readouterr().err
