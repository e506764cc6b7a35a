"""The judge scorer inside the pipeline: fake judges, the response cache, calibration."""

from __future__ import annotations

import polars as pl
import pytest

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.defs import build_definitions
from eval_pipeline.judge import SELF_CONSISTENCY_ITEMS, load_calibration_document
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialization_metadata, materialize
from eval_pipeline_tests.judge_helpers import distorted_label_answers, judged_project


def _key_metadata(result, key: str) -> dict:
    for mat in result.get_asset_materialization_events():
        event = mat.event_specific_data.materialization
        if event.asset_key.to_user_string() == key:
            return {k: v.value for k, v in event.metadata.items()}
    raise AssertionError(f"{key} not materialized")


def test_judged_dataset_records_scores_verdicts_and_a_calibrated_column(tmp_path, store_root):
    answers = distorted_label_answers()
    # One sample's verdict is malformed: it must be recorded as such, never scored.
    answers["oq-0002"] = "I think it deserves a 4."
    answers["oq-0003"] = '{"score": 9}'
    project = judged_project(tmp_path / "p", answers=answers)
    result = materialize(project, store_root, "open-qa|fake-good", sample_limit=6)
    assert result.success
    store = Store(store_root)
    scores = store.read("scores", dataset="open-qa", model="fake-good")
    assert set(scores["metric"]) == {"helpfulness", "helpfulness:calibrated"}
    raw = dict(
        scores.filter(pl.col("metric") == "helpfulness").select("sample_id", "value").iter_rows()
    )
    assert raw["oq-0001"] == 4.0
    assert raw["oq-0002"] is None and raw["oq-0003"] is None
    judgements = store.read("judgements", dataset="open-qa", model="fake-good")
    status = dict(judgements.select("sample_id", "status").iter_rows())
    assert (status["oq-0001"], status["oq-0002"], status["oq-0003"]) == (
        "ok",
        "malformed",
        "out_of_range",
    )
    assert judgements["rubric_version"][0].startswith("judge-helpfulness@")
    assert judgements["cost_usd"].sum() > 0  # the judge has a price: its calls are costed
    # The calibration ran first (42 labelled responses) and maps the judge's 4 to ~5.
    meta = _key_metadata(result, "judge_calibration/fake_judge/helpfulness")
    assert meta["status"] == "fitted" and meta["parsed_verdicts"] == 42
    calibrated = dict(
        scores.filter(pl.col("metric") == "helpfulness:calibrated")
        .select("sample_id", "value")
        .iter_rows()
    )
    assert calibrated["oq-0001"] == pytest.approx(5.0, abs=0.01)
    assert calibrated["oq-0002"] is None
    assert (
        judgements.filter(pl.col("sample_id") == "oq-0001")["calibration_version"][0]
        == meta["calibration_version"]
    )
    aggregates = materialization_metadata(result, "aggregates")
    assert aggregates["helpfulness/mean"] == 4.0


def test_rerun_makes_no_judge_calls(tmp_path, store_root):
    project = judged_project(tmp_path / "p", answers=distorted_label_answers())
    materialize(project, store_root, "open-qa|fake-good", sample_limit=5)
    first = calls_for("fake-judge")
    # 42 calibration verdicts, the default 8 of them asked again (self-consistency, no
    # cache), 5 judged samples.
    assert first == 42 + SELF_CONSISTENCY_ITEMS + 5
    result = materialize(project, store_root, "open-qa|fake-good", sample_limit=5)
    assert calls_for("fake-judge") == first
    assert _key_metadata(result, "judge_calibration/fake_judge/helpfulness")["reused"] is True


def test_too_few_readable_verdicts_refuse_calibration_and_leave_scores_uncalibrated(
    tmp_path, store_root
):
    # The default verdict is prose, so only the 5 scripted label replies parse.
    answers = dict(list(distorted_label_answers().items())[:5])
    project = judged_project(tmp_path / "p", answers=answers, default_verdict="Five stars!")
    result = materialize(project, store_root, "open-qa|fake-good", sample_limit=3)
    assert result.success
    meta = _key_metadata(result, "judge_calibration/fake_judge/helpfulness")
    assert meta["status"] == "refused"
    assert "only 5 labelled responses with a readable verdict" in meta["message"]
    assert "at least 20" in meta["message"]
    document = load_calibration_document(Store(store_root), "fake-judge", "helpfulness")
    assert document["verdict_statuses"] == {"ok": 5, "malformed": 37}
    scores = Store(store_root).read("scores", dataset="open-qa", model="fake-good")
    assert scores.filter(pl.col("metric") == "helpfulness:calibrated")["value"].null_count() == 3


def test_two_judges_give_per_judge_scores_and_their_agreement(tmp_path, store_root):
    import yaml

    project = judged_project(
        tmp_path / "p", answers=distorted_label_answers(), judges=("fake-judge", "fake-judge-2")
    )
    models = yaml.safe_load((project / "models.yaml").read_text())
    second = dict(models["models"][1], slug="fake-judge-2", model_id="fake/judge-2")
    second["options"] = {
        "mode": "fixed",
        "text": '{"score": 4}',
        "answers": {"oq-0001": '{"score": 2}'},
    }
    models["models"].append(second)
    (project / "models.yaml").write_text(yaml.safe_dump(models))
    materialize(project, store_root, "open-qa|fake-good", sample_limit=4)
    store = Store(store_root)
    scores = store.read("scores", dataset="open-qa", model="fake-good")
    assert set(scores["metric"]) == {
        "helpfulness",
        "helpfulness:fake-judge",
        "helpfulness:fake-judge-2",
        "helpfulness:calibrated",
    }
    panel = dict(
        scores.filter(pl.col("metric") == "helpfulness").select("sample_id", "value").iter_rows()
    )
    assert panel["oq-0001"] == 3.0  # the mean of 4 and 2
    aggregates = store.read("aggregates", dataset="open-qa", model="fake-good")
    agreement = aggregates.filter(pl.col("metric") == "helpfulness:agreement_kappa").row(
        0, named=True
    )
    assert agreement["n"] == 4
    # Judge 1 always says 4, so its ratings carry no information: the observed weighted
    # disagreement (one 4-vs-2 pair in four) equals the chance-expected one, kappa = 0.
    assert agreement["mean"] == pytest.approx(0.0)
    # Krippendorff's alpha over the panel: the same ratings, observed = expected disagreement.
    alpha = aggregates.filter(pl.col("metric") == "helpfulness:agreement_alpha").row(0, named=True)
    assert (alpha["n"], alpha["mean"]) == (4, pytest.approx(0.0))


def test_an_unknown_judge_model_is_refused_when_the_definitions_load(tmp_path, store_root):
    project = judged_project(tmp_path / "p", judges=("gpt-17",))
    with pytest.raises(CatalogError) as info:
        build_definitions(str(project), str(store_root))
    assert "datasets/open-qa/dataset.yaml" in str(info.value)
    assert "params.judges" in str(info.value)
    assert "unknown judge model 'gpt-17'" in str(info.value)
