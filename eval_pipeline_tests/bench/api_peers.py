"""``api_peers``: the 2,000-request workload through lm-evaluation-harness and inspect_ai.

Both peers are installed by this benchmark into their own virtual environments under
``.bench/peers/`` with pinned versions, and run as commands against the same local server
(100 ms latency) with 64 concurrent connections, in the same run as ours. ``ratio`` = our
whole materialization (the Dagster run of the evaluation job for the partition: every
asset and check, in process) / the faster peer's whole command (interpreter start and
imports included); target <= 0.5. ``command_ratio`` is the stricter figure with ours run
as a command too (Python start and the Dagster import included). A peer that can not be
installed or run is reported with an ``error`` saying what failed, never with a number.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eval_pipeline_tests.apiserver import ApiServer, ServerConfig, materialize_api
from eval_pipeline_tests.bench._common import (
    BENCH_DIR,
    MODEL,
    REPO,
    prepare,
    server_dict,
    write_result,
)

NAME = "api_peers"
REQUESTS = 2000
LATENCY_S = 0.1
CONCURRENCY = 64
PEERS_DIR = BENCH_DIR / "peers"
# Pinned: lm-eval pulls torch, and an unpinned torch is a multi-GB CUDA build; 2.13.0 is the
# CPU build the development machines have at hand.
PEER_PACKAGES = {
    "lm_eval": ["torch==2.13.0", "lm-eval[api]==0.4.13"],
    "inspect_ai": ["inspect-ai==0.3.285", "openai==3.54.0"],
}
COMMAND_TIMEOUT_S = 600

LM_EVAL_TASK = """task: bench_synth
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 16
  do_sample: false
  temperature: 0
metric_list:
  - metric: exact_match
"""

INSPECT_TASK = """from inspect_ai import Task, task
from inspect_ai.dataset import FieldSpec, json_dataset
from inspect_ai.scorer import match
from inspect_ai.solver import generate


@task
def bench_synth():
    return Task(
        dataset=json_dataset({data!r}, FieldSpec(input="question", target="answer", id="id")),
        solver=generate(),
        scorer=match(),
    )
"""


def install(name: str) -> tuple[Path | None, str | None]:
    """Create ``.bench/peers/<name>`` with the pinned packages; (venv, None) or (None, error)."""
    venv = PEERS_DIR / name
    marker = venv / ".installed"
    wanted = "\n".join(PEER_PACKAGES[name])
    if marker.exists() and marker.read_text() == wanted:
        return venv, None
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PEER_PACKAGES[name]],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            tail = "\n".join(
                line
                for line in (done.stderr or done.stdout).splitlines()
                if not line.startswith("WARNING: Location")
            )[-1500:]
            return None, f"`{' '.join(step)}` exited {done.returncode}: {tail}"
    marker.write_text(wanted)
    return venv, None


def _timed_command(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> tuple[float, int | None, str | None]:
    start = time.perf_counter()
    try:
        with log.open("w") as out:
            done = subprocess.run(
                command,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=COMMAND_TIMEOUT_S,
            )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, None, f"timed out after {COMMAND_TIMEOUT_S} s"
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text()[-1500:]
        return wall, done.returncode, f"exited {done.returncode}: {tail}"
    return wall, 0, None


def _server_figures(server: ApiServer) -> dict[str, Any]:
    stats = server.stats()
    return {
        "requests": stats["requests"],
        "answered": sum(v["answered"] for v in stats["by_body"].values()),
        "distinct_prompts": len(stats["by_body"]),
        "max_in_flight": stats["max_in_flight"],
    }


def run(requests: int = REQUESTS) -> dict[str, Any]:
    config = ServerConfig(latency_s=LATENCY_S)
    results: dict[str, Any] = {}
    installs = {name: install(name) for name in PEER_PACKAGES}
    with ApiServer(config) as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        prepare(tmp, server.openai_base_url, requests, concurrency=CONCURRENCY)
        project, data = tmp / "project", tmp / "project" / "datasets" / "synth" / "data.jsonl"
        base_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "DAGSTER_HOME": str(tmp / "dagster_home"),
        }
        (tmp / "dagster_home").mkdir()

        # Ours: the whole evaluation job for the partition, in process (the run's wall time)...
        server.reset()
        start = time.perf_counter()
        ours = materialize_api(project, tmp / "store_in_process", f"synth|{MODEL}")
        results["ours"] = {
            "wall_s": round(time.perf_counter() - start, 3),
            "error": None if ours.success else "the run failed",
            **_server_figures(server),
        }
        # ... and as one command.
        server.reset()
        wall, rc, error = _timed_command(
            [
                sys.executable,
                "-m",
                "eval_pipeline_tests.bench._materialize",
                str(project),
                str(tmp / "store"),
                f"synth|{MODEL}",
            ],
            base_env,
            REPO,
            tmp / "ours.log",
        )
        results["ours_command"] = {
            "wall_s": round(wall, 3),
            "error": error,
            **_server_figures(server),
        }

        # lm-evaluation-harness: local-chat-completions, 64 concurrent requests.
        venv, install_error = installs["lm_eval"]
        if venv is None:
            results["lm_eval"] = {"error": f"install failed: {install_error}"}
        else:
            (tmp / "lm_tasks").mkdir()
            (tmp / "lm_tasks" / "bench_synth.yaml").write_text(LM_EVAL_TASK.format(data=data))
            model_args = (
                f"model={MODEL},base_url={server.openai_base_url}/chat/completions,"
                f"num_concurrent={CONCURRENCY},max_retries=3,tokenized_requests=False,timeout=60"
            )
            server.reset()
            wall, rc, error = _timed_command(
                [
                    str(venv / "bin" / "lm_eval"),
                    "--model",
                    "local-chat-completions",
                    "--model_args",
                    model_args,
                    "--tasks",
                    "bench_synth",
                    "--include_path",
                    str(tmp / "lm_tasks"),
                    "--apply_chat_template",
                    "--output_path",
                    str(tmp / "lm_out"),
                ],
                {**base_env, "OPENAI_API_KEY": "sk-bench"},
                tmp,
                tmp / "lm_eval.log",
            )
            results["lm_eval"] = {
                "wall_s": round(wall, 3),
                "error": error,
                **_server_figures(server),
            }

        # inspect_ai: the OpenAI-compatible provider, --max-connections 64.
        venv, install_error = installs["inspect_ai"]
        if venv is None:
            results["inspect_ai"] = {"error": f"install failed: {install_error}"}
        else:
            (tmp / "inspect_task.py").write_text(INSPECT_TASK.format(data=str(data)))
            server.reset()
            wall, rc, error = _timed_command(
                [
                    str(venv / "bin" / "inspect"),
                    "eval",
                    "inspect_task.py",  # inspect resolves tasks relative to the working directory
                    "--model",
                    f"openai-api/bench/{MODEL}",
                    "--model-base-url",
                    server.openai_base_url,
                    "--max-connections",
                    str(CONCURRENCY),
                    "--max-tokens",
                    "16",
                    "--log-dir",
                    str(tmp / "inspect_logs"),
                    "--display",
                    "plain",
                ],
                {**base_env, "BENCH_API_KEY": "sk-bench"},
                tmp,
                tmp / "inspect.log",
            )
            results["inspect_ai"] = {
                "wall_s": round(wall, 3),
                "error": error,
                **_server_figures(server),
            }

    peers = {
        name: r["wall_s"]
        for name, r in results.items()
        if not name.startswith("ours") and r.get("error") is None and r.get("answered") == requests
    }
    out: dict[str, Any] = {
        "inputs": {
            "requests": requests,
            "latency_s": LATENCY_S,
            "concurrency": CONCURRENCY,
            "peer_packages": PEER_PACKAGES,
            "server": server_dict(config),
        },
        "results": results,
        "target": "<= 0.5",
        "notes": (
            "Peers and ours_command are whole commands (interpreter start, imports, run, result "
            "files); ours is the in-process Dagster run of the whole evaluation job."
        ),
    }
    if results["ours"].get("error") is None and peers:
        fastest = min(peers, key=peers.get)
        out["ratio"] = round(results["ours"]["wall_s"] / peers[fastest], 3)
        out["faster_peer"] = fastest
        if results["ours_command"].get("error") is None:
            out["command_ratio"] = round(results["ours_command"]["wall_s"] / peers[fastest], 3)
    else:
        out["ratio"] = None
        out["error"] = (
            "; ".join(f"{name}: {r['error']}" for name, r in results.items() if r.get("error"))
            or "no peer answered every request"
        )
    return out


def main() -> None:
    print(write_result(NAME, run()))


if __name__ == "__main__":
    main()
