"""``judging``: the judge's trust figures and the judged benchmarks' wall time.

- ``position_bias_rate``: the share of AlpacaEval pairs whose verdict changes when the
  order is swapped, for a fake judge with a planted bias (it answers ``[[A]]``, the first
  position, on a hash-chosen ``planted_bias`` share of the samples and a tie elsewhere),
  with a seeded bootstrap 95% interval; ``planted_bias_recovered`` says the planted share
  lies inside it.
- ``self_consistency``: the share of verdicts unchanged when every judge request of the
  partition is sent again bypassing the cache (at the judge's temperature, 0), for the
  fake judge and (``shipped_judge_self_consistency``) for the shipped one.
- ``pairwise_judge_calls_per_sample``: judge calls of a pairwise partition per sample (2).
- ``judge_loads_in_dagster_step``: judge providers created by the score stage (0: it reads
  ``judgements``).
- ``mtbench_wall_s`` / ``alpacaeval_wall_s``: the whole partition materialized in process
  (generations, judgements, scores, aggregates) for ``mtbench_questions`` MT-Bench
  questions (both turns) and ``alpacaeval_instructions`` AlpacaEval instructions, with the
  shipped model as answerer and judge (``real=False``: fake models, for the fast test).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from eval_pipeline_tests.bench._common import REPO, timed, write_result

NAME = "judging"
PLANTED_BIAS = 0.3
BIAS_SAMPLES = 200
MTBENCH_QUESTIONS = 10
ALPACAEVAL_INSTRUCTIONS = 20
SEED = 20241207


def _biased(sample_id: str) -> bool:
    digest = hashlib.sha256(f"bias:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < PLANTED_BIAS


def _fake_models(answers: dict[str, str]) -> dict[str, Any]:
    return {
        "models": [
            {
                "slug": "fake-answerer",
                "provider": "fake",
                "model_id": "fake/answerer",
                "options": {"mode": "fixed", "text": "An answer of middling length."},
            },
            {
                "slug": "fake-judge",
                "provider": "fake",
                "model_id": "fake/judge",
                "options": {"mode": "fixed", "text": "Rating: [[5]] [[C]]", "answers": answers},
            },
        ]
    }


def _project(root: Path, dataset: str, models: dict[str, Any], judge: str) -> Path:
    from eval_pipeline_tests.projects import make_project

    project = make_project(root, models=models, datasets=(dataset,))
    spec_path = project / "datasets" / dataset / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = [judge]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


def _bootstrap(values: np.ndarray, seed: int = SEED, resamples: int = 2000) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, values.size, values.size)].mean() for _ in range(resamples)]
    return [round(float(v), 4) for v in np.percentile(means, [2.5, 97.5])]


def _bias_figures(tmp: Path, samples: int) -> dict[str, Any]:
    from eval_pipeline import stages
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.judge import alpaca_eval_rows
    from eval_pipeline.providers.fake import calls_for
    from eval_pipeline.stages.catalog_tables import build_dataset_samples, build_prompt_versions
    from eval_pipeline.storage import Store

    ids = [str(r["id"]) for r in alpaca_eval_rows()[:samples]]
    planted = {i: "[[A]]" for i in ids if _biased(i)}
    project = _project(tmp / "bias", "alpacaeval", _fake_models(planted), "fake-judge")
    catalog, store = load_catalog(project), Store(tmp / "bias-store")
    build_prompt_versions(catalog, store, "alpacaeval")
    build_dataset_samples(catalog, store, "alpacaeval")
    stages.generate(catalog, store, "fake-answerer", "alpacaeval", sample_limit=samples)
    before = calls_for("fake-judge")
    stages.judge_partition(catalog, store, "fake-judge", "fake-answerer", "alpacaeval")
    calls = calls_for("fake-judge") - before
    loads: list[str] = []
    tracer = _count_provider_creations(loads)
    sys.setprofile(tracer)
    try:
        stages.score(catalog, store, "fake-answerer", "alpacaeval")
    finally:
        sys.setprofile(None)
    scores = store.read("scores", dataset="alpacaeval", model="fake-answerer")
    consistent = scores.filter(pl.col("metric") == "win_rate:position_consistent")
    inconsistent = 1.0 - consistent["value"].to_numpy().astype(float)
    low, high = _bootstrap(inconsistent)
    first = store.read("judgements", dataset="alpacaeval", model="fake-answerer")
    # Self-consistency: every judge request sent again, bypassing the cache.
    again = _resend(catalog, store, "fake-judge", first)
    return {
        "planted_bias": round(len(planted) / samples, 4),
        "position_bias_rate": round(float(inconsistent.mean()), 4),
        "position_bias_ci95": [low, high],
        "planted_bias_recovered": bool(low <= len(planted) / samples <= high),
        "self_consistency": again,
        "pairwise_judge_calls_per_sample": calls / samples,
        "judge_loads_in_dagster_step": len(loads),
        "bias_samples": samples,
    }


def _count_provider_creations(found: list[str]) -> Any:  # a sys.setprofile hook
    def tracer(frame: Any, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_name == "create_provider":
            found.append(frame.f_globals.get("__name__", ""))

    return tracer


def _resend(catalog: Any, store: Any, judge: str, judged: pl.DataFrame) -> float:
    """The share of verdicts the judge repeats when every request is sent again.

    The partition's tables are copied to a store without the response cache and judged
    again, so each request reaches the judge a second time.
    """
    from eval_pipeline import stages
    from eval_pipeline.storage import Store

    fresh_root = Path(store.root).with_name(Path(store.root).name + "-resend")
    shutil.copytree(store.root, fresh_root, ignore=shutil.ignore_patterns(store.cache_dir.name))
    fresh = Store(fresh_root)
    model, dataset = judged["model"][0], judged["dataset"][0]
    stages.judge_partition(catalog, fresh, judge, model, dataset)
    again = fresh.read("judgements", dataset=dataset, model=model)
    both = judged.select("sample_id", "metric", "verdict").join(
        again.select("sample_id", "metric", pl.col("verdict").alias("again")),
        on=["sample_id", "metric"],
    )
    return round(float((both["verdict"] == both["again"]).mean()), 4)


def _wall(tmp: Path, dataset: str, samples: int, real: bool) -> tuple[float, float, float | None]:
    """Wall time, self-consistency and (pairwise datasets) position-bias rate of a partition.

    Self-consistency: every judge request sent again. Position bias: None but for a
    pairwise dataset.
    """
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.storage import Store
    from eval_pipeline_tests.helpers import materialize

    if real:
        models = yaml.safe_load((REPO / "models.yaml").read_text())
        model, judge = "smollm2-135m", "smollm2-135m"
    else:
        models, model, judge = _fake_models({}), "fake-answerer", "fake-judge"
    project = _project(tmp / dataset, dataset, models, judge)
    with timed() as took:
        result = materialize(
            project, tmp / f"{dataset}-store", f"{dataset}|{model}", sample_limit=samples
        )
    if not result.success:
        raise RuntimeError(f"{dataset} did not materialize")
    store = Store(tmp / f"{dataset}-store")
    judged = store.read("judgements", dataset=dataset, model=model)
    consistency = _resend(load_catalog(project), store, judge, judged)
    scores = store.read("scores", dataset=dataset, model=model)
    kept = scores.filter(pl.col("metric").str.ends_with(":position_consistent"))["value"]
    bias = round(1.0 - float(kept.mean()), 4) if kept.len() else None
    return round(took["wall_s"], 1), consistency, bias


def run(
    bias_samples: int = BIAS_SAMPLES,
    mtbench_questions: int = MTBENCH_QUESTIONS,
    alpacaeval_instructions: int = ALPACAEVAL_INSTRUCTIONS,
    real: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        figures = _bias_figures(tmp, bias_samples)
        # 0 leaves a wall-time run out (the fast test; the partitions' own tests cover them).
        mtbench, mtbench_consistency, _ = (
            _wall(tmp, "mt-bench", mtbench_questions, real)
            if mtbench_questions
            else (None, None, None)
        )
        alpaca, alpaca_consistency, shipped_bias = (
            _wall(tmp, "alpacaeval", alpacaeval_instructions, real)
            if alpacaeval_instructions
            else (None, None, None)
        )
    return {
        "ratio": figures["position_bias_rate"],
        **figures,
        "mtbench_questions": mtbench_questions,
        "mtbench_wall_s": mtbench,
        "alpacaeval_instructions": alpacaeval_instructions,
        "alpacaeval_wall_s": alpaca,
        "wall_model": "smollm2-135m (answerer and judge)" if real else "fake",
        # The shipped judge asked every request of each partition a second time.
        "shipped_judge_position_bias_rate": shipped_bias,
        "shipped_judge_self_consistency": {
            "mt-bench": mtbench_consistency,
            "alpacaeval": alpaca_consistency,
        },
        "target": "planted_bias_recovered, pairwise_judge_calls_per_sample == 2, "
        "judge_loads_in_dagster_step == 0",
    }


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
