"""What environment a real SLURM job gets (the local cluster of scripts/slurm/start-slurm.sh).

sbatch sends the environment it exports to slurmctld, which keeps it in its spool; a job
gets only what it needs, and the API key variables its models name.
"""

from __future__ import annotations

import os

import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.slurm import SlurmProfile, job_environment_names, submit_array
from eval_pipeline_tests.slurm_helpers import (
    TEST_PROFILE,
    slurm_cluster,  # noqa: F401  (fixture)
    slurm_project,
)

PLANTED = "EVAL_TEST_PLANTED_SECRET"
MODEL_KEY = "EVAL_TEST_REMOTE_MODEL_KEY"


def test_job_environment_names_keep_what_jobs_need_and_drop_the_rest():
    environ = {
        "PATH": "/usr/bin",
        "HF_HOME": "/hf",
        "CUDA_VISIBLE_DEVICES": "0",
        "EVAL_PIPELINE_STORE": "/store",
        "AWS_SECRET_ACCESS_KEY": "x",
        "OPENAI_API_KEY": "y",
        "PATHOLOGICAL": "z",
    }
    assert job_environment_names(environ=environ) == [
        "CUDA_VISIBLE_DEVICES",
        "EVAL_PIPELINE_STORE",
        "HF_HOME",
        "PATH",
    ]
    named = job_environment_names(["OPENAI_API_KEY", "UNSET_KEY"], environ=environ)
    assert "OPENAI_API_KEY" in named and "UNSET_KEY" not in named


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_slurm_job_gets_its_models_key_but_not_a_secret_no_model_names(tmp_path, monkeypatch):
    model = {
        "slug": "remote-api",
        "provider": "openai",
        "model_id": "gpt-x",
        "runs_on": "slurm",
        "slurm_profile": "test",
        "options": {"api_key_env": MODEL_KEY, "base_url": "http://127.0.0.1:9"},
    }
    project = slurm_project(tmp_path / "p", [model])
    catalog = load_catalog(project, load_rows=False)
    monkeypatch.setenv(PLANTED, "planted-value")
    monkeypatch.setenv(MODEL_KEY, "model-key-value")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    names = [PLANTED, MODEL_KEY, "HF_HUB_DISABLE_PROGRESS_BARS", "OMP_NUM_THREADS", "PATH"]
    batch = submit_array(
        os.getenv,  # each job answers one variable of its own environment
        names,
        names,
        profile=SlurmProfile.model_validate({**TEST_PROFILE, "name": "test"}),
        folder=tmp_path / "submitit",
        env_names=catalog.secret_env_names(["remote-api"]),
    )
    outcomes = batch.wait(poll_s=0.5, timeout_s=180)
    seen = {}
    for name, outcome in outcomes.items():
        assert outcome.ok, outcome.log_tail
        seen[name] = outcome.result
    assert seen[PLANTED] is None
    assert seen[MODEL_KEY] == "model-key-value"
    assert seen["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert seen["OMP_NUM_THREADS"] == "1"  # the profile's own env still reaches the job
    assert seen["PATH"] == os.environ["PATH"]
    sbatch = next((tmp_path / "submitit").glob("*submission_file*.sh")).read_text()
    export = next(line for line in sbatch.splitlines() if line.startswith("#SBATCH --export="))
    assert MODEL_KEY in export and PLANTED not in export
    assert "planted-value" not in sbatch and "model-key-value" not in sbatch
