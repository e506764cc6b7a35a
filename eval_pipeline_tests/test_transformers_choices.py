"""Completion-format choice decoding on the transformers provider, as lm-eval scores it.

A tiny randomly initialised Llama and a byte-level BPE tokenizer trained here (with a
Llama-style BOS added by the tokenizer, and no chat template) stand in for a base model:
nothing is downloaded. Each continuation's log-likelihood from the batched, shared-prefix
scoring must equal one plain forward pass over lm-eval's ``_encode_pair`` tokens.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from eval_pipeline.core.specs import ModelSpec  # noqa: E402
from eval_pipeline.core.types import GenerationRequest, Message, SamplingParams  # noqa: E402
from eval_pipeline.providers.transformers import LoadedModel, TransformersProvider  # noqa: E402

TEXTS = [
    "Q: Is the following sentence plausible? The player scored a goal.\nA: yes",
    "Q: If you follow these instructions, do you return to the starting point?\nA: no",
    "Take 3 steps. Turn left. Take 2 steps. Always face forward.",
    "choice: yes choice: no choice: True choice: False",
]


@pytest.fixture(scope="module")
def base_model():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(TEXTS * 20, trainer)
    bos = bpe.token_to_id("<s>")
    # A Llama tokenizer adds its BOS by default.
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bos)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>"
    )
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    assert not getattr(tokenizer, "chat_template", None)
    return model, tokenizer


def _provider(base_model, **options) -> TransformersProvider:
    spec = ModelSpec.model_validate(
        {
            "slug": "tiny-base",
            "provider": "transformers",
            "model_id": "tiny/base",
            "options": {"path": "/nowhere", "threads": 1, **options},
        }
    )
    provider = TransformersProvider(spec)
    model, tokenizer = base_model
    provider._loaded = LoadedModel(model, tokenizer, "cpu", 0.0, threads=1)
    return provider


def _mc(context: str, choices: tuple[str, ...], prompt_format: str = "completion"):
    return GenerationRequest(
        request_hash=context,
        sample_id=context[:12],
        messages=(Message("user", context),),
        sampling=SamplingParams(max_tokens=1),
        choices=choices,
        prompt_format=prompt_format,
    )


def lm_eval_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval 0.4.13's ``_encode_pair`` with ``HFLM.tok_encode`` defaults, written out."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    return ctx, whole[len(ctx) :]


def full_pass(model, context: list[int], continuation: list[int]) -> float:
    ids = torch.tensor([context + continuation])
    with torch.inference_mode():
        logprobs = model(input_ids=ids).logits[0].float().log_softmax(-1)
    return sum(float(logprobs[len(context) - 1 + j, t]) for j, t in enumerate(continuation))


REQUESTS = [
    ("Q: Is the following sentence plausible? The player scored a goal.\nA:", (" yes", " no")),
    ("Q: Do you return to the starting point?\nA:", (" True", " False", " no")),
    ("Take 3 steps. Turn left. Answer: ", ("yes", "no")),  # trailing space
    ("choice: yes choice: no\nA:", (" plausible", " implausible")),
]


def test_batched_choice_scores_equal_a_full_pass_over_lm_eval_tokens(base_model):
    model, tokenizer = base_model
    provider = _provider(base_model)
    responses = provider.generate([_mc(c, choices) for c, choices in REQUESTS])
    for (context, choices), response in zip(REQUESTS, responses, strict=True):
        assert response.ok, response.error
        for choice in choices:
            ctx, cont = lm_eval_pair(tokenizer, context, choice)
            assert ctx[0] == tokenizer.bos_token_id  # the tokenizer's BOS, as lm-eval keeps it
            assert response.choice_scores.logprobs()[choice] == pytest.approx(
                full_pass(model, ctx, cont), abs=1e-4
            )
            assert response.choice_scores.token_counts()[choice] == len(cont)
        scores = response.choice_scores.logprobs()
        assert response.completion == max(choices, key=lambda c: (scores[c], -choices.index(c)))


def test_a_trailing_space_moves_into_the_continuation_tokens(base_model):
    _, tokenizer = base_model
    ctx, cont = lm_eval_pair(tokenizer, "Take 3 steps. Turn left. Answer: ", "yes")
    (response,) = _provider(base_model).generate(
        [_mc("Take 3 steps. Turn left. Answer: ", ("yes", "no"))]
    )
    assert tokenizer.decode(cont).startswith(" ")
    assert response.choice_scores.token_counts()["yes"] == len(cont)
    assert response.input_tokens == len(ctx)


def test_add_bos_token_false_scores_without_the_bos(base_model):
    model, tokenizer = base_model
    context, choices = REQUESTS[0]
    (response,) = _provider(base_model, add_bos_token=False).generate([_mc(context, choices)])
    ctx = tokenizer.encode(context, add_special_tokens=False)
    whole = tokenizer.encode(context + choices[0], add_special_tokens=False)
    expected = full_pass(model, ctx, whole[len(ctx) :])
    assert response.choice_scores.logprobs()[choices[0]] == pytest.approx(expected, abs=1e-4)


def test_a_chat_request_on_a_tokenizer_without_chat_template_is_refused_naming_the_model(
    base_model,
):
    (response,) = _provider(base_model).generate([_mc("Q?\nA:", (" a", " b"), "chat")])
    assert not response.ok
    assert "tiny-base" in response.error and "chat template" in response.error


def test_completion_format_generation_sends_the_text_without_a_template(base_model):
    model, tokenizer = base_model
    context = "Q: Do you return to the starting point?\nA:"
    request = GenerationRequest(
        request_hash="g",
        sample_id="g",
        messages=(Message("user", context),),
        sampling=SamplingParams(max_tokens=4),
        prompt_format="completion",
    )
    (response,) = _provider(base_model).generate([request])
    ids = torch.tensor([tokenizer.encode(context)])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=4,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    new = [t for t in out[0, ids.shape[1] :].tolist() if t != tokenizer.eos_token_id]
    assert response.ok
    assert response.input_tokens == ids.shape[1]
    assert response.completion == tokenizer.decode(new, skip_special_tokens=True)
