"""What people do: batches of events and single interactions (swipes, clicks, likes...),
the signal the models learn from; a user token records only its own user's."""

from __future__ import annotations

from matchwise.api.deps import USER_TOKENS, PrincipalDep, StoreDep, act_for_events
from matchwise.api.routes.scopes import ingest_router
from matchwise.ingest.events import record_interaction, store_events
from matchwise.schemas import EventBatch, IngestResult, InteractionIn, InteractionOut

ingest = ingest_router()


@ingest.post("/v1/events", response_model=IngestResult, openapi_extra=USER_TOKENS)
async def post_events(batch: EventBatch, store: StoreDep, principal: PrincipalDep) -> IngestResult:
    """Record a batch of events; retried events (same event_id) are not counted twice. A
    match comes as user_a_id, user_b_id and match_type or as user_id and matched_user_id,
    and is refused between two people one of whom blocked the other (matches_refused); an
    impression without candidate_kind has it inferred from its ids. A user token may send
    only its user's events, and no matches."""
    act_for_events(principal, batch.events)
    return await store.write(store_events, store.settings, batch.events)


@ingest.post("/v1/interactions", response_model=InteractionOut, openapi_extra=USER_TOKENS)
async def post_interaction(
    interaction: InteractionIn, store: StoreDep, principal: PrincipalDep
) -> InteractionOut:
    """Record one interaction (a click, a like, a registration...); a user token only its
    own user's."""
    act_for_events(principal, [interaction])
    return await store.write(record_interaction, interaction, store.settings)
