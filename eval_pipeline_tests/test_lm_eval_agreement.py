"""The shipped model on lm-eval tasks here and in lm-eval's own ``hf`` model: the same numbers.

A few documents of each request type, so the suite catches a drift; the full comparison
with speed figures is the ``lmeval_agreement`` benchmark.
"""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
import yaml

from eval_pipeline.catalog import load_catalog
from eval_pipeline.stages import build_dataset_samples, build_prompt_versions, generate
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import evaluate_stages
from eval_pipeline_tests.projects import REPO, make_project

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
TEXT = "The quick brown fox jumps over the lazy dog. " * 3


@pytest.fixture(scope="module")
def hf_lm():
    """lm-eval's HFLM on the shipped GGUF, float32, one thread (as our provider picks here)."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from eval_pipeline.providers.transformers import (
        TransformersOptions,
        choose_threads,
        resolve_source,
    )

    model = yaml.safe_load((REPO / "models.yaml").read_text())["models"][0]
    folder, gguf = resolve_source(TransformersOptions.model_validate(model["options"]))
    torch.set_num_threads(choose_threads("auto"))
    return HFLM(pretrained=folder, gguf_file=gguf, dtype="float32", device="cpu", batch_size=4)


def _ours(tmp_path, dataset: str, limit: int, **spec):
    models = yaml.safe_load((REPO / "models.yaml").read_text())
    project = make_project(tmp_path / "p", models=models, datasets=(dataset,))
    if spec:
        path = project / "datasets" / dataset / "dataset.yaml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **spec}))
    catalog, generations, _, frame = evaluate_stages(
        project, tmp_path / "store", MODEL, dataset, sample_limit=limit
    )
    return catalog, generations, dict(zip(frame["metric"], frame["mean"], strict=True))


def _instances(catalog, dataset: str, limit: int):
    """lm-eval's own requests for the first documents, built by its task object."""
    source = catalog.dataset(dataset).lm_eval
    (leaf, task) = next(iter(source.leaves.items()))
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=limit)
    return task, task.instances


def test_multiple_choice_and_loglikelihood_match_lm_evals_hf_model(tmp_path, hf_lm):
    for dataset, limit in (("arc-easy", 4), ("lambada-openai", 4)):
        catalog, generations, means = _ours(tmp_path / dataset, dataset, limit)
        _, instances = _instances(catalog, dataset, limit)
        theirs = hf_lm.loglikelihood(instances)
        by_doc: dict[int, list[tuple[float, bool]]] = {}
        for inst, resp in zip(instances, theirs, strict=True):
            by_doc.setdefault(inst.doc_id, []).append(resp)
        for row in generations.iter_rows(named=True):
            other = by_doc[int(row["sample_id"])]
            assert row["choice_logprobs"] == pytest.approx([r[0] for r in other], abs=1e-3)
            if dataset == "lambada-openai":
                assert row["choice_greedy"] == [bool(r[1]) for r in other]
        if dataset == "lambada-openai":
            lls = [r[0] for r in theirs]
            assert means["perplexity"] == pytest.approx(math.exp(-sum(lls) / len(lls)), rel=1e-3)
            assert means["acc"] == sum(bool(r[1]) for r in theirs) / len(theirs)


def test_rolling_loglikelihood_matches_lm_evals_hf_model(tmp_path, hf_lm):
    from lm_eval.api.instance import Instance

    data = tmp_path / "docs.jsonl"
    data.write_text(json.dumps({"text": TEXT}) + "\n")
    models = yaml.safe_load((REPO / "models.yaml").read_text())
    project = make_project(tmp_path / "p", models=models, datasets=())
    folder = project / "datasets" / "rolling"
    folder.mkdir(parents=True)
    (folder / "task.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "one_text",
                "dataset_path": "json",
                "dataset_kwargs": {"data_files": {"test": str(data)}},
                "test_split": "test",
                "output_type": "loglikelihood_rolling",
                "doc_to_text": "",
                "doc_to_target": "{{text}}",
                "metric_list": [{"metric": "word_perplexity"}],
            }
        )
    )
    spec = {
        "name": "rolling",
        "source": "test",
        "license": "CC0-1.0",
        "loader": "lm_eval",
        "loader_options": {"task_file": "task.yaml"},
        "prompt_format": "completion",
        "primary_metric": "word_perplexity",
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))
    catalog = load_catalog(project, load_rows=False)
    store = Store(tmp_path / "store")
    build_prompt_versions(catalog, store, "rolling")
    build_dataset_samples(catalog, store, "rolling")
    generate(catalog, store, MODEL, "rolling")
    ours = store.read("generations", dataset="rolling", model=MODEL)["choice_logprobs"][0][0]
    (theirs,) = hf_lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (TEXT,), 0)])
    assert ours == pytest.approx(theirs, abs=1e-3)


def test_greedy_generation_and_its_filters_match_lm_evals_hf_model(tmp_path, hf_lm):
    catalog, generations, _ = _ours(tmp_path, "gsm8k-cot", 1)
    task, instances = _instances(catalog, "gsm8k-cot", 1)
    theirs = hf_lm.generate_until(instances)
    assert generations["completion"].to_list() == theirs


def test_chat_prompts_record_the_chat_template_they_went_through(tmp_path):
    _, generations, _ = _ours(tmp_path, "arc-easy", 2, prompt_format="chat")
    hashes = set(generations["chat_template_hash"])
    assert len(hashes) == 1 and len(next(iter(hashes))) == 16
    messages = json.loads(generations["messages"][0])
    assert messages[-1]["role"] == "user" and messages[-1]["content"].endswith("\nAnswer:")
    completion = generations.filter(pl.col("sample_id") == "0")["completion"][0]
    assert not completion.startswith(" ")  # no delimiter before a choice after a chat turn
