"""The standing adversarial suite: every attack of ``sandbox_attacks`` against the sandbox.

Each attack precedes a wrong solution, with the in-process guard on (as scoring runs it)
and off (the namespaces alone); each must leave the wrong program failing and touch
nothing outside: no canary file on the host, no loopback connection. ``bwrap`` is the only
isolation that scores model code (``process`` is refused), so it is the one attacked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eval_pipeline.scoring.sandbox import bwrap_path, run_tests
from eval_pipeline_tests.sandbox_attacks import ATTACKS, TESTS, WRONG, AttackOutcome, run_attack

pytestmark = pytest.mark.skipif(
    bwrap_path() is None and os.environ.get("EVAL_PIPELINE_REQUIRE_SERVICES") != "1",
    reason="bubblewrap is not installed (scripts/ensure-bwrap.sh)",
)


@pytest.mark.parametrize("guard", [True, False], ids=["guard-on", "guard-off"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_no_attack_makes_a_wrong_program_pass_or_touches_the_outside(
    name: str, guard: bool, tmp_path: Path
) -> None:
    outcome = run_attack(name, tmp_path, guard=guard)
    assert outcome.status != "passed", outcome.detail
    assert not outcome.canary_written
    assert outcome.connections == 0
    assert not outcome.passed
    assert list(tmp_path.iterdir()) == []


def test_the_attack_harness_counts_a_pass_a_write_or_a_connection_as_a_success() -> None:
    # The right solution passes under the same tests: a failing attack is the sandbox's doing.
    right = WRONG.replace("a - b", "a + b")
    assert run_tests(right, "add", TESTS, timeout_s=5).status == "passed"
    fine = AttackOutcome("x", "failed", "failed: AssertionError", False, 0)
    assert not fine.passed
    assert AttackOutcome("x", "passed", "passed", False, 0).passed
    assert AttackOutcome("x", "failed", "", True, 0).passed
    assert AttackOutcome("x", "failed", "", False, 1).passed
