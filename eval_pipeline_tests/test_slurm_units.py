"""SLURM pieces that need no cluster: profiles, sbatch text, the node entry point."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.model_task import ModelTask, Work, read_progress, run_model_task
from eval_pipeline.slurm import load_profile, make_executor, profile_names
from eval_pipeline.stages import build_dataset_samples, build_prompt_versions
from eval_pipeline.storage import Store
from eval_pipeline_tests.projects import REPO

GOLDEN_H100 = """\
#!/bin/bash

# Parameters
#SBATCH --array=0-15%8
#SBATCH --cpus-per-task=16
#SBATCH --error=FOLDER/%A_%a_0_log.err
#SBATCH --export=HOME,PATH
#SBATCH --gres=gpu:h100:1
#SBATCH --job-name=eval-h100
#SBATCH --mem=120GB
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=FOLDER/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --signal=USR2@300
#SBATCH --time=240
#SBATCH --wckey=submitit

# setup
export SLURM_EXPORT_ENV=ALL
export HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export VLLM_WORKER_MULTIPROC_METHOD=spawn
module load cuda/12.4 2>/dev/null || true
"""


def test_the_shipped_profiles_are_an_h100_one_and_a_cpu_one():
    assert profile_names(REPO / "slurm") == ["cpu", "h100"]
    h100 = load_profile(REPO / "slurm", "h100")
    assert h100.gres == "gpu:h100:1"
    assert h100.name == "h100"
    cpu = load_profile(REPO / "slurm", "cpu")
    assert cpu.gres is None
    assert "slurm_gres" not in cpu.executor_parameters()


def test_the_h100_profile_writes_the_expected_sbatch_header(tmp_path, monkeypatch):
    # The job's environment is the submitter's, restricted: fix the submitter's here.
    for name in list(os.environ):
        if name not in ("HOME", "PATH"):
            monkeypatch.delenv(name)
    executor = make_executor(tmp_path, load_profile(REPO / "slurm", "h100"), name="eval-h100")
    inner = executor._executor
    inner.parameters["map_count"] = 16  # what map_array sets for a 16-job array
    text = inner._make_submission_file_text("python -m job", "uid")
    header = text.split("# command")[0].replace(str(tmp_path), "FOLDER")
    assert header.strip() == GOLDEN_H100.strip()


def test_an_array_parallelism_override_caps_the_array(tmp_path):
    profile = load_profile(REPO / "slurm", "cpu")
    params = profile.executor_parameters(array_parallelism=1)
    assert params["slurm_array_parallelism"] == 1
    assert profile.executor_parameters()["slurm_array_parallelism"] == profile.array_parallelism


def test_a_bad_profile_names_the_file_and_the_field(tmp_path):
    (tmp_path / "broken.yaml").write_text("cpus_per_task: 0\n")
    with pytest.raises(CatalogError, match=r"broken.yaml: cpus_per_task"):
        load_profile(tmp_path, "broken")
    with pytest.raises(CatalogError, match="no SLURM profile 'missing'"):
        load_profile(tmp_path, "missing")


def test_the_node_entry_point_loads_the_model_once_for_all_datasets(tmp_path, project):
    store = Store(tmp_path / "store")
    from eval_pipeline.catalog import load_catalog

    catalog = load_catalog(project, load_rows=False)
    for dataset in ("qa", "json-extract"):
        build_dataset_samples(catalog, store, dataset)
        build_prompt_versions(catalog, store, dataset)
    task = ModelTask(
        project_root=str(project),
        store_root=str(store.root),
        model="fake-good",
        work=(Work("generate", dataset="qa"), Work("generate", dataset="json-extract")),
        sample_limit=4,
        report_dir=str(tmp_path / "report"),
    )
    report = run_model_task(task)
    assert report.model_loads == 1
    assert report.runs_on == "inline"
    assert [r.work.dataset for r in report.results] == ["qa", "json-extract"]
    assert [r.rows for r in report.results] == [4, 4]
    assert all(r.ok for r in report.results)
    assert report.gpu_type == "none"
    assert (tmp_path / "report" / "report.json").exists()
    assert read_progress(tmp_path / "report")["dataset"] == "json-extract"
    # A second run of the same task answers everything from the response cache.
    again = run_model_task(task)
    assert [r.reused_rows for r in again.results] == [4, 4]
    assert again.new_output_tokens == 0


def test_the_node_entry_point_and_the_launcher_do_not_import_dagster():
    code = (
        "import sys, eval_pipeline.model_task, eval_pipeline.runners, eval_pipeline.slurm; "
        "print('dagster' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_task_is_plain_picklable_data(tmp_path):
    import pickle

    task = ModelTask("/p", "/s", "m", (Work("generate", "a"),), sample_limit=3)
    assert pickle.loads(pickle.dumps(task)) == task
