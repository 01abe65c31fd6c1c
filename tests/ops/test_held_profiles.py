"""A profile held by moderation is served on no route, and comes back once approved.

:func:`~matchwise.ops.moderation.flag_profile` (what the safety scan and enough reports
call) holds a profile: from then on nobody is shown it — not by the people route the
active reciprocal model ranks, not by the fallback that serves people the model does not
know, not by the live heuristic for cold users, not from the database cache, not from
Redis — and a moderator's approval shows it again on each of them.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import delete

from matchwise.db.tables import ModerationFlag, User
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.ingest.profiles import upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import UserIn
from matchwise.serve.refresh import refresh_users
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.ingest.test_blocks_and_likes import generated_people, served
from tests.utils.factories import people_fixture
from tests.utils.moderation import hold, moderator_client

#: What a clone copies: the same wishes, body and place, so the same people fit it.
PROFILE = ("age", "gender", "seeking", "age_min", "age_max", "max_distance_km", "latitude",
           "longitude", "city", "tags")  # fmt: skip


def _approve(client: TestClient, flag_id: int) -> None:
    answer = client.post("/v1/admin/moderation", json={"flag_id": flag_id, "decision": "approve"})
    assert answer.status_code == 200, answer.text
    with client.app.state.runtime.read_session() as s:  # type: ignore[attr-defined]
        assert s.get(User, answer.json()["user_id"]).moderation_status == "ok"


def _clone(runtime: Runtime, user_id: str, new_id: str) -> None:
    """A new person with ``user_id``'s wishes, age, gender and place, and no history."""
    with runtime.read_session() as s:
        row = s.get(User, user_id)
        assert row is not None
        copied = {field: getattr(row, field) for field in PROFILE}
    with runtime.session() as s:
        upsert_users(s, [UserIn(id=new_id, **copied)])


def test_a_held_profile_leaves_the_model_fallback_cold_and_cached_routes(
    runtime: Runtime,
) -> None:
    users = generated_people(runtime)
    version = train_model(runtime, "reciprocal", domain="people", activate="always").version
    with moderator_client(runtime) as client:
        # a person the model serves a few candidates, and the one they see first
        lists = {u: served(client, u) for u in users[:40]}
        viewer = next(u for u, (_, got, ids) in lists.items() if got == version and len(ids) > 2)
        seen = lists[viewer][2]
        held = seen[0]
        # who joined after the model was trained: cold (no swipes) and warm (six passes)
        _clone(runtime, viewer, "newcomer")
        _clone(runtime, viewer, "unknown_to_model")
        for target in [u for u in users if u not in seen and u != viewer][:6]:
            body = {"user_id": "unknown_to_model", "target_user_id": target, "action": "pass"}
            assert client.post("/v1/interactions", json=body).status_code == 200
        refresh_users(runtime, [viewer], top_n=50, kind="user")
        routes = {  # route name: (who asks, fresh, the routes that may answer)
            "model": (viewer, True, {"warm", "hot"}),
            "fallback": ("unknown_to_model", True, {"fallback"}),
            "cold": ("newcomer", True, {"cold"}),
            "database cache": (viewer, False, {"cache"}),
        }

        def shown() -> dict[str, bool]:
            out = {}
            for name, (user, fresh, expected) in routes.items():
                route, got, ids = served(client, user, fresh=fresh)
                assert route in expected and ids, (name, route, ids)
                assert name != "model" or got == version
                out[name] = held in ids
            return out

        everywhere = dict.fromkeys(routes, True)
        assert shown() == everywhere
        flag_id = hold(runtime, held)
        assert shown() == dict.fromkeys(routes, False)
        _approve(client, flag_id)
        assert shown() == everywhere


def test_a_held_profile_leaves_the_redis_cache_and_comes_back_after_approval(
    settings: Settings, redis_url: str
) -> None:
    runtime = Runtime.open(settings.model_copy(update={"redis_url": redis_url}), migrate=False)
    try:
        with runtime.session() as s:
            upsert_users(s, people_fixture())
        refresh_users(runtime, ["alice"], top_n=20, kind="user")
        with runtime.session() as s:  # only Redis can answer "cache" now
            s.execute(delete(CachedRow))
        with moderator_client(runtime) as client:

            def from_redis() -> list[str]:
                route, _, ids = served(client, "alice", fresh=False)
                assert route == "cache", route
                return ids

            assert {"bob", "ivan"} <= set(from_redis())
            flag_id = hold(runtime, "ivan")
            assert "ivan" not in from_redis() and "bob" in from_redis()
            _approve(client, flag_id)
            assert {"bob", "ivan"} <= set(from_redis())
        with runtime.read_session() as s:
            flag = s.get(ModerationFlag, flag_id)
            assert flag is not None and flag.status == "approved"
    finally:
        runtime.close()
