"""Run inside the lm-eval virtualenv by ``mc_agreement``: lm-eval's ``hf`` model on our docs.

``python _lmeval_mc.py <spec.json> <out.json>``. The spec names the model folder and GGUF
file, the thread count, the task folder (YAMLs written by the benchmark) and the task
names per shot count. For each shot count it runs ``lm_eval.simple_evaluate`` on one
loaded ``HFLM`` and records every doc's per-choice log-likelihoods and the seconds spent
inside ``HFLM.loglikelihood`` (tokenization, batching and forward passes: what our
provider's choice scoring does), apart from task building and model load.

Imports nothing from ``eval_pipeline``: it runs under another interpreter.
"""

from __future__ import annotations

import json
import sys
import time


def _loglik(resp):
    # A response is (loglikelihood, is_greedy), possibly wrapped in a list.
    while isinstance(resp, list | tuple) and resp and isinstance(resp[0], list | tuple):
        resp = resp[0]
    return float(resp[0])


def main(spec_path: str, out_path: str) -> None:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    spec = json.loads(open(spec_path).read())
    torch.set_num_threads(int(spec["threads"]))
    start = time.perf_counter()
    lm = HFLM(
        pretrained=spec["pretrained"],
        gguf_file=spec["gguf_file"],
        dtype="float32",
        device="cpu",
        batch_size=spec["batch_size"],
    )
    load_s = time.perf_counter() - start
    spent = {"s": 0.0}
    original = lm.loglikelihood

    def timed(requests, *args, **kwargs):
        begin = time.perf_counter()
        try:
            return original(requests, *args, **kwargs)
        finally:
            spent["s"] += time.perf_counter() - begin

    lm.loglikelihood = timed
    manager = TaskManager(include_path=spec["task_dir"])
    out = {"load_s": load_s, "runs": {}}
    for shots, tasks in spec["runs"].items():
        spent["s"] = 0.0
        begin = time.perf_counter()
        results = simple_evaluate(
            model=lm,
            tasks=tasks,
            num_fewshot=int(shots),
            task_manager=manager,
            log_samples=True,
            bootstrap_iters=0,
        )
        run = {
            "loglikelihood_s": spent["s"],
            "evaluate_s": time.perf_counter() - begin,
            "tasks": {},
        }
        for task in tasks:
            docs = {}
            for sample in results["samples"][task]:
                docs[sample["doc"]["id"]] = {
                    "logliks": [_loglik(r) for r in sample["resps"]],
                    "acc": float(sample["acc"]),
                }
            run["tasks"][task] = docs
        out["runs"][shots] = run
    open(out_path, "w").write(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
