"""The leaderboard's HTML report renders, with its PNG plots, linked from asset metadata."""

from __future__ import annotations

from pathlib import Path

from eval_pipeline.report import PLOTS
from eval_pipeline_tests.conftest import make_project
from eval_pipeline_tests.helpers import materialization_metadata, materialize, report

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
