"""Items (events, venues, products...): written in batches by an ingest key; items like
an item read with a read key or a user token."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Path, Query

from matchwise.api.deps import USER_TOKENS, RuntimeDep, StoreDep
from matchwise.api.routes.scopes import ingest_router, read_router
from matchwise.ingest.profiles import store_items
from matchwise.schemas import ItemBatch, SimilarOut, UpsertResult
from matchwise.serve.similar import similar_items
from matchwise.serve.types import RecommendFilters

ingest = ingest_router()
read = read_router()


@ingest.post("/v1/items", response_model=UpsertResult)
async def post_items(batch: ItemBatch, store: StoreDep) -> UpsertResult:
    """Insert or update a batch of items (one transaction)."""
    return await store.write(store_items, store.settings, batch.items)


@read.get("/v1/items/{item_id}/similar", response_model=SimilarOut, openapi_extra=USER_TOKENS)
async def get_similar_items(
    item_id: Annotated[str, Path(min_length=1, max_length=64, description="The item to match")],
    runtime: RuntimeDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many items at most")] = 10,
    category: Annotated[
        str | None, Query(max_length=120, description="Only items of this category")
    ] = None,
    city: Annotated[
        str | None, Query(max_length=120, description="Only items in this city")
    ] = None,
    include_past: Annotated[
        bool, Query(description="Also items whose start time has passed")
    ] = False,
) -> SimilarOut:
    """Active items like this one ("more like this"), most alike first: from the active
    model's item vectors, or from co-occurrence when no loaded model knows the item (the
    answer's ``source`` says which). Never the item itself; past items only with
    ``include_past``."""
    filters = RecommendFilters(category=category, city=city, include_past=include_past)
    return await store.read(partial(similar_items, runtime), item_id, limit, filters)
