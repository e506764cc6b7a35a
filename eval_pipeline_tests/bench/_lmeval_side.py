"""lm-evaluation-harness's side of ``lmeval_agreement``, in a process of its own.

``python -m eval_pipeline_tests.bench._lmeval_side <spec.json> <out.json>`` loads lm-eval's
``hf`` model once (the shipped GGUF, float32, on the CPU, with the spec's thread count)
and runs ``lm_eval.simple_evaluate`` on each task of the spec with lm-eval's own task
configuration, only its data loading pointed at the same local copies the pipeline reads
(``ConfigurableTask.download`` reads them through the pipeline's resolver instead of the
hub). For every task it records each document's raw responses (log-likelihoods and greedy
flags, or generated texts), filtered responses and metrics, lm-eval's aggregated results,
and the seconds spent inside the model's ``loglikelihood``, ``loglikelihood_rolling`` and
``generate_until`` (tokenization, batching, forward passes and decoding; not model load
or task building).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def main(spec_path: str, out_path: str) -> None:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from eval_pipeline.catalog._lmeval import load_task_data, no_downloads, seeded_random

    spec = json.loads(open(spec_path).read())
    # IFEval's language checks draw from langdetect's random generator; the pipeline
    # seeds it (0) so that its scores are reproducible, and so does this side.
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0
    torch.set_num_threads(int(spec["threads"]))

    def local_download(self, dataset_kwargs=None, **kwargs):
        load_task_data(self)

    ConfigurableTask.download = local_download
    # Each document scored with Python's random generator seeded as the pipeline seeds it:
    # IFEval's checkers draw random values for arguments lm-eval drops as falsy, so
    # unseeded, a score depends on what was scored before.
    process_results = ConfigurableTask.process_results

    def seeded_process_results(self, doc, results):
        with seeded_random():
            return process_results(self, doc, results)

    ConfigurableTask.process_results = seeded_process_results
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
    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        original = getattr(lm, name)

        def timed(requests, *args, _original=original, **kwargs):
            begin = time.perf_counter()
            try:
                return _original(requests, *args, **kwargs)
            finally:
                spent["s"] += time.perf_counter() - begin

        setattr(lm, name, timed)
    out: dict[str, Any] = {"load_s": load_s, "tasks": {}}
    with no_downloads():
        manager = TaskManager(
            include_path=[r["include_path"] for r in spec["runs"] if r.get("include_path")]
        )
    for run in spec["runs"]:
        spent["s"] = 0.0
        begin = time.perf_counter()
        samples = {run["task"]: run["samples"]} if run.get("samples") else None
        try:
            results = simple_evaluate(
                model=lm,
                tasks=[run["task"]],
                num_fewshot=run.get("num_fewshot"),
                limit=None if samples else run["limit"],
                samples=samples,
                apply_chat_template=bool(run.get("apply_chat_template")),
                task_manager=manager,
                log_samples=True,
                bootstrap_iters=0,
            )
        except Exception as exc:  # one task's failure is recorded, the others still run
            out["tasks"][run["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        print(f"lm-eval {run['name']}: {time.perf_counter() - begin:.0f} s", file=sys.stderr)
        docs: dict[str, Any] = {}
        for leaf, samples in results["samples"].items():
            for sample in samples:
                # One logged sample per document and filter.
                doc = docs.setdefault(
                    f"{leaf}/{sample['doc_id']}", {"resps": _plain(sample["resps"]), "filters": {}}
                )
                doc["filters"][sample.get("filter", "none")] = {
                    "filtered_resps": _plain(sample["filtered_resps"]),
                    "metrics": {m: _plain(sample[m]) for m in sample.get("metrics", [])},
                }
        out["tasks"][run["name"]] = {
            "model_s": spent["s"],
            "evaluate_s": time.perf_counter() - begin,
            "results": _plain(results["results"]),
            "docs": docs,
        }
    with open(out_path, "w") as handle:
        handle.write(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
