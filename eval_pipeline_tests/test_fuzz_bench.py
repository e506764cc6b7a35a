"""The fuzz bench at a tiny size: every figure is there and says nothing broke."""

from __future__ import annotations

from eval_pipeline_tests.bench import fuzz


def test_the_fuzz_bench_reports_every_figure_at_a_tiny_size() -> None:
    result = fuzz.run(
        shapes_per_provider=300,
        rows_per_loader=40,
        big_line_mb=3,
        attacks=["exit-zero-before-the-tests"],
    )
    assert result["provider_shapes_tried"] == {
        "openai": 300, "openai_completions": 300, "anthropic": 300, "local": 300,
    }  # fmt: skip
    # Some answers of each provider were accepted (and cached), some refused.
    assert all(0 < n < 300 for n in result["provider_shapes_accepted"].values())
    assert result["cached_malformed"] == 0
    assert result["row_cases_tried"] == {"jsonl": 40, "csv": 40, "parquet": 40, "user": 40}
    assert result["unnamed_errors"] == 0, (
        result["unnamed_answer_errors"] + result["unnamed_row_errors"]
    )
    assert result["line_3mb_refused"] is True
    assert result["peak_rss_mb_3mb_line"] < 200
    if result["sandbox_attacks"]:
        assert (result["sandbox_attacks"], result["sandbox_attacks_passed"]) == (2, 0)
