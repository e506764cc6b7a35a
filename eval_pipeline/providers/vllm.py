"""Offline batched generation with vLLM on GPU nodes (``LLM.generate`` + ``SamplingParams``).

Options (``models.yaml`` ``options:``):

- ``path``: a model directory or hub id; or ``gguf_package`` + ``gguf_file`` for a GGUF
  file shipped in an installed package (vLLM then needs ``tokenizer``, a hub id or
  directory with the original tokenizer);
- ``tokenizer``: where the tokenizer comes from (default: the model);
- ``tensor_parallel_size`` (default 1): GPUs the model is split over; the SLURM profile
  must give the job that many GPUs;
- ``gpu_memory_utilization`` (default 0.9), ``max_model_len``, ``dtype``, ``quantization``,
  ``enforce_eager``, ``seed``;
- ``max_lora_rank`` (default 16): LoRA is enabled when the catalog entry has an ``adapter``,
  which every request then uses through a ``LoRARequest``;
- ``batch_size`` (default 256): requests handed to one ``LLM.generate`` call (vLLM
  schedules them itself);
- ``add_bos_token``: completion-format prompts keep the tokenizer's own special tokens
  (unset, lm-evaluation-harness's default) or are forced to have them or not.

Choice decoding scores each continuation with one prompt of context + continuation
tokens (``SamplingParams(max_tokens=1, prompt_logprobs=1)``): vLLM returns the
log-probability of every prompt token, and the continuation's are summed.

vLLM is a CUDA-only wheel (the ``gpu`` extra): it is imported inside the functions that
need it, so this module imports anywhere and its argument building is testable on CPU.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.installed import module_spec
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import (
    ChoiceScores,
    GenerationRequest,
    GenerationResponse,
    Missing,
    SamplingParams,
)
from eval_pipeline.providers._choices import (
    chat_template_hash,
    choice_response,
    choice_scores,
    choice_token_ids,
    context_text,
)
from eval_pipeline.providers.base import Capabilities, Provider


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    gguf_package: str | None = None
    gguf_file: str | None = None
    tokenizer: str | None = None
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = None
    dtype: str = "auto"
    quantization: str | None = None
    enforce_eager: bool = False
    seed: int = 0
    max_lora_rank: int = 16
    batch_size: int = Field(256, ge=1)
    add_bos_token: bool | None = None


def model_source(options: VLLMOptions) -> str:
    """The ``model=`` argument of ``vllm.LLM``: a directory, a hub id or a GGUF file path."""
    if options.gguf_package:
        from eval_pipeline.providers.transformers import TransformersOptions, resolve_source

        folder, gguf = resolve_source(
            TransformersOptions(gguf_package=options.gguf_package, gguf_file=options.gguf_file)
        )
        return f"{folder}/{gguf}"
    if options.path:
        return options.path
    raise EvalPipelineError("vllm model needs options.path or options.gguf_package")


def llm_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM(...)`` for a catalog model."""
    options = VLLMOptions.model_validate(spec.options)
    kwargs: dict[str, Any] = {
        "model": model_source(options),
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "dtype": options.dtype,
        "seed": options.seed,
        "enforce_eager": options.enforce_eager,
    }
    if options.tokenizer:
        kwargs["tokenizer"] = options.tokenizer
    elif options.gguf_package:
        # A GGUF file carries a tokenizer vLLM can only rebuild slowly or not at all.
        kwargs["tokenizer"] = spec.model_id
    if (
        spec.revision
        and options.path
        and not options.gguf_package
        and _looks_like_hub_id(options.path)
    ):
        kwargs["revision"] = spec.revision
    if options.max_model_len:
        kwargs["max_model_len"] = options.max_model_len
    if options.quantization:
        kwargs["quantization"] = options.quantization
    if spec.adapter:
        kwargs["enable_lora"] = True
        kwargs["max_lora_rank"] = options.max_lora_rank
    return kwargs


def _looks_like_hub_id(path: str) -> bool:
    return not path.startswith(("/", ".", "~")) and path.count("/") == 1


def sampling_kwargs(sampling: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams(...)`` for our sampling parameters."""
    kwargs: dict[str, Any] = {
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed,
    }
    if sampling.stop:
        kwargs["stop"] = list(sampling.stop)
    return kwargs


def lora_request_args(spec: ModelSpec) -> tuple[str, int, str] | None:
    """``(lora_name, lora_int_id, lora_path)`` for the catalog adapter, or None.

    The integer id must be positive and stable for one adapter within a process; it is
    derived from the adapter path so a process serving several adapters keeps them apart.
    """
    if not spec.adapter:
        return None
    digest = hashlib.sha256(spec.adapter.encode()).digest()
    lora_id = int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1
    return spec.slug, lora_id, spec.adapter


def to_responses(output: Any, latency_s: float) -> list[GenerationResponse]:
    """Convert one vLLM ``RequestOutput`` into a response per completion (``n`` of them)."""
    prompt_tokens = len(output.prompt_token_ids or ())
    responses = []
    for completion in output.outputs:
        # vLLM reports "stop" (EOS or a stop string), "length" or "abort"/None.
        reason = completion.finish_reason or "error"
        responses.append(
            GenerationResponse(
                completion=completion.text,
                finish_reason=reason if reason in ("stop", "length") else "error",
                input_tokens=prompt_tokens,
                output_tokens=len(completion.token_ids),
                latency_s=latency_s,
                error=None if reason in ("stop", "length") else f"vllm finish_reason={reason}",
                info={"backend": "vllm"},
            )
        )
    return responses


def continuation_logprob(
    prompt_logprobs: Sequence[Any], token_ids: Sequence[int], start: int
) -> float:
    """The summed log-probability of ``token_ids[start:]`` from vLLM's ``prompt_logprobs``.

    ``prompt_logprobs[j]`` maps token ids to ``Logprob`` objects (or floats) for prompt
    position ``j`` and always holds the prompt's own token there.
    """
    total = 0.0
    for j in range(start, len(token_ids)):
        entry = prompt_logprobs[j][token_ids[j]]
        total += float(getattr(entry, "logprob", entry))
    return total


@dataclass
class LoadedLLM:
    llm: Any
    tokenizer: Any
    load_s: float


_LLMS: dict[str, LoadedLLM] = {}
_LOCK = threading.Lock()


def load_llm(spec: ModelSpec) -> LoadedLLM:
    """Start (or reuse) the vLLM engine for ``spec`` in this process."""
    kwargs = llm_kwargs(spec)
    key = repr(sorted(kwargs.items()))
    with _LOCK:
        if key not in _LLMS:
            try:
                from vllm import LLM
            except ImportError as exc:  # the gpu extra is not installed here
                raise EvalPipelineError(
                    f"model {spec.slug!r}: provider 'vllm' needs the vllm package "
                    "(pip install -e '.[gpu]' on a GPU node)"
                ) from exc
            start = time.perf_counter()
            llm = LLM(**kwargs)
            _LLMS[key] = LoadedLLM(llm, llm.get_tokenizer(), time.perf_counter() - start)
        return _LLMS[key]


class VLLMProvider(Provider):
    """Batched offline generation through one ``vllm.LLM`` per process."""

    name = "vllm"
    capabilities = Capabilities(choices=True)

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.options = VLLMOptions.model_validate(spec.options)
        self.batch_size = self.options.batch_size
        self._loaded: LoadedLLM | None = None

    @classmethod
    def requirements_problem(cls, spec: ModelSpec) -> Missing | None:
        """Whether vLLM (and an ``options.gguf_package`` file) is here, for an inline model.

        vLLM is a CUDA-only wheel: a ``runs_on: slurm`` model imports it in its job, on a
        GPU node, so nothing is checked here for it.
        """
        if spec.runs_on != "inline":
            return None
        if module_spec("vllm") is None:
            return Missing(
                "the vllm package is not installed (a CUDA-only wheel)",
                "pip install -e '.[gpu]' on a GPU machine, or set runs_on: slurm for the "
                "model in models.yaml",
            )
        options = VLLMOptions.model_validate(spec.options)
        if options.gguf_package:
            from eval_pipeline.providers.transformers import gguf_package_problem

            return gguf_package_problem(options.gguf_package, options.gguf_file)
        return None

    @property
    def loaded(self) -> LoadedLLM:
        if self._loaded is None:
            self._loaded = load_llm(self.spec)
        return self._loaded

    def load(self) -> LoadedLLM:
        return self.loaded

    def prompt_text(self, request: GenerationRequest) -> str:
        """The request's context: the chat template's rendering, or the completion text."""
        return context_text(self.spec, self.loaded.tokenizer, request)

    def prompts(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Render each request's chat messages with the model's chat template."""
        return [self.prompt_text(r) for r in requests]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        if not requests:
            return []
        # Loading first: a model that cannot load (or no vllm at all) fails loudly here.
        self.load()
        choice = [i for i, r in enumerate(requests) if r.choices]
        free = [i for i, r in enumerate(requests) if not r.choices]
        out: list[GenerationResponse | None] = [None] * len(requests)
        for indices, run in ((choice, self.score_choices), (free, self._generate)):
            if not indices:
                continue
            batch = [requests[i] for i in indices]
            try:
                results = run(batch)
            except Exception as exc:  # one failing batch must not lose the run
                error = f"{type(exc).__name__}: {exc}"
                results = [GenerationResponse(None, "error", error=error) for _ in batch]
            for i, res in zip(indices, results, strict=True):
                out[i] = res
        return [r for r in out if r is not None]

    def _lora(self) -> Any:
        args = lora_request_args(self.spec)
        if args is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(*args)

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        from vllm import SamplingParams as VSamplingParams

        # One SamplingParams per distinct setting; vLLM accepts a list aligned with prompts.
        params = [VSamplingParams(**sampling_kwargs(r.sampling)) for r in requests]
        prompts = self.prompts(requests)
        start = time.perf_counter()
        outputs = self.loaded.llm.generate(
            prompts, params, lora_request=self._lora(), use_tqdm=False
        )
        per_request = (time.perf_counter() - start) / len(requests)
        # The engine answers n=1 requests; extra completions (n > 1) are not kept here.
        responses = [to_responses(output, per_request)[0] for output in outputs]
        template = chat_template_hash(self.loaded.tokenizer)
        for response in responses:
            response.info["chat_template_sha256"] = template
        return responses

    def score_choices(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Choice decoding: each request answered with its most likely choice."""
        start = time.perf_counter()
        scored = self.loglikelihood(requests)
        per_request = (time.perf_counter() - start) / len(requests)
        info = {
            "backend": "vllm",
            "chat_template_sha256": chat_template_hash(self.loaded.tokenizer),
        }
        return [
            choice_response(r, s, per_request, info) for r, s in zip(requests, scored, strict=True)
        ]

    def loglikelihood(self, requests: Sequence[GenerationRequest]) -> list[ChoiceScores]:
        """Every choice's score (see :meth:`Provider.loglikelihood`); ``greedy`` is None.

        One prompt per context + continuation, its prompt log-probs summed. Tokens are
        split as lm-evaluation-harness does (see
        :func:`~eval_pipeline.providers._choices.choice_token_ids`) and sent as token ids,
        so vLLM scores exactly those tokens.
        """
        from vllm import SamplingParams as VSamplingParams

        self.load()
        encoded = [
            choice_token_ids(self.loaded.tokenizer, r, self.options.add_bos_token, self.prompt_text)
            for r in requests
        ]
        prompts: list[dict[str, list[int]]] = []
        spans: list[tuple[int, int]] = []  # (request, where its continuation starts)
        for i, (context, continuations) in enumerate(encoded):
            if any(not c for c in continuations):
                raise EvalPipelineError("choice decoding: a choice tokenizes to nothing")
            for cont in continuations:
                prompts.append({"prompt_token_ids": context + cont})
                spans.append((i, len(context)))
        params = VSamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        outputs = self.loaded.llm.generate(
            prompts, params, lora_request=self._lora(), use_tqdm=False
        )
        scores: list[list[float]] = [[] for _ in requests]
        for prompt, (i, begin), output in zip(prompts, spans, outputs, strict=True):
            ids = prompt["prompt_token_ids"]
            scores[i].append(continuation_logprob(output.prompt_logprobs, ids, begin))
        return [
            choice_scores(request, per, [len(c) for c in continuations], len(context))
            for request, per, (context, continuations) in zip(
                requests, scores, encoded, strict=True
            )
        ]

    def close(self) -> None:
        # The engine stays up for the process: the next dataset of this model reuses it.
        return None
