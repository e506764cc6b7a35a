"""The CI gate's power: how many samples it needs, and what drop it can see on what it ran.

A gate that evaluates five samples per dataset passes nearly every real regression: with
five paired pass/fail outcomes McNemar's test cannot reach p < 0.05 at all. The gate is
planned from the drop it must detect (default 10 points) and the churn between runs (the
share of samples that flip either way with nothing changed), and a run that could not have
seen that drop says "inconclusive" rather than passing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from eval_pipeline.scoring.stats import minimum_detectable_drop, required_samples

DROP_ENV, CHURN_ENV = "EVAL_PIPELINE_CI_DROP", "EVAL_PIPELINE_CI_CHURN"
DEFAULT_DROP, DEFAULT_CHURN = 0.10, 0.05
ALPHA, POWER = 0.05, 0.8


@dataclass(frozen=True)
class GateSettings:
    """What the gate must see: a ``drop`` (share of samples) with ``power`` at ``alpha``."""

    drop: float = DEFAULT_DROP
    churn: float = DEFAULT_CHURN
    alpha: float = ALPHA
    power: float = POWER

    @classmethod
    def from_env(cls) -> GateSettings:
        """``$EVAL_PIPELINE_CI_DROP`` and ``$EVAL_PIPELINE_CI_CHURN`` over the defaults."""
        return cls(
            drop=float(os.environ.get(DROP_ENV) or DEFAULT_DROP),
            churn=float(os.environ.get(CHURN_ENV) or DEFAULT_CHURN),
        )

    def samples_for(self, available: int) -> int:
        """How many of ``available`` samples the gate evaluates: enough for the drop, or all."""
        needed = required_samples(self.drop, self.churn, alpha=self.alpha, power=self.power)
        return available if needed is None else min(available, needed)


@dataclass(frozen=True)
class GatePower:
    """What the gate could see on one partition."""

    partition: str
    samples: int
    detectable_drop: float | None  # None: no drop at all would be seen reliably
    target_drop: float

    @property
    def conclusive(self) -> bool:
        return self.detectable_drop is not None and self.detectable_drop <= self.target_drop

    def row(self) -> str:
        """A Markdown table row: partition, samples, detectable drop, verdict."""
        seen = "none" if self.detectable_drop is None else f"{100 * self.detectable_drop:.1f} pts"
        verdict = "ok" if self.conclusive else "**inconclusive**"
        return (
            f"| `{self.partition}` | {self.samples} | {seen} | "
            f"{100 * self.target_drop:.0f} pts | {verdict} |"
        )


def gate_power(partition: str, samples: int, settings: GateSettings) -> GatePower:
    """The minimum detectable drop of a paired pass/fail metric on ``samples`` samples."""
    return GatePower(
        partition=partition,
        samples=samples,
        detectable_drop=minimum_detectable_drop(
            samples, settings.churn, alpha=settings.alpha, power=settings.power
        ),
        target_drop=settings.drop,
    )


POWER_HEADER = (
    "| partition | samples | minimum detectable drop | drop to detect | verdict |\n"
    "|---|---:|---:|---:|---|"
)
