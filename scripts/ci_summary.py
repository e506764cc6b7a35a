"""Print a Markdown summary of one CI batch of ci_suite_job runs; exit 1 on a regression.

Reads the instance under ``$DAGSTER_HOME``: each run tagged ``eval_pipeline/ci_batch=<batch>``
with its status, the metric means of its ``aggregates`` materialization and its check results.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg

BATCH_TAG = "eval_pipeline/ci_batch"
GATE = ("aggregates", "aggregates_regression")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", required=True, help="the eval_pipeline/ci_batch tag value")
    args = parser.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={BATCH_TAG: args.batch}))
        lines = [
            "## CI regression suite",
            "",
            "| partition | run | metrics | checks |",
            "|---|---|---|---|",
        ]
        bad = not records
        for record in sorted(
            records, key=lambda r: r.dagster_run.tags.get("dagster/partition", "")
        ):
            run = record.dagster_run
            metrics, checks = _metrics(instance, run.run_id), _checks(instance, run.run_id)
            gate_failed = any(name == GATE and not ok for name, ok in checks)
            bad |= run.status != dg.DagsterRunStatus.SUCCESS or gate_failed
            shown = ", ".join(f"{'✅' if ok else '❌'} {n[1]}" for n, ok in checks) or "none"
            lines.append(
                f"| `{run.tags.get('dagster/partition', '?')}` | {run.status.value} `{run.run_id[:8]}` "
                f"| {metrics or 'n/a'} | {shown} |"
            )
        if not records:
            lines.append("| (no runs) | | | |")
        lines += ["", "**Result: regression or failure.**" if bad else "**Result: no regression.**"]
    print("\n".join(lines))
    return 1 if bad else 0


def _metrics(instance: dg.DagsterInstance, run_id: str) -> str:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    for event in events:
        mat = event.asset_materialization
        if mat and mat.asset_key == dg.AssetKey("aggregates"):
            return ", ".join(
                f"{k.removesuffix('/mean')} {v.value:.3f}"
                for k, v in mat.metadata.items()
                if k.endswith("/mean")
            )
    return ""


def _checks(instance: dg.DagsterInstance, run_id: str) -> list[tuple[tuple[str, str], bool]]:
    out = []
    for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = event.dagster_event.event_specific_data
        out.append(
            ((evaluation.asset_key.to_user_string(), evaluation.check_name), evaluation.passed)
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
