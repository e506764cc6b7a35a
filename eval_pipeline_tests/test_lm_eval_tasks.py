"""lm-evaluation-harness tasks by name: lm-eval's prompts, filters and metrics, our model calls."""

from __future__ import annotations

import json
import math
import socket
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.report import samples_table
from eval_pipeline.stages import checks
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import evaluate_stages, materialization_metadata, materialize
from eval_pipeline_tests.projects import make_project

CHOOSER = {"slug": "fake-mc", "provider": "fake-choices", "model_id": "fake/mc"}


def _writer(answers: dict[str, str], text: str = "I do not know.") -> dict:
    return {
        "slug": "fake-writer",
        "provider": "fake",
        "model_id": "fake/w",
        "options": {"mode": "fixed", "text": text, "answers": answers},
    }


def _project(tmp_path: Path, *models: dict, datasets: tuple[str, ...] = ()) -> Path:
    return make_project(tmp_path / "p", models={"models": list(models)}, datasets=datasets)


def _write_spec(project: Path, name: str, **spec) -> None:
    folder = project / "datasets" / name
    folder.mkdir(parents=True, exist_ok=True)
    base = {"name": name, "source": "test", "license": "CC0-1.0", "loader": "lm_eval"}
    (folder / "dataset.yaml").write_text(yaml.safe_dump({**base, **spec}, sort_keys=False))


def _evaluate(project: Path, store: Store, model: str, dataset: str, limit: int | None):
    return evaluate_stages(project, store.root, model, dataset, sample_limit=limit)


def _means(aggregates: pl.DataFrame) -> dict[str, float]:
    return dict(zip(aggregates["metric"], aggregates["mean"], strict=True))


def test_an_lm_eval_task_runs_by_name_through_the_evaluation_job(tmp_path):
    project = _project(tmp_path, CHOOSER, datasets=("arc-easy",))
    store_root = tmp_path / "store"
    result = materialize(project, store_root, "arc-easy|fake-mc", sample_limit=6)
    assert result.success
    store = Store(store_root)
    generations = store.read("generations", dataset="arc-easy", model="fake-mc")
    assert generations["sample_id"].to_list() == [str(i) for i in range(6)]
    first = generations.row(0, named=True)
    # lm-eval's arc_easy prompt as text (no chat template), its continuations with the
    # target delimiter in front.
    assert json.loads(first["messages"]) == [
        {
            "role": "user",
            "content": "Question: Which statement best explains why photosynthesis is the "
            "foundation of most food webs?\nAnswer:",
        }
    ]
    assert first["prompt_format"] == "completion" and first["answer_mode"] == "loglikelihood"
    assert first["completion"] == " Sunlight is the source of energy for nearly all ecosystems."
    scores = store.read("scores", dataset="arc-easy", model="fake-mc")
    assert set(scores["metric"]) == {"acc", "acc_norm"}
    assert json.loads(scores["detail"][0]) == {"item": 1.0}
    aggregates = store.read("aggregates", dataset="arc-easy", model="fake-mc")
    assert _means(aggregates) == {"acc": 1.0, "acc_norm": 1.0}  # the fake finds the gold one
    meta = materialization_metadata(result, "generations")
    assert meta["answer_mode"] == "loglikelihood" and meta["dagster/row_count"] == 6
    board = store.read("leaderboard")
    assert board.filter(pl.col("dataset") == "arc-easy")["metric"].to_list() == ["acc"]


GROUP_YAML = """\
group: two_subjects
task:
  - mmlu_anatomy
  - mmlu_astronomy
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
metadata:
  version: 1
"""


def test_a_group_from_a_task_file_limits_each_task_and_weighs_them_by_size(tmp_path):
    project = _project(tmp_path, CHOOSER)
    _write_spec(
        project,
        "two",
        loader_options={"task_file": "group.yaml", "num_fewshot": 2},
        prompt_format="completion",
        primary_metric="acc",
    )
    (project / "datasets/two/group.yaml").write_text(GROUP_YAML)
    rows = load_catalog(project).dataset("two").rows
    per_task = {"mmlu_anatomy": 135, "mmlu_astronomy": 152}
    assert len(rows) == sum(per_task.values())
    # The first choice (A) always scores highest: acc is the share of gold answers A.
    chooser = {**CHOOSER, "options": {"choice_logprobs": {}}}
    chooser["options"]["choice_logprobs"] = {r["sample_id"]: [-1.0, -2.0, -3.0, -4.0] for r in rows}
    (project / "models.yaml").write_text(yaml.safe_dump({"models": [chooser]}))
    store = Store(tmp_path / "store")
    _, generations, _, _ = _evaluate(project, store, "fake-mc", "two", limit=7)
    # lm-eval's --limit: the first 7 documents of each task.
    ids = generations["sample_id"].to_list()
    assert ids == [f"{t}/{i}" for t in per_task for i in range(7)]
    # The blocking check knows the limit was per task; a row missing from a task fails it.
    assert checks.generations_complete(store, "two", "fake-mc", per_task=True).passed
    store.write(
        "generations",
        generations.filter(pl.col("sample_id") != "mmlu_astronomy/3"),
        dataset="two",
        model="fake-mc",
    )
    outcome = checks.generations_complete(store, "two", "fake-mc", per_task=True)
    assert not outcome.passed and "mmlu_astronomy/3" in outcome.description
    # 2-shot from the dev split, lm-eval's first_n sampler: the same examples for all.
    context = json.loads(generations["messages"][0])[0]["content"]
    assert context.startswith("The following are multiple choice questions (with answers) about")
    assert context.count("\nAnswer:") == 3 and context.endswith("\nAnswer:")
    _, _, scores, aggregates = _evaluate(project, store, "fake-mc", "two", limit=None)
    share_a = {
        t: sum(1 for r in rows if r["sample_id"].startswith(t) and r["target"] == "A") / per_task[t]
        for t in per_task
    }
    assert share_a["mmlu_anatomy"] != share_a["mmlu_astronomy"]
    weighted = sum(share_a[t] * per_task[t] for t in per_task) / sum(per_task.values())
    assert _means(aggregates)["acc"] == pytest.approx(weighted)
    slices = Store(tmp_path / "store").read("slice_aggregates", dataset="two", model="fake-mc")
    assert dict(zip(slices["slice"], slices["mean"], strict=True)) == pytest.approx(share_a)


def test_a_generation_task_applies_its_own_filters_and_stop_strings(tmp_path):
    # gsm8k_cot: document 0's answer is 18, document 1's is 3.
    writer = _writer(
        {"0": "She makes 9 * 2 = 18 dollars. The answer is 18.", "1": "It takes 3 bolts."}
    )
    project = _project(tmp_path, writer, datasets=("gsm8k-cot",))
    store = Store(tmp_path / "store")
    _, generations, scores, aggregates = _evaluate(project, store, "fake-writer", "gsm8k-cot", 2)
    sampling = json.loads(generations["sampling_params"][0])
    assert sampling["stop"] == ["Q:", "</s>", "<|im_end|>"] and sampling["max_tokens"] == 256
    assert sampling["temperature"] == 0.0
    context = json.loads(generations["messages"][0])[0]["content"]
    assert context.count("\nA:") == 9 and context.startswith("Q: There are 15 trees")
    detail = {
        (r["sample_id"], r["metric"]): json.loads(r["detail"]) for r in scores.iter_rows(named=True)
    }
    assert detail[("0", "exact_match,strict-match")] == {"answer": "18", "item": 1.0}
    assert detail[("1", "exact_match,strict-match")] == {"answer": "[invalid]", "item": 0.0}
    assert detail[("1", "exact_match,flexible-extract")] == {"answer": "3", "item": 1.0}
    assert _means(aggregates) == {
        "exact_match,strict-match": 0.5,
        "exact_match,flexible-extract": 1.0,
    }


ROLLING_YAML = """\
task: tiny_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


def test_a_rolling_loglikelihood_task_file_reports_lm_evals_perplexities(tmp_path):
    project = _project(tmp_path, CHOOSER)
    texts = ["The cat sat on the mat.", "Two plus two is four, and four plus four is eight."]
    data = project / "datasets/tiny/docs.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (project / "datasets/tiny/task.yaml").write_text(ROLLING_YAML.format(data=data))
    _write_spec(
        project,
        "tiny",
        loader_options={"task_file": "task.yaml"},
        prompt_format="completion",
        primary_metric="word_perplexity",
    )
    store = Store(tmp_path / "store")
    catalog, generations, _, aggregates = _evaluate(project, store, "fake-mc", "tiny", None)
    assert catalog.answer_mode("fake-mc", "tiny") == "loglikelihood"
    # One request per text: the whole text scored with no context, rolling.
    assert [list(c) for c in generations["choice_logprobs"]][0]
    lls = [c[0] for c in generations["choice_logprobs"]]
    words = sum(len(t.split()) for t in texts)
    utf8 = sum(len(t.encode()) for t in texts)
    means = _means(aggregates)
    assert means["word_perplexity"] == pytest.approx(math.exp(-sum(lls) / words))
    assert means["byte_perplexity"] == pytest.approx(math.exp(-sum(lls) / utf8))
    assert means["bits_per_byte"] == pytest.approx(-sum(lls) / utf8 / math.log(2))
    # A chat-only model cannot score text: not applicable, shown so.
    (project / "models.yaml").write_text(yaml.safe_dump({"models": [CHOOSER, _writer({})]}))
    catalog = load_catalog(project, load_rows=False)
    assert catalog.answer_mode("fake-writer", "tiny") == "not_applicable"
    assert "cannot score text" in catalog.not_applicable_reason("fake-writer", "tiny")


def test_chat_prompts_follow_lm_evals_chat_rendering_with_fewshot_turns(tmp_path):
    project = _project(tmp_path, CHOOSER)
    _write_spec(
        project,
        "anatomy-chat",
        loader_options={
            "task": "mmlu_anatomy",
            "num_fewshot": 2,
            "fewshot_as_multiturn": True,
            "system_instruction": "Answer the science question.",
        },
        prompt_format="chat",
        primary_metric="acc",
    )
    store = Store(tmp_path / "store")
    _, generations, _, _ = _evaluate(project, store, "fake-mc", "anatomy-chat", 2)
    messages = json.loads(generations["messages"][0])
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    # lm-eval joins the system instruction and the task's description.
    assert messages[0]["content"].startswith("Answer the science question.\n\n")
    assert "multiple choice questions (with answers) about anatomy" in messages[0]["content"]
    assert messages[2]["content"] == "A" or messages[2]["content"] in "BCD"
    assert messages[-1]["content"].endswith("\nAnswer:")
    # With a chat template lm-eval puts no delimiter before a choice.
    assert not generations["completion"][0].startswith(" ")
    assert set(generations["prompt_format"]) == {"chat"}


def test_a_chat_only_model_answers_lm_eval_multiple_choice_with_a_letter(tmp_path):
    writer = _writer({"0": "A", "1": "B"})
    project = _project(tmp_path, writer, datasets=("arc-easy",))
    store = Store(tmp_path / "store")
    catalog, generations, scores, aggregates = _evaluate(
        project, store, "fake-writer", "arc-easy", 2
    )
    assert set(generations["answer_mode"]) == {"generate"}
    user = json.loads(generations["messages"][0])[-1]["content"]
    assert "\n\nA. Sunlight is the source" in user and "one letter (A-D)" in user
    # Document 0's gold is A, document 1's is B: both right; acc is all a letter can give.
    assert scores.filter(pl.col("metric") == "acc")["value"].to_list() == [1.0, 1.0]
    assert _means(aggregates) == {"acc": 1.0}


def test_ifeval_prompts_whose_checkers_need_punkt_are_scored_apart(tmp_path):
    # Every prompt answered with the same text; 64 of the 541 prompts use a checker that
    # needs NLTK's punkt data (sentence and capital-word counts), which is not installed.
    writer = _writer({}, text="Here is a short answer without commas.")
    project = _project(tmp_path, writer, datasets=("ifeval",))
    store = Store(tmp_path / "store")
    _, _, scores, aggregates = _evaluate(project, store, "fake-writer", "ifeval", None)
    strict = scores.filter(pl.col("metric") == "prompt_level_strict_acc")
    unscored = strict.filter(pl.col("value").is_null())
    assert unscored.height == 64
    assert "punkt" in json.loads(unscored["detail"][0])["unscored"]
    row = aggregates.filter(pl.col("metric") == "prompt_level_strict_acc").row(0, named=True)
    assert row["n"] == 541 - 64
    assert row["mean"] == pytest.approx(strict["value"].drop_nulls().mean())


def test_lm_eval_tasks_load_with_no_network_and_missing_data_says_what_to_do(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("an lm-eval task opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    project = _project(tmp_path, CHOOSER, datasets=("ifeval", "gsm8k-cot"))
    catalog = load_catalog(project)
    assert len(catalog.dataset("ifeval").rows) == 541
    # openbookqa's test split is not among the local sets: refused, saying where to put it.
    _write_spec(project, "obqa", loader_options={"task": "openbookqa"}, primary_metric="acc")
    with pytest.raises(CatalogError) as err:
        load_catalog(project, load_rows=False).dataset("obqa")
    message = str(err.value)
    assert message.startswith("datasets/obqa/dataset.yaml: loader_options.task")
    assert "no local split 'test'" in message
    _write_spec(project, "nope", loader_options={"task": "no_such_task"}, primary_metric="acc")
    with pytest.raises(CatalogError, match="has no task, group or tag 'no_such_task'"):
        load_catalog(project, load_rows=False).dataset("nope")


def test_an_lm_eval_spec_is_checked_when_the_catalog_loads(tmp_path):
    project = _project(tmp_path, CHOOSER)
    _write_spec(
        project, "bad", loader_options={"task": "arc_easy", "shots": 3}, primary_metric="acc"
    )
    with pytest.raises(
        CatalogError, match=r"bad/dataset.yaml: loader_options.shots: unknown field"
    ):
        load_catalog(project, load_rows=False)
    _write_spec(project, "bad", loader_options={"task": "arc_easy"})
    with pytest.raises(CatalogError, match="needs primary_metric"):
        load_catalog(project, load_rows=False)


def test_lm_eval_add_writes_a_dataset_that_loads(tmp_path, capsys):
    from eval_pipeline.cli import main

    project = _project(tmp_path, CHOOSER)
    assert main(["--root", str(project), "lm-eval", "add", "arc_challenge", "--name", "arc-c"]) == 0
    spec = yaml.safe_load((project / "datasets/arc-c/dataset.yaml").read_text())
    assert spec["loader_options"] == {"task": "arc_challenge"} and spec["primary_metric"] == "acc"
    assert "1172 documents" in capsys.readouterr().out
    # A task whose data is not here writes nothing.
    assert main(["--root", str(project), "lm-eval", "add", "openbookqa"]) != 0
    assert not (project / "datasets/openbookqa").exists()
    assert main(["--root", str(project), "lm-eval", "tasks", "gsm8k_cot", "--local"]) == 0
    assert capsys.readouterr().out.strip() == "gsm8k_cot\ttask\tok"


def test_prompts_keep_the_whitespace_their_template_writes(tmp_path):
    from eval_pipeline.catalog import PromptTemplate

    prompt = PromptTemplate("p", Path("p.jinja"), '{% set system = "S" %}\n  Q: {{ q }}\nA:')
    (system, user) = prompt.render({"q": "why?"})
    assert system.content == "S" and user.content == "  Q: why?\nA:"
    assert prompt.render({"q": "why?"}, strip=True)[1].content == "Q: why?\nA:"
    template = textwrap.dedent("""\
        {% if q %}Ask: {{ q }}{% endif %}
        Reply.""")
    assert PromptTemplate("t", Path("t"), template).render({"q": "x"})[0].content == (
        "Ask: xReply."
    )


def test_ifeval_scores_depend_on_the_answer_alone(tmp_path):
    # IFEval's checkers draw random values for the arguments lm-eval drops as falsy:
    # document 19 (a count of 0 among its instruction arguments) would pass or fail the
    # same answer depending on the generator's state before it.
    import random

    project = _project(tmp_path, CHOOSER, datasets=("ifeval",))
    source = load_catalog(project, load_rows=False).dataset("ifeval").lm_eval
    docs = source.docs("ifeval")
    answer = docs[(19 * 7 + 3) % 60]["prompt"]
    seen = set()
    for state in range(30):
        random.seed(state)
        seen.add(json.dumps(source.score("ifeval", docs[19], 19, [answer]), sort_keys=True))
    assert len(seen) == 1


def test_a_task_whose_data_files_are_urls_is_refused_without_a_network_call(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("an lm-eval task opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    project = _project(tmp_path, CHOOSER)
    _write_spec(project, "arith", loader_options={"task": "arithmetic_1dc"}, primary_metric="acc")
    with pytest.raises(
        CatalogError, match=r"reads data files that are not on this machine \(hf://"
    ):
        load_catalog(project, load_rows=False).dataset("arith")
    from eval_pipeline.catalog import lm_eval_task_problem
    from eval_pipeline.catalog._lmeval import LmEvalOptions

    problem = lm_eval_task_problem(LmEvalOptions(task="arithmetic_1dc"), project)
    assert problem and "hf://datasets/EleutherAI/arithmetic" in problem


def test_repeated_samples_are_voted_on_per_document_as_the_task_filters_say(tmp_path):
    # gsm8k_cot_self_consistency: document 0's answer is 18, document 1's is 3. Eight
    # samples each; the first is wrong for document 1, the majority right for both.
    said = {f"0#{i}": f"The answer is {18 if i % 3 else 17}." for i in range(8)}
    said |= {
        f"1#{i}": f"So {i}. The answer is {5 if i == 0 else 3 + (i % 3 == 0)}." for i in range(8)
    }
    project = _project(tmp_path, _writer(said))
    _write_spec(
        project,
        "sc",
        loader_options={"task": "gsm8k_cot_self_consistency", "repeats": 8},
        primary_metric="exact_match,maj@64",
    )
    store_root = tmp_path / "store"
    result = materialize(project, store_root, "sc|fake-writer", sample_limit=2)
    assert result.success
    checks = {e.check_name: e.passed for e in _check_evaluations(result)}
    assert checks["generations_complete"] and checks["scores_complete"]
    store = Store(store_root)
    generations = store.read("generations", dataset="sc", model="fake-writer")
    assert generations["sample_id"].to_list() == list(said)
    sampling = [json.loads(s) for s in generations["sampling_params"]]
    # The task's own sampling, one seed per sample: each a draw of its own.
    assert {s["temperature"] for s in sampling} == {0.2}
    assert len({s["seed"] for s in sampling[:8]}) == 8
    assert generations["request_hash"].n_unique() == 16
    scores = store.read("scores", dataset="sc", model="fake-writer")
    detail = {
        (r["sample_id"], r["metric"]): json.loads(r["detail"]) for r in scores.iter_rows(named=True)
    }
    assert set(scores["sample_id"]) == {"0", "1"}
    assert detail[("0", "exact_match,score-first")] == {"answer": "17", "item": 0.0}
    assert detail[("0", "exact_match,maj@64")] == {"answer": "18", "item": 1.0}
    assert detail[("1", "exact_match,score-first")] == {"answer": "5", "item": 0.0}
    assert detail[("1", "exact_match,maj@8")] == {"answer": "3", "item": 1.0}
    aggregates = store.read("aggregates", dataset="sc", model="fake-writer")
    assert _means(aggregates) == {
        "exact_match,score-first": 0.0,
        "exact_match,maj@64": 1.0,
        "exact_match,maj@8": 1.0,
    }
    assert set(aggregates["n"]) == {2}
    # `eval-pipeline samples`: every sample with its document's fields and scores.
    table = samples_table(store, "fake-writer", "sc")
    assert table["sample_id"].to_list() == list(said)
    assert table["target"].to_list() == ["18"] * 8 + ["3"] * 8
    assert table["exact_match,maj@64"].to_list() == [1.0] * 16
    # Fewer samples than a filter takes: refused when the catalog loads, by field.
    _write_spec(
        project,
        "sc",
        loader_options={"task": "gsm8k_cot_self_consistency", "repeats": 3},
        primary_metric="exact_match,maj@64",
    )
    with pytest.raises(CatalogError, match=r"repeats.*'maj@8' takes the first 8 samples"):
        load_catalog(project).dataset("sc")


def test_repeats_of_a_choice_task_are_refused_by_field(tmp_path):
    project = _project(tmp_path, CHOOSER)
    _write_spec(
        project,
        "rep",
        loader_options={"task": "arc_easy", "repeats": 4},
        primary_metric="acc",
    )
    with pytest.raises(CatalogError, match=r"loader_options\.repeats.*multiple_choice"):
        load_catalog(project).dataset("rep")


def _check_evaluations(result):
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
