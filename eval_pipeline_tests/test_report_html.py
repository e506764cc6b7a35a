"""The leaderboard's HTML report renders, with its SVG plots, linked from asset metadata."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl

from eval_pipeline.core.schemas import TABLES
from eval_pipeline.report import PLOTS
from eval_pipeline.report._html import plot_cost, plot_latency, plot_scores, scale_groups
from eval_pipeline.report._svg import nice_ticks
from eval_pipeline_tests.helpers import materialization_metadata, materialize, report
from eval_pipeline_tests.projects import make_project

SVG = "{http://www.w3.org/2000/svg}"


def marks(path: Path, kind: str) -> list[str]:
    """The labels of a plot's bars (``kind="bar"``) or points (``"point"``), parsed as XML."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return [e.attrib[f"data-{kind}"] for e in root.iter() if f"data-{kind}" in e.attrib]


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
    bars = marks(index.parent / "score_by_model.svg", "bar")
    # One bar per partition, each labelled with its model, dataset, metric and mean.
    assert sorted(b.split(":")[0] for b in bars) == [
        "fake-echo qa answer_match",
        "fake-good json-extract field_accuracy",
        "fake-good qa answer_match",
    ]
    assert len(marks(index.parent / "cost_vs_score.svg", "point")) == 3
    assert len(marks(index.parent / "latency.svg", "bar")) == 3


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
    plot_scores(board, tmp_path / "scores.svg")
    root = ET.parse(tmp_path / "scores.svg").getroot()
    # Each panel is titled by its scale group, and every bar sits in its group's panel.
    titles = [t.findtext(f"{SVG}tspan") for t in root.iter(f"{SVG}text")]
    assert {"0-1 metrics", "1-5 ratings", "essay (words)"} <= set(titles)
    assert len(marks(tmp_path / "scores.svg", "bar")) == 6
    plot_cost(board, tmp_path / "cost.svg")
    assert len(marks(tmp_path / "cost.svg", "point")) == 6


def test_a_bar_reaches_its_mean_and_its_whisker_spans_the_interval(tmp_path):
    board = _board([("a", "qa", "answer_match", 0.5), ("b", "qa", "answer_match", 0.25)])
    plot_scores(board, tmp_path / "scores.svg")
    root = ET.parse(tmp_path / "scores.svg").getroot()
    rects = [e for e in root.iter(f"{SVG}rect") if "data-bar" in e.attrib]
    heights = {e.attrib["data-bar"].split()[0]: float(e.attrib["height"]) for e in rects}
    # Bars start at the 0-1 scale's floor, so their heights are in the ratio of the means.
    assert abs(heights["a"] / heights["b"] - 2.0) < 0.02
    labels = sorted(e.attrib["data-bar"] for e in rects)
    assert labels == [
        "a qa answer_match: 0.500 [0.400, 0.600]",
        "b qa answer_match: 0.250 [0.150, 0.350]",
    ]
    whiskers = [e for e in root.iter(f"{SVG}path")]
    assert len(whiskers) == 2


def test_latency_and_empty_plots_render_as_svg(tmp_path):
    empty = _board([]).head(0)
    plot_scores(empty, tmp_path / "empty.svg")
    assert ET.parse(tmp_path / "empty.svg").getroot().findtext(f"{SVG}title") == "no scores yet"
    board = _board([("a", "qa", "answer_match", 0.5)]).with_columns(
        pl.lit(0.4).alias("latency_p95_s")
    )
    plot_latency(board, tmp_path / "latency.svg")
    assert marks(tmp_path / "latency.svg", "bar") == ["a qa: p50 0.100 s, p95 0.400 s"]


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1.0, 5.0) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert nice_ticks(0.0, 412.0) == [0.0, 100.0, 200.0, 300.0, 400.0]
    assert nice_ticks(2.0, 2.0) == [2.0]
