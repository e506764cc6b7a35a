"""Strict parsing of judge verdicts: valid, malformed and out-of-range replies."""

from __future__ import annotations

import pytest

from eval_pipeline.judge import MALFORMED, NO_RESPONSE, OK, OUT_OF_RANGE, parse_verdict


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        ('{"score": 4, "reason": "clear and correct"}', 4, "clear and correct"),
        ('  {"score": 1}  \n', 1, ""),
        ('```json\n{"score": 5, "reason": "fine"}\n```', 5, "fine"),
        ('{"reason": "ok", "score": 3, "confidence": 0.9}', 3, "ok"),
    ],
)
def test_a_json_object_with_an_integer_score_parses(text, score, reason):
    verdict = parse_verdict(text)
    assert (verdict.status, verdict.score, verdict.reason) == (OK, score, reason)
    assert verdict.ok and verdict.problem == ""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("The answer is 5.", "not a JSON object"),
        ('Score: {"score": 4}', "not a JSON object"),
        ('{"score": 4} and some commentary', "not a JSON object"),
        ('{"score": "4"}', "score must be an integer"),
        ('{"score": 4.5}', "score must be an integer"),
        ('{"score": true}', "score must be an integer"),
        ('{"rating": 4}', "no 'score' key"),
        ("[4]", "expected a JSON object"),
        ("", "empty reply"),
        ('{"score": 4', "not a JSON object"),
    ],
)
def test_anything_else_is_recorded_as_malformed_without_a_score(text, problem):
    verdict = parse_verdict(text)
    assert verdict.status == MALFORMED
    assert verdict.score is None
    assert problem in verdict.problem


@pytest.mark.parametrize("score", [0, 6, -1, 10])
def test_an_integer_outside_the_scale_is_out_of_range_not_clipped(score):
    verdict = parse_verdict(f'{{"score": {score}, "reason": "x"}}')
    assert (verdict.status, verdict.score) == (OUT_OF_RANGE, None)
    assert f"score {score} outside 1..5" == verdict.problem


def test_a_missing_reply_is_no_response():
    verdict = parse_verdict(None)
    assert (verdict.status, verdict.score) == (NO_RESPONSE, None)
