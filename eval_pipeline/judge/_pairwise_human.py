"""A pairwise judge's verdicts against people's preferences for the same pairs.

People's pairwise labels come in through ``eval-pipeline label import`` into
``datasets/judge-labels/pairwise.jsonl`` (``prompt``, ``answer_a``, ``answer_b``,
``preferred``: ``A``, ``B`` or ``tie``, ``labelled_by``). A label counts for a judged
sample when its prompt is the sample's question and its two answers are the model's
answer and the baseline's, in either order (texts compared after trimming surrounding
whitespace). Each matching label is one unit (two raters of a pair count twice), its
preference turned to the model's side (win 1, tie 0.5, loss 0) and set beside the
judge's order-consistent verdict for the sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eval_pipeline.judge._agreement import agreement_interval, agreement_rate, cohen_kappa
from eval_pipeline.judge._import import PAIRWISE_LABELS_FILE
from eval_pipeline.judge._labelling import read_jsonl
from eval_pipeline.judge._pairwise import LOSS, TIE, WIN


@dataclass(frozen=True)
class JudgedPair:
    """One judged sample: its question, both answers and the judge's verdict (None: none)."""

    question: str
    answer: str
    baseline: str
    outcome: float | None


@dataclass(frozen=True)
class PairwiseHumanAgreement:
    """How often the judge's pairwise verdicts match people's, over ``n`` matching labels.

    ``agreement``: the share of labels whose preference the judge's verdict equals;
    ``kappa``: Cohen's kappa over the three outcomes (win, tie, loss). Each with a 95%
    seeded bootstrap interval over the labels (None below 3).
    """

    n: int
    agreement: float | None
    agreement_ci: tuple[float, float] | None
    kappa: float | None
    kappa_ci: tuple[float, float] | None


def load_pairwise_labels(root: str | Path) -> list[dict[str, object]]:
    """The imported pairwise labels (none when the file is absent).

    Raises:
        CatalogError: A line is not a JSON object.
    """
    path = Path(root) / PAIRWISE_LABELS_FILE
    return [row for _, row in read_jsonl(path, str(PAIRWISE_LABELS_FILE))]


def _human_outcome(label: dict[str, object], pair: JudgedPair) -> float | None:
    # The label's preference from the model's side, or None when it is about other texts.
    if str(label.get("prompt", "")).strip() != pair.question.strip():
        return None
    a = str(label.get("answer_a", "")).strip()
    b = str(label.get("answer_b", "")).strip()
    model, baseline = pair.answer.strip(), pair.baseline.strip()
    preferred = label.get("preferred")
    if preferred == "tie" and {a, b} == {model, baseline}:
        return TIE
    if (a, b) == (model, baseline):
        return {"A": WIN, "B": LOSS}.get(str(preferred))
    if (a, b) == (baseline, model):
        return {"A": LOSS, "B": WIN}.get(str(preferred))
    return None


def matched_outcomes(
    labels: Sequence[dict[str, object]], pairs: Sequence[JudgedPair]
) -> tuple[list[float], list[float]]:
    """``(judge outcomes, human outcomes)``, one entry per label matching a judged pair.

    Pairs without a judge verdict are left out.
    """
    by_question: dict[str, list[JudgedPair]] = {}
    for pair in pairs:
        if pair.outcome is not None:
            by_question.setdefault(pair.question.strip(), []).append(pair)
    judge: list[float] = []
    human: list[float] = []
    for label in labels:
        for pair in by_question.get(str(label.get("prompt", "")).strip(), []):
            outcome = _human_outcome(label, pair)
            if outcome is not None and pair.outcome is not None:
                judge.append(pair.outcome)
                human.append(outcome)
                break
    return judge, human


def pairwise_human_agreement(
    labels: Sequence[dict[str, object]], pairs: Sequence[JudgedPair]
) -> PairwiseHumanAgreement:
    """Agreement rate and Cohen's kappa of the judge with the labels matching ``pairs``."""
    judge, human = matched_outcomes(labels, pairs)
    return PairwiseHumanAgreement(
        n=len(judge),
        agreement=agreement_rate(judge, human),
        agreement_ci=agreement_interval(agreement_rate, judge, human),
        kappa=cohen_kappa(judge, human),
        kappa_ci=agreement_interval(cohen_kappa, judge, human),
    )
