"""Catalog loading and its error messages (each names the file, the field and the problem)."""

from __future__ import annotations

import json

import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline_tests.conftest import REPO, make_project


def test_the_shipped_catalog_loads_with_three_datasets_of_the_promised_sizes():
    catalog = load_catalog(REPO)
    assert catalog.dataset_names == ["humaneval", "json-extract", "open-qa", "qa"]
    assert len(catalog.dataset("humaneval").rows) == 164
    assert len(catalog.dataset("qa").rows) >= 100
    assert len(catalog.dataset("json-extract").rows) >= 100
    assert "smollm2-135m" in catalog.models


def test_dataset_and_prompt_versions_are_content_hashes(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    first = load_catalog(project).dataset("qa")
    assert first.version.startswith("qa@") and first.prompt.version.startswith("qa@")
    data = project / "datasets" / "qa" / "data.jsonl"
    lines = data.read_text().splitlines()
    row = json.loads(lines[0])
    row["answer"] = row["answer"] + "x"
    data.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    prompt = project / "prompts" / "qa.jinja"
    prompt.write_text(prompt.read_text() + " ")
    second = load_catalog(project).dataset("qa")
    assert second.version != first.version
    assert second.prompt.version != first.prompt.version
    # Same content, same version.
    assert load_catalog(project).dataset("qa").version == second.version


def _edit_yaml(path, edit):
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _expect(project, *fragments):
    with pytest.raises(CatalogError) as info:
        load_catalog(project)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unknown_scorer_names_the_spec_file_and_scorer_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(
        project / "datasets/qa/dataset.yaml", lambda d: d["scorers"].append({"name": "exactly"})
    )
    _expect(project, "datasets/qa/dataset.yaml", "scorers[2].name", "unknown scorer 'exactly'")


def test_unknown_scorer_parameter_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(
        project / "datasets/qa/dataset.yaml",
        lambda d: d["scorers"][0]["params"].update({"contain": True}),
    )
    _expect(project, "datasets/qa/dataset.yaml", "scorers[0].params", "no parameter 'contain'")


def test_missing_template_variable_names_the_prompt_file_and_variable(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    (project / "prompts/qa.jinja").write_text("Q: {{ questoin }}")
    _expect(project, "prompts/qa.jinja", "questoin", "not a field of dataset 'qa'")


def test_malformed_row_names_the_data_file_and_line(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    data = project / "datasets/qa/data.jsonl"
    lines = data.read_text().splitlines()
    lines[4] = '{"id": "qa-x", "question": "broken"'
    data.write_text("\n".join(lines) + "\n")
    _expect(project, "datasets/qa/data.jsonl", "line 5", "malformed row: not valid JSON")


def test_row_missing_a_field_names_the_line_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    data = project / "datasets/qa/data.jsonl"
    lines = data.read_text().splitlines()
    row = json.loads(lines[2])
    del row["answer"]
    lines[2] = json.dumps(row)
    data.write_text("\n".join(lines) + "\n")
    _expect(project, "datasets/qa/data.jsonl", "line 3: answer", "field is missing")


def test_slug_with_illegal_characters_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "models.yaml", lambda d: d["models"][0].update({"slug": "Fake|Good"}))
    _expect(project, "models.yaml", "models[0].slug", "is not a slug", "'|'")


def test_dataset_name_with_illegal_characters_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "datasets/qa/dataset.yaml", lambda d: d.update({"name": "Q/A"}))
    _expect(project, "datasets/qa/dataset.yaml", "name", "is not a slug")


def test_unknown_provider_names_the_models_file_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "models.yaml", lambda d: d["models"][1].update({"provider": "openia"}))
    _expect(project, "models.yaml", "models[1].provider", "unknown provider 'openia'")


def test_unknown_model_field_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "models.yaml", lambda d: d["models"][0].update({"temprature": 0.3}))
    _expect(project, "models.yaml", "models[0].temprature", "unknown field")


def test_missing_prompt_file_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    (project / "prompts/qa.jinja").unlink()
    _expect(project, "prompts/qa.jinja", "does not exist")


def test_duplicate_sample_ids_are_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    data = project / "datasets/qa/data.jsonl"
    lines = data.read_text().splitlines()
    data.write_text("\n".join([*lines, lines[0]]) + "\n")
    _expect(project, "datasets/qa/data.jsonl", "duplicate id 'qa-0001'")


def test_bad_sampling_override_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(
        project / "datasets/qa/dataset.yaml", lambda d: d["sampling"].update({"max_tokens": 0})
    )
    _expect(project, "datasets/qa/dataset.yaml", "sampling.max_tokens")
