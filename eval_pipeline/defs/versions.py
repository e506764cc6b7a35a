"""What each grid cell's result depends on, as per-partition versions Dagster can follow.

Dagster gives an asset one ``code_version`` for all its partitions: a change to it makes
every partition stale. What changes one cell and not another (a dataset's prompt, a
model's revision, a dataset's scorers, a judge's rubric) is therefore recorded as the
data version of a partition of an external asset in the ``versions`` group:

- ``versions/model`` (one partition per model): the model entry minus the fields that do
  not change answers (description, pricing, rate limits): its revision, sampling and load
  options;
- ``versions/dataset`` (one per dataset): the prompt template's hash and the rows;
- ``versions/scorers`` (one per dataset): the scorers other than ``llm_judge`` with their
  parameters;
- ``versions/judges`` (one per dataset): the ``llm_judge`` scorers, each rubric's text
  and each judge model's version.

``generations`` depends on the first two, ``scores`` on the last two (through the grid's
``model`` and ``dataset`` dimensions), so a new data version of one partition makes only
the cells that read it stale, and the assets' automation conditions (``eager``) request
only those. ``versions_sensor`` records a new materialization of a partition when the
catalog on disk no longer matches the version it last recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dagster as dg

from eval_pipeline.catalog import Catalog
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.defs.jobs import VERSIONS_GROUP
from eval_pipeline.judge import JudgeParams, rubric_prompt
from eval_pipeline.model_task import judge_rubrics
from eval_pipeline.operations import behavioural_entry

JUDGE_SCORER = "llm_judge"


def model_version(catalog: Catalog, model: str) -> str:
    """The model's revision, sampling parameters and load options, hashed."""
    return content_hash(behavioural_entry(catalog.models[model].model_dump(mode="json")), 16)


def dataset_version(catalog: Catalog, dataset: str) -> str:
    """The prompt template's version and the dataset's rows, hashed (scorers left out)."""
    ds = catalog.dataset(dataset)
    rows = [{k: r.get(k) for k in ("sample_id", "fields", "target", "choices")} for r in ds.rows]
    spec = ds.spec.model_dump(mode="json", exclude={"scorers", "description"})
    return content_hash({"prompt": ds.prompt.version, "spec": spec, "rows": rows}, 16)


def scorer_version(catalog: Catalog, dataset: str) -> str:
    """The dataset's scorers other than ``llm_judge``, with their parameters, hashed."""
    scorers = catalog.dataset_specs[dataset].scorers
    return content_hash([s.model_dump(mode="json") for s in scorers if s.name != JUDGE_SCORER], 16)


def judge_version(catalog: Catalog, dataset: str) -> str:
    """The dataset's ``llm_judge`` scorers, rubric texts and judge models' versions, hashed.

    A dataset without judge metrics has the hash of nothing (it never changes).
    """
    judged = [
        s.model_dump(mode="json")
        for s in catalog.dataset_specs[dataset].scorers
        if s.name == JUDGE_SCORER
    ]
    rubrics = {
        r: rubric_prompt(catalog.root, r).version
        for s in catalog.dataset_specs[dataset].scorers
        if s.name == JUDGE_SCORER
        for r in [JudgeParams.model_validate(s.params).rubric]
    }
    judges = {j: model_version(catalog, j) for j, _ in judge_rubrics(catalog, dataset)}
    return content_hash({"scorers": judged, "rubrics": rubrics, "judges": judges}, 16)


@dataclass(frozen=True)
class VersionSource:
    """One ``versions/<name>`` asset: its grid dimension and how a partition is versioned."""

    name: str
    dimension: str
    version: Callable[[Catalog, str], str]
    description: str

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([VERSIONS_GROUP, self.name])


SOURCES = (
    VersionSource(
        "model",
        "model",
        model_version,
        "A model's revision, sampling parameters and load options (its models.yaml entry "
        "without description, pricing and rate limits), as the data version of its partition.",
    ),
    VersionSource(
        "dataset",
        "dataset",
        dataset_version,
        "A dataset's prompt template hash and rows, as the data version of its partition.",
    ),
    VersionSource(
        "scorers",
        "dataset",
        scorer_version,
        "A dataset's scorers (other than llm_judge) and their parameters.",
    ),
    VersionSource(
        "judges",
        "dataset",
        judge_version,
        "A dataset's llm_judge scorers, the text of each rubric and each judge model's version.",
    ),
)
GENERATION_SOURCES = ("model", "dataset")
SCORE_SOURCES = ("scorers", "judges")
# What one partition's verdicts depend on beyond its generations: the rubric and judges.
JUDGE_SOURCES = ("judges",)


def version_specs(grid: dg.MultiPartitionsDefinition) -> list[dg.AssetSpec]:
    """The ``versions/*`` external assets, each partitioned by its grid dimension."""
    return [
        dg.AssetSpec(
            source.key,
            description=source.description,
            group_name=VERSIONS_GROUP,
            partitions_def=grid.get_partitions_def_for_dimension(source.dimension),
            kinds={"yaml"},
        )
        for source in SOURCES
    ]


def version_deps(names: tuple[str, ...]) -> list[dg.AssetDep]:
    """Dependencies of a grid asset on the ``versions/<name>`` assets, by dimension."""
    by_name = {s.name: s for s in SOURCES}
    return [
        dg.AssetDep(
            by_name[n].key,
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                partition_dimension_name=by_name[n].dimension
            ),
        )
        for n in names
    ]


def current_versions(catalog: Catalog, models: list[str]) -> dict[str, dict[str, str]]:
    """Every ``versions/<name>`` partition's current version: ``{name: {partition: version}}``.

    ``models`` are the grid's models that the catalog holds (an untrained adapter model
    has no entry yet and no version).
    """
    out: dict[str, dict[str, str]] = {}
    for source in SOURCES:
        keys = models if source.dimension == "model" else catalog.dataset_names
        out[source.name] = {k: source.version(catalog, k) for k in keys if _known(catalog, k)}
    return out


def changed_versions(
    current: Mapping[str, Mapping[str, str]], recorded: Mapping[str, Mapping[str, str]]
) -> list[tuple[str, str, str]]:
    """``(name, partition, version)`` of every partition whose version differs from ``recorded``.

    A partition with no recorded version is not a change (see ``versions_sensor``).
    """
    changes = []
    for name, versions in sorted(current.items()):
        before = recorded.get(name, {})
        for partition, version in sorted(versions.items()):
            if partition in before and before[partition] != version:
                changes.append((name, partition, version))
    return changes


def version_event(name: str, partition: str, version: str) -> dg.AssetMaterialization:
    """The materialization that records ``version`` as the partition's data version."""
    return dg.AssetMaterialization(
        asset_key=dg.AssetKey([VERSIONS_GROUP, name]),
        partition=partition,
        metadata={"version": version},
        tags={"dagster/data_version": version},
    )


def _known(catalog: Catalog, key: str) -> bool:
    return key in catalog.models or key in catalog.dataset_specs
