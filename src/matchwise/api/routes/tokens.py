"""User tokens: an app's server mints one per user, so the app can call matchwise for
that user alone without holding an API key."""

from __future__ import annotations

from matchwise.api.deps import RuntimeDep
from matchwise.api.routes.scopes import ingest_router
from matchwise.ops.auth import mint_token
from matchwise.schemas import TokenIn, TokenOut

ingest = ingest_router()


@ingest.post("/v1/tokens", response_model=TokenOut, tags=["auth"])
async def post_token(body: TokenIn, runtime: RuntimeDep) -> TokenOut:
    """Mint a short-lived token for one user's app (an ingest or admin key): with it, the
    app reads only that user's recommendations and matches and records only that user's
    swipes and reports. Signed, not stored; it ends at ``expires_at``."""
    minted = mint_token(runtime.settings, body.user_id, body.scope, body.expires_in)
    return TokenOut(token=minted.token, expires_at=minted.expires_at,
                    user_id=minted.user_id, scope=minted.scope)  # fmt: skip
