"""Prometheus metrics: the textfile export, a real Prometheus scraping the endpoint, the rules."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eval_pipeline.cli import main
from eval_pipeline.storage import Store
from eval_pipeline_tests import processes
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.projects import REPO, make_project

PARTITIONS = ("qa|fake-good", "json-extract|fake-good", "qa|fake-good")


@pytest.fixture
def evaluated(tmp_path, monkeypatch):
    """A project evaluated three times (the third answered from the cache) on a real instance."""
    project = make_project(tmp_path / "p", datasets=("qa", "json-extract"))
    store = tmp_path / "store"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for partition in PARTITIONS:
            assert materialize(project, store, partition, sample_limit=4, instance=instance).success
    return project, store


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_write_exports_the_stored_results_and_the_run_history(evaluated, tmp_path):
    project, store = evaluated
    target = tmp_path / "textfile" / "eval_pipeline.prom"
    assert (
        main(["--root", str(project), "--store", str(store), "metrics", "write", str(target)]) == 0
    )
    samples = _samples(target.read_text())

    generations = Store(store).scan("generations").collect()
    cost = generations["cost_usd"].sum()
    assert cost > 0
    assert _value(
        samples,
        "eval_pipeline_cost_usd_total",
        provider="fake",
        model="fake-good",
        role="generation",
    ) == pytest.approx(cost)
    assert _value(
        samples,
        "eval_pipeline_tokens_total",
        provider="fake",
        model="fake-good",
        role="generation",
        direction="output",
    ) == float(generations["output_tokens"].sum())
    # qa was evaluated twice: its stored rows are the second run's, all from the cache.
    assert (
        _value(
            samples,
            "eval_pipeline_responses_total",
            model="fake-good",
            dataset="qa",
            source="cache",
        )
        == 4.0
    )
    assert _value(samples, "eval_pipeline_cache_hit_ratio", model="fake-good", dataset="qa") == 1.0
    assert (
        _value(
            samples,
            "eval_pipeline_cache_hit_ratio",
            model="fake-good",
            dataset="json-extract",
        )
        == 0.0
    )
    answered = generations.filter(~pl.col("cached") & pl.col("error").is_null()).height
    assert (
        _value(samples, "eval_pipeline_request_latency_seconds_count", provider="fake") == answered
    )
    assert (
        _value(samples, "eval_pipeline_runs_total", dagster_job="evaluation_job", status="success")
        == 3.0
    )
    assert (
        _value(
            samples,
            "eval_pipeline_partition_duration_seconds_count",
            dagster_job="evaluation_job",
            status="success",
        )
        == 3.0
    )
    aggregates = Store(store).read("aggregates", dataset="qa", model="fake-good")
    exact = aggregates.filter(pl.col("metric") == "answer_match")["mean"][0]
    assert _value(
        samples, "eval_pipeline_metric_mean", model="fake-good", dataset="qa", metric="answer_match"
    ) == pytest.approx(exact)
    assert _value(samples, "eval_pipeline_regressions_flagged") == 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def _wait_for_port(port: int, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited with {process.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_metrics_endpoint(evaluated, tmp_path):
    assert shutil.which("prometheus"), "Prometheus is installed by scripts/ensure-prometheus.sh"
    project, store = evaluated
    metrics_port, prom_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: eval_pipeline\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    with (
        processes.started(
            [sys.executable, "-m", "eval_pipeline.cli", "--root", str(project)]
            + ["--store", str(store), "metrics", "serve", "--port", str(metrics_port)],
            env=env,
            stderr=subprocess.PIPE,
        ) as exporter,
        processes.started(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as prometheus,
    ):
        deadline = time.monotonic() + 60
        _wait_for_port(metrics_port, exporter, deadline)
        _wait_for_port(prom_port, prometheus, deadline)
        result: list[dict] = []
        while not result:  # until the first scrape has landed
            assert time.monotonic() < deadline, "Prometheus never stored a scrape"
            result = _query(prom_port, 'sum(eval_pipeline_cost_usd_total{role="generation"})')
            if not result:
                time.sleep(0.5)
        generations = Store(store).scan("generations").collect()
        assert float(result[0]["value"][1]) == pytest.approx(generations["cost_usd"].sum())
        runs = _query(prom_port, 'eval_pipeline_runs_total{dagster_job="evaluation_job"}')
        assert {r["metric"]["status"]: float(r["value"][1]) for r in runs} == {"success": 3.0}
        up = _query(prom_port, 'up{job="eval_pipeline"}')
        assert float(up[0]["value"][1]) == 1.0


def _wait_for_metrics(port: int, process: subprocess.Popen, log: Path, deadline: float) -> None:
    """Poll ``/metrics`` on ``port`` until it answers; fail if ``process`` exits first."""
    while True:
        assert process.poll() is None, f"exited with {process.returncode}: {log.read_text()}"
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"nothing served {url}: {log.read_text()}"
        time.sleep(0.1)


EXIT_BOUND_S = 5.0


@pytest.mark.slow
@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_metrics_serve_exits_0_promptly_on(sig, inherited, tmp_path, record_property):
    """SIGTERM and Ctrl-C end ``metrics serve`` with exit code 0 and its port closed.

    "ignored": both signals come ignored, as a parent that ignores SIGINT (a background
    job) and ran a Dagster job in process hands them down; the serve command must still stop.
    """
    project = make_project(tmp_path / "p", datasets=("qa",))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    command = [sys.executable, "-m", "eval_pipeline.cli", "--root", str(project)]
    command += ["--store", str(tmp_path / "store"), "metrics", "serve", "--port", str(port)]
    if inherited == "ignored":
        command = ["bash", "-c", 'trap "" INT TERM; exec "$@"', "bash", *command]
    log = tmp_path / "serve.log"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with log.open("w") as out, processes.started(command, env=env, stderr=out) as serve:
        _wait_for_metrics(port, serve, log, time.monotonic() + 60)
        start = time.monotonic()
        serve.send_signal(sig)
        try:
            code = serve.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            code = None  # stopped with SIGKILL on the way out of the block
        seconds = time.monotonic() - start
    record_property("exit_s", round(seconds, 3))
    print(f"metrics serve, {sig.name} ({inherited}): exit code {code} after {seconds:.2f} s")
    assert code == 0, f"exit code {code} after {seconds:.2f} s: {log.read_text()[-3000:]}"
    assert seconds < EXIT_BOUND_S
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the port still accepts connections"


def test_the_shipped_alert_rules_and_scrape_config_pass_promtool():
    assert shutil.which("promtool"), "promtool is installed by scripts/ensure-prometheus.sh"
    for command in (
        ["promtool", "check", "rules", str(REPO / "deploy" / "prometheus" / "alerts.yml")],
        ["promtool", "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
    ):
        out = subprocess.run(command, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    text = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    for alert in (
        "EvalPipelineCostSpike",
        "EvalPipelineRunFailureRate",
        "EvalPipelineCacheHitRateLow",
    ):
        assert f"alert: {alert}" in text
