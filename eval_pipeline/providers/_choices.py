"""What every provider with choice decoding shares.

The completion-format context, the lm-evaluation-harness split of a context and a
continuation into tokens, and the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec, chat_template_problem
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationRequest,
    GenerationResponse,
)


def completion_context(request: GenerationRequest) -> str:
    """The exact context text of a ``completion``-format request: its one user message."""
    users = [m for m in request.messages if m.role == "user"]
    if len(request.messages) != 1 or len(users) != 1:
        raise EvalPipelineError(
            f"request {request.sample_id!r}: a completion-format request holds exactly one "
            f"user message (the context text), got roles {[m.role for m in request.messages]}"
        )
    return users[0].content


def context_text(spec: ModelSpec, tokenizer: Any, request: GenerationRequest) -> str:
    """A local model's context: the chat template's rendering, or the completion text as-is.

    Raises:
        EvalPipelineError: A chat-format request on a tokenizer without a chat template
            (the message says to use ``prompt_format: completion``).
    """
    if request.prompt_format == "completion":
        return completion_context(request)
    problem = chat_template_problem(
        spec, bool(getattr(tokenizer, "chat_template", None)), request.prompt_format
    )
    if problem:
        raise EvalPipelineError(problem)
    # A last assistant turn is the start of the answer (lm-eval's ``gen_prefix``): the
    # template continues it rather than opening a new turn, as lm-eval's HFLM does.
    messages = [m.as_dict() for m in request.messages]
    if messages and messages[-1]["role"] == "assistant":
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=False, continue_final_message=True
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def chat_template_hash(tokenizer: Any) -> str | None:
    """The first 16 hex digits of the sha256 of a tokenizer's chat template (None: none).

    Recorded on every chat-format generation a local model answers
    (``generations.chat_template_hash``): the template is part of the prompt the model saw.
    """
    import hashlib

    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        return None
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


def split_pair(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the continuation, as lm-eval does."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def encode_pair(
    encode: Callable[[str], list[int]], context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """Context tokens and continuation tokens exactly as lm-eval's ``_encode_pair``.

    ``whole = encode(context + continuation)``, ``context_enc = encode(context)``, the
    continuation is ``whole[len(context_enc):]``: the continuation's first token is the
    one the whole text tokenizes to, even where it merges across the boundary.
    """
    context, continuation = split_pair(context, continuation)
    whole = encode(context + continuation)
    context_enc = encode(context)
    return context_enc, whole[len(context_enc) :]


def choice_scores(
    request: GenerationRequest,
    logprobs: Sequence[float],
    tokens: Sequence[int],
    context_tokens: int,
    greedy: Sequence[bool] | None = None,
) -> ChoiceScores:
    """A request's :class:`ChoiceScores` from per-choice lists in request order.

    Log-likelihoods are rounded to 6 decimals (the digits a float32 model gives).
    """
    flags: Sequence[bool | None] = greedy if greedy is not None else [None] * len(logprobs)
    return ChoiceScores(
        tuple(
            ContinuationScore(c, round(float(lp), 6), int(n), None if g is None else bool(g))
            for c, lp, n, g in zip(request.choices, logprobs, tokens, flags, strict=True)
        ),
        context_tokens,
    )


def choice_response(
    request: GenerationRequest,
    scores: ChoiceScores,
    latency_s: float,
    info: dict[str, Any] | None = None,
) -> GenerationResponse:
    """The answer to a choice request: the continuation of highest log-likelihood.

    The first of equals wins; every choice's score travels in ``choice_scores``.
    """
    best = scores.best()
    return GenerationResponse(
        completion=request.choices[best],
        finish_reason="stop",
        input_tokens=scores.context_tokens,
        output_tokens=scores.scores[best].tokens,
        latency_s=latency_s,
        info=dict(info or {}),
        choice_scores=scores,
    )


def lm_encode(tokenizer: Any, text: str, add_bos_token: bool | None) -> list[int]:
    """Completion-format tokens as lm-eval's ``HFLM.tok_encode`` (lm-eval 0.4.13).

    ``add_bos_token`` None (lm-eval's default) keeps the tokenizer's own special tokens
    (a Llama-family tokenizer adds its BOS, GPT-2-style ones add nothing), except when
    the text already starts with the prefix token's text; True or False forces them.
    """
    special = add_bos_token
    if special is None:
        if tokenizer.bos_token_id is not None:
            prefix = getattr(tokenizer, "bos_token", None)
        else:
            prefix = getattr(tokenizer, "eos_token", None)
        special = not (isinstance(prefix, str) and prefix and text.startswith(prefix))
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def choice_token_ids(
    tokenizer: Any,
    request: GenerationRequest,
    add_bos_token: bool | None,
    chat_text: Callable[[GenerationRequest], str],
) -> tuple[list[int], list[list[int]]]:
    """A choice request's context tokens and each continuation's tokens.

    Completion format splits them as lm-eval's ``_encode_pair`` (:func:`encode_pair`,
    each text encoded by :func:`lm_encode`; an empty context becomes the BOS token,
    or EOS without one, as lm-eval's prefix token), so the log-likelihoods are lm-eval's.
    Chat format keeps the template's tokens (``chat_text``) and appends each choice's own.
    """

    def encode(text: str) -> list[int]:
        return lm_encode(tokenizer, text, add_bos_token)

    if request.prompt_format == "completion":
        context = completion_context(request)
        if context == "":
            prefix = tokenizer.bos_token_id
            prefix = prefix if prefix is not None else tokenizer.eos_token_id
            return [prefix], [encode(c) for c in request.choices]
        pairs = [encode_pair(encode, context, c) for c in request.choices]
        return pairs[0][0], [cont for _, cont in pairs]
    prompt = list(tokenizer(chat_text(request), add_special_tokens=False)["input_ids"])
    return prompt, [
        list(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in request.choices
    ]
