r"""lm-evaluation-harness tasks as datasets: lm-eval's task layer, this pipeline's model calls.

A dataset with ``loader: lm_eval`` names an lm-eval task or group (``loader_options.task``,
from the pinned ``lm-eval`` package) or a task YAML of its own (``task_file``). lm-eval's
own code then does what it defines: the documents (``process_docs``), the prompt
(``description``, ``doc_to_text`` / ``doc_to_choice`` / ``doc_to_target``, delimiters,
few-shot examples drawn by its samplers from its seeded generator, chat templates with
``fewshot_as_multiturn`` and a system instruction), the requests (``construct_requests``),
the answer filters (``filter_list``) and the metrics (``process_results``,
``aggregation``, groups' ``aggregate_metric_list``). This pipeline makes the model calls,
caches them, partitions and stores the results; nothing is downloaded
(:mod:`eval_pipeline.catalog._lmeval_data` finds the data).

What travels between the stages is plain data: a row per document (its ``doc`` and
task), and per model a list of :class:`LmRequest` (the contexts and continuations, or
the generation settings, exactly as lm-eval built them). The scores are lm-eval's
per-document metric values; the aggregates its aggregation functions' values.

Finding a task by name means indexing lm-eval's task folders (about 7 s); the index is
kept in the user cache (``<cache>/lm_eval/``) per lm-eval version, and a task is then
built from the few folders it needs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

# Any: lm-eval's tasks, instances and metrics (lm-eval ships no types).
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from eval_pipeline.catalog._lmeval_data import LocalDataMissing, hub_allowed, load_local
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import content_hash, stable_json
from eval_pipeline.core.paths import user_cache_dir

# lm-eval's default few-shot seed (``simple_evaluate(fewshot_random_seed=1234)``).
DEFAULT_FEWSHOT_SEED = 1234
# The output types this pipeline runs. lm-eval's multiple-choice tasks with several
# contexts per document (WinoGrande) and ``acc_mutual_info`` are not among them.
OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")
NONE_FILTER = "none"

log = logging.getLogger(__name__)


class LmEvalOptions(BaseModel):
    """``loader_options`` of an ``lm_eval`` dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str | None = None
    """A task or group of the installed lm-eval package (``mmlu``, ``arc_easy``)."""
    task_file: str | None = None
    """Or a task or group YAML of your own (relative to the dataset's folder)."""
    num_fewshot: int | None = Field(None, ge=0, le=64)
    """lm-eval's ``--num_fewshot`` (None: the task's own; a task whose config says 0 keeps 0)."""
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    """lm-eval's ``--fewshot_random_seed``."""
    system_instruction: str | None = None
    """lm-eval's ``--system_instruction``."""
    fewshot_as_multiturn: bool = True
    """Chat prompts: few-shot examples as user/assistant turns (lm-eval's flag; like lm-eval,
    on by default when a chat template is applied); false puts them in one user turn."""
    allow_hub: bool = False
    """Fetch a dataset from the Hugging Face hub when no local copy exists."""
    repeats: int | None = Field(None, ge=1, le=1024)
    """Samples per document of a generation task that asks for several (self-consistency,
    majority vote); None: the task's own ``repeats``. A filter that takes the first ``k``
    samples (``take_first_k``) needs ``repeats`` of at least ``k``."""

    @model_validator(mode="after")
    def _one_task(self) -> LmEvalOptions:
        if (self.task is None) == (self.task_file is None):
            raise ValueError("give exactly one of task (an lm-eval task name) or task_file")
        return self

    def label(self) -> str:
        return self.task or Path(self.task_file or "").stem


@dataclass(frozen=True)
class LmRequest:
    """What lm-eval asks of the model for one document, in this pipeline's terms.

    ``kind``: ``multiple_choice`` and ``loglikelihood`` score ``continuations`` after the
    context (``loglikelihood`` also needs whether each is the greedy continuation);
    ``loglikelihood_rolling`` scores ``continuations[0]`` (the whole text) with no context;
    ``generate_until`` writes after the context until a ``stop`` string or ``max_tokens``.
    ``context`` is the text (completion prompts) or, with ``messages`` set, the chat.
    """

    kind: str
    context: str
    messages: tuple[tuple[str, str], ...] = ()
    continuations: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None


@dataclass
class LmEvalSource:
    """One lm-eval task or group, built with local data: its leaves, groups and options."""

    name: str
    options: LmEvalOptions
    leaves: dict[str, Any]  # leaf task name -> lm-eval ConfigurableTask
    groups: list[Any]  # lm-eval Group objects, outermost first
    yaml_path: Path | None
    _docs: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_group(self) -> bool:
        return bool(self.groups) or len(self.leaves) > 1

    @property
    def output_types(self) -> set[str]:
        return {task.OUTPUT_TYPE for task in self.leaves.values()}

    @property
    def repeats(self) -> int:
        """Samples per document (lm-eval's ``repeats``; the same for every leaf)."""
        return max((_repeats(task) for task in self.leaves.values()), default=1)

    def docs(self, leaf: str) -> list[dict[str, Any]]:
        """The evaluation documents of ``leaf``, in lm-eval's order (its doc ids)."""
        if leaf not in self._docs:
            self._docs[leaf] = [dict(d) for d in self.leaves[leaf].eval_docs]
        return self._docs[leaf]

    def config_text(self) -> str:
        """Every leaf's and group's resolved configuration, canonical (versions the prompt)."""
        payload: dict[str, Any] = {
            "lm_eval": lm_eval_version(),
            "options": self.options.model_dump(mode="json"),
            "tasks": {name: _plain(t.dump_config()) for name, t in sorted(self.leaves.items())},
            "groups": [_plain(_group_config(g)) for g in self.groups],
        }
        return json.dumps(payload, indent=1, sort_keys=True, default=str)

    def sample_id(self, leaf: str, doc_id: int) -> str:
        return f"{leaf}/{doc_id}" if self.is_group else str(doc_id)

    def rows(self) -> list[dict[str, Any]]:
        """One raw row per document: ``id``, ``doc``, ``task``, ``doc_id``, ``target``, ``choices``.

        ``target`` is the correct choice's text (multiple choice) or lm-eval's target text;
        a multiple-choice row may have several correct choices.
        """
        out = []
        for leaf, task in self.leaves.items():
            for doc_id, doc in enumerate(self.docs(leaf)):
                choices: list[str] = []
                if task.OUTPUT_TYPE == "multiple_choice":
                    choices = [str(c) for c in task.doc_to_choice(doc)]
                    targets = _gold_choices(task.doc_to_target(doc), choices)
                else:
                    raw = task.doc_to_target(doc)
                    targets = [str(t) for t in raw] if isinstance(raw, list) else [str(raw)]
                out.append(
                    {
                        "id": self.sample_id(leaf, doc_id),
                        "doc": _plain(doc),
                        "task": leaf,
                        "doc_id": doc_id,
                        "target": targets or [""],
                        "choices": choices,
                    }
                )
        return out

    def requests(
        self, wanted: Sequence[tuple[str, int]], chat: bool
    ) -> dict[tuple[str, int], LmRequest]:
        """lm-eval's request for each (leaf, doc id) in ``wanted``, as chat or completion.

        Few-shot examples come from each leaf's sampler, reseeded here, drawing for every
        document from the first to the last one wanted in order: lm-eval's random draw
        depends on the documents before, so a document's examples equal lm-eval's for any
        ``--limit`` that includes it.
        """
        by_leaf: dict[str, set[int]] = {}
        for leaf, doc_id in wanted:
            by_leaf.setdefault(leaf, set()).add(doc_id)
        out: dict[tuple[str, int], LmRequest] = {}
        with self._lock:  # the samplers are stateful
            for leaf, ids in by_leaf.items():
                task = self.leaves[leaf]
                task.set_fewshot_seed(seed=self.options.fewshot_seed)
                docs = self.docs(leaf)
                for doc_id in range(max(ids) + 1):
                    request = self._request(task, docs[doc_id], doc_id, chat)
                    if doc_id in ids:
                        out[(leaf, doc_id)] = request
        return out

    def _request(self, task: Any, doc: dict[str, Any], doc_id: int, chat: bool) -> LmRequest:
        template = _capture_chat if chat else None
        ctx = task.fewshot_context(
            doc,
            num_fewshot=task.config.num_fewshot or 0,
            system_instruction=self.options.system_instruction,
            apply_chat_template=chat,
            fewshot_as_multiturn=self.options.fewshot_as_multiturn,
            chat_template=template,
            gen_prefix=task.doc_to_prefix(doc),
        )
        instances = task.construct_requests(
            doc=doc,
            ctx=ctx,
            metadata=(task.config.task, doc_id, task.config.repeats),
            apply_chat_template=chat,
            chat_template=template,
        )
        if not isinstance(instances, list):
            instances = [instances]
        kind = task.OUTPUT_TYPE
        first = instances[0].arguments
        if kind == "loglikelihood_rolling":
            return LmRequest(kind, "", continuations=(first[0],))
        context, messages = _context(first[0], chat)
        if kind in ("multiple_choice", "loglikelihood"):
            contexts = {i.arguments[0] for i in instances}
            if len(contexts) != 1:
                raise CatalogError(
                    "lm_eval",
                    task.config.task,
                    "documents with several contexts (multiple inputs, acc_mutual_info) "
                    "are not supported",
                )
            return LmRequest(
                kind,
                context,
                messages,
                continuations=tuple(i.arguments[1] for i in instances),
            )
        settings = dict(first[1] or {})
        until = settings.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        temperature = settings.get("temperature")
        if not settings.get("do_sample", False):
            temperature = 0.0
        return LmRequest(
            kind,
            context,
            messages,
            stop=tuple(until),
            max_tokens=int(settings.get("max_gen_toks", 256)),
            temperature=None if temperature is None else float(temperature),
            top_p=settings.get("top_p"),
        )

    def score(
        self, leaf: str, doc: dict[str, Any], doc_id: int, responses: Sequence[Any]
    ) -> dict[str, tuple[Any, Any]]:
        """lm-eval's metrics for one document: ``{metric key: (item, filtered answer)}``.

        ``responses`` are lm-eval's raw responses for the document's requests, in request
        order: ``(loglikelihood, is_greedy)`` per continuation, the rolling
        log-likelihood, or the generated texts (one per repeat). The task's filter
        pipelines run over them as lm-eval runs them, then ``process_results`` per
        filter. Metric keys read ``<metric>`` for lm-eval's ``none`` filter and
        ``<metric>,<filter>`` otherwise, as lm-eval reports them.
        """
        from lm_eval.api.instance import Instance

        _seed_langdetect()
        task = self.leaves[leaf]
        kind = task.OUTPUT_TYPE
        request_type = "loglikelihood" if kind == "multiple_choice" else kind
        meta = (task.config.task, doc_id, task.config.repeats)
        if kind == "generate_until":
            instances = [Instance(request_type, doc, (), 0, meta, resps=list(responses))]
        else:
            instances = [
                Instance(request_type, doc, (), i, meta, resps=[r]) for i, r in enumerate(responses)
            ]
        out: dict[str, tuple[Any, Any]] = {}
        for ensemble in task._filters:
            ensemble.apply(instances)
            results = [inst.filtered_resps[ensemble.name] for inst in instances]
            with seeded_random():
                metrics = task.process_results(doc, results)
            answer = results[0] if kind == "generate_until" else None
            for metric, item in metrics.items():
                out[metric_key(metric, ensemble.name)] = (_plain(item), _plain(answer))
        return out

    def aggregation(self, leaf: str, metric: str) -> Callable[[list[Any]], float] | None:
        """lm-eval's aggregation function of ``metric`` (a metric key) in ``leaf``."""
        base = metric.split(",", 1)[0]
        return self.leaves[leaf].aggregation().get(base)

    def higher_is_better(self, leaf: str, metric: str) -> bool | None:
        return self.leaves[leaf].higher_is_better().get(metric.split(",", 1)[0])

    def aggregate(
        self, items: dict[str, dict[str, list[Any]]]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Per leaf and per group: each metric's value, stderr and sample count.

        ``items``: ``{leaf: {metric key: [item per document]}}``. Returns
        ``(leaves, groups)``, each ``{name: {metric key: {"value", "stderr", "n"}}}``;
        groups aggregate their leaves as their ``aggregate_metric_list`` says (MMLU: the
        mean weighted by size), with lm-eval's own functions.
        """
        from lm_eval.api.metrics import mean, mean_stderr

        leaves: dict[str, dict[str, Any]] = {}
        flat: dict[str, dict[str, Any]] = {}
        for leaf, metrics in items.items():
            leaves[leaf] = {}
            lm_view: dict[str, Any] = {"sample_len": 0}
            for metric, values in metrics.items():
                agg = self.aggregation(leaf, metric)
                if agg is None or not values:
                    continue
                value = float(agg(values))
                # A mean's stderr in closed form, as lm-eval; other aggregations get none.
                stderr = float(mean_stderr(values)) if agg is mean and len(values) > 1 else None
                leaves[leaf][metric] = {"value": value, "stderr": stderr, "n": len(values)}
                name, _, flt = metric.partition(",")
                key = f"{name},{flt or NONE_FILTER}"
                lm_view[key] = value
                if stderr is not None:
                    lm_view[f"{name}_stderr,{flt or NONE_FILTER}"] = stderr
                lm_view["sample_len"] = max(lm_view["sample_len"], len(values))
            flat[leaf] = lm_view
        groups: dict[str, dict[str, Any]] = {}
        for group in self.groups:
            if not group.has_aggregation:
                continue
            try:
                result = group.aggregate(flat)
            except (AssertionError, ZeroDivisionError, ValueError):
                # Too few documents for a pooled stderr (a run limited to one per task).
                result = group.aggregate(_without_stderrs(flat))
            size = int(result.get("sample_len") or 0)
            groups[group.name] = {}
            for key, value in result.items():
                if "," not in key or "_stderr," in key or not isinstance(value, int | float):
                    continue
                name, flt = key.split(",", 1)
                stderr = result.get(f"{name}_stderr,{flt}")
                ok = isinstance(stderr, int | float) and not math.isnan(float(stderr))
                groups[group.name][metric_key(name, flt)] = {
                    "value": float(value),
                    "stderr": float(stderr) if ok else None,
                    "n": size,
                }
        return leaves, groups


@contextlib.contextmanager
def seeded_random(seed: int = 0) -> Iterator[None]:
    """Python's random generator seeded for one document's scoring, then put back.

    IFEval's checkers draw random values for the instruction arguments lm-eval drops as
    falsy (a count of 0, an empty string): unseeded, the same answer can pass or fail
    depending on what ran before. Seeded per document, a score depends on the document
    and the answer alone.
    """
    import random

    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _seed_langdetect() -> None:
    # IFEval's language checkers call langdetect, which draws random numbers: unseeded,
    # the same answer can pass one run and fail the next. Seeded, a rerun reproduces
    # every score.
    try:
        from langdetect import DetectorFactory
    except ImportError:
        return
    DetectorFactory.seed = 0


def _without_stderrs(flat: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        leaf: {k: v for k, v in metrics.items() if "_stderr," not in k}
        for leaf, metrics in flat.items()
    }


def metric_key(metric: str, filter_name: str) -> str:
    """``acc`` for lm-eval's ``acc,none``; ``exact_match,strict-match`` otherwise."""
    return metric if filter_name == NONE_FILTER else f"{metric},{filter_name}"


def item_value(item: Any) -> float | None:
    """One document's number for paired tests and the explorer: the item, or its mean.

    Numbers and booleans are themselves; a list of booleans (IFEval's per-instruction
    results) is their mean; a ``(log-likelihood, weight)`` pair (perplexities) is the
    log-likelihood; anything else has none.
    """
    if isinstance(item, bool | int | float):
        return float(item)
    if isinstance(item, list) and item and all(isinstance(v, bool | int | float) for v in item):
        if len(item) == 2 and not all(isinstance(v, bool) for v in item):
            return float(item[0])
        return sum(float(v) for v in item) / len(item)
    return None


# -- building tasks ---------------------------------------------------------------------


def lm_eval_version() -> str:
    return importlib.metadata.version("lm_eval")


def _tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


@cache
def task_index() -> dict[str, dict[str, Any]]:
    """Every task, group and tag of the installed lm-eval: kind, YAML file, members.

    Built once per lm-eval version (lm-eval's own ``TaskIndex`` over its task folders,
    about 7 s) and kept as JSON beside the installation that holds that version (the
    virtualenv's ``var/eval_pipeline/``, which ``make`` fills), or in the user cache where
    that folder is not writable.
    """
    for path in _index_paths():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    from lm_eval.tasks._index import TaskIndex

    tasks_dir = _tasks_dir()
    index: dict[str, dict[str, Any]] = {}
    for name, entry in TaskIndex.build([tasks_dir]).items():
        yaml_path = entry.yaml_path
        members: list[str] = []
        if entry.kind.name == "GROUP":
            members = sorted(set(_member_names((entry.cfg or {}).get("task"))))
        elif entry.kind.name == "TAG":
            members = sorted(entry.tags)
        index[name] = {
            "kind": entry.kind.name,
            "yaml": str(yaml_path.relative_to(tasks_dir)) if yaml_path else None,
            "members": members,
        }
    for path in _index_paths():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(index, sort_keys=True))
            temporary.replace(path)
            break
        except OSError:
            continue
    return index


def _index_paths() -> list[Path]:
    name = f"lm_eval-index-{lm_eval_version()}.json"
    return [Path(sys.prefix) / "var" / "eval_pipeline" / name, user_cache_dir() / "lm_eval" / name]


def _member_names(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _member_names(item)
    elif isinstance(value, dict):
        for key in ("task", "group"):
            if isinstance(value.get(key), str):
                yield value[key]
        if isinstance(value.get("task"), list):
            yield from _member_names(value["task"])


def task_folders(name: str) -> list[Path]:
    """The lm-eval task folders that define ``name`` and everything it includes."""
    return sorted({path.parent for _, path in _included([name])})


def _included(names: Sequence[str]) -> Iterator[tuple[str, Path]]:
    """Each index entry ``names`` reach through groups and tags: (its kind, its YAML file)."""
    index, tasks_dir = task_index(), _tasks_dir()
    pending, seen = list(names), set()
    while pending:
        name = pending.pop()
        if name in seen or name not in index:
            continue
        seen.add(name)
        entry = index[name]
        if entry["yaml"]:
            yield entry["kind"], tasks_dir / entry["yaml"]
        pending.extend(entry["members"])


def known_task(name: str) -> bool:
    return name in task_index()


def lm_eval_task_problem(options: LmEvalOptions, spec_dir: Path) -> str | None:
    """Why ``options``' task cannot run here, or None; cheap (no task is built).

    Checks that the task exists and that every leaf's evaluation split has a local copy
    (or the hub is allowed), from the task YAML files alone.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    from eval_pipeline.catalog._lmeval_data import local_splits, missing_message

    if options.task_file:
        path = Path(options.task_file).expanduser()
        path = path if path.is_absolute() else spec_dir / path
        if not path.is_file():
            return f"lm-eval task file {path} does not exist"
        yaml_files = [path]
        names = _yaml_references(path)
    else:
        if not known_task(str(options.task)):
            return f"lm-eval {lm_eval_version()} has no task, group or tag {options.task!r}"
        yaml_files, names = [], [str(options.task)]
    yaml_files += [path for kind, path in _included(names) if kind in ("TASK", "PY_TASK")]
    if hub_allowed(options.allow_hub):
        return None
    for path in yaml_files:
        try:
            cfg = load_yaml(path, resolve_func=False)
        except Exception as exc:  # a broken YAML is the task's problem to report
            return f"cannot read {path}: {exc}"
        dataset_path = cfg.get("dataset_path")
        kwargs = cfg.get("dataset_kwargs") or {}
        if "group" in cfg:
            continue
        if "class" in cfg:
            return f"{path.name}: tasks defined by a Python class are not supported"
        if cfg.get("custom_dataset") is not None or (
            isinstance(kwargs, dict) and kwargs.get("data_files")
        ):
            problem = own_data_problem(
                cfg.get("custom_dataset"), kwargs if isinstance(kwargs, dict) else {}
            )
            if problem:
                return f"{path.name}: {problem}"
            continue
        if not dataset_path:
            continue
        split = cfg.get("test_split") or cfg.get("validation_split")
        held = local_splits(dataset_path, cfg.get("dataset_name"))
        if split and split not in held:
            if not held:
                return missing_message(dataset_path, cfg.get("dataset_name"))
            return (
                f"dataset {dataset_path!r} ({cfg.get('dataset_name') or 'none'}) has no local "
                f"split {split!r} (local: {sorted(held)})"
            )
    return None


_SOURCES: dict[str, LmEvalSource] = {}
_SOURCES_LOCK = threading.Lock()


def load_source(options: LmEvalOptions, spec_dir: Path, shown: str) -> LmEvalSource:
    """The task or group of ``options`` built with local data (once per process).

    Raises:
        CatalogError: Unknown task, no local data for one of its datasets, an output type
            or request shape this pipeline does not run; naming ``shown`` and the field.
    """
    key = stable_json({"options": options.model_dump(mode="json"), "dir": str(spec_dir)})
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = _build_source(options, spec_dir, shown)
        return _SOURCES[key]


def _repeats(task: Any) -> int:
    return int(task.config.repeats or 1)


def _build_source(options: LmEvalOptions, spec_dir: Path, shown: str) -> LmEvalSource:
    from lm_eval.api.group import Group
    from lm_eval.tasks import TaskManager

    field_name = "loader_options.task" if options.task else "loader_options.task_file"
    yaml_path, folders, spec_name = _task_location(options, spec_dir, shown, field_name)
    manager = TaskManager(include_defaults=False, include_path=sorted(set(folders)))
    manager._factory = _local_factory(hub_allowed(options.allow_hub), manager._factory._meta)
    try:
        with no_downloads():
            built = manager.load([spec_name])
    except LocalDataMissing as exc:
        raise CatalogError(shown, field_name, str(exc)) from exc
    except CatalogError:
        raise
    except Exception as exc:  # lm-eval's own errors while building the task
        raise CatalogError(
            shown, field_name, f"lm-eval could not build {spec_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    leaves = dict(sorted(built["tasks"].items()))
    groups: list[Group] = list(built["groups"].values())
    for leaf, task in leaves.items():
        _prepare_task(task, leaf, options, shown, field_name)
    counts = {leaf: _repeats(task) for leaf, task in leaves.items()}
    if len(set(counts.values())) > 1:
        raise CatalogError(
            shown,
            field_name,
            f"the tasks ask for different repeats per document ({counts}); a dataset "
            "samples every document the same number of times",
        )
    return LmEvalSource(
        name=spec_name,
        options=options,
        leaves=leaves,
        groups=groups,
        yaml_path=yaml_path,
    )


def _task_location(
    options: LmEvalOptions, spec_dir: Path, shown: str, field_name: str
) -> tuple[Path | None, list[Path], str]:
    """The task file (if given), the folders lm-eval reads tasks from, and the name to load."""
    yaml_path: Path | None = None
    if options.task_file:
        yaml_path = Path(options.task_file).expanduser()
        yaml_path = yaml_path if yaml_path.is_absolute() else spec_dir / yaml_path
        if not yaml_path.is_file():
            raise CatalogError(shown, field_name, f"{yaml_path} does not exist")
        folders = [yaml_path.parent]
        # Loaded by its name from its folder: lm-eval loads a group file given by path
        # as if its task list were its name.
        spec_name = _yaml_name(yaml_path)
        referenced = _yaml_references(yaml_path)
        for name in referenced:
            folders += task_folders(name)
    else:
        name = str(options.task)
        if not known_task(name):
            raise CatalogError(
                shown,
                field_name,
                f"lm-eval {lm_eval_version()} has no task, group or tag {name!r}",
            )
        folders = task_folders(name)
        spec_name = name
    return yaml_path, folders, spec_name


def _prepare_task(
    task: Any, leaf: str, options: LmEvalOptions, shown: str, field_name: str
) -> None:
    """Refuse a task this pipeline cannot run; set its repeats, few-shot count and seed."""
    if task.OUTPUT_TYPE not in OUTPUT_TYPES:
        raise CatalogError(
            shown, field_name, f"task {leaf!r}: output type {task.OUTPUT_TYPE!r} is not run"
        )
    if getattr(task, "multiple_input", 0):
        raise CatalogError(
            shown,
            field_name,
            f"task {leaf!r} gives each choice its own context (multiple inputs); not supported yet",
        )
    if options.repeats is not None:
        if task.OUTPUT_TYPE != "generate_until":
            raise CatalogError(
                shown,
                "loader_options.repeats",
                f"task {leaf!r} is {task.OUTPUT_TYPE}: repeats apply to generation tasks",
            )
        task.config.repeats = options.repeats
    for ensemble in task._filters:
        for step in ensemble.filters:
            k = getattr(step, "keywords", {}).get("k")
            if isinstance(k, int) and k > _repeats(task):
                raise CatalogError(
                    shown,
                    "loader_options.repeats",
                    f"task {leaf!r}: filter {ensemble.name!r} takes the first {k} "
                    f"samples of a document, but there are {_repeats(task)} (repeats)",
                )
    if _repeats(task) > 1 and task.OUTPUT_TYPE != "generate_until":
        raise CatalogError(
            shown,
            field_name,
            f"task {leaf!r} asks for {task.config.repeats} repeats of a "
            f"{task.OUTPUT_TYPE} request; only generation samples differ between repeats",
        )
    if "acc_mutual_info" in task._metric_fn_list:
        raise CatalogError(
            shown, field_name, f"task {leaf!r}: acc_mutual_info is not supported yet"
        )
    try:
        _set_fewshot(task, options.num_fewshot)
    except LocalDataMissing as exc:
        raise CatalogError(shown, field_name, str(exc)) from exc
    task.set_fewshot_seed(seed=options.fewshot_seed)


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Keep lm-eval's task modules from downloading while they are imported.

    IFEval's checkers call ``nltk.download("punkt_tab")`` when their module is imported;
    nothing is fetched at run time here, so the call is refused (the checkers that need
    the data then fail on the prompts that use them, and those are reported apart).
    """
    try:
        import nltk
    except ImportError:
        yield
        return
    original = nltk.download

    def refuse(*args: Any, **kwargs: Any) -> bool:
        log.info("not downloading NLTK data %s: nothing is fetched at run time", args)
        return False

    nltk.download = refuse
    # lm-eval's IFEval module then prints that it downloaded the data; it did not.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        nltk.download = original
        if printed.getvalue().strip():
            log.debug("lm-eval printed while its tasks loaded: %s", printed.getvalue().strip())


def _set_fewshot(task: Any, requested: int | None) -> None:
    # As lm-eval's simple_evaluate: a requested count overrides the task's unless its
    # config pins 0; without one, a task that names none runs 0-shot.
    current = task.get_config("num_fewshot")
    if requested is not None and current != 0:
        task.set_config(key="num_fewshot", value=requested)
    elif current is None:
        task.set_config(key="num_fewshot", value=0)
    shots = task.get_config("num_fewshot") or 0
    if not shots:
        return
    pool = task.fewshot_docs() if getattr(task, "sampler", None) else None
    if pool is None or len(pool) < shots:
        split = task.fewshot_cfg.split or task.config.training_split or "none"
        raise LocalDataMissing(
            f"task {task.config.task!r} asks for {shots} few-shot examples from split "
            f"{split!r}, which holds {0 if pool is None else len(pool)} rows here"
        )


def own_data_problem(custom_dataset: Any, dataset_kwargs: dict[str, Any]) -> str | None:
    """Why a task's own data source is not local, or None.

    A task that builds its own documents (``custom_dataset``) usually downloads what it
    builds from; a task naming ``data_files`` may name URLs (``hf://``, ``https://``).
    """
    if custom_dataset is not None:
        return "builds its own documents (custom_dataset), which may download; not run offline"
    files = dataset_kwargs.get("data_files")
    values: list[Any] = list(files.values()) if isinstance(files, dict) else [files]
    names = [v for value in values for v in (value if isinstance(value, list) else [value])]
    remote = [str(n) for n in names if "://" in str(n) or not Path(str(n)).expanduser().exists()]
    if remote:
        return f"reads data files that are not on this machine ({remote[0]})"
    return None


def _yaml_name(path: Path) -> str:
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(path, resolve_func=False)
    name = cfg.get("group") if "group" in cfg else cfg.get("task")
    if not isinstance(name, str):
        raise CatalogError(str(path), "task", "a task file names its task or group")
    return name


def _yaml_references(path: Path) -> list[str]:
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(path, resolve_func=False)
    if "group" in cfg:
        return sorted(set(_member_names(cfg.get("task"))))
    return []


def _local_factory(allow_hub: bool, meta: dict[str, Any]) -> Any:
    """lm-eval's task factory, building tasks that read their data locally."""
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._factory import TaskFactory

    class LocalTask(ConfigurableTask):
        def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            kwargs = dict(dataset_kwargs or {})
            if callable(self.config.custom_dataset) or kwargs.get("data_files"):
                # A task reading files it names (json, csv, arrow...) or building its own:
                # only local files, unless the hub is allowed.
                problem = own_data_problem(self.config.custom_dataset, kwargs)
                if problem and not allow_hub:
                    raise LocalDataMissing(f"task {self.config.task!r} {problem}")
                super().download(dataset_kwargs)
                return
            try:
                load_task_data(self)
            except LocalDataMissing:
                if not allow_hub:
                    raise
                super().download(dataset_kwargs)

    class LocalFactory(TaskFactory):
        def _build_task(self, entry: Any, overrides: dict[str, Any] | None) -> Any:
            cfg = self._load_full_config(entry, overrides)
            for key in ("tag", "group", "task_list"):
                cfg.pop(key, None)
            if "class" in cfg:
                raise CatalogError(
                    "lm_eval",
                    str(cfg.get("task")),
                    "tasks defined by a Python class are not supported",
                )
            return LocalTask(config=cfg)

    return LocalFactory(meta=meta)


def load_task_data(task: Any) -> None:
    """Set an lm-eval task's ``dataset`` from the local copies of its data.

    lm-eval reaches for the training split to build its few-shot sampler even at
    0-shot; a split the local data lacks becomes an empty one of the same columns (a
    task that then asks for examples from it is refused: :func:`_set_fewshot`).

    Raises:
        LocalDataMissing: No local copy, or none of the split the task evaluates.
    """
    import datasets

    splits = load_local(task.DATASET_PATH, getattr(task, "DATASET_NAME", None))
    template = next(iter(splits.values()))
    for split in (
        task.config.training_split,
        task.config.validation_split,
        task.config.fewshot_split,
    ):
        if split and split not in splits:
            splits[split] = template.select([])
    eval_split = task.config.test_split or task.config.validation_split
    if eval_split and eval_split not in splits:
        raise LocalDataMissing(
            f"dataset {task.DATASET_PATH!r} ({task.DATASET_NAME or 'none'}) has no local "
            f"split {eval_split!r} (local splits: {sorted(k for k in splits if len(splits[k]))})"
        )
    task.dataset = datasets.DatasetDict(splits)


# -- helpers ----------------------------------------------------------------------------


def _capture_chat(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """A chat template that keeps the messages themselves (the model's template comes later)."""
    return json.dumps({"messages": messages, "add_generation_prompt": add_generation_prompt})


def _context(ctx: str, chat: bool) -> tuple[str, tuple[tuple[str, str], ...]]:
    if not chat:
        return ctx, ()
    captured = json.loads(ctx)
    messages = tuple((m["role"], m["content"]) for m in captured["messages"])
    return "", messages


def _gold_choices(gold: Any, choices: list[str]) -> list[str]:
    items = gold if isinstance(gold, list) else [gold]
    out = []
    for item in items:
        if isinstance(item, int) and 0 <= item < len(choices):
            out.append(choices[item])
        elif isinstance(item, str) and item in choices:
            out.append(item)
        elif isinstance(item, str) and item.strip().isdigit() and int(item) < len(choices):
            out.append(choices[int(item)])
    return list(dict.fromkeys(out))


def _group_config(group: Any) -> dict[str, Any]:
    return {
        "name": group.name,
        "children": list(group.child_names),
        "aggregate_metric_list": [
            {k: v for k, v in vars(a).items() if not k.startswith("_")}
            for a in group.aggregate_metric_list or []
        ],
    }


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data (numpy scalars and arrays, tuples, sets turned plain)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', value)}"
    return str(value)


def source_version(source: LmEvalSource) -> str:
    """A short hash of the task's resolved configuration."""
    return content_hash(source.config_text(), 12)


# -- discovery --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskListing:
    """One lm-eval name: its kind (task, group, tag) and, when checked, why it cannot run."""

    name: str
    kind: str
    problem: str | None = None
    checked: bool = False


def list_tasks(patterns: Sequence[str] = ("*",), *, check_local: bool = False) -> list[TaskListing]:
    """lm-eval's tasks, groups and tags whose names match the glob ``patterns``.

    With ``check_local``, each is checked for local data (:func:`lm_eval_task_problem`):
    the ones without a problem run by name with no network.
    """
    import fnmatch

    out = []
    for name, entry in sorted(task_index().items()):
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        kind = entry["kind"].lower().replace("py_task", "task")
        problem = None
        if check_local:
            problem = lm_eval_task_problem(LmEvalOptions(task=name), Path("."))
        out.append(TaskListing(name, kind, problem, check_local))
    return out


def dataset_spec_for(
    task: str,
    name: str,
    *,
    num_fewshot: int | None = None,
    primary_metric: str | None = None,
    suite: str | None = None,
) -> dict[str, Any]:
    """A ``dataset.yaml`` for lm-eval ``task`` (built here to find its metrics).

    The primary metric defaults to the first metric key the task reports. Raises
    :class:`CatalogError` when the task cannot be built here.
    """
    options = LmEvalOptions(task=task, num_fewshot=num_fewshot)
    source = load_source(options, Path("."), f"lm-eval task {task}")
    keys = []
    for leaf_task in source.leaves.values():
        for ensemble in leaf_task._filters:
            for metric in leaf_task._metric_fn_list:
                key = metric_key(metric, ensemble.name)
                if key not in keys:
                    keys.append(key)
    if primary_metric is not None and primary_metric not in keys:
        raise CatalogError(
            f"lm-eval task {task}", "primary_metric", f"{primary_metric!r} is not one of {keys}"
        )
    loader_options: dict[str, Any] = {"task": task}
    if num_fewshot is not None:
        loader_options["num_fewshot"] = num_fewshot
    spec: dict[str, Any] = {
        "name": name,
        "description": f"lm-evaluation-harness {'group' if source.is_group else 'task'} {task}",
        "source": f"lm-evaluation-harness {task} (lm-eval=={lm_eval_version()}); local data",
        "license": "see the dataset's own licence",
    }
    if suite:
        spec["suite"] = suite
    spec.update(
        loader="lm_eval",
        loader_options=loader_options,
        prompt_format="completion",
        primary_metric=primary_metric or (keys[0] if keys else "acc"),
    )
    return spec
