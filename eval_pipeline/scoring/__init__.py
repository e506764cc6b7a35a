"""Pure scorers over polars frames, and the statistics used to aggregate them.

A scorer takes a frame with ``sample_id``, ``completion``, ``target`` and ``fields``
(canonical JSON of the dataset row) and returns one row per sample with ``sample_id``,
``value`` (a float, null where the metric does not apply) and ``detail``.
"""

from eval_pipeline.scoring._choice import parse_letter
from eval_pipeline.scoring._code import code_detail, count_suspicious
from eval_pipeline.scoring.registry import SCORERS, check_scorer_params, get_scorer, run_scorer

__all__ = [
    "SCORERS",
    "check_scorer_params",
    "code_detail",
    "count_suspicious",
    "get_scorer",
    "parse_letter",
    "run_scorer",
]
