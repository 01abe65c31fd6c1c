"""Gorse's read endpoints over matchwise's serving: recommendations from the same tiers
as ``/v1/recommendations`` (then Gorse's rules: no item the user gave feedback on, no
hidden item, only the asked categories), neighbours from "more like this", and a
session's recommendations from the neighbours of its positive feedback."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from matchwise.api.gorse.models import GorseFeedback
from matchwise.api.gorse.service import action_of, fed_back, visible_items
from matchwise.db.online import AsyncReader
from matchwise.db.tables import User
from matchwise.errors import InvalidInput, NotFound
from matchwise.runtime import Runtime
from matchwise.serve.similar import similar_items, similar_users
from matchwise.serve.tiers import answer, on_store
from matchwise.serve.types import MAX_PAGE_END

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: How many neighbours of each session item are summed (Gorse's cache size).
SESSION_NEIGHBOURS = 100


def go_duration(text: str) -> timedelta:
    """A Go duration (``write-back-delay``: ``10m``, ``1h30m``, ``1.5s``)."""
    if not text:
        return timedelta(0)
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    parts = _DURATION.findall(body)
    if body == "0":
        return timedelta(0)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise InvalidInput(f"time: invalid duration {text!r}")
    return timedelta(seconds=sign * sum(float(n) * _UNIT[u] for n, u in parts))


def _check_user(session: Session, user_id: str) -> set[str]:
    if session.get(User, user_id) is None:
        raise NotFound(f"{user_id}: user not found")
    return fed_back(session, user_id)


async def recommend(
    runtime: Runtime,
    reader: AsyncReader | None,
    user_id: str,
    n: int,
    offset: int,
    categories: Sequence[str],
) -> list[dict[str, Any]]:
    """``GET /api/recommend/{user}``: the user's ranked items, page ``offset``..``+n``."""
    seen = await on_store(runtime, _read, runtime, _check_user, user_id)
    fetch = MAX_PAGE_END if categories else min(MAX_PAGE_END, n + offset + len(seen))
    found = await answer(runtime, reader, user_id, fetch, "item")
    ids = [r.candidate_id for r in found.recommendations if r.candidate_id not in seen]
    keep = await on_store(runtime, _read, runtime, visible_items, ids, list(categories))
    ranked = [r for r in found.recommendations if r.candidate_id in keep]
    return [{"Id": r.candidate_id, "Score": float(r.score)} for r in ranked[offset : offset + n]]


def _read(runtime: Runtime, fn: Any, *args: Any) -> Any:
    with runtime.read_session() as session:
        return fn(session, *args)


def item_neighbors(
    runtime: Runtime,
    session: Session,
    item_id: str,
    n: int,
    offset: int,
    categories: Sequence[str],
) -> list[dict[str, Any]]:
    """``GET /api/item/{id}/neighbors``: items like this one, most alike first."""
    wanted = offset + n if not categories else MAX_PAGE_END
    found = similar_items(runtime, session, item_id, limit=wanted).similar
    keep = visible_items(session, [s.candidate_id for s in found], list(categories))
    kept = [s for s in found if s.candidate_id in keep][offset : offset + n]
    return [{"Id": s.candidate_id, "Score": float(s.score)} for s in kept]


def user_neighbors(
    runtime: Runtime, session: Session, user_id: str, n: int, offset: int
) -> list[dict[str, Any]]:
    """``GET /api/user/{id}/neighbors``: people like this one, most alike first."""
    found = similar_users(runtime, session, user_id, limit=min(offset + n, 100)).similar
    return [{"Id": s.candidate_id, "Score": float(s.score)} for s in found[offset : offset + n]]


def session_recommend(
    runtime: Runtime,
    session: Session,
    feedback: Sequence[GorseFeedback],
    n: int,
    offset: int,
    category: str = "",
) -> list[dict[str, Any]]:
    """``POST /api/session/recommend``: for an anonymous session, the items most like its
    positively rated ones (their similarities summed), none of the session's own."""
    settings = runtime.settings
    table = settings.action_table
    own = {f.ItemId for f in feedback}
    scores: dict[str, float] = {}
    for f in feedback:
        rule = table.get(action_of(settings, f.FeedbackType))
        if rule is None or not rule.positive:
            continue
        try:
            similar = similar_items(runtime, session, f.ItemId, limit=SESSION_NEIGHBOURS).similar
        except NotFound:
            continue
        for s in similar:
            if s.candidate_id not in own:
                scores[s.candidate_id] = scores.get(s.candidate_id, 0.0) + float(s.score)
    keep = visible_items(session, list(scores), [category] if category else [])
    ranked = sorted(((i, s) for i, s in scores.items() if i in keep), key=lambda r: (-r[1], r[0]))
    return [{"Id": i, "Score": s} for i, s in ranked[offset : offset + n]]
