"""The results commands and their exit codes.

`results`, `samples`, `compare`, `costs` and `baseline pin`; exit codes 0 ok, 1 regression,
2 usage or input error, 3 nothing stored matches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from eval_pipeline.cli import main
from eval_pipeline.storage import Store
from eval_pipeline_tests.helpers import materialize
from eval_pipeline_tests.projects import make_project

MODELS = {
    "models": [
        {
            "slug": "fake-good",
            "provider": "fake",
            "model_id": "fake/reference",
            "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "slug": "fake-bad",
            "provider": "fake",
            "model_id": "fake/bad",
            "options": {"wrong_fraction": 0.3},
        },
    ]
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    project = make_project(tmp / "project", models=MODELS, datasets=("qa",))
    store = tmp / "store"
    home = tmp / "home"
    home.mkdir()
    saved = dict(os.environ)
    os.environ.update(
        {
            "EVAL_PIPELINE_ROOT": str(project),
            "EVAL_PIPELINE_STORE": str(store),
            "DAGSTER_HOME": str(home),
        }
    )
    try:
        with dg.DagsterInstance.get() as instance:
            for model in ("fake-good", "fake-bad"):
                materialize(project, store, f"qa|{model}", sample_limit=40, instance=instance)
        assert main(["baseline", "pin", "good", "--model", "fake-good"]) == 0
        # The bad model's scores posing as the good one's: a run that regressed.
        bad = Store(store).read("scores", dataset="qa", model="fake-bad")
        bad.with_columns(pl.lit("fake-good").alias("model")).write_parquet(
            tmp / "regressed.parquet"
        )
        yield {"project": project, "store": store, "home": home, "tmp": tmp}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "command", ["results", "samples", "compare", "costs", "baseline", "history", "report", "doctor"]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: eval-pipeline" in capsys.readouterr().out


def test_results_prints_aggregates_filters_and_slices(env, capsys):
    code, out, _ = _run(capsys, "results", "--dataset", "qa", "--metric", "answer_match")
    assert code == 0
    assert "| fake-good | qa | answer_match | 40 | 1.0000 |" in out
    code, out, _ = _run(capsys, "results", "--model", "fake-bad", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["model"] for r in rows} == {"fake-bad"}
    code, out, _ = _run(capsys, "results", "--model", "fake-good", "--tag", "arithmetic", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["slice"] for r in rows} == {"arithmetic"}
    assert all(r["mean"] == 1.0 for r in rows)


def test_results_with_nothing_matching_exits_3(env, capsys):
    code, _, err = _run(capsys, "results", "--model", "nobody")
    assert code == 3 and "no results" in err


def test_samples_drills_into_failures(env, capsys):
    code, out, _ = _run(
        capsys,
        "samples",
        "--model",
        "fake-bad",
        "--dataset",
        "qa",
        "--metric",
        "answer_match",
        "--below",
        "1",
        "--json",
        "--limit",
        "0",
    )
    rows = json.loads(out)
    assert code == 0 and rows
    assert all(r["completion"] == "I do not know." and r["answer_match"] == 0.0 for r in rows)
    assert {"fields", "target", "numeric_match"} <= set(rows[0])


def test_samples_exit_codes_for_missing_partition_and_unknown_metric(env, capsys):
    assert _run(capsys, "samples", "--model", "fake-good", "--dataset", "json-extract")[0] == 3
    code, _, err = _run(
        capsys, "samples", "--model", "fake-good", "--dataset", "qa", "--metric", "nope"
    )
    assert code == 2 and "unknown metric 'nope'" in err


def test_compare_exits_0_without_and_1_with_a_regression(env, capsys):
    code, out, _ = _run(capsys, "compare", "baseline:good", str(env["store"]))
    assert code == 0 and "No regression" in out
    output = env["tmp"] / "cmp"
    code, out, _ = _run(
        capsys, "compare", "good", str(env["tmp"] / "regressed.parquet"), "--output", str(output)
    )
    assert code == 1 and "**REGRESSION**" in out
    data = json.loads(Path(f"{output}.json").read_text())
    assert "qa|fake-good:answer_match" in data["regressions"]


def test_compare_json_output_and_readable_errors(env, capsys):
    code, out, _ = _run(capsys, "compare", "baseline:good", str(env["store"]), "--json")
    assert code == 0 and json.loads(out)["regressed"] is False
    code, _, err = _run(capsys, "compare", "baseline:nope", str(env["store"]))
    assert code == 2 and "no baseline 'nope'" in err and "known baselines: good" in err


def test_history_lists_the_kept_runs_of_a_partition(env, capsys):
    code, out, _ = _run(capsys, "history", "--model", "fake-good", "--dataset", "qa", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1
    assert rows[0]["mean"] == 1.0 and rows[0]["n"] == 40
    assert rows[0]["ci_low"] <= rows[0]["mean"] <= rows[0]["ci_high"]
    code, _, err = _run(capsys, "history", "--model", "fake-good", "--dataset", "nope")
    assert code == 2 and "unknown dataset 'nope'" in err


def test_compare_reads_the_latest_and_named_runs_of_the_store(env, capsys):
    (run,) = Store(env["store"]).history("scores", "qa", "fake-bad")
    code, out, _ = _run(
        capsys, "compare", f"run:{run.run_id}", "latest", "--model", "fake-bad", "--json"
    )
    assert code == 0 and json.loads(out)["comparisons"][0]["delta"] == 0.0
    code, _, err = _run(capsys, "compare", "previous", "latest")
    assert code == 2 and "before its latest" in err


def test_report_writes_the_explorer_into_a_folder(env, capsys, tmp_path):
    code, out, _ = _run(capsys, "report", "--output", str(tmp_path / "explorer"))
    assert code == 0 and out.strip() == str(tmp_path / "explorer" / "index.html")
    parts = sorted(p.name for p in (tmp_path / "explorer" / "data" / "p").iterdir())
    assert parts == ["qa@fake-bad.js", "qa@fake-good.js"]
    code, _, err = _run(capsys, "--store", str(tmp_path / "empty"), "report")
    assert code == 3 and "nothing evaluated" in err


def test_costs_sums_spend_by_model_and_provider_over_a_period(env, capsys):
    code, out, _ = _run(capsys, "costs", "--json")
    rows = {r["model"]: r for r in json.loads(out)}
    assert code == 0
    gens = Store(env["store"]).read("generations", dataset="qa", model="fake-good")
    assert rows["fake-good"]["cost_usd"] == pytest.approx(gens["cost_usd"].sum())
    assert rows["fake-good"]["provider"] == "fake" and rows["fake-good"]["requests"] == 40
    code, out, _ = _run(capsys, "costs", "--by", "provider", "--json")
    assert code == 0 and [r["provider"] for r in json.loads(out)] == ["fake"]
    assert _run(capsys, "costs", "--since", "2999-01-01")[0] == 3
    code, _, err = _run(capsys, "costs", "--since", "last tuesday")
    assert code == 2 and "not an ISO date" in err


def test_compare_as_a_command_line_gates_ci(env):
    bin_dir = Path(sys.executable).parent
    out = subprocess.run(
        [
            str(bin_dir / "eval-pipeline"),
            "compare",
            "baseline:good",
            str(env["tmp"] / "regressed.parquet"),
        ],
        env=dict(os.environ, EVAL_PIPELINE_ROOT=str(env["project"])),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "REGRESSED" in out.stdout and "Traceback" not in out.stderr
