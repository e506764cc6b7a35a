"""Prometheus metrics from the Dagster instance: runs by job and status, partition durations.

Together with :class:`eval_pipeline.operations.StoreCollector` (what the stored results
say) this is what ``eval-pipeline metrics serve`` and ``metrics write`` export.
"""

from collections.abc import Iterator, Sequence

import dagster as dg
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from eval_pipeline.defs.jobs import build_jobs

PREFIX = "eval_pipeline"
# Partition runs take seconds (cached, fake models) to hours (full sets on big models).
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)


class InstanceCollector(Collector):
    """Collects run counts and durations from ``instance`` on every scrape.

    Run counts are one count query per job and status (the project's jobs and any other
    job among the latest ``recent`` runs); durations come from the latest ``recent``
    finished runs that evaluated one partition.
    """

    def __init__(self, instance: dg.DagsterInstance, recent: int = 1000):
        self.instance = instance
        self.recent = recent

    def collect(self) -> Iterator[Metric]:
        records = self.instance.get_run_records(
            filters=dg.RunsFilter(statuses=list(FINISHED)), limit=self.recent
        )
        jobs = sorted({j.name for j in build_jobs()} | {r.dagster_run.job_name for r in records})
        yield self._runs(jobs)
        yield self._durations(records)

    def _runs(self, jobs: Sequence[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(
            f"{PREFIX}_runs", "Dagster runs by job and status.", labels=["dagster_job", "status"]
        )
        for job in jobs:
            for status in dg.DagsterRunStatus:
                count = self.instance.get_runs_count(
                    filters=dg.RunsFilter(job_name=job, statuses=[status])
                )
                if count:
                    family.add_metric([job, status.value.lower()], float(count))
        return family

    def _durations(self, records: Sequence[dg.RunRecord]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            f"{PREFIX}_partition_duration_seconds",
            "Wall time of finished runs that evaluated one partition, by job and status.",
            labels=["dagster_job", "status"],
        )
        groups: dict[tuple[str, str], list[float]] = {}
        for record in records:
            run = record.dagster_run
            if "dagster/partition" not in run.tags or not record.start_time:
                continue
            if not record.end_time:
                continue
            key = (run.job_name, run.status.value.lower())
            groups.setdefault(key, []).append(record.end_time - record.start_time)
        for (job, status), values in sorted(groups.items()):
            buckets = [(str(b), float(sum(v <= b for v in values))) for b in DURATION_BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            family.add_metric([job, status], buckets, float(sum(values)))
        return family
