"""Items (events, venues, products...): written in batches by an ingest key."""

from __future__ import annotations

from matchwise.api.deps import StoreDep
from matchwise.api.routes.scopes import ingest_router
from matchwise.ingest.profiles import store_items
from matchwise.schemas import ItemBatch, UpsertResult

ingest = ingest_router()


@ingest.post("/v1/items", response_model=UpsertResult)
async def post_items(batch: ItemBatch, store: StoreDep) -> UpsertResult:
    """Insert or update a batch of items (one transaction)."""
    return await store.write(store_items, store.settings, batch.items)
