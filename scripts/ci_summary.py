"""Print a Markdown summary of one CI batch of ci_suite_job runs; exit 1 on a regression.

Reads the instance under ``$DAGSTER_HOME``: each run tagged ``eval_pipeline/ci_batch=<batch>``
with its status, the metric means of its ``aggregates`` materialization and its check results,
and the gate's power on each partition: the smallest drop of a pass/fail metric the paired
test finds with power 0.8 at alpha 0.05 on the samples evaluated
(``$EVAL_PIPELINE_CI_DROP``, default 0.10; ``$EVAL_PIPELINE_CI_CHURN``, default 0.05).

Exit codes: 0 no regression and every partition could have shown the drop; 1 a run failed or
a regression was found; 2 inconclusive (no regression seen, but too few samples to see the
drop on some partition).
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from eval_pipeline.operations import POWER_HEADER, GateSettings, gate_power

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
        settings = GateSettings.from_env()
        powers = []
        for record in sorted(
            records, key=lambda r: r.dagster_run.tags.get("dagster/partition", "")
        ):
            run = record.dagster_run
            metrics, checks = _metrics(instance, run.run_id), _checks(instance, run.run_id)
            samples = _samples(instance, run.run_id)
            if samples is not None:
                powers.append(gate_power(run.tags.get("dagster/partition", "?"), samples, settings))
            gate_failed = any(name == GATE and not ok for name, ok in checks)
            bad |= run.status != dg.DagsterRunStatus.SUCCESS or gate_failed
            shown = ", ".join(f"{'✅' if ok else '❌'} {n[1]}" for n, ok in checks) or "none"
            lines.append(
                f"| `{run.tags.get('dagster/partition', '?')}` | {run.status.value} `{run.run_id[:8]}` "
                f"| {metrics or 'n/a'} | {shown} |"
            )
        if not records:
            lines.append("| (no runs) | | | |")
        inconclusive = [p.partition for p in powers if not p.conclusive]
        if powers:
            lines += [
                "",
                f"### Power: can this run see a drop of {100 * settings.drop:.0f} points?",
                "",
                "Paired McNemar test (mid-p), alpha 0.05, power 0.8, assuming "
                f"{100 * settings.churn:.0f}% of samples flip either way between unchanged runs.",
                "",
                POWER_HEADER,
                *(p.row() for p in powers),
            ]
        if bad:
            result, code = "**Result: regression or failure.**", 1
        elif inconclusive:
            result = (
                f"**Result: inconclusive.** No regression seen, but {', '.join(inconclusive)} "
                f"evaluated too few samples to see a drop of {100 * settings.drop:.0f} points."
            )
            code = 2
        else:
            result, code = "**Result: no regression.**", 0
        lines += ["", result]
    print("\n".join(lines))
    return code


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


def _samples(instance: dg.DagsterInstance, run_id: str) -> int | None:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    for event in events:
        mat = event.asset_materialization
        if mat and mat.asset_key == dg.AssetKey("aggregates") and "samples" in mat.metadata:
            return int(mat.metadata["samples"].value)
    return None


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
