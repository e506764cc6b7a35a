"""A few real LoRA steps on the shipped SmolLM2-135M, on CPU.

One module-scoped training run (the model loads once, through the transformers
provider's loader) serves every test here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.model_task import ModelTask, Work, run_model_task
from eval_pipeline.storage import Store
from eval_pipeline.training import Recipe, load_base, train_recipe
from eval_pipeline_tests.slurm_helpers import (
    slurm_cluster,  # noqa: F401  (fixture)
    slurm_project,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# Tiny on purpose: eight examples seen three times over, short sequences, LoRA on the top
# layers only (the backward pass stops there), a learning rate that moves in a few steps.
TINY = {
    "name": "tiny",
    "base": "smollm2-135m",
    "dataset": "json-extract",
    "rank": 8,
    "alpha": 16,
    "target_modules": ["q_proj", "v_proj"],
    "layers": [26, 27, 28, 29],
    "learning_rate": 3e-3,
    "max_steps": 6,
    "batch_size": 4,
    "max_length": 128,
    "train_limit": 8,
    "seed": 0,
    "quantize": "none",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The shipped catalog with the tiny recipe as its recipes.yaml."""
    root = tmp_path_factory.mktemp("project")
    for name in ("models.yaml", "datasets", "prompts"):
        (root / name).symlink_to(REPO / name)
    (root / "recipes.yaml").write_text(json.dumps({"recipes": [TINY]}))
    return root


@pytest.fixture(scope="module")
def trained(project, tmp_path_factory):
    catalog = load_catalog(project, load_rows=False)
    store = Store(tmp_path_factory.mktemp("store"))
    adapter = train_recipe(catalog, store, Recipe.model_validate(TINY))
    return catalog, store, adapter


def test_a_few_cpu_steps_lower_the_training_loss(trained):
    _, _, adapter = trained
    report = adapter.report
    assert report.steps == 6 and len(report.loss_curve) == 6
    assert report.device == "cpu" and report.quantization == "none"
    first, last = report.loss_curve[:2], report.loss_curve[-2:]
    assert sum(last) / 2 < 0.8 * (sum(first) / 2), report.loss_curve
    assert report.completion_tokens > 0 and report.train_tokens > report.completion_tokens
    assert report.tokens_per_s > 0 and report.peak_memory_gb > 0
    assert 0 < report.trainable_params < 1_000_000


def test_the_trained_adapter_loads_with_peft_and_generates(trained):
    import torch
    from peft import PeftModel

    catalog, _, adapter = trained
    config = json.loads((Path(adapter.path) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    base, tokenizer, _, _ = load_base(Recipe.model_validate(TINY), catalog.model("smollm2-135m"))
    model = PeftModel.from_pretrained(copy.deepcopy(base), adapter.path).eval()
    # The LoRA weights moved away from their zero start: the adapter changes the output.
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(float(p.abs().sum()) > 0 for p in lora_b)
    dataset = catalog.dataset("json-extract")
    messages = [m.as_dict() for m in dataset.prompt.render(dataset.rows[0]["fields"])]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
        tuned = model(ids).logits[0, -1]
        plain = base(ids).logits[0, -1]
    assert len(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()) > 0
    assert not torch.allclose(tuned, plain)


def test_a_train_work_item_finds_the_adapter_its_recipe_already_has(trained, project):
    _, store, adapter = trained
    task = ModelTask(
        project_root=str(project),
        store_root=str(store.root),
        model="smollm2-135m",
        work=(Work("train", recipe="tiny"),),
    )
    [result] = run_model_task(task).results
    assert result.ok, result.error
    assert (result.path, result.reused_rows, result.new_rows) == (adapter.path, 1, 0)
    assert result.dataset_version == adapter.train_version


def test_the_adapter_model_generates_through_run_node_by_its_catalog_slug(trained, project):
    from eval_pipeline.stages import build_dataset_samples, build_prompt_versions

    catalog, store, adapter = trained
    build_prompt_versions(catalog, store, "json-extract")
    build_dataset_samples(catalog, store, "json-extract")
    task = ModelTask(
        project_root=str(project),
        store_root=str(store.root),
        model="smollm2-135m__tiny",
        work=(Work("generate", dataset="json-extract"),),
        sample_limit=2,
    )
    [result] = run_model_task(task).results
    assert result.ok, result.error
    assert (result.rows, result.errors) == (2, 0)
    frame = store.read("generations", dataset="json-extract", model="smollm2-135m__tiny")
    assert frame["completion"].str.len_chars().min() > 0
    # Each row names the exact adapter files that answered.
    revision = catalog.model("smollm2-135m").revision
    assert set(frame["model_revision"]) == {f"{revision}+adapter:{adapter.content_hash}"}


def test_the_adapter_evaluates_as_a_grid_partition_checked_against_its_base(
    trained, project, capsys
):
    import dagster as dg

    from eval_pipeline.defs import build_definitions

    catalog, store, adapter = trained
    defs = build_definitions(str(project), str(store.root))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("ci_suite_job")
    for model in ("smollm2-135m", "smollm2-135m__tiny"):
        result = job.execute_in_process(partition_key=f"json-extract|{model}", instance=instance)
        assert result.success, model
    [check] = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "adapter_vs_base"
    ]
    assert check.description.startswith("against smollm2-135m: ")
    assert check.metadata["base_model"].value == "smollm2-135m"
    assert check.metadata["adapter"].value == adapter.path
    frame = store.read("generations", dataset="json-extract", model="smollm2-135m__tiny")
    assert frame.height == 5
    revision = catalog.model("smollm2-135m").revision
    assert set(frame["model_revision"]) == {f"{revision}+adapter:{adapter.content_hash}"}
    # Its rows are in `eval-pipeline results` like any model's.
    from eval_pipeline.cli import main

    capsys.readouterr()
    args = ["--root", str(project), "--store", str(store.root), "results", "--json"]
    assert main([*args, "--model", "smollm2-135m__tiny"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["model"] for r in rows} == {"smollm2-135m__tiny"}
    assert {r["dataset"] for r in rows} == {"json-extract"}


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_recipe_whose_base_runs_on_slurm_trains_in_one_slurm_job(tmp_path):
    import dagster as dg
    import yaml

    from eval_pipeline.defs import build_definitions

    shipped = yaml.safe_load((REPO / "models.yaml").read_text())["models"]
    [base] = [m for m in shipped if m["slug"] == "smollm2-135m"]
    project = slurm_project(
        tmp_path / "project", [{**base, "runs_on": "slurm", "slurm_profile": "test"}]
    )
    (project / "recipes.yaml").write_text(json.dumps({"recipes": [TINY]}))
    store = tmp_path / "store"
    defs = build_definitions(str(project), str(store))
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("training_job").execute_in_process(
        partition_key="smollm2-135m__tiny", instance=instance
    )
    assert result.success
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("adapters")
    ]
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["runs_on"] == "slurm" and metadata["slurm/job_id"]
    assert metadata["reused"] is False and metadata["train/steps"] == TINY["max_steps"]
    stored = Store(store).root / "adapters" / "recipe=tiny" / metadata["adapter_hash"]
    assert (stored / "adapter_model.safetensors").exists()
