r"""``lmeval_agreement``: the leaderboard tasks here against lm-evaluation-harness itself.

The default model (SmolLM2-135M, the shipped GGUF de-quantized to float32, on the CPU)
answers the first documents of each task twice, in completion format (lm-eval's default):

- here, through the pipeline's stages (``generate``, ``score``, ``aggregate``) on an
  ``lm_eval`` dataset of a throwaway project, with the transformers provider loaded once;
- in lm-eval, in a process of its own (``_lmeval_side.py``): ``simple_evaluate`` with its
  ``hf`` model on the same GGUF, running lm-eval's own task configuration, only its data
  loading pointed at the same local copies.

Tasks (``RUNS``): MMLU on four subjects 5-shot (a group file, 30 documents each), ARC-Challenge,
HellaSwag and LAMBADA (OpenAI) on 100 documents, GSM8K chain of thought and IFEval on 20.

``.bench/lmeval_agreement.json``, per task: log-likelihood tasks give ``same_answer_share``
(the same highest-likelihood choice; LAMBADA: the same greedy flag; goal >= 0.99) and
``max_abs_loglik_diff`` (goal <= 1e-3); generation tasks ``same_text_share`` (the same
greedy text; goal >= 0.99) and ``same_filtered_share`` (the same answer after every
filter; goal >= 0.99); both give every metric on both sides and ``metrics_equal``
(within 1e-6, relative for perplexities). ``wall_ratio`` is our seconds in the provider's
scoring or generation over lm-eval's seconds inside its model's request methods, both on a
loaded model with the same torch thread count; goal <= 0.5 for log-likelihood tasks and
<= 0.7 for generation. Run alone: ``python -m eval_pipeline_tests.bench.run_all
lmeval_agreement``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from eval_pipeline_tests.bench._common import BENCH_DIR, REPO

NAME = "lmeval_agreement"
MODEL = "smollm2-135m"
LMEVAL_BATCH = 16
SUBJECTS = ("mmlu_anatomy", "mmlu_astronomy", "mmlu_college_biology", "mmlu_virology")
GROUP = "mmlu_four"
# name -> (lm-eval task, documents per task, num_fewshot, kind, chat template)
RUNS: dict[str, tuple[str, int, int | None, str, bool]] = {
    "mmlu_4_subjects_5shot": (GROUP, 30, 5, "loglikelihood", False),
    "arc_challenge": ("arc_challenge", 100, None, "loglikelihood", False),
    "hellaswag": ("hellaswag", 100, None, "loglikelihood", False),
    "lambada_openai": ("lambada_openai", 100, None, "loglikelihood", False),
    "gsm8k_cot": ("gsm8k_cot", 20, None, "generation", False),
    # An instruction-following benchmark, run as lm-eval runs it for an instruct model:
    # with its chat template (lm-eval's --apply_chat_template), as the shipped ifeval
    # dataset runs on the default model.
    "ifeval": ("ifeval", 20, None, "generation", True),
}
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _group_yaml() -> str:
    return yaml.safe_dump(
        {
            "group": GROUP,
            "task": list(SUBJECTS),
            "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
            "metadata": {"version": 1},
        },
        sort_keys=False,
    )


def _project(root: Path) -> Path:
    from eval_pipeline_tests.projects import make_project

    models = yaml.safe_load((REPO / "models.yaml").read_text())
    project = make_project(root, models=models, datasets=())
    for name, (task, _, shots, _, chat) in RUNS.items():
        folder = project / "datasets" / name.replace("_", "-")
        folder.mkdir(parents=True)
        options: dict[str, Any] = {"task": task}
        if task == GROUP:
            (folder / "group.yaml").write_text(_group_yaml())
            options = {"task_file": "group.yaml"}
        if shots is not None:
            options["num_fewshot"] = shots
        spec = {
            "name": name.replace("_", "-"),
            "source": "bench",
            "license": "see the task",
            "loader": "lm_eval",
            "loader_options": options,
            "prompt_format": "chat" if chat else "completion",
            "primary_metric": "acc",
        }
        (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


def _ours(project: Path, store_root: Path) -> dict[str, Any]:
    """Each run's generations, scores and aggregates here, and the provider seconds."""
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.providers import create_provider
    from eval_pipeline_tests.helpers import evaluate_stages

    provider = create_provider(load_catalog(project, load_rows=False).model(MODEL))
    start = time.perf_counter()
    provider.load()
    info: dict[str, Any] = {"load_s": time.perf_counter() - start, "runs": {}}
    for name, (_, limit, _, _, _) in RUNS.items():
        started = time.perf_counter()
        before = provider.telemetry()
        _, generations, scores, frame = evaluate_stages(
            project,
            store_root,
            MODEL,
            name.replace("_", "-"),
            sample_limit=limit,
            provider=provider,
        )
        after = provider.telemetry()
        # Scoring choices and generating: the seconds lm-eval's side spends in its model.
        seconds = sum(after[k] - before[k] for k in ("choice_s", "generation_s"))
        print(f"ours {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        info["runs"][name] = {
            "model_s": seconds,
            "generations": generations,
            "scores": scores,
            "metrics": dict(zip(frame["metric"], frame["mean"], strict=True)),
        }
    info["threads"] = provider.loaded.threads or 1
    return info


def _start_theirs(
    project: Path, tmp: Path, threads: int, samples: dict[str, list[int]]
) -> subprocess.Popen:
    """lm-eval's side, started in a process of its own; :func:`_finish_theirs` collects it."""
    from eval_pipeline.providers.transformers import TransformersOptions, resolve_source

    model = yaml.safe_load((REPO / "models.yaml").read_text())["models"][0]
    folder, gguf = resolve_source(TransformersOptions.model_validate(model["options"]))
    spec = {
        "pretrained": folder,
        "gguf_file": gguf,
        "threads": threads,
        "batch_size": LMEVAL_BATCH,
        "runs": [
            {
                "name": name,
                "task": task,
                "limit": limit,
                "num_fewshot": shots,
                "apply_chat_template": chat,
                "samples": samples.get(name),
                "include_path": str(project / "datasets" / name.replace("_", "-"))
                if task == GROUP
                else None,
            }
            for name, (task, limit, shots, _, chat) in RUNS.items()
        ],
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(REPO)}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    log = (BENCH_DIR / f"{NAME}.lmeval.log").open("w")
    command = [sys.executable, "-m", "eval_pipeline_tests.bench._lmeval_side"]
    return subprocess.Popen(
        [*command, str(tmp / "spec.json"), str(tmp / "lm.json")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )


def _finish_theirs(proc: subprocess.Popen, tmp: Path) -> dict[str, Any]:
    code = proc.wait()
    if code != 0:
        tail = (BENCH_DIR / f"{NAME}.lmeval.log").read_text()[-3000:]
        raise RuntimeError(f"lm-eval failed ({code}): {tail}")
    return json.loads((tmp / "lm.json").read_text())


def _punkt_free(project: Path) -> dict[str, list[int]]:
    """IFEval's first documents whose checkers run here: lm-eval stops at any other.

    A checker that needs NLTK's punkt data fails on any non-empty answer, so trying each
    document with a stand-in answer finds them; both sides compare the others.
    """
    from eval_pipeline.catalog import load_catalog

    catalog = load_catalog(project, load_rows=False)
    out = {}
    for name, (task, limit, _, _, _) in RUNS.items():
        if task != "ifeval":
            continue
        source = catalog.dataset(name.replace("_", "-")).lm_eval
        keep = []
        for doc_id, doc in enumerate(source.docs(task)[:limit]):
            try:
                source.score(task, doc, doc_id, ["A stand-in answer. It has two sentences."])
            except LookupError:
                continue
            keep.append(doc_id)
        out[name] = keep
    return out


def _doc_key(sample_id: str, leaf: str | None) -> str:
    return f"{leaf}/{sample_id}" if leaf else sample_id


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def _compare_loglik(ours: dict[str, Any], theirs: dict[str, Any], single: str | None) -> dict:
    same, diff, n = 0, 0.0, 0
    for row in ours["generations"].iter_rows(named=True):
        doc = theirs["docs"][_doc_key(row["sample_id"], single)]
        other = [r[0][0] for r in doc["resps"]]
        mine = list(row["choice_logprobs"])
        n += 1
        if len(mine) == 1:  # LAMBADA: the greedy flag decides accuracy
            same += bool(row["choice_greedy"][0]) == bool(doc["resps"][0][0][1])
        else:
            same += _argmax(mine) == _argmax(other)
        diff = max(diff, max(abs(a - b) for a, b in zip(mine, other, strict=True)))
    return {
        "documents": n,
        "same_answer_share": round(same / n, 4),
        "max_abs_loglik_diff": float(f"{diff:.3g}"),
    }


def _compare_generation(ours: dict[str, Any], theirs: dict[str, Any], single: str) -> dict:
    texts, filtered, n, pairs = 0, 0, 0, 0
    answers: dict[tuple[str, str], str] = {}
    for row in ours["scores"].iter_rows(named=True):
        detail = json.loads(row["detail"])
        flt = row["metric"].split(",", 1)[1] if "," in row["metric"] else "none"
        if "answer" in detail:
            answers[(row["sample_id"], flt)] = detail["answer"]
    for row in ours["generations"].iter_rows(named=True):
        doc = theirs["docs"].get(_doc_key(row["sample_id"], single))
        if doc is None:  # not scoreable on lm-eval's side either
            continue
        n += 1
        texts += row["completion"] == doc["resps"][0][0]
        for flt, part in doc["filters"].items():
            pairs += 1
            mine = answers.get((row["sample_id"], flt), row["completion"])
            theirs_answer = part["filtered_resps"]
            if isinstance(theirs_answer, list) and len(theirs_answer) == 1:
                theirs_answer = theirs_answer[0]  # logged per request: one here
            filtered += mine == theirs_answer
    return {
        "documents": n,
        "same_text_share": round(texts / n, 4),
        "same_filtered_share": round(filtered / pairs, 4) if pairs else None,
    }


def _metrics(ours: dict[str, float], results: dict[str, Any], name: str) -> dict[str, Any]:
    top = results.get(name) or next(iter(results.values()))
    out, equal = {}, True
    for metric, value in ours.items():
        key = metric if "," in metric else f"{metric},none"
        other = top.get(key)
        if not isinstance(other, int | float) or value is None:
            continue
        tolerance = 1e-6 * max(1.0, abs(other)) if "perplexity" in metric else 1e-6
        equal &= abs(value - other) <= tolerance
        out[metric] = {"ours": round(value, 6), "lm_eval": round(float(other), 6)}
    return {"metrics": out, "metrics_equal": equal and bool(out)}


def run() -> dict:
    out: dict[str, Any] = {"model": MODEL, "lmeval_batch_size": LMEVAL_BATCH, "tasks": {}}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        project = _project(tmp / "project")
        # Both sides at once, one torch thread each on this 2-core machine: each meets the
        # same contention, and the bench takes the longer side's time, not the sum.
        from eval_pipeline.providers.transformers import choose_threads

        threads = choose_threads("auto")
        proc = _start_theirs(project, tmp, threads, _punkt_free(project))
        try:
            ours = _ours(project, tmp / "store")
        except BaseException:
            proc.kill()
            raise
        theirs = _finish_theirs(proc, tmp)
    out["threads"] = ours["threads"]
    out["sides"] = "run at the same time, one torch thread each"
    sums = {"loglikelihood": [0.0, 0.0], "generation": [0.0, 0.0]}
    for name, (task, _, _, kind, _) in RUNS.items():
        mine, other = ours["runs"][name], theirs["tasks"][name]
        if "error" in other:
            out["tasks"][name] = {"error": other["error"]}
            continue
        single = None if task == GROUP else task
        if kind == "loglikelihood":
            row = _compare_loglik(mine, other, single)
        else:
            row = _compare_generation(mine, other, task)
        row.update(_metrics(mine["metrics"], other["results"], task))
        row["ours_model_s"] = round(mine["model_s"], 2)
        row["lmeval_model_s"] = round(other["model_s"], 2)
        row["wall_ratio"] = round(mine["model_s"] / other["model_s"], 3)
        sums[kind][0] += mine["model_s"]
        sums[kind][1] += other["model_s"]
        out["tasks"][name] = row
    done = {n: t for n, t in out["tasks"].items() if "error" not in t}
    loglik = [t for n, t in done.items() if RUNS[n][3] == "loglikelihood"]
    gen = [t for n, t in done.items() if RUNS[n][3] == "generation"]
    out["min_same_answer_share"] = min(t["same_answer_share"] for t in loglik)
    out["max_abs_loglik_diff"] = max(t["max_abs_loglik_diff"] for t in loglik)
    out["min_same_text_share"] = min(t["same_text_share"] for t in gen)
    out["min_same_filtered_share"] = min(t["same_filtered_share"] or 0 for t in gen)
    out["all_metrics_equal"] = len(done) == len(RUNS) and all(
        t["metrics_equal"] for t in done.values()
    )
    out["wall_ratio_loglikelihood"] = round(sums["loglikelihood"][0] / sums["loglikelihood"][1], 3)
    out["wall_ratio_generation"] = round(sums["generation"][0] / sums["generation"][1], 3)
    out["ours_load_s"] = round(ours["load_s"], 2)
    out["lmeval_load_s"] = round(theirs["load_s"], 2)
    out["ratio"] = out["wall_ratio_loglikelihood"]
    out["goals"] = {
        "same_answer_share": ">= 0.99",
        "max_abs_loglik_diff": "<= 1e-3",
        "same_text_share": ">= 0.99",
        "same_filtered_share": ">= 0.99",
        "metrics_equal": "true",
        "wall_ratio_loglikelihood": "<= 0.5",
        "wall_ratio_generation": "<= 0.7",
    }
    return out


if __name__ == "__main__":
    from eval_pipeline_tests.bench._common import write_result

    print(write_result(NAME, run()))
