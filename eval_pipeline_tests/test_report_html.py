"""The leaderboard's HTML report renders, with its PNG plots, linked from asset metadata."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eval_pipeline.core.schemas import TABLES
from eval_pipeline.report import PLOTS
from eval_pipeline.report._html import plot_cost, plot_scores, scale_groups
from eval_pipeline_tests.helpers import materialization_metadata, materialize, report
from eval_pipeline_tests.projects import make_project

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_leaderboard_writes_an_html_report_whose_images_exist(tmp_path, store_root):
    project = make_project(tmp_path / "p", datasets=("qa", "json-extract"))
    materialize(project, store_root, "qa|fake-good", sample_limit=6)
    materialize(project, store_root, "qa|fake-echo", sample_limit=6)
    materialize(project, store_root, "json-extract|fake-good", sample_limit=6)
    meta = materialization_metadata(report(project, store_root), "leaderboard")
    index = Path(meta["report"])
    assert index == store_root.resolve() / "reports" / "leaderboard" / "index.html"
    assert meta["report_url"] == index.as_uri()
    page = index.read_text()
    assert page.startswith("<!doctype html>")
    for model, dataset in (("fake-good", "qa"), ("fake-echo", "qa"), ("fake-good", "json-extract")):
        assert f"<td>{model}</td><td>{dataset}</td>" in page
    for name in PLOTS:
        assert f'src="{name}"' in page
        image = index.parent / name
        data = image.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, name


def _board(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "model": m,
                "dataset": d,
                "prompt_version": "p",
                "metric": metric,
                "n": 10,
                "mean": mean,
                "ci_low": mean - 0.1,
                "ci_high": mean + 0.1,
                "error_count": 0,
                "output_tokens": 5,
                "cost_usd": 0.01,
                "latency_p50_s": 0.1,
            }
            for m, d, metric, mean in rows
        ],
        schema=TABLES["leaderboard"],
    )


def test_plots_never_put_0_1_metrics_and_1_5_ratings_on_one_axis(tmp_path):
    board = _board(
        [
            ("a", "qa", "answer_match", 0.8),
            ("b", "qa", "answer_match", 0.4),
            ("a", "code", "pass", 1.0),
            ("a", "chat", "helpfulness", 3.9),
            ("b", "chat", "helpfulness", 2.5),
            ("a", "essay", "words", 412.0),
        ]
    )
    groups = scale_groups(board)
    assert [(title, scale, datasets) for title, scale, datasets in groups] == [
        ("0-1 metrics", (0.0, 1.0), ["code", "qa"]),
        ("1-5 ratings", (1.0, 5.0), ["chat"]),
        ("essay (words)", (0.0, 412.0), ["essay"]),
    ]
    for plot in (plot_scores, plot_cost):
        path = tmp_path / f"{plot.__name__}.png"
        plot(board, path)
        assert path.read_bytes().startswith(PNG_MAGIC)
