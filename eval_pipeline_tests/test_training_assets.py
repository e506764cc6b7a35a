"""Fine-tuning in Dagster: the ``adapters`` asset, its grid partitions, check and sensor.

Training itself is swapped for the fake trainer of test_training.py (test_training_real.py
trains for real); the base model still loads where a recipe needs training.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.defs import build_definitions
from eval_pipeline.defs.adapters import adapter_outcome, recipes_by_model
from eval_pipeline.resources import CatalogResource
from eval_pipeline.storage import Store
from eval_pipeline.training import Recipe, train_recipe
from eval_pipeline_tests.test_training import FakeTrainer

REPO = Path(__file__).resolve().parents[1]
TINY = {"name": "tiny", "base": "smollm2-135m", "dataset": "json-extract", "max_steps": 2}
OTHER = {**TINY, "name": "other", "rank": 4}


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path]:
    """The shipped catalog with two recipes, and an empty store."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("models.yaml", "datasets", "prompts"):
        (root / name).symlink_to(REPO / name)
    (root / "recipes.yaml").write_text(json.dumps({"recipes": [TINY, OTHER]}))
    return root, tmp_path / "store"


def _train_fake(root: Path, store: Path, entry: dict):
    catalog = load_catalog(root, load_rows=False)
    return train_recipe(catalog, Store(store), Recipe.model_validate(entry), trainer=FakeTrainer())


def _materialization(result: dg.ExecuteInProcessResult, partition: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.partition == partition
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_recipe_is_an_adapters_partition_and_its_model_a_grid_model(project):
    root, store = project
    defs = build_definitions(str(root), str(store))
    adapters = defs.resolve_assets_def("adapters").partitions_def.get_partition_keys()
    assert adapters == ["smollm2-135m__other", "smollm2-135m__tiny"]
    grid = defs.resolve_assets_def("generations").partitions_def.get_partition_keys()
    assert {"json-extract|smollm2-135m__tiny", "qa|smollm2-135m__other"} <= set(grid)


def _train_samples_events(result: dg.ExecuteInProcessResult) -> list:
    return [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("train_samples")
    ]


def test_an_unchanged_recipe_materializes_from_the_store_without_training(project, monkeypatch):
    root, store = project
    stored = _train_fake(root, store, TINY)

    def no_training(*args, **kwargs):
        raise AssertionError("an unchanged recipe must not train")

    monkeypatch.setattr("eval_pipeline.training._train.train_on_base", no_training)
    defs = build_definitions(str(root), str(store))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("training_job")
    result = job.execute_in_process(partition_key="smollm2-135m__tiny", instance=instance)
    assert result.success
    metadata = _materialization(result, "smollm2-135m__tiny")
    assert metadata["adapter_hash"] == stored.content_hash
    assert metadata["reused"] is True
    assert metadata["model"] == "smollm2-135m__tiny"
    assert metadata["train/loss_final"] < metadata["train/loss_first"]
    # The train split it reads is recorded as train_samples once, then only on a change.
    [split] = _train_samples_events(result)
    assert split.partition == "json-extract"
    assert split.metadata["train_version"].value == stored.train_version
    rows = Store(store).read("train_samples", dataset="json-extract")
    assert rows.height == split.metadata["dagster/row_count"].value == 256
    again = job.execute_in_process(partition_key="smollm2-135m__tiny", instance=instance)
    assert again.success and _train_samples_events(again) == []
    records = instance.fetch_materializations(dg.AssetKey("train_samples"), limit=10).records
    assert len(records) == 1


def test_a_new_recipe_trains_through_the_runner_and_joins_the_catalog(project, monkeypatch):
    root, store = project
    trainer = FakeTrainer()

    def fake_train_on_base(recipe, base, dataset, out, on_step=None):
        return trainer(recipe, base, dataset, out)

    monkeypatch.setattr("eval_pipeline.training._train.train_on_base", fake_train_on_base)
    defs = build_definitions(str(root), str(store))
    catalog = CatalogResource(root=str(root), store_root=str(store))
    assert "smollm2-135m__other" not in catalog.load().models
    result = defs.resolve_job_def("training_job").execute_in_process(
        partition_key="smollm2-135m__other", instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    assert trainer.calls == ["other"]
    metadata = _materialization(result, "smollm2-135m__other")
    assert metadata["reused"] is False and metadata["runs_on"] == "inline"
    # Once trained, the adapter is a catalog model whose entry names its files.
    spec = catalog.load().model("smollm2-135m__other")
    assert spec.adapter and spec.adapter.endswith(metadata["adapter_hash"])
    assert spec.revision_label().endswith(f"+adapter:{metadata['adapter_hash']}")


def test_an_adapter_partition_before_training_fails_saying_what_to_train(project):
    root, store = project
    defs = build_definitions(str(root), str(store))
    result = defs.resolve_job_def("evaluation_job").execute_in_process(
        partition_key="json-extract|smollm2-135m__other",
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.user_failure_data.description)
    assert "no trained adapter for smollm2-135m__other" in message
    assert "`adapters`" in message and "eval-pipeline train" in message


def test_the_sensor_evaluates_a_newly_trained_adapter_and_its_base_once(project, monkeypatch):
    root, store = project
    _train_fake(root, store, TINY)
    monkeypatch.setattr("eval_pipeline.training._train.train_on_base", None)
    defs = build_definitions(str(root), str(store))
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("adapter_sensor")
    resources = {"catalog": CatalogResource(root=str(root), store_root=str(store))}

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        )
        return sensor(context)

    assert isinstance(tick(None), dg.SkipReason)  # nothing trained in this instance yet
    defs.resolve_job_def("training_job").execute_in_process(
        partition_key="smollm2-135m__tiny", instance=instance
    )
    first = tick(None)
    keys = sorted(r.partition_key for r in first.run_requests)
    assert keys == ["json-extract|smollm2-135m", "json-extract|smollm2-135m__tiny"]
    reasons = {r.tags["eval_pipeline/reason"] for r in first.run_requests}
    assert reasons == {"adapter smollm2-135m__tiny trained"}
    again = tick(first.cursor)
    assert isinstance(again, dg.SkipReason)


def _scores(model: str, values: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": model,
            "dataset": "json-extract",
            "prompt_version": "p",
            "sample_id": [f"je-{i:04d}" for i in range(len(values))],
            "metric": "exact_object",
            "value": values,
            "detail": "",
            "request_hash": "",
            "code_version": "",
            "answer_mode": "generate",
        }
    )


def test_the_check_flags_a_planted_improvement_over_the_base(project):
    root, store_root = project
    _train_fake(root, store_root, TINY)
    catalog = CatalogResource(root=str(root), store_root=str(store_root)).load()
    store = Store(store_root)
    recipes = recipes_by_model(catalog)
    key = PartitionKey(model="smollm2-135m__tiny", dataset="json-extract")
    # Before the base is evaluated: a warning that names the partition to evaluate.
    waiting = adapter_outcome(catalog, store, recipes, key)
    assert not waiting.passed and waiting.severity == dg.AssetCheckSeverity.WARN
    assert "json-extract|smollm2-135m" in waiting.description
    # 20 failures fixed, 2 passes broken out of 60: a planted gain of 18/60.
    base = [1.0] * 24 + [0.0] * 36
    tuned = [1.0] * 22 + [0.0] * 2 + [1.0] * 20 + [0.0] * 16
    store.write("scores", _scores("smollm2-135m", base), "json-extract", "smollm2-135m")
    store.write("scores", _scores(key.model, tuned), "json-extract", key.model)
    outcome = adapter_outcome(catalog, store, recipes, key)
    assert outcome.passed
    metadata = {k: getattr(v, "value", v) for k, v in outcome.metadata.items()}
    assert metadata["improved_metrics"] == "exact_object"
    assert metadata["exact_object/delta"] == pytest.approx(18 / 60)
    assert 0 < metadata["exact_object/ci_low"] < metadata["exact_object/ci_high"]
    assert "improved" in outcome.description
    # The other way round is a regression: the check fails.
    store.write("scores", _scores(key.model, base[::-1]), "json-extract", key.model)
    store.write("scores", _scores("smollm2-135m", tuned), "json-extract", "smollm2-135m")
    assert not adapter_outcome(catalog, store, recipes, key).passed
    # A model that is not an adapter passes untouched.
    plain = PartitionKey(model="smollm2-135m", dataset="json-extract")
    assert adapter_outcome(catalog, store, recipes, plain).passed


def test_a_new_recipe_reloads_the_grid_but_the_catalog_sensor_leaves_its_model_alone(project):
    from eval_pipeline.resources.webserver import WebserverResource
    from eval_pipeline_tests.opsupport import free_port

    root, store = project
    (root / "recipes.yaml").write_text(json.dumps({"recipes": [TINY]}))
    instance = dg.DagsterInstance.ephemeral()
    resources = {
        "catalog": CatalogResource(root=str(root), store_root=str(store)),
        # Nothing listens there: the reload is refused, and the tick says so.
        "webserver": WebserverResource(url=f"http://127.0.0.1:{free_port()}", timeout_s=5),
    }

    def tick(defs, cursor):
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        )
        return defs.resolve_sensor_def("catalog_sensor")(context)

    before = build_definitions(str(root), str(store))
    first = tick(before, None)
    (root / "recipes.yaml").write_text(json.dumps({"recipes": [TINY, OTHER]}))
    waiting = tick(before, first.cursor)
    said = waiting.skip_reason.skip_message
    assert "could not ask the webserver" in said and "smollm2-135m__other" in said
    after = tick(build_definitions(str(root), str(store)), waiting.cursor)
    assert not after.run_requests
    assert "no new partition to evaluate" in after.skip_reason.skip_message
