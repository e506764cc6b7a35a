"""Strict readers of provider answers: exactly the shapes a contract allows, nothing else.

An HTTP API answers with whatever JSON its server sends; a 2xx is no promise of shape. The
readers here take the decoded body (any JSON value) and return an :class:`Answer` only
when every field the pipeline uses has the type the API documents; anything else (a list
where an object belongs, a number for the text, a tool call instead of text, a negative or
non-integer token count, a NaN log-probability) raises a ``malformed``
:class:`~eval_pipeline.providers.base.RequestFailure`, which the engine retries and never
caches. Fields the pipeline does not read may hold anything: the APIs add fields freely.

:func:`checked_response` is the last gate every provider's answer passes (the HTTP APIs
and the local backends alike) before the engine caches it, and the cache applies it again
to every entry it reads back.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TypeAlias

from eval_pipeline.core.types import ChoiceScores, ContinuationScore, GenerationResponse
from eval_pipeline.providers.base import RequestFailure

# A decoded JSON value, as the SDKs' ``cast_to=object`` returns it.
Json: TypeAlias = None | bool | int | float | str | list["Json"] | dict[str, "Json"]

# Token counts above this are not counts (2**53: the largest integer a JSON double keeps).
_MAX_COUNT = 2**53

OPENAI_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
ANTHROPIC_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}
# Finish reasons under which an answer without text is still the model's answer.
_FILTERED = frozenset({"content_filter", "refusal"})


# The longest answer kept (characters); past it an answer is malformed. 1,000,000 is about
# 30 times the longest answer ``max_tokens`` allows (32,768 tokens).
MAX_ANSWER_ENV = "EVAL_PIPELINE_MAX_ANSWER_CHARS"
DEFAULT_MAX_ANSWER_CHARS = 1_000_000


def max_answer_chars() -> int:
    """The answer size limit: ``$EVAL_PIPELINE_MAX_ANSWER_CHARS``, else 1,000,000."""
    raw = os.environ.get(MAX_ANSWER_ENV, "").strip()
    return int(raw) if raw.isdecimal() and int(raw) > 0 else DEFAULT_MAX_ANSWER_CHARS


@dataclass(frozen=True)
class Answer:
    """The parts of an answer the pipeline keeps."""

    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    served_model: str


def malformed(what: str, detail: str) -> RequestFailure:
    """The failure for an answer that is not ``what``."""
    return RequestFailure("malformed", f"response is not {what}: {detail}"[:500])


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: Json, where: str, what: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise malformed(what, f"{where} is {_type(value)}, not an object")
    return value


def _optional_object(value: Json, where: str, what: str) -> dict[str, Json]:
    return {} if value is None else _object(value, where, what)


def _list(value: Json, where: str, what: str) -> list[Json]:
    if not isinstance(value, list):
        raise malformed(what, f"{where} is {_type(value)}, not a list")
    return value


def _optional_str(value: Json, where: str, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise malformed(what, f"{where} is {_type(value)}, not a string or null")


def _count(value: Json, where: str, what: str) -> int:
    """A token count: a non-negative JSON integer, or 0 when absent or null."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise malformed(what, f"{where} is {value!r:.40}, not a token count")
    return value


def _finite(value: Json, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise malformed(what, f"{where} is {_type(value)}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise malformed(what, f"{where} is {number}, not a finite number")
    return number


def _text_or_failure(text: str | None, reason: str, output_tokens: int, missing: str) -> str:
    """The text of a 2xx answer, or a ``malformed`` failure when the answer carries none.

    A 200 without text (``text`` None; the reason is ``missing``) or with empty text and
    zero output tokens is a server fault, whatever its finish reason says. Empty text after
    output tokens were spent (a model that used its ``max_tokens`` on hidden reasoning) is
    the model's answer, and so is a filtered or refused one.
    """
    if reason in _FILTERED:
        return text or ""
    if text is None:
        raise RequestFailure(
            "malformed",
            f"empty answer: {missing} (finish reason {reason or 'none'}, "
            f"{output_tokens} output tokens)",
        )
    if not text and output_tokens == 0:
        raise RequestFailure(
            "malformed",
            f"empty answer: no text and 0 output tokens (finish reason {reason or 'none'})",
        )
    return text


def _openai_head(data: Json, what: str) -> tuple[dict[str, Json] | None, str, int, int, str]:
    """``(first choice or None, finish reason, input tokens, output tokens, model)``."""
    body = _object(data, "the body", what)
    usage = _optional_object(body.get("usage"), "usage", what)
    input_tokens = _count(usage.get("prompt_tokens"), "usage.prompt_tokens", what)
    output_tokens = _count(usage.get("completion_tokens"), "usage.completion_tokens", what)
    model = _optional_str(body.get("model"), "model", what) or ""
    choices = _list(body.get("choices"), "choices", what)
    if not choices:
        return None, "", input_tokens, output_tokens, model
    choice = _object(choices[0], "choices[0]", what)
    raw = _optional_str(choice.get("finish_reason"), "choices[0].finish_reason", what) or ""
    # A logprob block, when present, is an object or null (its contents are not read here).
    _optional_object(choice.get("logprobs"), "choices[0].logprobs", what)
    return choice, OPENAI_FINISH.get(raw, raw), input_tokens, output_tokens, model


def openai_chat_answer(data: Json) -> Answer:
    """A chat completion's answer.

    Raises:
        RequestFailure: ``malformed``: no choice, no message, ``content`` that is not a
            string (null without a refusal, a list of parts, a number), or a tool call
            instead of text.
    """
    what = "a chat completion"
    choice, reason, input_tokens, output_tokens, model = _openai_head(data, what)
    content: str | None = None
    missing = "the answer has no choices"
    if choice is not None:
        message = _object(choice.get("message"), "choices[0].message", what)
        content = _optional_str(message.get("content"), "choices[0].message.content", what)
        refusal = _optional_str(message.get("refusal"), "choices[0].message.refusal", what)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            _list(tool_calls, "choices[0].message.tool_calls", what)
        missing = "message content is null"
        # A refusal comes as ``refusal`` text with null content: that is the answer.
        if content is None and refusal:
            content, reason = refusal, "refusal"
        elif content is None and tool_calls:
            missing = "the message is a tool call, not text"
    text = _text_or_failure(content, reason, output_tokens, missing)
    return Answer(text, reason, input_tokens, output_tokens, model)


def openai_text_answer(data: Json) -> Answer:
    """A text completion's answer (``/v1/completions``); no choice or no text is malformed."""
    what = "a text completion"
    choice, reason, input_tokens, output_tokens, model = _openai_head(data, what)
    text: str | None = None
    if choice is not None:
        text = _optional_str(choice.get("text"), "choices[0].text", what)
    missing = "choice text is null" if choice is not None else "the answer has no choices"
    return Answer(
        _text_or_failure(text, reason, output_tokens, missing),
        reason,
        input_tokens,
        output_tokens,
        model,
    )


def anthropic_answer(data: Json) -> Answer:
    """A Messages API answer: the text blocks joined; no text block is malformed.

    Blocks of other types (``tool_use``, ``thinking``) are objects with a string ``type``
    and are skipped; a ``text`` block's ``text`` must be a string.
    """
    what = "a message"
    body = _object(data, "the body", what)
    raw = _optional_str(body.get("stop_reason"), "stop_reason", what) or ""
    reason = ANTHROPIC_STOP.get(raw, raw)
    usage = _optional_object(body.get("usage"), "usage", what)
    input_tokens = _count(usage.get("input_tokens"), "usage.input_tokens", what)
    output_tokens = _count(usage.get("output_tokens"), "usage.output_tokens", what)
    model = _optional_str(body.get("model"), "model", what) or ""
    blocks = _list(body.get("content"), "content", what)
    texts: list[str] = []
    for i, raw_block in enumerate(blocks):
        block = _object(raw_block, f"content[{i}]", what)
        kind = block.get("type")
        if not isinstance(kind, str):
            raise malformed(what, f"content[{i}].type is {_type(kind)}, not a string")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise malformed(what, f"content[{i}].text is {_type(text)}, not a string")
            texts.append(text)
    text = _text_or_failure(
        "".join(texts) if texts else None,
        reason,
        output_tokens,
        "content holds no text block" if blocks else "content is empty",
    )
    return Answer(text, reason, input_tokens, output_tokens, model)


def prompt_logprobs(data: Json, context: str) -> tuple[float, int, int]:
    """``(summed log-prob, continuation tokens, context tokens)`` of an echoed completion.

    The body is a ``/v1/completions`` answer with ``echo: true, logprobs: 1``: a token
    belongs to the continuation when it ends after ``context``. Lists of unequal length,
    a non-string token, a negative offset or a null or non-finite log-probability of a
    continuation token are malformed.
    """
    what = "a text completion with prompt log-probabilities"
    body = _object(data, "the body", what)
    choices = _list(body.get("choices"), "choices", what)
    if not choices:
        raise malformed(what, "the answer has no choices")
    choice = _object(choices[0], "choices[0]", what)
    block = _object(choice.get("logprobs"), "choices[0].logprobs", what)
    tokens = _list(block.get("tokens"), "logprobs.tokens", what)
    values = _list(block.get("token_logprobs"), "logprobs.token_logprobs", what)
    offsets = _list(block.get("text_offset"), "logprobs.text_offset", what)
    if not len(tokens) == len(values) == len(offsets):
        raise malformed(
            what,
            f"logprobs lists differ in length ({len(tokens)} tokens, {len(values)} "
            f"log-probabilities, {len(offsets)} offsets)",
        )
    total = 0.0
    picked = 0
    for j, (token, at, value) in enumerate(zip(tokens, offsets, values, strict=True)):
        if not isinstance(token, str):
            raise malformed(what, f"logprobs.tokens[{j}] is {_type(token)}, not a string")
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            raise malformed(what, f"logprobs.text_offset[{j}] is {at!r:.40}, not an offset")
        if at + len(token) > len(context):
            total += _finite(value, f"logprobs.token_logprobs[{j}]", what)
            picked += 1
    if not picked:
        raise malformed(what, "the continuation has no token log-probabilities")
    return total, picked, len(tokens) - picked


def _check_info(value: object, where: str, depth: int = 0) -> None:
    """``info`` must survive the cache: JSON types, string keys, no NaN, bounded nesting."""
    if depth > 8:
        raise malformed("an answer", f"{where} nests deeper than 8 levels")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if math.isnan(value):
            raise malformed("an answer", f"{where} is NaN")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_info(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise malformed("an answer", f"{where} has a {_type(key)} key")
            _check_info(item, f"{where}.{key}", depth + 1)
        return
    raise malformed("an answer", f"{where} is {_type(value)}, not a JSON value")


def checked_response(response: GenerationResponse) -> GenerationResponse:
    """``response`` when it is a well-formed successful answer, else a ``malformed`` failure.

    Every provider's answer passes here before the engine caches it: the text and finish
    reason are strings, token counts non-negative integers, the latency a finite
    non-negative number and ``info`` plain JSON, so what is cached reads back as the same
    answer. An error response (``error`` set) is returned as it is; it is never cached.
    """
    if response.error is not None:
        return response
    what = "an answer"
    if not isinstance(response.completion, str):
        raise malformed(what, f"the completion is {_type(response.completion)}, not a string")
    limit = max_answer_chars()
    if len(response.completion) > limit:
        raise malformed(
            what,
            f"the completion has {len(response.completion)} characters, more than the "
            f"{limit} of ${MAX_ANSWER_ENV}",
        )
    if not isinstance(response.finish_reason, str):
        raise malformed(what, f"the finish reason is {_type(response.finish_reason)}")
    _count(response.input_tokens, "input_tokens", what)
    _count(response.output_tokens, "output_tokens", what)
    latency = _finite(response.latency_s, "latency_s", what)
    if latency < 0:
        raise malformed(what, f"latency_s is {latency}, below zero")
    if not isinstance(response.info, dict):
        raise malformed(what, f"info is {_type(response.info)}, not an object")
    _check_info(response.info, "info")
    if response.choice_scores is not None:
        _check_scores(response.choice_scores)
    return response


def _check_scores(scores: object) -> None:
    """Choice scores that survive the cache, each field of its type.

    A text, a log-likelihood (not NaN; -inf is a continuation the model finds impossible),
    a token count and a greedy flag per continuation.
    """
    what = "an answer"
    if not isinstance(scores, ChoiceScores) or not isinstance(scores.scores, tuple):
        raise malformed(what, f"the choice scores are {_type(scores)}")
    _count(scores.context_tokens, "choice_scores.context_tokens", what)
    for i, score in enumerate(scores.scores):
        where = f"choice_scores[{i}]"
        if not isinstance(score, ContinuationScore) or not isinstance(score.continuation, str):
            raise malformed(what, f"{where} is not a continuation's score")
        if (
            isinstance(score.logprob, bool)
            or not isinstance(score.logprob, (int, float))
            or math.isnan(score.logprob)
            or score.logprob == math.inf
        ):
            raise malformed(what, f"{where}.logprob is {score.logprob!r:.40}")
        _count(score.tokens, f"{where}.tokens", what)
        if score.greedy is not None and not isinstance(score.greedy, bool):
            raise malformed(what, f"{where}.greedy is {_type(score.greedy)}")
