"""The runner seam: the same task inline and on SLURM, and judging apart from generation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

import eval_pipeline_tests.slurm_drill  # noqa: F401  (registers the drill provider here too)
from eval_pipeline.core.schemas import VOLATILE_COLUMNS
from eval_pipeline.providers.fake import calls_for
from eval_pipeline.storage import Store
from eval_pipeline_tests.apiserver import ServerConfig, api_model, make_api_project
from eval_pipeline_tests.apiserver.fixtures import KEY_ENV, api_key_fixture, api_server_fixture
from eval_pipeline_tests.judge_helpers import judged_project
from eval_pipeline_tests.projects import REPO, make_project
from eval_pipeline_tests.slurm_helpers import (
    TEST_PROFILE,
    materialize_partitions,
    slurm_cluster,  # noqa: F401  (fixture)
    slurm_project,
    step_failure,
)

api_server = api_server_fixture()
_api_key = api_key_fixture()


def _without_volatile(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    return frame.drop(VOLATILE_COLUMNS[table])


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_one_partition_gives_the_same_rows_inline_and_on_slurm(tmp_path):
    model = {
        "slug": "fake-same",
        "provider": "fake",
        "model_id": "fake/same",
        "options": {"mode": "reference", "wrong_fraction": 0.3},
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }
    frames = {}
    for runs_on in ("inline", "slurm"):
        entry = {**model, "runs_on": runs_on}
        if runs_on == "slurm":
            entry["slurm_profile"] = "test"
        project = slurm_project(tmp_path / runs_on, [entry])
        store = tmp_path / runs_on / "store"
        outcome = materialize_partitions(project, store, "qa|fake-same", "qa|fake-same")
        assert outcome.success, step_failure(outcome, "generations")
        assert outcome.metadata["generations"]["qa|fake-same"]["runs_on"] == runs_on
        frames[runs_on] = _without_volatile(
            Store(store).read("generations", dataset="qa", model="fake-same"), "generations"
        )
        rows = Store(store).read("generations", dataset="qa", model="fake-same")
        assert rows["run_id"].drop_nulls().len() == rows.height
        assert (rows["slurm_job_id"][0] is not None) == (runs_on == "slurm")
        assert (rows["slurm_node"][0] is not None) == (runs_on == "slurm")
        telemetry = Store(store).read("telemetry", dataset="qa", model="fake-same")
        assert telemetry["runs_on"][0] == runs_on
        assert (telemetry["job_id"][0] != "") == (runs_on == "slurm")
    assert frames["inline"].height == 3
    assert_frame_equal(frames["inline"], frames["slurm"])


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_an_api_model_on_slurm_honours_its_budget(api_server, tmp_path):
    api_server.configure(ServerConfig(latency_s=0.01))
    model = api_model(
        "api-slurm",
        "openai",
        api_server.openai_base_url,
        concurrency=4,
        pricing=(1000.0, 1000.0),  # about a cent a request
        api_key_env=KEY_ENV,
        request_timeout_s=5.0,
    )
    model.update(runs_on="slurm", slurm_profile="test")
    project = make_api_project(tmp_path / "project", [model], 60)
    shutil.copytree(REPO / "slurm", project / "slurm")
    (project / "slurm" / "test.yaml").write_text(yaml.safe_dump(TEST_PROFILE))
    outcome = materialize_partitions(
        project,
        tmp_path / "store",
        "synth|api-slurm",
        "synth|api-slurm",
        sample_limit=None,
        config={"budget_usd": 0.1},
    )
    assert not outcome.success
    failure = step_failure(outcome, "generations")
    assert "spend budget of $0.1000 reached" in failure
    gens = Store(tmp_path / "store").read("generations", dataset="synth", model="api-slurm")
    sent = api_server.stats()["requests"]
    assert 0 < sent < 60
    assert gens.filter(pl.col("completion").is_not_null())["cost_usd"].sum() <= 0.1
    assert gens["error"].str.starts_with("not attempted: spend budget").sum() == 60 - sent


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_judge_that_runs_on_slurm_judges_in_a_slurm_job(tmp_path):
    project = judged_project(tmp_path / "p")
    models = yaml.safe_load((project / "models.yaml").read_text())
    for entry in models["models"]:
        if entry["slug"] == "fake-judge":
            entry.update(runs_on="slurm", slurm_profile="test")
    (project / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    shutil.copytree(REPO / "slurm", project / "slurm")
    (project / "slurm" / "test.yaml").write_text(yaml.safe_dump(TEST_PROFILE))
    outcome = materialize_partitions(
        project,
        tmp_path / "store",
        "open-qa|fake-good",
        "open-qa|fake-good",
        assets=("generations", "judgements", "scores"),
    )
    assert outcome.success, step_failure(outcome, "scores")
    # The SLURM job wrote the judgements table itself; scores read it from there.
    judgements = Store(tmp_path / "store").read("judgements", dataset="open-qa", model="fake-good")
    assert judgements["judge"].to_list() == ["fake-judge"] * 3
    assert judgements["judged_hash"].null_count() == 0
    scores = Store(tmp_path / "store").read("scores", dataset="open-qa", model="fake-good")
    judged = scores.filter(pl.col("metric") == "helpfulness")
    assert judged.height == 3 and judged["value"].to_list() == [4.0, 4.0, 4.0]
    # Every verdict came from the SLURM job: this process never asked the judge.
    assert calls_for("fake-judge") == 0
    assert Store(tmp_path / "store").calibration_path("fake-judge", "helpfulness").exists()


CHILD = """
import json, sys
from pathlib import Path
from eval_pipeline_tests.helpers import materialize
result = materialize(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sample_limit=3)
print(json.dumps({
    "success": result.success,
    "local_provider_imported": "eval_pipeline.providers.transformers" in sys.modules,
    "torch_imported": "torch" in sys.modules,
}))
"""


def test_an_api_model_on_qa_in_an_empty_store_loads_no_local_model(api_server, tmp_path):
    api_server.configure(ServerConfig(latency_s=0.0))
    shipped = yaml.safe_load((REPO / "models.yaml").read_text())
    entry = api_model("api-model", "openai", api_server.openai_base_url, api_key_env=KEY_ENV)
    project = make_project(
        tmp_path / "p",
        models={"models": [*shipped["models"], entry]},
        datasets=("qa", "open-qa"),
    )
    shutil.copytree(REPO / "datasets" / "judge-labels", project / "datasets" / "judge-labels")
    store = tmp_path / "store"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(project), str(store), "qa|api-model"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {
        "success": True,
        "local_provider_imported": False,
        "torch_imported": False,
    }
    assert api_server.stats()["requests"] == 3
    # The judged open-qa was not touched: no judge calibrated, nothing scored there.
    assert Store(store).calibration_pairs() == []
    assert Store(store).exists("scores", dataset="qa", model="api-model")


def test_every_generation_step_records_its_telemetry_and_provenance(tmp_path):
    from eval_pipeline_tests.helpers import materialize

    project = make_project(tmp_path / "p", datasets=("qa",))
    store = tmp_path / "store"
    result = materialize(project, store, "qa|fake-good", sample_limit=4)
    assert result.success
    rows = Store(store).read("generations", dataset="qa", model="fake-good")
    assert rows["run_id"].unique().to_list() == [result.run_id]
    # The store's history keeps every table of the partition under the Dagster run's id.
    for table in ("generations", "scores", "aggregates"):
        entries = Store(store).history(table, "qa", "fake-good")
        assert [e.run_id for e in entries] == [result.run_id], table
    assert rows["slurm_job_id"].null_count() == rows.height
    versions = json.loads(rows["versions"][0])
    assert versions["python"] == sys.version.split()[0]
    assert versions["polars"] == pl.__version__
    telemetry = Store(store).read("telemetry", dataset="qa", model="fake-good").row(0, named=True)
    assert telemetry["runs_on"] == "inline" and telemetry["job_id"] == ""
    assert telemetry["new_output_tokens"] > 0 and telemetry["tokens_per_s"] > 0
    assert telemetry["peak_rss_gb"] > 0.05
    assert telemetry["gpu_peak_mem_gb"] is None and telemetry["gpu_util_mean"] is None
    aggregates = Store(store).read("aggregates", dataset="qa", model="fake-good")
    assert aggregates["tokens_per_s"][0] == telemetry["tokens_per_s"]
    assert aggregates["peak_rss_gb"][0] == telemetry["peak_rss_gb"]


def test_the_gpu_monitor_reads_nvml_only_when_a_gpu_is_visible(monkeypatch):
    import types

    from eval_pipeline.model_task import _telemetry

    with _telemetry.GpuMonitor() as idle:
        pass
    assert idle.peak_mem_gb is None and idle.util_mean is None

    samples = iter([(2 * 2**30, 40), (6 * 2**30, 80), (4 * 2**30, 60)] * 100)
    current = {}

    def memory(_handle):
        used, util = next(samples)
        current["util"] = util
        return types.SimpleNamespace(used=used)

    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetUtilizationRates=lambda _h: types.SimpleNamespace(gpu=current["util"]),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(_telemetry, "gpu_visible", lambda: True)
    monitor = _telemetry.GpuMonitor(interval_s=3600)
    with monitor:
        monitor._sample()
    # Three samples: on entry, the explicit one, on exit.
    assert monitor.peak_mem_gb == 6.0
    assert monitor.util_mean == 60.0
