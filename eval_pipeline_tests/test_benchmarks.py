"""Standard-benchmark tasks: multiple choice, few-shot, prompt formats, targets, loaders."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.types import Message, SamplingParams
from eval_pipeline.engine import request_hash
from eval_pipeline.stages import build_dataset_samples, build_prompt_versions, generate, score
from eval_pipeline.stages.generate import select_fewshot
from eval_pipeline.storage import Store
from eval_pipeline_tests.projects import make_project

# Hand-made choice log-likelihoods and what lm-evaluation-harness makes of them:
#   acc       argmax(ll)
#   acc_norm  argmax(ll / len(choice))            characters of the choice, no delimiter
#   acc_bytes argmax(ll / len(choice.encode()))   UTF-8 bytes
# numpy.argmax takes the first of equal values.
MC_ROWS = [
    # acc picks "cat" (-2 > -4): wrong. acc_norm: -2/3 = -0.667 < -4/8 = -0.5: "elephant".
    {"id": "s1", "q": "Largest?", "choices": ["cat", "elephant"], "answer": 1},
    # acc: "no" (-0.5). acc_norm: -1/3 = -0.333 < -0.5/2 = -0.25: "no". Target by text.
    {"id": "s2", "q": "Is ice hot?", "choices": ["yes", "no"], "answer": "no"},
    # acc: "c" (-1): wrong. acc_norm: -3/3 = -1/1: a tie, the first ("a b") wins.
    {"id": "s3", "q": "First?", "choices": ["a b", "c"], "answer": 0},
    # acc: "é" (-1.5 > -2). acc_norm: -1.5/1 < -2/2: "ab", wrong. acc_bytes: -1.5/2 > -1: "é".
    {"id": "s4", "q": "Accent?", "choices": ["é", "ab"], "answer": "é"},
]
SCRIPTED = {"s1": [-2.0, -4.0], "s2": [-1.0, -0.5], "s3": [-3.0, -1.0], "s4": [-1.5, -2.0]}
EXPECTED = {
    "acc": [0.0, 1.0, 0.0, 1.0],
    "acc_norm": [1.0, 1.0, 1.0, 0.0],
    "acc_bytes": [1.0, 1.0, 1.0, 1.0],
}


def _models(*entries: dict) -> dict:
    return {"models": list(entries)}


FAKE_SCRIPTED = {
    "slug": "fake-mc",
    "provider": "fake-choices",
    "model_id": "fake/mc",
    "options": {"choice_logprobs": SCRIPTED},
}


def _write_dataset(
    project: Path, name: str, spec: dict, rows: list[dict] | None, prompt: str = "{{ q }}"
) -> None:
    folder = project / "datasets" / name
    folder.mkdir(parents=True, exist_ok=True)
    base = {
        "name": name,
        "source": "test",
        "license": "CC0-1.0",
        "prompt": name,
        "fields": ["q"],
        "target_field": "answer",
    }
    if rows is not None:
        base["data"] = "data.jsonl"
        (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "dataset.yaml").write_text(yaml.safe_dump({**base, **spec}, sort_keys=False))
    (project / "prompts" / f"{name}.jinja").write_text(prompt + "\n")


MC_SPEC = {
    "task": "multiple_choice",
    "choices_field": "choices",
    "scorers": [{"name": "acc"}, {"name": "acc_norm"}, {"name": "acc_bytes"}],
}


def _evaluate(project: Path, store: Store, model: str, dataset: str):
    catalog = load_catalog(project)
    build_prompt_versions(catalog, store, dataset)
    build_dataset_samples(catalog, store, dataset)
    generate(catalog, store, model, dataset)
    score(catalog, store, model, dataset)
    generations = store.read("generations", dataset=dataset, model=model)
    scores = store.read("scores", dataset=dataset, model=model)
    return catalog, generations, scores


def _values(scores: pl.DataFrame, metric: str) -> list[float | None]:
    return scores.filter(pl.col("metric") == metric).sort("sample_id")["value"].to_list()


def test_multiple_choice_acc_and_acc_norm_match_hand_computed_values(tmp_path):
    project = make_project(tmp_path / "p", models=_models(FAKE_SCRIPTED), datasets=())
    _write_dataset(project, "mc", MC_SPEC, MC_ROWS)
    store = Store(tmp_path / "store")
    _, generations, scores = _evaluate(project, store, "fake-mc", "mc")
    for metric, expected in EXPECTED.items():
        assert _values(scores, metric) == expected, metric
    row = generations.filter(pl.col("sample_id") == "s4").row(0, named=True)
    # Every choice's log-likelihood and token count, in the sample's choice order.
    assert row["choice_logprobs"] == [-1.5, -2.0]
    assert row["choice_tokens"] == [1, 1]
    assert row["completion"] == "é"  # chat format: no delimiter before the choice
    assert row["prompt_format"] == "chat"
    assert row["error"] is None


def test_completion_format_continuations_carry_the_target_delimiter(tmp_path):
    model = {**FAKE_SCRIPTED, "prompt_format": "completion"}
    project = make_project(tmp_path / "p", models=_models(model), datasets=())
    _write_dataset(project, "mc", MC_SPEC, MC_ROWS)
    store = Store(tmp_path / "store")
    _, generations, scores = _evaluate(project, store, "fake-mc", "mc")
    row = generations.filter(pl.col("sample_id") == "s1").row(0, named=True)
    assert row["completion"] == " cat"
    assert row["prompt_format"] == "completion"
    assert json.loads(row["messages"]) == [{"role": "user", "content": "Largest?"}]
    # acc_norm divides by the choice's own length: the delimiter does not change it.
    assert _values(scores, "acc_norm") == EXPECTED["acc_norm"]


def test_multiple_choice_in_generate_mode_reads_one_letter_and_records_unparseable(tmp_path):
    model = {
        "slug": "fake-writer",
        "provider": "fake",
        "model_id": "fake/w",
        "options": {
            "mode": "fixed",
            "answers": {"s1": "B", "s2": "I think A", "s3": "(a)", "s4": "C"},
        },
    }
    project = make_project(tmp_path / "p", models=_models(model), datasets=())
    _write_dataset(project, "mcg", {**MC_SPEC, "mode": "generate"}, MC_ROWS)
    store = Store(tmp_path / "store")
    _, generations, scores = _evaluate(project, store, "fake-writer", "mcg")
    assert _values(scores, "acc") == [1.0, 0.0, 1.0, 0.0]
    details = scores.filter(pl.col("metric") == "acc").sort("sample_id")["detail"].to_list()
    assert details[1].startswith("unparseable") and details[3].startswith("unparseable")
    # No log-likelihoods in generate mode: acc_norm does not apply.
    assert _values(scores, "acc_norm") == [None] * 4
    user = json.loads(generations.sort("sample_id")["messages"][0])[-1]["content"]
    assert "A. cat\nB. elephant" in user and "one letter (A-B)" in user
    assert generations["choice_logprobs"].null_count() == 4
    # A writer that answers the reference writes the correct letter.
    reference = {"slug": "fake-good", "provider": "fake", "model_id": "fake/r"}
    (project / "models.yaml").write_text(yaml.safe_dump(_models(model, reference)))
    _, _, scores = _evaluate(project, store, "fake-good", "mcg")
    assert _values(scores, "acc") == [1.0] * 4


def test_a_target_that_names_no_choice_is_refused_with_its_line(tmp_path):
    project = make_project(tmp_path / "p", models=_models(FAKE_SCRIPTED), datasets=())
    rows = [*MC_ROWS[:2], {"id": "bad", "q": "x", "choices": ["a", "b"], "answer": 5}]
    _write_dataset(project, "mc", MC_SPEC, rows)
    with pytest.raises(CatalogError, match=r"data.jsonl: line 3: answer: target 5 is neither"):
        load_catalog(project)


# -- few-shot --------------------------------------------------------------------------

POOL = [{"sample_id": f"r{i}", "fields": {"q": f"q{i}"}, "target": str(i)} for i in range(20)]


def test_fewshot_draws_are_deterministic_per_sample_and_never_the_sample_itself():
    for row in POOL:
        drawn = select_fewshot(POOL, row["sample_id"], row["fields"], 5, seed=7)
        ids = [r["sample_id"] for r in drawn]
        assert len(ids) == 5 and len(set(ids)) == 5 and row["sample_id"] not in ids
        # The draw depends on the seed and the sample, not on the pool's order.
        again = select_fewshot(POOL[::-1], row["sample_id"], row["fields"], 5, seed=7)
        assert [r["sample_id"] for r in again] == ids
    draws = {
        tuple(r["sample_id"] for r in select_fewshot(POOL, s["sample_id"], s["fields"], 5, 7))
        for s in POOL
    }
    assert len(draws) > 10  # each sample its own draw
    first = POOL[0]
    other_seed = select_fewshot(POOL, first["sample_id"], first["fields"], 5, seed=8)
    assert [r["sample_id"] for r in other_seed] != [
        r["sample_id"] for r in select_fewshot(POOL, first["sample_id"], first["fields"], 5, 7)
    ]
    # From another split, a copy of the sample (same content) is excluded too.
    copy = [{**POOL[3], "sample_id": "dev-3"}, *POOL[10:13]]
    drawn = select_fewshot(copy, "r3", POOL[3]["fields"], 3, 1, same_split=False)
    assert "dev-3" not in [r["sample_id"] for r in drawn]


QA_ROWS = [{"id": f"q{i}", "q": f"What is {i} plus 1?", "answer": str(i + 1)} for i in range(8)]


def test_fewshot_examples_become_chat_turns_and_their_ids_are_recorded(tmp_path):
    model = {"slug": "fake-good", "provider": "fake", "model_id": "fake/r"}
    project = make_project(tmp_path / "p", models=_models(model), datasets=())
    spec = {"scorers": [{"name": "exact_match"}], "fewshot": {"n": 2, "seed": 3}}
    _write_dataset(project, "fs", spec, QA_ROWS)
    store = Store(tmp_path / "store")
    _, generations, scores = _evaluate(project, store, "fake-good", "fs")
    assert _values(scores, "exact_match") == [1.0] * 8
    for row in generations.iter_rows(named=True):
        ids = row["fewshot_ids"]
        assert len(ids) == 2 and row["sample_id"] not in ids
        messages = json.loads(row["messages"])
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
        first = next(r for r in QA_ROWS if r["id"] == ids[0])
        assert messages[0]["content"] == first["q"] and messages[1]["content"] == first["answer"]
    # Another seed draws other examples, so other prompts and other cache keys.
    before = dict(zip(generations["sample_id"], generations["request_hash"], strict=True))
    spec["fewshot"]["seed"] = 4
    _write_dataset(project, "fs", spec, QA_ROWS)
    _, regenerated, _ = _evaluate(project, store, "fake-good", "fs")
    changed = [
        r["sample_id"]
        for r in regenerated.iter_rows(named=True)
        if r["request_hash"] != before[r["sample_id"]]
    ]
    assert changed and not regenerated.filter(pl.col("sample_id").is_in(changed))["cached"].any()


def test_fewshot_in_completion_format_is_one_text_with_separators(tmp_path):
    model = {"slug": "fake-good", "provider": "fake", "model_id": "fake/r"}
    project = make_project(tmp_path / "p", models=_models(model), datasets=())
    spec = {
        "scorers": [{"name": "exact_match"}],
        "prompt_format": "completion",
        "fewshot": {"n": 2, "seed": 3, "separator": "\n###\n"},
    }
    _write_dataset(project, "fs", spec, QA_ROWS, prompt="Q: {{ q }}\nA:")
    store = Store(tmp_path / "store")
    _, generations, _ = _evaluate(project, store, "fake-good", "fs")
    row = generations.row(0, named=True)
    assert row["prompt_format"] == "completion"
    [message] = json.loads(row["messages"])
    examples = [next(r for r in QA_ROWS if r["id"] == i) for i in row["fewshot_ids"]]
    expected = "\n###\n".join(
        [*(f"Q: {e['q']}\nA: {e['answer']}" for e in examples), "Q: What is 0 plus 1?\nA:"]
    )
    assert message == {"role": "user", "content": expected}


def test_prompt_format_joins_the_request_hash_only_when_not_chat():
    identity = {"provider": "fake", "model_id": "m", "revision": None, "adapter": None}
    messages = (Message("user", "hi"),)
    plain = request_hash(identity, SamplingParams(), messages)
    assert request_hash(identity, SamplingParams(), messages, (), "chat") == plain
    assert request_hash(identity, SamplingParams(), messages, (), "completion") != plain


# -- targets -----------------------------------------------------------------------------


def test_any_listed_target_counts_for_exact_and_normalized_match(tmp_path):
    model = {
        "slug": "fake-fixed",
        "provider": "fake",
        "model_id": "fake/f",
        "options": {"mode": "fixed", "answers": {"a": "NYC", "b": "The Big Apple!", "c": "LA"}},
    }
    project = make_project(tmp_path / "p", models=_models(model), datasets=())
    rows = [
        {"id": "a", "q": "city a", "answer": ["New York", "NYC"]},
        {"id": "b", "q": "city b", "answer": ["New York", "big apple"]},
        {"id": "c", "q": "city c", "answer": "Los Angeles"},
    ]
    spec = {"scorers": [{"name": "exact_match"}, {"name": "normalized_match"}]}
    _write_dataset(project, "multi", spec, rows)
    store = Store(tmp_path / "store")
    _, _, scores = _evaluate(project, store, "fake-fixed", "multi")
    assert _values(scores, "exact_match") == [1.0, 0.0, 0.0]
    assert _values(scores, "normalized_match") == [1.0, 1.0, 0.0]
    samples = store.read("dataset_samples", dataset="multi").sort("sample_id")
    assert samples["targets"].to_list() == [
        ["New York", "NYC"],
        ["New York", "big apple"],
        ["Los Angeles"],
    ]


# -- loaders -----------------------------------------------------------------------------

LOADER_ROWS = [
    {"id": "r1", "q": "one?", "answer": "1"},
    {"id": "r2", "q": "two?", "answer": "2"},
]


def _loader_project(tmp_path: Path, spec: dict, write) -> Path:
    project = make_project(tmp_path / "p", models=_models(FAKE_SCRIPTED), datasets=())
    _write_dataset(project, "ld", {"scorers": [{"name": "exact_match"}], **spec}, None)
    write(project / "datasets" / "ld")
    return project


def _loaded(project: Path) -> list[tuple[str, str, str]]:
    rows = load_catalog(project).dataset("ld").rows
    return [(r["sample_id"], r["fields"]["q"], r["target"]) for r in rows]


def test_csv_loader_reads_rows_and_names_a_bad_line(tmp_path):
    project = _loader_project(
        tmp_path,
        {"loader": "csv", "data": "data.csv"},
        lambda d: (d / "data.csv").write_text('id,q,answer\nr1,one?,1\nr2,"two, or?",2\n'),
    )
    assert _loaded(project) == [("r1", "one?", "1"), ("r2", "two, or?", "2")]
    (project / "datasets/ld/data.csv").write_text("id,q,answer\nr1,one?,1\nr2,two?,2,extra\n")
    with pytest.raises(CatalogError, match=r"datasets/ld/data.csv: line 3: malformed row"):
        load_catalog(project)


def test_a_csv_multiple_choice_row_takes_a_json_list_of_choices_and_an_index(tmp_path):
    spec = {**MC_SPEC, "loader": "csv", "data": "data.csv", "scorers": [{"name": "acc"}]}
    project = _loader_project(
        tmp_path,
        spec,
        lambda d: (d / "data.csv").write_text(
            'id,q,choices,answer\nm1,Largest?,"[""cat"", ""elephant""]",1\n'
        ),
    )
    [row] = load_catalog(project).dataset("ld").rows
    assert row["choices"] == ["cat", "elephant"] and row["targets"] == ["elephant"]


def test_parquet_loader_reads_rows(tmp_path):
    project = _loader_project(
        tmp_path,
        {"loader": "parquet", "data": "data.parquet"},
        lambda d: pl.DataFrame(LOADER_ROWS).write_parquet(d / "data.parquet"),
    )
    assert _loaded(project) == [("r1", "one?", "1"), ("r2", "two?", "2")]


def test_a_user_loader_named_by_import_path_supplies_rows_and_fewshot_splits(tmp_path, monkeypatch):
    package = tmp_path / "pkgs"
    package.mkdir()
    (package / "my_loader.py").write_text(
        textwrap.dedent(
            """
            def rows(split=None, prefix="x"):
                n = 3 if split is None else 2
                tag = split or "test"
                return [
                    {"id": f"{tag}-{i}", "q": f"{prefix}{tag}{i}", "answer": str(i)}
                    for i in range(n)
                ]
            """
        )
    )
    monkeypatch.syspath_prepend(str(package))
    spec = {
        "loader": "my_loader:rows",
        "loader_options": {"prefix": "p-"},
        "fewshot": {"n": 2, "source": "train"},
    }
    project = _loader_project(tmp_path, spec, lambda d: None)
    dataset = load_catalog(project).dataset("ld")
    assert [r["fields"]["q"] for r in dataset.rows] == ["p-test0", "p-test1", "p-test2"]
    assert [r["sample_id"] for r in dataset.fewshot_rows] == ["train-0", "train-1"]
    spec["loader"] = "my_loader:missing"
    _write_dataset(project, "ld", {"scorers": [{"name": "exact_match"}], **spec}, None)
    with pytest.raises(CatalogError, match=r"dataset.yaml: loader: .*has no loader 'missing'"):
        load_catalog(project, load_rows=False)


def test_an_unknown_loader_is_refused_naming_the_choices(tmp_path):
    project = _loader_project(tmp_path, {"loader": "xml"}, lambda d: None)
    with pytest.raises(CatalogError, match=r"loader: unknown loader 'xml'.*csv.*parquet"):
        load_catalog(project, load_rows=False)


def _hf_datasets():
    # The repository's own datasets/ folder imports as a namespace package when the
    # library is missing: check for the library's API, not the name.
    datasets = pytest.importorskip("datasets", reason="the `datasets` package is not installed")
    if not hasattr(datasets, "load_from_disk"):
        pytest.skip("the `datasets` package is not installed (pip install 'eval-pipeline[hf]')")
    return datasets


def test_huggingface_loader_reads_a_folder_written_by_save_to_disk(tmp_path):
    datasets = _hf_datasets()

    def write(folder: Path) -> None:
        datasets.DatasetDict(
            {
                "test": datasets.Dataset.from_list(LOADER_ROWS),
                "train": datasets.Dataset.from_list([{"id": "t1", "q": "three?", "answer": "3"}]),
            }
        ).save_to_disk(str(folder / "hf"))

    spec = {
        "loader": "huggingface",
        "loader_options": {"path": "hf", "split": "test"},
        "fewshot": {"n": 1, "source": "train"},
    }
    project = _loader_project(tmp_path, spec, write)
    assert _loaded(project) == [("r1", "one?", "1"), ("r2", "two?", "2")]
    assert load_catalog(project).dataset("ld").fewshot_rows[0]["sample_id"] == "t1"


def test_huggingface_loader_says_when_the_data_is_neither_local_nor_reachable(
    tmp_path, monkeypatch
):
    _hf_datasets()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    spec = {"loader": "huggingface", "loader_options": {"path": "nobody/no-such-set"}}
    project = _loader_project(tmp_path, spec, lambda d: None)
    with pytest.raises(CatalogError, match=r"neither a local folder .* nor loadable"):
        load_catalog(project)


# -- BIG-bench ---------------------------------------------------------------------------


def write_bigbench_tasks(folder: Path) -> Path:
    """A small BIG-bench ``benchmark_tasks`` folder in the ``task.json`` format, written here.

    ``verdicts``: a multiple-choice task with its own prefixes and task prefix (8 examples);
    ``sums``: a task made of two generative subtasks (``two_digit``, ``three_digit``).
    """
    tasks = folder / "bigbench" / "benchmark_tasks"
    verdicts = {
        "name": "verdicts",
        "task_prefix": "Say whether the claim holds.",
        "example_input_prefix": "\nClaim: ",
        "example_output_prefix": "\nVerdict: ",
        "examples": [
            {
                "input": f"{a} plus {b} is {a + b + (i % 2)}",
                "target_scores": {"holds": int(i % 2 == 0), "fails": int(i % 2 == 1)},
            }
            for i, (a, b) in enumerate(
                [(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (4, 1), (6, 3), (9, 0)]
            )
        ],
    }
    (tasks / "verdicts").mkdir(parents=True)
    (tasks / "verdicts" / "task.json").write_text(json.dumps(verdicts))
    (tasks / "sums").mkdir()
    (tasks / "sums" / "task.json").write_text(json.dumps({"name": "sums", "subtasks": []}))
    for sub, pairs in (("two_digit", [(12, 30), (45, 11)]), ("three_digit", [(100, 200)])):
        (tasks / "sums" / sub).mkdir()
        examples = [{"input": f"What is {a} plus {b}?", "target": str(a + b)} for a, b in pairs]
        (tasks / "sums" / sub / "task.json").write_text(json.dumps({"examples": examples}))
    return folder


def _bigbench_project(tmp_path: Path, **spec) -> Path:
    project = make_project(
        tmp_path / "p",
        models=_models({"slug": "fake-good", "provider": "fake-choices", "model_id": "fake/r"}),
        datasets=(),
    )
    _write_dataset(
        project,
        "bb",
        {"loader": "bigbench", "fields": ["input"], "target_field": "target", **spec},
        None,
        prompt="{{ input }}",
    )
    return project


def test_bigbench_loader_reads_task_files_with_their_own_prefixes(tmp_path, monkeypatch):
    from eval_pipeline.catalog._bigbench import DIR_ENV

    # A checkout's root, its benchmark_tasks folder and a folder of tasks all work.
    checkout = write_bigbench_tasks(tmp_path / "BIG-bench")
    for configured in (checkout, checkout / "bigbench" / "benchmark_tasks"):
        monkeypatch.setenv(DIR_ENV, str(configured))
        project = _bigbench_project(
            tmp_path / configured.name,
            loader_options={"task": "verdicts"},
            task="multiple_choice",
            choices_field="choices",
            scorers=[{"name": "acc"}, {"name": "acc_norm"}],
        )
        rows = load_catalog(project).dataset("bb").rows
        assert len(rows) == 8
        assert rows[0]["sample_id"] == "verdicts-0"
        assert rows[0]["fields"]["input"] == (
            "Say whether the claim holds.\nClaim: 1 plus 2 is 3"
            "\n  choice: holds\n  choice: fails\nVerdict:"
        )
        assert rows[0]["choices"] == ["holds", "fails"] and rows[0]["targets"] == ["holds"]
        assert rows[1]["targets"] == ["fails"]
    # A task of subtasks: all of them in name order, or the one named.
    project = _bigbench_project(
        tmp_path / "sums", loader_options={"task": "sums"}, scorers=[{"name": "exact_match"}]
    )
    rows = load_catalog(project).dataset("bb").rows
    assert [r["sample_id"] for r in rows] == [
        "sums/three_digit-0",
        "sums/two_digit-0",
        "sums/two_digit-1",
    ]
    assert rows[0]["fields"]["input"] == "\nQ: What is 100 plus 200?\nA:"
    assert rows[0]["choices"] == [] and rows[0]["targets"] == ["300"]


def test_a_bigbench_partition_materializes_through_the_evaluation_job(tmp_path, monkeypatch):
    from eval_pipeline.catalog._bigbench import DIR_ENV
    from eval_pipeline_tests.helpers import materialize

    monkeypatch.setenv(DIR_ENV, str(write_bigbench_tasks(tmp_path / "tasks")))
    project = _bigbench_project(
        tmp_path,
        loader_options={"task": "verdicts"},
        task="multiple_choice",
        choices_field="choices",
        scorers=[{"name": "acc"}, {"name": "acc_norm"}],
    )
    store_root = tmp_path / "store"
    result = materialize(project, store_root, "bb|fake-good", sample_limit=6)
    assert result.success
    store = Store(store_root)
    generations = store.read("generations", dataset="bb", model="fake-good")
    assert generations.height == 6 and generations["error"].null_count() == 6
    assert generations["choice_logprobs"].list.len().to_list() == [2] * 6
    aggregates = store.read("aggregates", dataset="bb", model="fake-good")
    means = dict(zip(aggregates["metric"], aggregates["mean"], strict=True))
    # The reference-mode fake finds the correct continuation most likely.
    assert means["acc"] == 1.0 and 0.0 <= means["acc_norm"] <= 1.0


def test_the_shipped_bigbench_datasets_are_out_of_the_default_run():
    catalog = load_catalog(Path(__file__).resolve().parents[1], load_rows=False)
    names = catalog.suite("bigbench")
    assert len(names) >= 7
    assert not any(catalog.dataset_specs[n].in_default_run for n in names)


def test_a_choice_response_without_log_likelihoods_is_recorded_as_an_error():
    from eval_pipeline.core.specs import ModelSpec
    from eval_pipeline.core.types import GenerationRequest, GenerationResponse
    from eval_pipeline.stages.generate import RunOrigin, generations_frame

    class Result:
        responses = [GenerationResponse(completion=" a", finish_reason="stop", info={})]
        cached = [False]

    request = GenerationRequest(
        request_hash="h",
        sample_id="s",
        messages=(),
        sampling=SamplingParams(),
        choices=(" a", " b"),
    )
    samples = pl.DataFrame({"dataset_version": ["d@1"]})
    model = ModelSpec(slug="m", provider="fake", model_id="m")
    row = generations_frame(model, "d", "p@1", samples, [request], Result(), RunOrigin()).row(
        0, named=True
    )
    assert row["completion"] is None and "no choice scores" in row["error"]


# -- extending without a fork ------------------------------------------------------------


def test_a_scorer_module_outside_the_package_scores_with_its_parameters(tmp_path, monkeypatch):
    package = tmp_path / "pkgs" / "team_evals"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "scorers.py").write_text(
        textwrap.dedent(
            """
            import polars as pl

            def starts_with(frame: pl.DataFrame, prefix: str = "") -> pl.DataFrame:
                values = [
                    float((c or "").startswith(prefix + t))
                    for c, t in zip(frame["completion"], frame["target"])
                ]
                return pl.DataFrame(
                    {"sample_id": frame["sample_id"], "value": values, "detail": [""] * len(values)}
                )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    model = {
        "slug": "fake-fixed",
        "provider": "fake",
        "model_id": "fake/f",
        "options": {"mode": "fixed", "answers": {"q0": "=> 1", "q1": "2"}},
    }
    project = make_project(tmp_path / "p", models=_models(model), datasets=())
    spec = {
        "scorers": [
            {
                "name": "team_evals.scorers:starts_with",
                "params": {"prefix": "=> "},
                "metric": "arrow",
            }
        ]
    }
    _write_dataset(project, "custom", spec, QA_ROWS[:2])
    store = Store(tmp_path / "store")
    _, _, scores = _evaluate(project, store, "fake-fixed", "custom")
    assert _values(scores, "arrow") == [1.0, 0.0]
    # A parameter the function does not take is refused when the catalog loads.
    spec["scorers"][0]["params"] = {"prefx": "=> "}
    _write_dataset(project, "custom", spec, QA_ROWS[:2])
    with pytest.raises(CatalogError, match=r"scorers\[0\]\.params: .*no parameter 'prefx'"):
        load_catalog(project, load_rows=False)
    assert "team_evals.scorers" in sys.modules


def test_a_rubric_is_discovered_from_its_template_file(tmp_path):
    from eval_pipeline.judge import discover_rubrics

    judge = {"slug": "fake-judge", "provider": "fake", "model_id": "fake/j"}
    project = make_project(tmp_path / "p", models=_models(judge), datasets=())
    (project / "prompts" / "judge-tone.jinja").write_text(
        "Rate the tone of {{ answer }} for {{ question }} from 1 to 5.\n"
    )
    spec = {
        "fields": ["question"],
        "scorers": [{"name": "llm_judge", "params": {"rubric": "tone", "judges": ["fake-judge"]}}],
    }
    row = [{"id": "a", "question": "hi", "answer": "x"}]
    _write_dataset(project, "toned", spec, row, prompt="{{ question }}")
    assert "tone" in discover_rubrics(project)
    assert load_catalog(project, load_rows=False).dataset_specs["toned"].scorers[0].name
    spec["scorers"][0]["params"]["rubric"] = "warmth"
    _write_dataset(project, "toned", spec, row, prompt="{{ question }}")
    with pytest.raises(CatalogError, match=r"rubric 'warmth' has no template.*tone"):
        load_catalog(project, load_rows=False)


def test_run_with_an_unknown_suite_names_the_known_ones(capsys):
    from eval_pipeline.cli import main

    assert main(["run", "--suite", "no-such-suite"]) != 0
    assert "bigbench" in capsys.readouterr().err


def test_a_model_without_a_chat_template_is_told_to_use_completion_prompts():
    from eval_pipeline.core.specs import ModelSpec, chat_template_problem

    base = ModelSpec(slug="base", provider="transformers", model_id="org/base")
    problem = chat_template_problem(base, has_chat_template=False)
    assert problem and "base" in problem and "prompt_format: completion" in problem
    assert chat_template_problem(base, has_chat_template=True) is None
    completion = base.model_copy(update={"prompt_format": "completion"})
    assert chat_template_problem(completion, has_chat_template=False) is None
    # A dataset asking for chat prompts on that model is refused the same way.
    assert chat_template_problem(completion, False, prompt_format="chat")


def test_bigbench_without_task_files_says_what_to_set_and_reaches_no_network(tmp_path, monkeypatch):
    import socket

    from eval_pipeline.catalog._bigbench import DIR_ENV

    monkeypatch.delenv(DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))

    def no_network(*args, **kwargs):
        raise AssertionError("the bigbench loader opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    project = make_project(
        tmp_path / "p",
        models=_models({"slug": "fake-good", "provider": "fake-choices", "model_id": "fake/r"}),
        datasets=("bigbench-navigate", "qa"),
    )
    catalog = load_catalog(project, load_rows=False)
    catalog.dataset("qa")  # only the cells that need BIG-bench fail
    with pytest.raises(CatalogError) as err:
        catalog.dataset("bigbench-navigate")
    message = str(err.value)
    assert message.startswith("datasets/bigbench-navigate/dataset.yaml: loader_options.task")
    assert DIR_ENV in message and "BIG-bench" in message
    # A folder without the task names the task and the folder.
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    with pytest.raises(
        CatalogError, match=r"no BIG-bench task 'navigate' in .*no navigate/task.json"
    ):
        load_catalog(project, load_rows=False).dataset("bigbench-navigate")
