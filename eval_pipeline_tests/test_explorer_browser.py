"""The static results explorer in headless Chromium, opened from the file system.

The store comes from real pipeline runs with the fake provider, including a planted
regression (``qa|fake-model`` answering 15% of its samples wrong in its second run).
Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
scripts/ensure-chromium.sh); screenshots land in ``.test-artifacts/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_pipeline.storage import Store
from eval_pipeline_tests.chromium import SHOTS, launched, need_chromium
from eval_pipeline_tests.explorer_helpers import PLANTED, explorer_store
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project

pytestmark = [pytest.mark.browser]

PARTITIONS = {
    "qa|fake-good",
    "qa|fake-echo",
    "json-extract|fake-good",
    "json-extract|fake-echo",
    PLANTED,
}


@pytest.fixture(scope="module")
def explorer(tmp_path_factory) -> dict:
    need_chromium()
    setup = explorer_store(tmp_path_factory.mktemp("explorer"))
    index = Store(setup["store"]).reports_dir / "explorer" / "index.html"
    assert index.exists(), "the reporting step did not write the explorer"
    return {**setup, "url": index.resolve().as_uri()}


@pytest.fixture(scope="module")
def browser():
    with launched() as browser:
        yield browser


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == [], errors


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"explorer-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def _cell(page, partition: str):
    dataset, model = partition.split("|")
    return page.locator(f'td.cell a[href="#/p/{dataset}%40{model}"]')


def test_the_heatmap_shows_every_partition_and_a_cell_opens_its_samples(page, explorer):
    page.goto(explorer["url"])
    page.wait_for_selector("table.heat")
    for partition in PARTITIONS:
        assert _cell(page, partition).count() == 1, partition
    assert page.locator("td.cell").count() == len(PARTITIONS)
    _cell(page, "qa|fake-good").hover()
    page.wait_for_selector(".tip", state="visible")
    assert "answer_match" in page.locator(".tip").inner_text()
    _shot(page, "heatmap")
    _cell(page, "qa|fake-good").click()
    page.wait_for_selector(".row")
    assert "qa" in page.locator(".crumbs").inner_text()
    assert page.locator("#count").inner_text() == "40 of 40 samples"


def test_the_heatmap_filters_models_and_sorts_by_a_column(page, explorer):
    page.goto(explorer["url"])
    page.fill("#f-model", "echo")
    assert page.locator("th.rowname").all_inner_texts() == ["fake-echo"]
    page.fill("#f-model", "")
    # "capital" tags some qa rows and no json-extract row: only qa's column stays.
    page.select_option("#f-tag", "capital")
    assert page.locator("th.col .colname").all_inner_texts() == ["qa"]
    page.select_option("#f-tag", "")
    page.locator("th.col", has_text="qa").click()  # best first on qa
    rows = page.locator("th.rowname").all_inner_texts()
    assert rows[-1] == "fake-echo" and rows[0] == "fake-good"


def test_failed_only_hides_passing_samples(page, explorer):
    page.goto(explorer["url"] + "#/p/qa%40fake-model")
    page.wait_for_selector(".row")
    assert page.locator("#count").inner_text() == "40 of 40 samples"
    page.check("#f-failed")
    wrong = explorer["planted_wrong"]
    assert page.locator("#count").inner_text() == f"{len(wrong)} of 40 samples"
    assert page.locator(".row.good").count() == 0
    shown = set(page.locator(".row .sid").all_inner_texts())
    assert shown == wrong
    page.locator(".row").first.click()
    page.keyboard.press("j")  # the next sample, as in a log viewer
    assert page.locator(".row.sel .sid").inner_text() == sorted(wrong)[1]
    page.keyboard.press("k")
    detail = page.locator("#detail")
    assert "I do not know." in detail.locator("pre.output").inner_text()
    assert detail.locator(".msg").count() >= 1 and "answer_match" in detail.inner_text()
    _shot(page, "samples")
    page.fill("#f-q", "no sample says this")
    assert page.locator("#count").inner_text() == "0 of 40 samples"


def test_the_diff_view_lists_exactly_the_planted_flipped_samples(page, explorer):
    page.goto(explorer["url"] + "#/p/qa%40fake-model/diff")
    page.wait_for_selector(".verdict")
    assert "Regression" in page.locator(".verdict .big").inner_text()
    assert "McNemar" in page.locator(".verdict").inner_text()
    flipped = set(page.locator("tr.flip").evaluate_all("rows => rows.map(r => r.dataset.sample)"))
    assert flipped == explorer["planted_wrong"]
    assert page.locator("tr.flip.better").count() == 0
    first = page.locator("tr.flip").first.locator("pre")
    assert first.nth(1).inner_text() == "I do not know." and first.nth(0).inner_text() != ""
    _shot(page, "diff")


def test_the_trends_views_show_runs_with_cis_and_cost(page, explorer):
    page.goto(explorer["url"] + "#/p/qa%40fake-model/trends")
    page.wait_for_selector("svg.chart")
    assert page.locator("svg.chart").count() == 2
    assert page.locator("svg.chart circle.pt").count() == 2
    assert page.locator("table.runs tbody tr").count() == 2
    _shot(page, "trends")
    page.goto(explorer["url"] + "#/trends")
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == len(PARTITIONS)
    _shot(page, "trends-overview")


def test_a_judged_partition_shows_its_judge_trust_figures(page, tmp_path):
    project = judged_project(tmp_path / "project", answers=distorted_label_answers())
    materialize(project, tmp_path / "store", "open-qa|fake-good", sample_limit=3)
    index = Store(tmp_path / "store").reports_dir / "explorer" / "index.html"
    page.goto(index.resolve().as_uri() + "#/p/open-qa%40fake-good")
    trust = page.locator("#trust")
    trust.wait_for()
    text = trust.inner_text()
    assert "Judge trust" in text
    assert "self consistency 1.000" in text and "helpfulness, fake-judge, n=8" in text
    assert "judge human kappa" in text
    _shot(page, "judge-trust")
