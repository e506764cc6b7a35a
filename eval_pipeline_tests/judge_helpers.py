"""A project with the judged dataset, a fake model and a scripted fake judge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from eval_pipeline_tests.projects import REPO, make_project

# A planted monotone distortion: the fake judge is harsh in the middle of the scale.
DISTORTION = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4}


def judge_models(default_verdict: str = '{"score": 4, "reason": "clear"}', answers=None) -> dict:
    return {
        "models": [
            {
                "slug": "fake-good",
                "provider": "fake",
                "model_id": "fake/reference",
                "options": {"mode": "reference"},
            },
            {
                "slug": "fake-judge",
                "provider": "fake",
                "model_id": "fake/judge",
                "options": {"mode": "fixed", "text": default_verdict, "answers": answers or {}},
                "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
            },
        ]
    }


def distorted_label_answers(rubric: str = "helpfulness") -> dict[str, str]:
    """Fake-judge replies for the calibration set: each label passed through DISTORTION."""
    answers = {}
    for line in (REPO / "datasets" / "judge-labels" / "labels.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["rubric"] == rubric:
            answers[row["id"]] = json.dumps(
                {"score": DISTORTION[row["label"]], "reason": "scripted"}
            )
    return answers


def judged_project(root: Path, answers=None, judges=("fake-judge",), default_verdict=None) -> Path:
    """A project with open-qa (judged by ``judges``) and the calibration labels."""
    kwargs = {} if default_verdict is None else {"default_verdict": default_verdict}
    project = make_project(
        root, models=judge_models(answers=answers, **kwargs), datasets=("open-qa",)
    )
    shutil.copytree(REPO / "datasets" / "judge-labels", project / "datasets" / "judge-labels")
    spec_path = project / "datasets" / "open-qa" / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["scorers"][0]["params"]["judges"] = list(judges)
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return project
