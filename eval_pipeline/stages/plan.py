"""What a run will ask and cost, per model, dataset and route, before any request is sent.

For each partition the requests are rendered and hashed exactly as generation renders
them; those already in the response cache cost nothing. For the others:

- input tokens: the same sample's measured input tokens in an earlier ``generations`` row
  of the dataset (this model first, then any model of the same provider), else about four
  characters per token of the rendered messages;
- output tokens: ``expected`` is the mean output tokens of the dataset's earlier rows
  (same order of preference), capped at ``max_tokens``; ``worst`` is ``max_tokens``;
- cost: at the route's prices (``batch``: :meth:`Pricing.batch_cost`; ``online`` and
  ``local``: the catalog's prices).

The worst case is what the budget reserves; the expected cost is the estimate a run's
actual cost is compared with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from eval_pipeline.catalog import Catalog
from eval_pipeline.engine.api import estimate_tokens
from eval_pipeline.engine.cache import ResponseCache
from eval_pipeline.providers.registry import provider_class
from eval_pipeline.stages.generate import partition_requests
from eval_pipeline.storage import Store


@dataclass(frozen=True)
class PartitionPlan:
    """The plan of one model x dataset partition."""

    model: str
    dataset: str
    route: str  # online, batch or local
    requests: int
    cached: int
    to_send: int
    input_tokens: int
    output_tokens_expected: int
    output_tokens_worst: int
    cost_expected_usd: float
    cost_worst_usd: float
    # Where the token figures came from: "measured" (earlier rows) or "estimated".
    basis: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def model_route(catalog: Catalog, model: str, batch: bool = False, route: str | None = None) -> str:
    """``local`` for models on this machine, else ``batch`` or ``online``.

    ``route`` (a run's tag) wins over ``batch`` (``--batch``), which wins over the catalog.
    """
    spec = catalog.model(model)
    if not provider_class(spec.provider).capabilities.async_generate:
        return "local"
    if route in ("batch", "online"):
        return route
    return "batch" if batch or spec.route == "batch" else "online"


def _history(store: Store, catalog: Catalog, model: str, dataset: str) -> pl.DataFrame | None:
    """Earlier answered rows of ``dataset``: this model's first, then its provider's."""
    provider = catalog.model(model).provider
    frames = []
    for slug, spec in catalog.models.items():
        if spec.provider != provider or not store.exists(
            "generations", dataset=dataset, model=slug
        ):
            continue
        frame = store.read("generations", dataset=dataset, model=slug)
        frame = frame.filter(pl.col("completion").is_not_null() & (pl.col("output_tokens") > 0))
        frames.append(
            frame.select("sample_id", "input_tokens", "output_tokens").with_columns(
                pl.lit(0 if slug == model else 1).alias("preference")
            )
        )
    if not frames:
        return None
    return pl.concat(frames).sort("preference")


def plan_partition(
    catalog: Catalog,
    store: Store,
    model: str,
    dataset: str,
    *,
    sample_limit: int | None = None,
    batch: bool = False,
    use_cache: bool = True,
    route: str | None = None,
) -> PartitionPlan:
    """The plan of one partition (reads the dataset tables; sends nothing)."""
    spec = catalog.model(model)
    route = model_route(catalog, model, batch, route)
    _, _, requests, _ = partition_requests(catalog, store, model, dataset, sample_limit)
    cache = ResponseCache(store.cache_dir)
    seen: set[str] = set()
    todo = []
    cached = 0
    for r in requests:
        if r.request_hash in seen:
            continue
        seen.add(r.request_hash)
        if use_cache and r.request_hash in cache:
            cached += 1
        else:
            todo.append(r)
    history = _history(store, catalog, model, dataset)
    measured_in: dict[str, int] = {}
    mean_out: float | None = None
    if history is not None and history.height:
        first = history.unique("sample_id", keep="first", maintain_order=True)
        measured_in = dict(zip(first["sample_id"], first["input_tokens"], strict=True))
        preferred = history.filter(pl.col("preference") == history["preference"].min())
        mean = preferred["output_tokens"].mean()
        mean_out = float(mean) if isinstance(mean, int | float) else 0.0
    input_tokens = out_expected = out_worst = 0
    cost_expected = cost_worst = 0.0
    for r in todo:
        chars = sum(len(m.content) for m in r.messages)
        tokens_in = measured_in.get(r.sample_id) or estimate_tokens(chars, 0)
        worst = r.sampling.max_tokens
        expected = min(worst, round(mean_out)) if mean_out is not None else worst
        input_tokens += tokens_in
        out_expected += expected
        out_worst += worst
        price = "batch" if route == "batch" else "online"
        cost_expected += spec.pricing.route_cost(price, tokens_in, expected)
        cost_worst += spec.pricing.route_cost(price, tokens_in, worst)
    return PartitionPlan(
        model=model,
        dataset=dataset,
        route=route,
        requests=len(requests),
        cached=cached,
        to_send=len(todo),
        input_tokens=input_tokens,
        output_tokens_expected=out_expected,
        output_tokens_worst=out_worst,
        cost_expected_usd=cost_expected,
        cost_worst_usd=cost_worst,
        basis="measured" if mean_out is not None else "estimated",
    )
