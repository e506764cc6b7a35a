"""LLM-as-judge: rubric templates, strict verdict parsing, the judge scorer and its calibration.

A dataset names ``llm_judge`` scorers with a rubric (``prompts/judge-<rubric>.jinja``) and
one or more judge models from the catalog. Judge calls run through the generation engine
(cache, rate limits, cost tracking); verdicts are parsed strictly and an unreadable one
is recorded as such, never scored.
"""

from eval_pipeline.judge._calibrate import (
    LABELS_FILE,
    CalibrationReport,
    calibrate_judge,
    calibration_markdown,
    labels_source,
    load_labels,
    stored_calibrations,
)
from eval_pipeline.judge._labelling import HUMAN_LABELS_FILE, LabelSession, label_session
from eval_pipeline.judge._rubrics import (
    JUDGE_SCORER,
    RUBRICS,
    SCALE,
    JudgeParams,
    discover_rubrics,
    judge_metric_names,
    rubric_prompt,
)
from eval_pipeline.judge._scorer import (
    JudgeCall,
    JudgeItem,
    JudgeOutput,
    items_from_frame,
    judge_scores,
    run_judge,
    verdict_choices,
)
from eval_pipeline.judge._verdict import (
    MALFORMED,
    NO_RESPONSE,
    OK,
    OUT_OF_RANGE,
    Verdict,
    parse_verdict,
)

__all__ = [
    "JUDGE_SCORER",
    "HUMAN_LABELS_FILE",
    "LABELS_FILE",
    "MALFORMED",
    "NO_RESPONSE",
    "OK",
    "OUT_OF_RANGE",
    "RUBRICS",
    "SCALE",
    "CalibrationReport",
    "JudgeCall",
    "JudgeItem",
    "JudgeOutput",
    "JudgeParams",
    "LabelSession",
    "Verdict",
    "calibrate_judge",
    "calibration_markdown",
    "discover_rubrics",
    "judge_metric_names",
    "items_from_frame",
    "judge_scores",
    "label_session",
    "labels_source",
    "load_labels",
    "parse_verdict",
    "rubric_prompt",
    "run_judge",
    "stored_calibrations",
    "verdict_choices",
]
