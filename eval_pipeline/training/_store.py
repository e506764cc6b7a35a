"""Where trained adapters live in the store, and the record of how each was made.

Layout (under the Parquet store's root)::

    adapters/recipe=<recipe>/<content hash>/          the peft adapter's files
    adapters/recipe=<recipe>/runs/<fingerprint>.json  how it was trained: the recipe, the
                                                      base identity, the train data
                                                      version, the training report

The folder is named by the hash of its own files, so a model spec that points at it names
its content; the fingerprint (recipe + base identity + train data) maps to that folder, so
an unchanged recipe finds its adapter without training.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Any: training settings as JSON (any JSON type).
from typing import Any

from eval_pipeline.core.hashing import directory_hash
from eval_pipeline.storage import atomic_write_text

ADAPTERS_DIR = "adapters"


@dataclass(frozen=True)
class TrainingReport:
    """How a training run went (the Dagster side shows these as metadata)."""

    steps: int
    epochs: float
    examples: int
    examples_cut: int
    train_tokens: int
    """Tokens the model read (prompt and completion, no padding), over every step."""
    completion_tokens: int
    """Tokens the loss covered, over every step."""
    loss_curve: tuple[float, ...]
    """The mean completion-token loss of each step."""
    wall_s: float
    tokens_per_s: float
    peak_memory_gb: float
    """The accelerator's allocator peak on a GPU, else the process's peak RSS."""
    device: str
    quantization: str
    """``4bit`` (QLoRA) or ``none``."""
    optimizer: str
    trainable_params: int

    @property
    def first_loss(self) -> float | None:
        return self.loss_curve[0] if self.loss_curve else None

    @property
    def final_loss(self) -> float | None:
        return self.loss_curve[-1] if self.loss_curve else None


@dataclass(frozen=True)
class TrainedAdapter:
    """An adapter in the store and the record of the training that made it."""

    recipe: str
    base: str
    path: str
    content_hash: str
    fingerprint: str
    train_version: str
    prompt_version: str
    report: TrainingReport
    settings: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    """True when this call found the adapter in the store instead of training it."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def recipe_dir(store_root: str | os.PathLike[str], recipe: str) -> Path:
    """``<store>/adapters/recipe=<recipe>``."""
    return Path(store_root) / ADAPTERS_DIR / f"recipe={recipe}"


def record_path(store_root: str | os.PathLike[str], recipe: str, fingerprint: str) -> Path:
    return recipe_dir(store_root, recipe) / "runs" / f"{fingerprint}.json"


def find_adapter(
    store_root: str | os.PathLike[str], recipe: str, fingerprint: str
) -> TrainedAdapter | None:
    """The stored adapter trained for ``fingerprint``, or None (also when its folder is gone)."""
    path = record_path(store_root, recipe, fingerprint)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    adapter = recipe_dir(store_root, recipe) / data["content_hash"]
    if directory_hash(adapter) != data["content_hash"]:
        return None  # removed or edited by hand: train again
    data["report"] = TrainingReport(
        **{**data["report"], "loss_curve": tuple(data["report"]["loss_curve"])}
    )
    data["path"] = str(adapter)
    data["reused"] = True
    return TrainedAdapter(**data)


def store_adapter(
    store_root: str | os.PathLike[str], staged: Path, adapter: TrainedAdapter
) -> TrainedAdapter:
    """Move the adapter files in ``staged`` into the store under their content hash.

    ``adapter`` carries everything but ``path`` and ``content_hash``, which this fills in;
    the record is written last, so a reader that finds a record finds its folder.
    """
    digest = directory_hash(staged)
    if digest is None:
        raise FileNotFoundError(f"no adapter files in {staged}")
    target = recipe_dir(store_root, adapter.recipe) / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory_hash(target) == digest:
        shutil.rmtree(staged)  # the same weights are stored already
    else:
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    stored = TrainedAdapter(
        **{**asdict(adapter), "report": adapter.report, "path": str(target), "content_hash": digest}
    )
    record = asdict(stored)
    record.pop("path")  # the folder follows from the store root, wherever it is mounted
    record.pop("reused")
    atomic_write_text(
        record_path(store_root, adapter.recipe, adapter.fingerprint),
        json.dumps(record, indent=2, sort_keys=True),
    )
    return stored
