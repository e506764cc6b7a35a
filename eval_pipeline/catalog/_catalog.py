"""Loads and validates the whole catalog: models, datasets and their prompts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Any: dataset rows (any JSON value) and lm-eval's task (lm-eval ships no types).
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from eval_pipeline.catalog._files import display, parse_yaml, read_text, read_yaml
from eval_pipeline.catalog._loaders import check_loader, load_raw, source_problem
from eval_pipeline.catalog._prompts import PromptTemplate, load_prompt, render_problem
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import content_hash, stable_json
from eval_pipeline.core.specs import DatasetSpec, ModelSpec, validation_error_to_catalog_error
from eval_pipeline.core.types import AnswerMode, Missing
from eval_pipeline.providers.registry import PROVIDERS, provider_class
from eval_pipeline.scoring.registry import MC_SCORERS, check_scorer_params

if TYPE_CHECKING:
    from eval_pipeline.providers import ApiOptions

MODELS_FILE = "models.yaml"
DATASET_SPEC = "dataset.yaml"
# An ``llm_judge`` scorer's rubric ``<r>`` is the template ``prompts/judge-<r>.jinja``; it is
# rendered with these variables (see eval_pipeline.judge).
JUDGE_SCORER = "llm_judge"
JUDGE_PROMPT_PREFIX = "judge-"
JUDGE_VARIABLES = ("question", "answer", "reference")


@dataclass(frozen=True)
class Dataset:
    """A dataset's spec with its normalized rows and content-hash version.

    Each row: ``sample_id``, ``fields``, ``target`` (the first acceptable answer, or the
    correct choice's text), ``targets`` (every acceptable answer / correct choice),
    ``choices`` (empty unless multiple choice) and ``tags``. ``fewshot_rows`` is the pool
    few-shot examples are drawn from (the rows themselves when the spec names no source).
    An ``lm_eval`` dataset's rows hold the task's document (``fields["doc"]``) and leaf
    task (``fields["task"]``); its ``prompt`` is the task's resolved configuration.
    """

    spec: DatasetSpec
    prompt: PromptTemplate
    rows: tuple[dict[str, Any], ...]
    version: str
    fewshot_rows: tuple[dict[str, Any], ...] = ()
    # ``loader: lm_eval``: the lm-eval task or group that defines the rows' requests and
    # metrics (an :class:`eval_pipeline.catalog._lmeval.LmEvalSource`).
    lm_eval: Any = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Catalog:
    """Everything the pipeline can evaluate, read from one project root."""

    root: Path
    models: dict[str, ModelSpec]
    dataset_specs: dict[str, DatasetSpec]
    prompts: dict[str, PromptTemplate]
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)

    @property
    def model_slugs(self) -> list[str]:
        return sorted(self.models)

    @property
    def dataset_names(self) -> list[str]:
        return sorted(self.dataset_specs)

    def model(self, slug: str) -> ModelSpec:
        try:
            return self.models[slug]
        except KeyError:
            raise KeyError(
                f"unknown model {slug!r}; known: {', '.join(self.model_slugs)}"
            ) from None

    def answer_mode(self, model: str, dataset: str) -> AnswerMode:
        """How ``model`` answers ``dataset``: see :data:`eval_pipeline.core.types.AnswerMode`.

        A multiple-choice dataset scored by log-likelihood runs by log-likelihood on a model
        whose provider can score choices; on any other model it asks for a letter, or is
        not applicable where the dataset says ``without_loglikelihood: not_applicable``.
        A catalog with any mix of models therefore always loads.
        """
        spec = self.dataset_specs[dataset]
        if spec.lm_eval:
            return _lm_eval_answer_mode(self, model, dataset)
        if not spec.loglikelihood:
            return "generate"
        if provider_class(self.model(model).provider).capabilities.choices:
            return "loglikelihood"
        return "generate" if spec.without_loglikelihood == "generate" else "not_applicable"

    def samples_per_problem(self, dataset: str) -> int:
        """Completions per sample: ``samples_per_problem``, or an lm-eval task's ``repeats``."""
        if self.dataset_specs[dataset].lm_eval:
            return self.dataset(dataset).lm_eval.repeats
        return self.dataset_specs[dataset].samples_per_problem

    def limits_per_task(self, dataset: str) -> bool:
        """Whether a sample limit applies per task (an lm-eval group, as its ``--limit``)."""
        spec = self.dataset_specs[dataset]
        return bool(spec.lm_eval and self.dataset(dataset).lm_eval.is_group)

    def not_applicable_reason(self, model: str, dataset: str) -> str | None:
        """Why the cell does not run, or None when it does."""
        # A model that scores choices runs every dataset; no lm-eval task is built to see.
        if provider_class(self.model(model).provider).capabilities.choices:
            return None
        if self.answer_mode(model, dataset) != "not_applicable":
            return None
        provider = self.model(model).provider
        spec = self.dataset_specs[dataset]
        if spec.lm_eval and self.dataset(dataset).lm_eval.output_types - {
            "multiple_choice",
            "generate_until",
        }:
            return (
                f"dataset '{dataset}' scores log-likelihoods of given texts (lm-eval output "
                f"types {sorted(self.dataset(dataset).lm_eval.output_types)}) and model "
                f"'{model}' (provider '{provider}') cannot score text"
            )
        return (
            f"dataset '{dataset}' is scored by log-likelihood and model '{model}' "
            f"(provider '{provider}') cannot score choices; the dataset says "
            "without_loglikelihood: not_applicable (set it to generate to ask for a letter)"
        )

    def judges(self, dataset: str) -> list[str]:
        """The judge models the judge scorers of ``dataset`` name, in order, once each."""
        slugs: dict[str, None] = {}
        for scorer in self.dataset_specs[dataset].scorers:
            if scorer.name in (JUDGE_SCORER, "mt_bench", "pairwise_judge"):
                slugs.update(dict.fromkeys(scorer.params.get("judges") or []))
        return list(slugs)

    def source_problem(self, dataset: str) -> Missing | None:
        """What the data source of ``dataset`` lacks on this machine, or None when it is there.

        Cheap (files, folders and installed packages are looked at; no row is read), so a
        run can check every dataset before it starts.
        """
        return source_problem(self.root, self.dataset_specs[dataset])

    def secret_env_names(self, slugs: Iterable[str]) -> list[str]:
        """The environment variables holding the API keys of models ``slugs``.

        What a SLURM job running those models must receive from the submitting
        environment (see ``eval_pipeline.slurm.submit_array``), and nothing more.
        """
        names = {api_key_env_name(self.model(slug)) for slug in slugs}
        return sorted(n for n in names if n)

    @property
    def suite_names(self) -> list[str]:
        """Every ``suite:`` named by a dataset spec."""
        return sorted({s.suite for s in self.dataset_specs.values() if s.suite})

    def suite(self, name: str) -> list[str]:
        """The datasets whose spec says ``suite: <name>``, sorted.

        Raises:
            KeyError: No dataset belongs to that suite; the message lists the known ones.
        """
        names = [n for n in self.dataset_names if self.dataset_specs[n].suite == name]
        if not names:
            known = ", ".join(self.suite_names) or "none"
            raise KeyError(f"no dataset has suite: {name!r} (suites: {known})")
        return names

    def train_split(self, name: str) -> Dataset:
        """The ``train`` split of dataset ``name``, read and validated like its test rows.

        Its ``version`` is the content hash of the train rows (with the dataset's target
        field and scorers); its ``prompt`` is the dataset's prompt. Evaluation never reads
        it; fine-tuning recipes do.

        Raises:
            CatalogError: the dataset declares no train split, or a train row is malformed
                (naming the train file and line).
        """
        if name not in self.dataset_specs:
            raise KeyError(f"unknown dataset {name!r}; known: {', '.join(self.dataset_names)}")
        spec = self.dataset_specs[name]
        if not spec.train:
            raise CatalogError(
                f"datasets/{name}/{DATASET_SPEC}", "train", "the dataset declares no train split"
            )
        # The same loader reads the split: a view whose only dataset has the train file as data.
        view = Catalog(
            root=self.root,
            models=self.models,
            dataset_specs={name: spec.model_copy(update={"data": spec.train})},
            prompts=self.prompts,
        )
        return view.dataset(name)

    def dataset(self, name: str) -> Dataset:
        """Load (once) and validate the rows of dataset ``name``."""
        if name not in self.dataset_specs:
            raise KeyError(f"unknown dataset {name!r}; known: {', '.join(self.dataset_names)}")
        if name not in self._datasets and self.dataset_specs[name].lm_eval:
            self._datasets[name] = _lm_eval_dataset(self.root, self.dataset_specs[name])
        if name not in self._datasets:
            spec = self.dataset_specs[name]
            assert spec.prompt is not None
            prompt = self.prompts[spec.prompt]
            rows = _load_rows(self.root, spec, prompt)
            pool: tuple[dict[str, Any], ...] = ()
            if spec.fewshot:
                pool = (
                    _load_rows(self.root, spec, prompt, split=spec.fewshot.source)
                    if spec.fewshot.source
                    else rows
                )
                if len(pool) <= spec.fewshot.n and not spec.fewshot.source:
                    raise CatalogError(
                        display(self.root / "datasets" / name / DATASET_SPEC, self.root),
                        "fewshot.n",
                        f"{spec.fewshot.n} examples need more than {len(pool)} rows "
                        "(a sample is never its own example)",
                    )
                if len(pool) < spec.fewshot.n:
                    raise CatalogError(
                        display(self.root / "datasets" / name / DATASET_SPEC, self.root),
                        "fewshot.n",
                        f"{spec.fewshot.n} examples, but the source has {len(pool)} rows",
                    )
            self._datasets[name] = Dataset(
                spec=spec,
                prompt=prompt,
                rows=rows,
                version=_dataset_version(spec, rows, pool),
                fewshot_rows=pool,
            )
        return self._datasets[name]


def api_key_env_name(spec: ModelSpec) -> str | None:
    """The variable holding ``spec``'s API key: ``options.api_key_env`` or the provider's default.

    None for providers that take no key (local models, keyless servers).
    """
    if "api_key_env" in spec.options:
        name = spec.options["api_key_env"]
        return name if isinstance(name, str) and name else None
    # The default lives with each API provider's options; read it there.
    options: type[ApiOptions]
    if spec.provider == "openai":
        from eval_pipeline.providers.openai import OpenAIOptions as options
    elif spec.provider == "anthropic":
        from eval_pipeline.providers.anthropic import AnthropicOptions as options
    else:
        return None
    return options.model_fields["api_key_env"].default


def default_project_root() -> str:
    """``$EVAL_PIPELINE_ROOT``, else the checkout this package lives in, else the cwd."""
    env = os.environ.get("EVAL_PIPELINE_ROOT")
    if env:
        return str(Path(env).resolve())
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / MODELS_FILE).exists():
        return str(checkout)
    return str(Path.cwd())


def load_catalog(root: str | os.PathLike[str], *, load_rows: bool = True) -> Catalog:
    """Read ``models.yaml``, ``datasets/*/dataset.yaml`` and ``prompts/*.jinja`` under ``root``.

    Every problem raises :class:`CatalogError` naming the file, the field (or line) and
    the problem. With ``load_rows`` (the default) every dataset's rows are read and
    validated too, and its prompt is rendered with every row, so a template that reads
    an attribute its field does not have fails here rather than at generation; without
    it that happens when :meth:`Catalog.dataset` first loads the rows.
    """
    root = Path(root).resolve()
    models = _load_models(root)
    specs: dict[str, DatasetSpec] = {}
    prompts: dict[str, PromptTemplate] = {}
    rubrics: dict[str, PromptTemplate] = {}  # judge templates, checked once each
    datasets_dir = root / "datasets"
    for spec_path in sorted(datasets_dir.glob(f"*/{DATASET_SPEC}")):
        spec = _load_dataset_spec(root, spec_path)
        if spec.prompt is not None:
            if spec.prompt not in prompts:
                prompts[spec.prompt] = load_prompt(root / "prompts", spec.prompt, root)
            _check_prompt_fields(root, spec, prompts[spec.prompt])
        _check_judges(root, spec_path, spec, models, rubrics)
        specs[spec.name] = spec
    catalog = Catalog(root=root, models=models, dataset_specs=specs, prompts=prompts)
    if load_rows:
        for name in catalog.dataset_names:
            catalog.dataset(name)
    return catalog


def _load_models(root: Path) -> dict[str, ModelSpec]:
    path = root / MODELS_FILE
    shown = display(path, root)
    data = read_yaml(path, shown)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(shown, "models", "must be a list of model entries")
    models: dict[str, ModelSpec] = {}
    for i, entry in enumerate(data["models"]):
        try:
            spec = ModelSpec.model_validate(entry)
        except ValidationError as exc:
            raise validation_error_to_catalog_error(shown, exc, prefix=f"models[{i}].") from exc
        if spec.provider not in PROVIDERS:
            raise CatalogError(
                shown,
                f"models[{i}].provider",
                f"unknown provider '{spec.provider}' (known: {', '.join(sorted(PROVIDERS))})",
            )
        if spec.slug in models:
            raise CatalogError(shown, f"models[{i}].slug", f"duplicate slug '{spec.slug}'")
        models[spec.slug] = spec
    return models


# Validated dataset specs (frozen) by file and text. One process loads the catalog several
# times (``eval-pipeline run``: the command, the definitions, each run's steps, the model
# task); an unchanged file is parsed and validated once. Every check below still runs.
_PARSED_SPECS: dict[tuple[str, str], DatasetSpec] = {}
_PARSED_SPECS_MAX = 4096


def _parsed_dataset_spec(path: Path, shown: str) -> DatasetSpec:
    text = read_text(path, shown)
    spec = _PARSED_SPECS.get((str(path), text))
    if spec is not None:
        return spec
    data = parse_yaml(text, shown)
    if not isinstance(data, dict):
        raise CatalogError(shown, "", "must be a mapping of spec fields")
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_catalog_error(shown, exc) from exc
    if len(_PARSED_SPECS) >= _PARSED_SPECS_MAX:
        _PARSED_SPECS.clear()
    _PARSED_SPECS[(str(path), text)] = spec
    return spec


def _load_dataset_spec(root: Path, path: Path) -> DatasetSpec:
    shown = display(path, root)
    spec = _parsed_dataset_spec(path, shown)
    if spec.name != path.parent.name:
        raise CatalogError(
            shown, "name", f"'{spec.name}' must equal its folder name '{path.parent.name}'"
        )
    for i, scorer in enumerate(spec.scorers):
        problem = check_scorer_params(scorer.name, scorer.params)
        if problem:
            field = (
                f"scorers[{i}].name"
                if "unknown scorer" in problem or "cannot import" in problem
                else f"scorers[{i}].params"
            )
            raise CatalogError(shown, field, problem)
        if scorer.name in MC_SCORERS and not spec.multiple_choice:
            raise CatalogError(
                shown,
                f"scorers[{i}].name",
                f"'{scorer.name}' scores multiple-choice datasets; this one is task: {spec.task}",
            )
    check_loader(root, path, spec)
    if spec.fewshot and spec.samples_per_problem > 1:
        raise CatalogError(shown, "fewshot", "few-shot prompts take samples_per_problem: 1")
    metrics = [s.metric_name for s in spec.scorers]
    if len(set(metrics)) != len(metrics):
        raise CatalogError(shown, "scorers", f"metric names must be unique, got {metrics}")
    # An lm_eval dataset's metrics are the task's, known once it is built.
    if spec.primary_metric and not spec.lm_eval and spec.primary_metric not in metrics:
        raise CatalogError(
            shown, "primary_metric", f"'{spec.primary_metric}' is not one of {metrics}"
        )
    if spec.samples_per_problem > 1 and not float(spec.sampling.get("temperature", 0) or 0) > 0:
        raise CatalogError(
            shown,
            "sampling.temperature",
            f"samples_per_problem: {spec.samples_per_problem} needs a temperature above 0 in "
            "the dataset's sampling (greedy decoding would repeat one completion)",
        )
    if spec.sampling:
        from eval_pipeline.core.types import SamplingParams

        try:
            SamplingParams().merged(spec.sampling)
        except ValidationError as exc:
            raise validation_error_to_catalog_error(shown, exc, prefix="sampling.") from exc
    return spec


def _check_prompt_fields(root: Path, spec: DatasetSpec, prompt: PromptTemplate) -> None:
    unknown = sorted(prompt.variables - set(spec.fields))
    if unknown:
        raise CatalogError(
            display(prompt.path, root),
            unknown[0],
            f"template variable '{unknown[0]}' is not a field of dataset '{spec.name}' "
            f"(fields: {', '.join(spec.fields)})",
        )


def _check_judges(
    root: Path,
    spec_path: Path,
    spec: DatasetSpec,
    models: dict[str, ModelSpec],
    rubrics: dict[str, PromptTemplate],
) -> None:
    """Refuse an ``llm_judge`` scorer whose judges, rubric template or question field are wrong.

    Without this the first sign would be a failed score step, after every generation.
    """
    shown = display(spec_path, root)
    for i, scorer in enumerate(spec.scorers):
        if scorer.name not in (JUDGE_SCORER, "mt_bench", "pairwise_judge"):
            continue
        for j, judge in enumerate(scorer.params.get("judges") or []):
            if judge not in models:
                raise CatalogError(
                    shown,
                    f"scorers[{i}].params.judges[{j}]",
                    f"unknown judge model '{judge}': not a slug in {MODELS_FILE} "
                    f"(known: {', '.join(sorted(models))})",
                )
        if scorer.name != JUDGE_SCORER:
            continue  # MT-Bench's own judge prompts (from its wheel), no rubric template
        question_field = scorer.params.get("question_field", "question")
        if question_field not in spec.fields:
            raise CatalogError(
                shown,
                f"scorers[{i}].params.question_field",
                f"'{question_field}' is not a field of dataset '{spec.name}' "
                f"(fields: {', '.join(spec.fields)}); the judge would see an empty question",
            )
        rubric = scorer.params["rubric"]
        name = f"{JUDGE_PROMPT_PREFIX}{rubric}"
        path = root / "prompts" / f"{name}.jinja"
        if not path.exists():
            raise CatalogError(
                shown,
                f"scorers[{i}].params.rubric",
                f"rubric '{rubric}' has no template: {display(path, root)} does not exist "
                f"(rubrics here: {', '.join(_rubrics_in(root)) or 'none'})",
            )
        if name not in rubrics:
            rubrics[name] = load_prompt(root / "prompts", name, root)
            _check_judge_template(root, rubrics[name])


def _rubrics_in(root: Path) -> list[str]:
    """Rubrics discovered as ``prompts/judge-<rubric>.jinja`` files."""
    return sorted(
        p.name[len(JUDGE_PROMPT_PREFIX) : -len(".jinja")]
        for p in (root / "prompts").glob(f"{JUDGE_PROMPT_PREFIX}*.jinja")
    )


def _check_judge_template(root: Path, prompt: PromptTemplate) -> None:
    shown = display(prompt.path, root)
    unknown = sorted(prompt.variables - set(JUDGE_VARIABLES))
    if unknown:
        raise CatalogError(
            shown,
            unknown[0],
            f"rubric template variable '{unknown[0]}' is not one the judge supplies "
            f"({', '.join(JUDGE_VARIABLES)})",
        )
    problem = render_problem(prompt, {name: f"sample {name}" for name in JUDGE_VARIABLES})
    if problem:
        raise CatalogError(shown, problem[0], f"rubric template does not render: {problem[1]}")


def _lm_eval_answer_mode(catalog: Catalog, model: str, dataset: str) -> AnswerMode:
    # Text to write: any model. Choices to score: a model that scores choices, else a
    # letter (multiple choice) as the dataset allows. Texts to score (loglikelihood,
    # rolling): only a model that scores them.
    spec = catalog.dataset_specs[dataset]
    kinds = catalog.dataset(dataset).lm_eval.output_types
    if kinds <= {"generate_until"}:
        return "generate"
    if provider_class(catalog.model(model).provider).capabilities.choices:
        return "loglikelihood"
    if kinds <= {"multiple_choice", "generate_until"} and spec.without_loglikelihood == "generate":
        return "generate"
    return "not_applicable"


def _lm_eval_dataset(root: Path, spec: DatasetSpec) -> Dataset:
    """An lm-eval task's documents as a dataset (see :mod:`eval_pipeline.catalog._lmeval`)."""
    from eval_pipeline.catalog._lmeval import LmEvalOptions, load_source

    folder = root / "datasets" / spec.name
    shown = display(folder / DATASET_SPEC, root)
    options = LmEvalOptions.model_validate(spec.loader_options)
    source = load_source(options, folder, shown)
    # A leaf's slices: its own name and every subgroup holding it (MMLU: the subject and
    # stem / humanities / ...), never the whole group.
    parents: dict[str, list[str]] = {}
    for group in source.groups:
        if group.name == source.name:
            continue
        for task in group.get_all_tasks():
            parents.setdefault(task.task_name, []).append(group.name)
    rows = []
    for raw in source.rows():
        tags = [raw["task"], *sorted(parents.get(raw["task"], []))] if source.is_group else []
        rows.append(
            {
                "sample_id": raw["id"],
                "fields": {"doc": raw["doc"], "task": raw["task"]},
                "target": raw["target"][0],
                "targets": list(raw["target"]),
                "choices": list(raw["choices"]),
                "tags": tags,
            }
        )
    if not rows:
        raise CatalogError(shown, "loader_options", "the lm-eval task has no documents")
    config = source.config_text()
    prompt = PromptTemplate(
        name=f"lm_eval.{options.label()}",
        path=source.yaml_path or Path(f"lm_eval/{options.label()}"),
        text=config,
    )
    version = content_hash(
        {"rows": [_versioned(r) for r in rows], "config": config, "scorers": "lm_eval"}, 12
    )
    return Dataset(
        spec=spec,
        prompt=prompt,
        rows=tuple(rows),
        version=f"{spec.name}@{version}",
        lm_eval=source,
    )


def _load_rows(
    root: Path,
    spec: DatasetSpec,
    prompt: PromptTemplate | None = None,
    *,
    split: str | None = None,
) -> tuple[dict[str, Any], ...]:
    raw, shown = load_raw(root, spec, split)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    needed = [spec.id_field, spec.target_field, *spec.fields]
    if spec.choices_field:
        needed.append(spec.choices_field)
    for where, raw_row in raw:
        if not isinstance(raw_row, dict):
            raise CatalogError(shown, where, "malformed row: expected a JSON object")
        for name in needed:
            if name not in raw_row:
                raise CatalogError(shown, f"{where}: {name}", "malformed row: field is missing")
        raw_id = raw_row[spec.id_field]
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
            raise CatalogError(
                shown,
                f"{where}: {spec.id_field}",
                f"id must be a non-empty string or integer, got {raw_id!r}",
            )
        sample_id = str(raw_id)
        if sample_id in seen:
            raise CatalogError(shown, f"{where}: {spec.id_field}", f"duplicate id '{sample_id}'")
        seen.add(sample_id)
        choices: list[str] = []
        if spec.choices_field:
            choices = _choices(raw_row[spec.choices_field], shown, f"{where}: {spec.choices_field}")
            targets = _choice_targets(
                raw_row[spec.target_field], choices, shown, f"{where}: {spec.target_field}"
            )
        else:
            targets = _answers(raw_row[spec.target_field], shown, f"{where}: {spec.target_field}")
        tags: list[str] = []
        if spec.tags_field:
            tags = raw_row.get(spec.tags_field) or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise CatalogError(
                    shown, f"{where}: {spec.tags_field}", "tags must be a list of strings"
                )
        fields = {name: raw_row[name] for name in spec.fields}
        if prompt is not None:
            problem = render_problem(prompt, fields)
            if problem:
                where_in_template, what = problem
                raise CatalogError(
                    display(prompt.path, root),
                    where_in_template or "template",
                    f"does not render for {shown} {where} (sample '{sample_id}'): {what}",
                )
        rows.append(
            {
                "sample_id": sample_id,
                "fields": fields,
                "target": targets[0],
                "targets": targets,
                "choices": choices,
                "tags": tags,
            }
        )
    if not rows:
        raise CatalogError(shown, "", "dataset has no rows")
    return tuple(rows)


def _choices(value: Any, shown: str, where: str) -> list[str]:
    # CSV cells and some exports hold the list as JSON text.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise CatalogError(shown, where, "choices must be a list (or a JSON list)") from None
    if hasattr(value, "tolist"):  # numpy arrays from parquet / datasets
        value = value.tolist()
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise CatalogError(shown, where, f"choices must be a list of at least two, got {value!r}")
    if not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in value):
        raise CatalogError(shown, where, "choices must be strings (or numbers)")
    choices = [str(c) for c in value]
    if len(set(choices)) != len(choices):
        raise CatalogError(shown, where, f"choices must be distinct, got {choices}")
    return choices


_INDEX = re.compile(r"[0-9]{1,9}")


def _choice_targets(value: Any, choices: list[str], shown: str, where: str) -> list[str]:
    """The correct choices' texts from an index, a choice's text, or a list of those."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise CatalogError(shown, where, "target names no choice")
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and item in choices:
            out.append(item)
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(choices):
            out.append(choices[item])
        elif isinstance(item, str) and _INDEX.fullmatch(item.strip()) and int(item) < len(choices):
            # An index read from a CSV cell: ASCII digits only (``"²".isdigit()`` is true,
            # and ``int("²")`` a bare ValueError).
            out.append(choices[int(item)])
        else:
            raise CatalogError(
                shown, where, f"target {item!r} is neither a choice nor an index into {choices}"
            )
    return list(dict.fromkeys(out))


def _answers(value: Any, shown: str, where: str) -> list[str]:
    """Acceptable answers of a generative row: a string, or a list of strings (any counts)."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and not value:
        raise CatalogError(shown, where, "target is an empty list")
    # Anything else is compared as its canonical JSON.
    return [value if isinstance(value, str) else stable_json(value)]


def _dataset_version(
    spec: DatasetSpec,
    rows: tuple[dict[str, Any], ...],
    fewshot_rows: tuple[dict[str, Any], ...] = (),
) -> str:
    # The version covers what changes results: the rows and how they are scored. The
    # description and licence text do not change it. Rows keep their original shape
    # (choices and extra targets only where present) so versions of datasets that use
    # neither stay what they were.
    payload: dict[str, Any] = {
        "rows": [_versioned(r) for r in rows],
        "target_field": spec.target_field,
        "scorers": [s.model_dump() for s in spec.scorers],
    }
    if spec.multiple_choice:
        payload["task"] = {"mode": spec.mode, "target_delimiter": spec.target_delimiter}
    if spec.fewshot:
        payload["fewshot"] = spec.fewshot.model_dump()
        if spec.fewshot.source:
            payload["fewshot_rows"] = [_versioned(r) for r in fewshot_rows]
    if spec.prompt_format:
        payload["prompt_format"] = spec.prompt_format
    return f"{spec.name}@{content_hash(payload, 12)}"


def _versioned(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("sample_id", "fields", "target", "tags")}
    if row.get("choices"):
        out["choices"] = row["choices"]
    if row.get("targets", [row["target"]]) != [row["target"]]:
        out["targets"] = row["targets"]
    return out
