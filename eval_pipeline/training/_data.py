"""Training examples from a dataset's ``train`` split: prompt in, target completion out.

A train row is rendered exactly as evaluation renders a test row: the dataset's own prompt
template, then the model's chat template with the assistant turn opened. The completion
is the row's target followed by what the chat template closes an assistant turn with (the
end-of-turn token), so the tuned model learns to stop where evaluation reads its answer.
The loss covers the completion's tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

# Any: the tokenizer (transformers, imported on use) and rows as JSON.
from typing import Any

from eval_pipeline.catalog import Catalog, Dataset


@dataclass(frozen=True)
class TrainExample:
    """One tokenized example: ``prompt_ids`` then ``completion_ids`` (the trained part)."""

    sample_id: str
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def train_split(catalog: Catalog, dataset: str) -> Dataset:
    """The ``train`` split of ``dataset`` (:meth:`Catalog.train_split`)."""
    return catalog.train_split(dataset)


def check_disjoint(
    test: Dataset, train: Dataset, fields: tuple[str, ...] = (), *, targets: bool = False
) -> list[str]:
    """Problems if a train row repeats a test row: its id or its input fields.

    With ``targets``, a shared target counts too (for datasets whose answers are unique
    per row, like json-extract's objects; a qa answer such as ``10`` may rightly recur).
    Returns one line per shared value (at most five per kind; empty when the splits are
    disjoint). ``fields`` defaults to every field of the dataset.
    """
    problems = []
    names = fields or tuple(test.spec.fields)
    keys: list[tuple[str, Any]] = [("id", lambda r: r["sample_id"])]
    keys.append(("input", lambda r: tuple(str(r["fields"][n]) for n in names)))
    if targets:
        keys.append(("target", lambda r: r["target"]))
    for label, key in keys:
        shared = {key(r) for r in test.rows} & {key(r) for r in train.rows}
        for value in sorted(shared, key=str)[:5]:
            problems.append(f"{label} {value!r} is in both splits")
    return problems


def completion_text(tokenizer: Any, messages: list[dict[str, str]], target: str) -> str:
    """The assistant turn's text after the generation prompt: the target and its end of turn."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": target}], tokenize=False
    )
    if full.startswith(prompt):
        # Trailing whitespace after the end-of-turn token is the template's separator
        # before a next turn, never generated.
        return full[len(prompt) :].rstrip()
    # A template that rewrites earlier turns once an answer follows: end the target
    # with the end-of-sequence token, where generation stops.
    return target + (tokenizer.eos_token or "")


def render_examples(
    dataset: Dataset, tokenizer: Any, *, max_length: int, limit: int | None = None
) -> tuple[list[TrainExample], int]:
    """Tokenize ``dataset``'s rows as (prompt, completion) pairs.

    An example longer than ``max_length`` keeps its completion whole and loses the start
    of its prompt (a completion alone that long is cut at its end).

    Returns:
        The examples and how many of them were cut.
    """
    examples = []
    cut = 0
    for row in dataset.rows[:limit]:
        messages = [m.as_dict() for m in dataset.prompt.render(row["fields"])]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        completion = completion_text(tokenizer, messages, row["target"])
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) + len(completion_ids) > max_length:
            cut += 1
            completion_ids = completion_ids[: max_length - 1]
            prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(completion_ids)) :]
        examples.append(TrainExample(row["sample_id"], tuple(prompt_ids), tuple(completion_ids)))
    return examples, cut
