"""Fine-tuning without a model: train splits, recipes, the adapter store, the verdict.

The trainer itself is the edge these tests swap (a fake that writes adapter files);
test_training_real.py trains the real model for a few steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.keys import validate_slug
from eval_pipeline.storage import Store
from eval_pipeline.training import (
    Recipe,
    TrainingReport,
    adapter_model_spec,
    check_disjoint,
    compare_adapter,
    current_adapter,
    load_recipes,
    train_recipe,
    train_split,
    with_adapter_models,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(REPO, load_rows=False)


def recipe(**changes) -> Recipe:
    settings = {
        "name": "tiny",
        "base": "smollm2-135m",
        "dataset": "json-extract",
        "max_steps": 2,
        "batch_size": 2,
    }
    return Recipe.model_validate({**settings, **changes})


class FakeTrainer:
    """Writes adapter files whose content follows the recipe, and counts its calls."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, recipe, base, dataset, out: Path) -> TrainingReport:
        self.calls.append(recipe.name)
        (out / "adapter_config.json").write_text(json.dumps(recipe.training_settings()))
        (out / "adapter_model.safetensors").write_bytes(b"weights")
        (out / "README.md").write_text("model card")
        return TrainingReport(
            steps=recipe.max_steps or 1,
            epochs=1.0,
            examples=len(dataset.rows),
            examples_cut=0,
            train_tokens=100,
            completion_tokens=20,
            loss_curve=(2.0, 1.0),
            wall_s=0.1,
            tokens_per_s=1000.0,
            peak_memory_gb=0.1,
            device="cpu",
            quantization="none",
            optimizer="adamw",
            trainable_params=10,
        )


# ------------------------------------------------------------------ train splits


@pytest.mark.parametrize(("name", "targets"), [("json-extract", True), ("qa", False)])
def test_a_shipped_train_split_shares_no_id_or_input_with_the_test_rows(catalog, name, targets):
    test, train = catalog.dataset(name), train_split(catalog, name)
    assert len(train.rows) >= 100
    # json-extract's answer objects are unique per row, so none may recur either.
    assert check_disjoint(test, train, targets=targets) == []
    assert train.version != test.version


def test_check_disjoint_reports_a_test_row_copied_into_the_train_split(catalog):
    test = catalog.dataset("json-extract")
    train = train_split(catalog, "json-extract")
    leaked = type(train)(train.spec, train.prompt, (*train.rows, test.rows[3]), train.version)
    problems = check_disjoint(test, leaked, targets=True)
    assert any(test.rows[3]["sample_id"] in p for p in problems)
    assert any(p.startswith("target") for p in problems)


def test_the_committed_data_files_are_what_make_datasets_writes():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_datasets.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------ recipes


def test_the_shipped_recipes_load(catalog):
    recipes = load_recipes(REPO, catalog)
    assert {"json-extract-lora", "qa-lora"} <= set(recipes)
    assert recipes["json-extract-lora"].base in catalog.models


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"target_modules": ["q_proj", "qproj"]}, "recipes[0].target_modules", "qproj"),
        ({"rank": 0}, "recipes[0].rank", "greater than or equal to 1"),
        ({"dataset": "open-qa"}, "recipes[0].dataset", "no train split"),
        ({"dataset": "nope"}, "recipes[0].dataset", "unknown dataset"),
        ({"base": "nope"}, "recipes[0].base", "unknown model"),
        ({"learning_rate": 0}, "recipes[0].learning_rate", "greater than 0"),
        ({"bogus": 1}, "recipes[0].bogus", "unknown field"),
    ],
)
def test_a_bad_recipe_fails_at_load_naming_file_and_field(catalog, tmp_path, change, field, words):
    entry = {"name": "r", "base": "smollm2-135m", "dataset": "json-extract", **change}
    (tmp_path / "recipes.yaml").write_text(json.dumps({"recipes": [entry]}))
    with pytest.raises(CatalogError) as caught:
        load_recipes(tmp_path, catalog)
    assert caught.value.file == "recipes.yaml"
    assert caught.value.field == field
    assert words in caught.value.problem


def test_a_recipe_for_a_model_that_cannot_train_is_refused(tmp_path):
    root = tmp_path / "project"
    (root / "datasets").mkdir(parents=True)
    (root / "prompts").symlink_to(REPO / "prompts")
    # The generative datasets only: a fake model may not be paired with a
    # log-likelihood multiple-choice dataset.
    for name in ("json-extract", "qa"):
        (root / "datasets" / name).symlink_to(REPO / "datasets" / name)
    models = (REPO / "models.yaml").read_text()
    (root / "models.yaml").write_text(models + "  - {slug: api, provider: fake, model_id: fake}\n")
    entry = {"name": "r", "base": "api", "dataset": "json-extract"}
    (root / "recipes.yaml").write_text(json.dumps({"recipes": [entry]}))
    with pytest.raises(CatalogError, match=r"recipes\[0\]\.base.*provider 'fake'"):
        load_recipes(root, load_catalog(root, load_rows=False))


# ------------------------------------------------------------------ adapter store


def test_an_unchanged_recipe_makes_no_work_and_a_changed_one_trains_a_new_adapter(
    catalog, tmp_path
):
    store, trainer = Store(tmp_path / "store"), FakeTrainer()
    first = train_recipe(catalog, store, recipe(), trainer=trainer)
    again = train_recipe(catalog, store, recipe(description="edited text only"), trainer=trainer)
    assert trainer.calls == ["tiny"]
    assert (first.reused, again.reused) == (False, True)
    assert again.path == first.path and again.fingerprint == first.fingerprint
    assert again.report == first.report

    changed = train_recipe(catalog, store, recipe(learning_rate=1e-3), trainer=trainer)
    assert trainer.calls == ["tiny", "tiny"]
    assert changed.fingerprint != first.fingerprint
    assert changed.path != first.path
    # Both stay stored: going back to the first recipe is free again.
    assert train_recipe(catalog, store, recipe(), trainer=trainer).path == first.path
    assert trainer.calls == ["tiny", "tiny"]
    assert current_adapter(catalog, store, recipe(learning_rate=1e-3)).path == changed.path


def test_the_adapter_folder_is_named_by_its_content_and_holds_only_the_adapter(catalog, tmp_path):
    store = Store(tmp_path / "store")
    adapter = train_recipe(catalog, store, recipe(), trainer=FakeTrainer())
    folder = Path(adapter.path)
    assert folder.name == adapter.content_hash
    assert folder.parent == tmp_path / "store" / "adapters" / "recipe=tiny"
    assert sorted(p.name for p in folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert not list(folder.parent.glob(".staging-*"))


def test_an_adapter_edited_in_the_store_is_trained_again(catalog, tmp_path):
    store, trainer = Store(tmp_path / "store"), FakeTrainer()
    adapter = train_recipe(catalog, store, recipe(), trainer=trainer)
    (Path(adapter.path) / "adapter_model.safetensors").write_bytes(b"tampered")
    assert train_recipe(catalog, store, recipe(), trainer=trainer).reused is False
    assert len(trainer.calls) == 2


def test_the_adapter_joins_the_catalog_as_base_plus_recipe_and_its_spec_carries_its_hash(
    catalog, tmp_path
):
    adapter = train_recipe(catalog, Store(tmp_path / "s"), recipe(), trainer=FakeTrainer())
    base = catalog.model("smollm2-135m")
    spec = adapter_model_spec(base, adapter)
    assert spec.slug == "smollm2-135m__tiny" and validate_slug(spec.slug) is None
    assert spec.adapter == adapter.path
    assert spec.identity()["adapter_sha256"] == adapter.content_hash
    inherited = ("provider", "model_id", "revision", "sampling", "options", "runs_on")
    assert {k: getattr(spec, k) for k in inherited} == {k: getattr(base, k) for k in inherited}
    with pytest.raises(ValueError, match="trained on"):
        adapter_model_spec(catalog.model("smollm2-135m").model_copy(update={"slug": "x"}), adapter)


def test_every_trained_recipe_joins_the_catalog_and_an_untrained_one_does_not(catalog, tmp_path):
    store = Store(tmp_path / "store")
    adapter = train_recipe(catalog, store, recipe(), trainer=FakeTrainer())
    recipes = {"tiny": recipe(), "other": recipe(name="other")}
    joined = with_adapter_models(catalog, store, recipes)
    assert set(joined.models) - set(catalog.models) == {"smollm2-135m__tiny"}
    assert joined.model("smollm2-135m__tiny").adapter == adapter.path
    # An edited recipe has no current adapter until it is trained again.
    edited = with_adapter_models(catalog, store, {"tiny": recipe(rank=4)})
    assert set(edited.models) == set(catalog.models)


# ----------------------------------------------------------------------- verdict


def scores(model: str, values: list[float], metric: str = "exact_object") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": model,
            "dataset": "json-extract",
            "metric": metric,
            "sample_id": [f"je-{i:04d}" for i in range(len(values))],
            "value": values,
        }
    )


def test_the_comparison_flags_a_planted_improvement_with_a_ci_above_zero():
    base = [1.0] * 24 + [0.0] * 36
    # 20 failures fixed, 2 passes broken: a planted gain of 18/60.
    tuned = [1.0] * 22 + [0.0] * 2 + [1.0] * 20 + [0.0] * 16
    report = compare_adapter(scores("smollm2-135m", base), scores("smollm2-135m__r", tuned))
    [verdict] = report.comparisons
    assert verdict.test == "mcnemar"
    assert verdict.improved and not verdict.regressed
    assert verdict.delta == pytest.approx(18 / 60)
    assert 0 < verdict.ci_low < verdict.delta < verdict.ci_high
    assert (len(verdict.better), len(verdict.worse)) == (20, 2)
    assert (report.baseline_name, report.current_name) == ("smollm2-135m", "smollm2-135m__r")
    assert verdict.model == "smollm2-135m__r"


def test_the_comparison_does_not_call_noise_an_improvement():
    base = [1.0, 0.0] * 30
    tuned = [0.0, 1.0] * 2 + [1.0, 0.0] * 28  # two flips each way
    [verdict] = compare_adapter(scores("b", base), scores("a", tuned)).comparisons
    assert verdict.delta == 0
    assert not verdict.improved and not verdict.regressed
    assert verdict.ci_low < 0 < verdict.ci_high


def test_a_graded_metric_is_compared_with_the_paired_bootstrap():
    base = [0.0, 1 / 3, 2 / 3] * 20
    tuned = [min(1.0, v + 1 / 3) for v in base]
    [verdict] = compare_adapter(
        scores("b", base, "field_accuracy"), scores("a", tuned, "field_accuracy")
    ).comparisons
    assert verdict.test == "paired_bootstrap"
    assert verdict.improved and verdict.ci_low > 0


# --------------------------------------------------------------------------- CLI


def _project_with_recipe(tmp_path: Path, entry: dict) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("models.yaml", "datasets", "prompts"):
        (root / name).symlink_to(REPO / name)
    (root / "recipes.yaml").write_text(json.dumps({"recipes": [entry]}))
    return root


def test_cli_train_prints_the_stored_adapter_of_an_unchanged_recipe_without_training(
    catalog, tmp_path, capsys
):
    from eval_pipeline.cli import main

    tiny = recipe()
    root = _project_with_recipe(tmp_path, tiny.model_dump(mode="json"))
    store = tmp_path / "store"
    stored = train_recipe(catalog, Store(store), tiny, trainer=FakeTrainer())
    code = main(["--root", str(root), "--store", str(store), "train", "--recipe", "tiny"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"adapter: {stored.path}" in out
    assert f"content hash: {stored.content_hash}" in out
    assert "model: smollm2-135m__tiny" in out
    assert "no (stored, recipe unchanged)" in out


def test_cli_train_names_the_known_recipes_when_given_an_unknown_one(tmp_path, capsys):
    from eval_pipeline.cli import main

    root = _project_with_recipe(tmp_path, recipe().model_dump(mode="json"))
    code = main(["--root", str(root), "--store", str(tmp_path / "s"), "train", "--recipe", "nope"])
    assert code == 2
    assert "unknown recipe 'nope' (known: tiny)" in capsys.readouterr().err
