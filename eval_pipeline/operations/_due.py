"""Which partitions the nightly suite should evaluate, and what the catalog gained."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Any: catalog entries as JSON (any JSON type).
from typing import Any

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.keys import PartitionKey

# Fields of a model entry that do not change what the model answers.
_NON_BEHAVIOURAL = ("description", "pricing", "limits")


@dataclass(frozen=True)
class LastResult:
    """The last successful suite run of a partition: its inputs and when it finished."""

    fingerprint: str | None
    finished_at: float


@dataclass(frozen=True)
class DuePartition:
    """A partition the suite should evaluate now, with why."""

    key: str
    fingerprint: str
    reason: str


def behavioural_entry(model_entry: Mapping[str, Any]) -> dict[str, Any]:
    """A model entry without the fields that do not change its answers."""
    return {k: v for k, v in model_entry.items() if k not in _NON_BEHAVIOURAL}


def inputs_fingerprint(
    model_entry: Mapping[str, Any], prompt_version: str, dataset_version: str
) -> str:
    """A short hash of everything a partition's result depends on."""
    entry = behavioural_entry(model_entry)
    return content_hash(
        {"model": entry, "prompt_version": prompt_version, "dataset_version": dataset_version}, 16
    )


def partition_fingerprints(catalog: Catalog, keys: Iterable[str]) -> dict[str, str]:
    """The current inputs fingerprint of each ``dataset|model`` key the catalog knows.

    Keys whose model or dataset left the catalog are left out. Reads each dataset's rows
    once (its version is a hash of the rows and scorers).
    """
    out: dict[str, str] = {}
    datasets: dict[str, tuple[str, str]] = {}
    # A grid of 10,000 cells has only 100 + 100 distinct inputs: dump each model entry
    # once, and hash each (model, dataset) pair once.
    entries: dict[str, dict[str, Any]] = {}
    for raw in keys:
        key = PartitionKey.parse(raw)
        if key.model not in catalog.models or key.dataset not in catalog.dataset_specs:
            continue
        if key.dataset not in datasets:
            ds = catalog.dataset(key.dataset)
            datasets[key.dataset] = (ds.prompt.version, ds.version)
        if key.model not in entries:
            entries[key.model] = catalog.models[key.model].model_dump(mode="json")
        prompt_version, dataset_version = datasets[key.dataset]
        out[raw] = inputs_fingerprint(entries[key.model], prompt_version, dataset_version)
    return out


def select_due(
    current: Mapping[str, str],
    last: Mapping[str, LastResult | None],
    *,
    now: float,
    max_age_s: float,
    in_flight: Iterable[str] = (),
) -> list[DuePartition]:
    """Partitions to evaluate: never evaluated, inputs changed, or last result too old.

    Args:
        current: Current fingerprint per partition key.
        last: The last successful result per partition key (None or absent: none).
        now: The evaluation time (epoch seconds), e.g. the tick's scheduled time.
        max_age_s: A result older than this is due even with unchanged inputs.
        in_flight: Keys with a run queued or in progress; never requested twice.
    """
    busy = set(in_flight)
    due = []
    for key in sorted(current):
        if key in busy:
            continue
        fingerprint, previous = current[key], last.get(key)
        if previous is None:
            reason = "never evaluated"
        elif previous.fingerprint != fingerprint:
            reason = "inputs changed"
        elif now - previous.finished_at > max_age_s:
            reason = f"last result older than {max_age_s / 3600:g}h"
        else:
            continue
        due.append(DuePartition(key=key, fingerprint=fingerprint, reason=reason))
    return due


def catalog_additions(
    models: Iterable[str],
    datasets: Iterable[str],
    seen_models: Iterable[str],
    seen_datasets: Iterable[str],
) -> list[str]:
    """Partition keys that a new model or a new dataset brings, sorted.

    A new model brings one partition per dataset; a new dataset one per model.
    """
    models, datasets = sorted(set(models)), sorted(set(datasets))
    new_models, new_datasets = set(models) - set(seen_models), set(datasets) - set(seen_datasets)
    return sorted(
        PartitionKey(model=m, dataset=d).key
        for m in models
        for d in datasets
        if m in new_models or d in new_datasets
    )


def catalog_fingerprint(models: Iterable[str], datasets: Iterable[str]) -> str:
    """A short hash of the catalog's model and dataset names (the partition grid)."""
    return content_hash({"models": sorted(set(models)), "datasets": sorted(set(datasets))}, 16)
