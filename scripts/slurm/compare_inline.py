"""Time the shipped datasets for the default model generated inline and on SLURM.

Builds a throwaway project next to the repository's catalog with one extra model,
``<default>-slurm``: the same entry with ``runs_on: slurm`` and the ``cpu`` profile. Each
mode materializes ``generations`` (which writes ``prompt_versions`` and ``dataset_samples``
first) for every shipped dataset of its model in one run (what a single-run backfill
launches), on its own empty store, so both start cold (no cached responses) and load the
model once.

Usage (the local cluster must be up: ``make slurm-up``)::

    .venv/bin/python scripts/slurm/compare_inline.py --limit 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from eval_pipeline.defs import build_definitions

REPO = Path(__file__).resolve().parents[2]
ASSETS = ("generations",)


def make_project(root: Path, model: str) -> tuple[Path, str]:
    """Copy the catalog into ``root`` and add ``<model>-slurm``; returns (root, its slug)."""
    for name in ("datasets", "prompts", "slurm"):
        shutil.copytree(REPO / name, root / name)
    catalog = yaml.safe_load((REPO / "models.yaml").read_text())
    entry = next(m for m in catalog["models"] if m["slug"] == model)
    remote = {**entry, "slug": f"{model}-slurm", "runs_on": "slurm", "slurm_profile": "cpu"}
    catalog["models"].append(remote)
    (root / "models.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    return root, remote["slug"]


def run(project: Path, store: Path, model: str, limit: int) -> dict:
    defs = build_definitions(str(project), str(store))
    datasets = sorted(p.parent.name for p in (project / "datasets").glob("*/dataset.yaml"))
    selected = [a for a in defs.assets if a.key.to_user_string() in ASSETS]
    tags = {
        "dagster/asset_partition_range_start": f"{datasets[0]}|{model}",
        "dagster/asset_partition_range_end": f"{datasets[-1]}|{model}",
    }
    config = {"ops": {"generations": {"config": {"sample_limit": limit}}}}
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        result = dg.materialize(
            selected, resources=defs.resources, tags=tags, run_config=config, instance=instance
        )
        wall = time.perf_counter() - start
        step_s = None
        for event in result.all_events:
            if event.step_key == "generations" and event.event_type_value == "STEP_SUCCESS":
                step_s = event.event_specific_data.duration_ms / 1000
        records = instance.fetch_materializations(dg.AssetKey("generations"), limit=100).records
        meta = {
            str(r.partition_key): {k: v.value for k, v in r.asset_materialization.metadata.items()}
            for r in records
        }
    first = next(iter(meta.values()))
    return {
        "model": model,
        "partitions": sorted(meta),
        "run_wall_s": round(wall, 1),
        "generations_step_s": round(step_s, 1) if step_s else None,
        "rows": sum(m["dagster/row_count"] for m in meta.values()),
        "output_tokens": sum(m["output_tokens"] for m in meta.values()),
        "slurm": {k: v for k, v in first.items() if k.startswith("slurm/")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eval-compare-") as tmp:
        project, remote = make_project(Path(tmp) / "project", args.model)
        results = [
            run(project, Path(tmp) / "store-inline", args.model, args.limit),
            run(project, Path(tmp) / "store-slurm", remote, args.limit),
        ]
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
