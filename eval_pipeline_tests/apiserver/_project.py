"""Throwaway projects whose models are API models served by the local server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SYNTH_SPEC = {
    "name": "synth",
    "description": "Generated questions for API engine tests and benchmarks.",
    "source": "eval_pipeline_tests.apiserver.make_api_project",
    "license": "CC0-1.0",
    "loader": "jsonl",
    "data": "data.jsonl",
    "id_field": "id",
    "target_field": "answer",
    "fields": ["question"],
    "prompt": "synth",
    "scorers": [{"name": "exact_match", "metric": "exact"}],
    "sampling": {"max_tokens": 16},
}


def api_model(
    slug: str,
    provider: str,
    base_url: str,
    *,
    concurrency: int = 16,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    pricing: tuple[float, float] = (1.0, 2.0),
    **options: Any,
) -> dict[str, Any]:
    """A ``models.yaml`` entry for ``provider`` (openai or anthropic) at ``base_url``."""
    limits: dict[str, Any] = {"concurrency": concurrency}
    if requests_per_minute:
        limits["requests_per_minute"] = requests_per_minute
    if tokens_per_minute:
        limits["tokens_per_minute"] = tokens_per_minute
    return {
        "slug": slug,
        "provider": provider,
        "model_id": f"{provider}-test-model",
        "pricing": {"input_per_mtok": pricing[0], "output_per_mtok": pricing[1]},
        "limits": limits,
        "options": {"base_url": base_url, **options},
    }


def make_api_project(root: Path, models: list[dict[str, Any]], samples: int) -> Path:
    """A project with ``models`` and one dataset, ``synth``, of ``samples`` distinct questions."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models.yaml").write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    data_dir = root / "datasets" / "synth"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "dataset.yaml").write_text(yaml.safe_dump(SYNTH_SPEC, sort_keys=False))
    rows = [
        {
            "id": f"s-{i:05d}",
            "question": f"Question number {i}: what is {i} plus {i}?",
            "answer": str(2 * i),
        }
        for i in range(samples)
    ]
    (data_dir / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "prompts").mkdir(exist_ok=True)
    (root / "prompts" / "synth.jinja").write_text("{{ question }}\n")
    return root


def generation_config(**fields: Any) -> dict[str, Any]:
    """Run config for the ``generations`` asset with ``fields`` set."""
    return {"ops": {"generations": {"config": fields}}}


def materialize_api(
    project: Path,
    store_root: Path,
    partition: str,
    *,
    instance: Any = None,
    raise_on_error: bool = False,
    job: str = "evaluation_job",
    **config: Any,
) -> Any:
    """Run ``job`` for one partition with ``config`` on the ``generations`` asset."""
    from eval_pipeline.defs import build_definitions
    from eval_pipeline_tests.helpers import execute_partition

    job_def = build_definitions(str(project), str(store_root)).resolve_job_def(job)
    run_config = generation_config(**config)
    return execute_partition(job_def, partition, run_config, instance, raise_on_error)
