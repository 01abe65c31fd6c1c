"""Safety: the classifier asked about a text or a stored profile, and the moderator
labels it retrains on."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from matchwise.api.actor import Actor
from matchwise.api.deps import RuntimeDep, StoreDep, check_key
from matchwise.api.routes.scopes import BODY_ERRORS, admin_router, read_router
from matchwise.ops import safety as safety_service
from matchwise.schemas import LabelIn, SafetyIn, SafetyOut

read = read_router()
admin = admin_router()


@read.post("/v1/safety/classify", response_model=SafetyOut, responses=BODY_ERRORS)
async def post_safety_classify(body: SafetyIn, request: Request, runtime: RuntimeDep) -> SafetyOut:
    """Per-label probabilities and decisions for a text (read scope) and/or a stored
    profile (admin scope: another person's safety signals are not for every reader)."""
    if body.profile_id is not None:
        await check_key(request, "admin")
    result = await run_in_threadpool(safety_service.classify, runtime, body.text,
                                     body.profile_id, body.thresholds)  # fmt: skip
    return SafetyOut(**result)


@admin.post("/v1/admin/safety/labels", response_model=dict[str, int])
async def post_safety_label(body: LabelIn, store: StoreDep, actor: Actor) -> dict[str, int]:
    """Store a moderator label; the safety classifier retrains on these."""
    return {"id": await store.write(safety_service.add_label, body.text, body.label,
                                    body.value, actor)}  # fmt: skip
