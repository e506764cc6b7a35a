"""LLM-as-judge, the whole concept: parameters, rubric checks, the judge stage, the scorer, calibration.

A dataset names ``llm_judge`` scorers with a rubric (``prompts/judge-<rubric>.jinja``) and
one or more judge models from the catalog. The judge stage (:func:`judge_frame`, run by
the judge task inline or in its SLURM job) is the one path that calls a judge: its calls
go through the generation engine (cache, rate limits, cost tracking), verdicts are parsed
strictly, and the rows land in the ``judgements`` table. The ``llm_judge`` scorer
(:func:`judge_scores`) reads that table the way the other scorers read ``generations``.
Calibration fits a monotone map from the judge's scores to human labels.
"""

from eval_pipeline.judge._agreement import (
    agreement_interval,
    agreement_rate,
    cohen_kappa,
    krippendorff_alpha,
)
from eval_pipeline.judge._calibrate import (
    LABELS_FILE,
    SELF_CONSISTENCY_ITEMS,
    CalibrationReport,
    calibrate_judge,
    calibration_markdown,
    judge_human_agreement,
    labels_source,
    load_labels,
    self_consistency,
    stored_calibrations,
)
from eval_pipeline.judge._calibration_store import (
    load_calibration,
    load_calibration_document,
    save_calibration,
)
from eval_pipeline.judge._call import (
    JudgeCall,
    JudgeItem,
    expected_score,
    items_from_frame,
    run_judge,
    verdict_choices,
)
from eval_pipeline.judge._fit import (
    MIN_LABELS,
    Agreement,
    CalibrationError,
    CalibrationResult,
    calibrated_mean_interval,
    cross_validated_predictions,
    fit_calibration,
)
from eval_pipeline.judge._import import PAIRWISE_LABELS_FILE, LabelImport, import_labels
from eval_pipeline.judge._labelling import HUMAN_LABELS_FILE, LabelSession, label_session
from eval_pipeline.judge._maps import (
    METHODS,
    CalibrationMap,
    fit_isotonic,
    fit_linear,
    fit_map,
    fit_platt,
    pool_adjacent_violators,
)
from eval_pipeline.judge._mtbench import MT_BENCH_SCORER
from eval_pipeline.judge._mtbench import questions as mt_bench_rows
from eval_pipeline.judge._pairwise import (
    PAIRWISE_SCORER,
    PairwiseParams,
    alpaca_eval_rows,
    baseline_answers,
    consistent_outcome,
    length_controlled_win_rate,
    parse_preference,
)
from eval_pipeline.judge._pairwise_human import (
    JudgedPair,
    PairwiseHumanAgreement,
    load_pairwise_labels,
    matched_outcomes,
    pairwise_human_agreement,
)
from eval_pipeline.judge._rubrics import (
    JUDGE_SCORER,
    RUBRICS,
    SCALE,
    JudgeParams,
    MtBenchParams,
    discover_rubrics,
    judge_metric_names,
    rubric_prompt,
)
from eval_pipeline.judge._scorer import (
    JudgeScores,
    VerdictsMissing,
    judge_scores,
    mt_bench_scores,
    pairwise_scores,
)
from eval_pipeline.judge._stage import (
    JudgedPartition,
    judge_frame,
    judge_identity,
    write_judgements,
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
    "HUMAN_LABELS_FILE",
    "JUDGE_SCORER",
    "LABELS_FILE",
    "MALFORMED",
    "METHODS",
    "MIN_LABELS",
    "MT_BENCH_SCORER",
    "NO_RESPONSE",
    "OK",
    "OUT_OF_RANGE",
    "PAIRWISE_LABELS_FILE",
    "PAIRWISE_SCORER",
    "RUBRICS",
    "SELF_CONSISTENCY_ITEMS",
    "SCALE",
    "Agreement",
    "CalibrationError",
    "CalibrationMap",
    "CalibrationReport",
    "CalibrationResult",
    "JudgeCall",
    "JudgedPair",
    "PairwiseHumanAgreement",
    "JudgeItem",
    "JudgeParams",
    "MtBenchParams",
    "PairwiseParams",
    "JudgeScores",
    "JudgedPartition",
    "LabelImport",
    "LabelSession",
    "Verdict",
    "VerdictsMissing",
    "agreement_interval",
    "agreement_rate",
    "cohen_kappa",
    "alpaca_eval_rows",
    "baseline_answers",
    "calibrate_judge",
    "self_consistency",
    "calibrated_mean_interval",
    "consistent_outcome",
    "calibration_markdown",
    "cross_validated_predictions",
    "discover_rubrics",
    "expected_score",
    "fit_calibration",
    "fit_isotonic",
    "fit_linear",
    "fit_map",
    "fit_platt",
    "import_labels",
    "items_from_frame",
    "judge_frame",
    "judge_human_agreement",
    "judge_identity",
    "judge_metric_names",
    "judge_scores",
    "krippendorff_alpha",
    "label_session",
    "labels_source",
    "length_controlled_win_rate",
    "load_calibration",
    "load_calibration_document",
    "load_labels",
    "load_pairwise_labels",
    "matched_outcomes",
    "pairwise_human_agreement",
    "mt_bench_rows",
    "mt_bench_scores",
    "pairwise_scores",
    "parse_preference",
    "parse_verdict",
    "pool_adjacent_violators",
    "rubric_prompt",
    "run_judge",
    "save_calibration",
    "stored_calibrations",
    "verdict_choices",
    "write_judgements",
]
