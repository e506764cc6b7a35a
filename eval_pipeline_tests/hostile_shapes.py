"""Hostile provider answers: Hypothesis strategies for the tests, a seeded generator for the bench.

Each generator builds a response body field by field, each field either of the type the
API documents or an arbitrary JSON value (null, a number where text belongs, a list where
an object belongs), sometimes left out, with extra fields, refusals, tool calls and logprob
blocks among the valid choices. ``expected`` is the answer text when every field is valid
and the text is not empty, so a test can check the reader accepts what it must as well as
refusing what it must.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from eval_pipeline.providers._answers import (
    Answer,
    Json,
    anthropic_answer,
    openai_chat_answer,
    openai_text_answer,
)

MISSING = object()  # a field left out of the body


@dataclass(frozen=True)
class Shape:
    """One generated body, and the text it must be read as (``None``: no promise)."""

    body: Json
    expected: str | None


# The readers each provider's parse() calls (openai_completions' text answers included).
READERS: dict[str, Callable[[Json], Answer]] = {
    "openai": openai_chat_answer,
    "openai_completions": openai_text_answer,
    "anthropic": anthropic_answer,
}


class _Draw:
    """Field choices from a random source: Hypothesis' ``draw`` or ``random.Random``."""

    def __init__(self, pick: Callable[[list[object]], object], junk: Callable[[], Json]) -> None:
        self.pick = pick
        self.junk = junk
        self.all_valid = True

    def field(self, valid: list[object], p_bad: int = 5) -> object:
        """A valid value, or (about one time in ``p_bad``) junk or a missing field."""
        if self.pick(list(range(p_bad))) == 0:
            self.all_valid = False
            return self.pick([MISSING, self.junk()])
        return self.pick(valid)


def _put(target: dict[str, Json], key: str, value: object) -> None:
    if value is not MISSING:
        target[key] = value  # type: ignore[assignment]  # a drawn JSON value


def _text(draw: _Draw) -> str:
    return str(draw.pick(["4", "", "The answer is 12.", "é✓ \n", "x" * 40]))


def _usage_openai(draw: _Draw) -> object:
    usage: dict[str, Json] = {}
    _put(usage, "prompt_tokens", draw.field([3, 0, 100]))
    _put(usage, "completion_tokens", draw.field([5, 1, 0]))
    return draw.field([usage, None], p_bad=8)


def openai_body(draw: _Draw, completions: bool) -> Shape:
    """A chat (or text) completion body."""
    text: object = _text(draw)
    message: dict[str, Json] = {"role": "assistant"}
    refusal = draw.pick([None, None, "I can't help with that."])
    tool_calls = draw.pick([None, None, [{"id": "c1", "type": "function"}]])
    if refusal is not None or tool_calls is not None:
        text = None
    choice: dict[str, Json] = {"index": 0}
    if completions:
        _put(choice, "text", draw.field([text]))
    else:
        _put(message, "content", draw.field([text]))
        _put(message, "refusal", draw.field([refusal], p_bad=10))
        _put(message, "tool_calls", draw.field([tool_calls], p_bad=10))
        _put(choice, "message", draw.field([message]))
    _put(choice, "finish_reason", draw.field(["stop", "length", None, "tool_calls"]))
    _put(choice, "logprobs", draw.field([None, {"content": []}], p_bad=10))
    body: dict[str, Json] = {"id": "x", "object": "chat.completion"}
    _put(body, "model", draw.field(["m", None], p_bad=10))
    _put(body, "choices", draw.field([[choice], [choice, choice]]))
    _put(body, "usage", _usage_openai(draw))
    if draw.pick([0, 1, 2]) == 0:
        body["extra_field"] = draw.junk()
    shaped: object = draw.field([body], p_bad=20)
    expected = text if draw.all_valid and isinstance(text, str) and text else None
    return Shape(shaped, expected)  # type: ignore[arg-type]  # a drawn JSON value


def anthropic_body(draw: _Draw) -> Shape:
    """A Messages API body."""
    text = _text(draw)
    blocks: list[Json] = []
    for _ in range(int(str(draw.pick([0, 1, 1, 2])))):
        kind = draw.pick(["text", "text", "tool_use", "thinking"])
        block: dict[str, Json] = {"type": kind}  # type: ignore[dict-item]  # a str
        if kind == "text":
            _put(block, "text", draw.field([text]))
        else:
            block["input"] = {"q": 1}
        _put(block, "type", draw.field([kind], p_bad=12))
        drawn = draw.field([block], p_bad=12)
        if drawn is not MISSING:
            blocks.append(drawn)  # type: ignore[arg-type]  # a drawn JSON value
    body: dict[str, Json] = {"type": "message", "role": "assistant"}
    _put(body, "content", draw.field([blocks]))
    _put(body, "stop_reason", draw.field(["end_turn", "max_tokens", "refusal", None]))
    usage: dict[str, Json] = {}
    _put(usage, "input_tokens", draw.field([3, 0]))
    _put(usage, "output_tokens", draw.field([5, 0]))
    _put(body, "usage", draw.field([usage]))
    _put(body, "model", draw.field(["claude-test"], p_bad=10))
    if draw.pick([0, 1, 2]) == 0:
        body["extra_field"] = draw.junk()
    shaped: object = draw.field([body], p_bad=20)
    texts = [b.get("text") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    joined = "".join(t for t in texts if isinstance(t, str))
    expected = joined if draw.all_valid and texts and joined else None
    return Shape(shaped, expected)  # type: ignore[arg-type]  # a drawn JSON value


def build(provider: str, draw: _Draw) -> Shape:
    if provider == "anthropic":
        shape = anthropic_body(draw)
    else:
        shape = openai_body(draw, completions=provider == "openai_completions")
    # A body left out altogether is a JSON null.
    return Shape(None, None) if shape.body is MISSING else shape


# Any JSON value, NaN and infinities and integers past 2**63 included.
json_values: st.SearchStrategy[Json] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def shapes(provider: str) -> st.SearchStrategy[Shape]:
    """Hypothesis strategy of :class:`Shape` for ``provider``."""

    @st.composite
    def strategy(draw: st.DrawFn) -> Shape:
        return build(
            provider,
            _Draw(lambda options: draw(st.sampled_from(options)), lambda: draw(json_values)),
        )

    return strategy()


def _random_junk(rng: random.Random, depth: int = 0) -> Json:
    roll = rng.randrange(9 if depth < 2 else 6)
    atoms: list[Json] = [None, True, -1, 2**64, float("nan"), "", "x", 1.5, float("-inf")]
    if roll < 6:
        return atoms[rng.randrange(len(atoms))]
    if roll < 8:
        return [_random_junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {str(rng.randrange(5)): _random_junk(rng, depth + 1) for _ in range(rng.randrange(3))}


def random_shape(provider: str, rng: random.Random) -> Shape:
    """One :class:`Shape` from a seeded ``random.Random`` (the bench's many thousands)."""
    return build(provider, _Draw(lambda options: rng.choice(options), lambda: _random_junk(rng)))
