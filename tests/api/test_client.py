"""matchwise.client against the real app on both stores: the sync client through FastAPI's
TestClient and over a live socket, the async one over httpx's ASGI transport. Each method
returns its schema model; each error answer raises MatchwiseAPIError with the server's
status and message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from matchwise import registry
from matchwise.api import create_app
from matchwise.client import AsyncMatchwiseClient, Calls, MatchwiseAPIError, MatchwiseClient
from matchwise.data.safety_corpus import generate_safety_corpus, generate_synthetic_profiles
from matchwise.models.safety import SafetyClassifier, default_embedder
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.schemas import (
    ErasureOut,
    FlagOut,
    HealthOut,
    InteractionIn,
    MatchesOut,
    MetricsOut,
    RecommendationsOut,
    ReportIn,
    ReportOut,
    SafetyOut,
    SimilarOut,
    TokenOut,
    UpsertResult,
)
from tests.utils.factories import items_fixture, people_fixture
from tests.utils.live_server import live_server


@pytest.fixture
def admin_key(runtime: Runtime) -> str:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="client tests")
    return key


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime=runtime)


@pytest.fixture
def api(app: FastAPI, admin_key: str) -> Iterator[MatchwiseClient]:
    with TestClient(app, raise_server_exceptions=False) as http:
        yield MatchwiseClient(api_key=admin_key, http=http)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def async_api(app: FastAPI, key: str) -> AsyncIterator[AsyncMatchwiseClient]:
    """The app started as a server starts it (its lifespan), reached in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://matchwise") as http:
            yield AsyncMatchwiseClient(api_key=key, http=http)


def _seed(api: MatchwiseClient) -> None:
    users = people_fixture()
    assert api.upsert_users(users) == UpsertResult(created=len(users), updated=0)
    assert api.upsert_items(items_fixture()).created == len(items_fixture())


def test_sync_client_covers_the_public_routes(api: MatchwiseClient) -> None:
    assert api.health() == HealthOut(**{**api.health().model_dump(), "status": "ok"})
    _seed(api)
    sent = api.send_events([
        InteractionIn(event_id="x1", user_id="alice", item_id="e1", action="click"),
        {"event_type": "swipe_batch", "event_id": "s1", "user_id": "alice",
         "swipes": [{"candidate_id": "carl", "action": "pass"}]},
    ])  # fmt: skip
    assert (sent.written, sent.duplicates) == (2, 0)
    like = {"user_id": "alice", "target_user_id": "bob", "action": "like"}
    assert api.record_interaction(like).match_created is False
    back = api.record_interaction(
        InteractionIn(user_id="bob", target_user_id="alice", action="like")
    )
    assert back.match_created is True
    matches = api.matches("alice", limit=10)
    assert isinstance(matches, MatchesOut) and [m.user_id for m in matches.matches] == ["bob"]

    items = api.recommendations("alice", kind="item", limit=10)
    assert isinstance(items, RecommendationsOut)
    assert {r.candidate_id for r in items.recommendations} == {"e1", "e2", "e4"}
    rest = api.recommendations("alice", kind="item", limit=10, exclude=["e1"])
    assert [r.candidate_id for r in rest.recommendations] == [
        r.candidate_id for r in items.recommendations if r.candidate_id != "e1"
    ]
    page = api.recommendations(
        "alice", kind="item", limit=1, offset=1, exclude=["e1"], explain=True
    )
    second = rest.recommendations[1].candidate_id
    assert [(r.candidate_id, r.rank) for r in page.recommendations] == [(second, 2)]
    assert page.recommendations[0].explanation is not None
    assert page.recommendations[0].explanation.contributions
    munich = api.recommendations("alice", kind="item", city="munich", fresh=True)
    assert [r.candidate_id for r in munich.recommendations] == ["e4"]
    people = api.recommendations("alice", kind="user")
    assert {r.candidate_id for r in people.recommendations} == {"ivan"}  # bob matched, carl passed

    token = api.mint_token("ivan", expires_in=600)
    assert isinstance(token, TokenOut) and (token.user_id, token.scope) == ("ivan", "user")
    ivan = api.with_token(token.token)
    assert ivan.recommendations("ivan", kind="user").user_id == "ivan"
    with pytest.raises(MatchwiseAPIError) as refused:
        ivan.recommendations("alice")
    assert refused.value.status_code == 403
    assert refused.value.message == "this token acts for user 'ivan', not for 'alice'"
    report = ivan.report(ReportIn(reporter_id="ivan", reported_id="carl", reason="spam"))
    assert isinstance(report, ReportOut) and report.report_id >= 1

    like_e1 = api.similar_items("e1", limit=5, include_past=True)
    assert isinstance(like_e1, SimilarOut) and (like_e1.id, like_e1.kind) == ("e1", "item")
    assert "e1" not in {c.candidate_id for c in like_e1.similar}
    like_bob = api.similar_users("bob", limit=5, city="Berlin")
    assert isinstance(like_bob, SimilarOut) and like_bob.kind == "user"
    with pytest.raises(MatchwiseAPIError) as no_item:
        api.similar_items("nothing")
    assert no_item.value.status_code == 404
    assert all(isinstance(f, FlagOut) for f in api.moderation(status="open", limit=10))
    assert isinstance(api.metrics(days=7), MetricsOut)
    erased = api.erase_user("carl")
    assert isinstance(erased, ErasureOut) and erased.deleted
    with pytest.raises(MatchwiseAPIError) as again:
        api.erase_user("carl")
    assert again.value.status_code == 404


def test_errors_carry_the_status_and_the_servers_message(api: MatchwiseClient) -> None:
    _seed(api)
    with pytest.raises(MatchwiseAPIError) as unknown:
        api.recommendations("nobody")
    error = unknown.value
    assert (error.status_code, error.error, error.message) == (
        404,
        "not_found",
        "unknown user 'nobody'",
    )
    assert str(error) == "404 not_found: unknown user 'nobody'"
    with pytest.raises(MatchwiseAPIError) as invalid:
        api.upsert_users([{"id": "z", "age_min": 40, "age_max": 30}])
    assert invalid.value.status_code == 422 and invalid.value.error == "invalid_input"
    assert "age_min must be <= age_max" in invalid.value.message
    with pytest.raises(MatchwiseAPIError) as teleport:
        api.send_events([{"user_id": "alice", "item_id": "e1", "action": "teleport"}])
    assert "unknown action 'teleport'" in teleport.value.message
    anonymous = MatchwiseClient(http=api.http)
    with pytest.raises(MatchwiseAPIError) as missing:
        anonymous.matches("alice")
    assert missing.value.status_code == 401
    assert missing.value.message.startswith("missing API key")
    with pytest.raises(ValueError, match="not both"):
        MatchwiseClient(api_key="mw_x", token="mwt_y", http=api.http)


def test_an_error_page_that_is_not_the_apis_still_says_what_came_back() -> None:
    page = httpx.Response(502, text="<html>bad gateway</html>", headers={"Retry-After": "3"})
    error = MatchwiseAPIError.from_response(page)
    assert (error.status_code, error.error, error.retry_after) == (502, "http_error", "3")
    assert "bad gateway" in error.message


@pytest.fixture(scope="module")
def safety_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small safety classifier on the product's synthetic corpus."""
    corpus = generate_safety_corpus(120, seed=3)
    corpus["group"] = corpus["template_id"]
    profiles = generate_synthetic_profiles(120, seed=3).rename(columns={"fake_profile": "fake"})
    model = SafetyClassifier(embed=default_embedder(), cv_folds=2)
    model.fit(text_data=corpus, profile_data=profiles)
    return model.save(tmp_path_factory.mktemp("safety") / "model")


def test_classify_returns_the_safety_model(
    api: MatchwiseClient, runtime: Runtime, safety_model: Path
) -> None:
    with pytest.raises(MatchwiseAPIError) as none_yet:
        api.classify("hello there")
    assert none_yet.value.status_code == 404
    assert "no active safety model" in none_yet.value.message
    with runtime.session() as s:
        store = registry.ArtifactStore(runtime.settings.artifact_root)
        registry.register(s, store, "safety", safety_model, activate=True)
    _seed(api)
    out = api.classify("Love hiking and board games", profile_id="alice")
    assert isinstance(out, SafetyOut) and set(out.flags) == set(out.probabilities)


@pytest.mark.anyio
async def test_async_client_covers_the_public_routes(app: FastAPI, admin_key: str) -> None:
    async with async_api(app, admin_key) as api:
        assert (await api.health()).status == "ok"
        assert (await api.upsert_users(people_fixture())).created == len(people_fixture())
        assert (await api.upsert_items(items_fixture())).created == len(items_fixture())
        sent = await api.send_events([{"user_id": "alice", "item_id": "e1", "action": "click"}])
        assert sent.written == 1
        await api.record_interaction(
            {"user_id": "alice", "target_user_id": "bob", "action": "like"}
        )
        back = await api.record_interaction(
            InteractionIn(user_id="bob", target_user_id="alice", action="like")
        )
        assert back.match_created is True
        assert [m.user_id for m in (await api.matches("bob")).matches] == ["alice"]
        items = await api.recommendations("alice", kind="item", limit=10, include_past=False)
        assert {r.candidate_id for r in items.recommendations} == {"e1", "e2", "e4"}
        rest = await api.recommendations("alice", kind="item", exclude=("e1", "e2"), offset=0)
        assert [r.candidate_id for r in rest.recommendations] == ["e4"]
        assert (await api.similar_items("e2")).id == "e2"
        assert (await api.similar_users("alice", limit=3)).kind == "user"
        token = await api.mint_token("carl", scope="read")
        carl = api.with_token(token.token)
        assert (await carl.recommendations("carl", kind="user")).user_id == "carl"
        with pytest.raises(MatchwiseAPIError) as refused:
            await carl.report({"reporter_id": "carl", "reported_id": "bob", "reason": "spam"})
        assert refused.value.status_code == 403
        with pytest.raises(MatchwiseAPIError) as none_yet:
            await api.classify("hello")
        assert none_yet.value.status_code == 404
        assert (await api.metrics()).days == 30
        assert await api.moderation() == []
        assert (await api.erase_user("carl")).deleted
        with pytest.raises(MatchwiseAPIError) as gone:
            await api.recommendations("carl")
        assert (gone.value.status_code, gone.value.error) == (404, "not_found")


def test_client_with_its_own_connection_to_a_live_server(app: FastAPI, admin_key: str) -> None:
    """base_url + api_key, the way an app uses it: its own httpx client, over a socket."""
    with live_server(app) as url, MatchwiseClient(url, admin_key, timeout=10) as api:
        assert api.health().status == "ok"
        _seed(api)
        assert api.recommendations("alice", kind="item").recommendations
    assert isinstance(api.http, httpx.Client) and api.http.is_closed


#: Each operation of Calls with arguments that name its ids USER and ITEM.
CALL_ARGUMENTS: dict[str, tuple[object, ...]] = {
    "health": (), "ready": (), "upsert_users": ([],), "upsert_items": ([],), "send_events": ([],),
    "record_interaction": ({},), "recommendations": ("USER",), "matches": ("USER",),
    "similar_items": ("ITEM",), "similar_users": ("USER",), "report": ({},),
    "mint_token": ("USER",), "classify": ("text",), "erase_user": ("USER",), "moderation": (),
    "resolve_flag": ({},), "metrics": (), "add_safety_label": ({},), "monitoring": (),
    "create_experiment": ({},), "experiments": (), "experiment": ("EXP",),
    "stop_experiment": ("EXP",), "promote_experiment": ("EXP",),
}  # fmt: skip
#: Documented operations the client leaves out on purpose.
NOT_IN_THE_CLIENT = {("DELETE", "/v1/admin/users/{user_id}")}  # erase_user's older address


def test_the_client_has_a_method_for_every_documented_operation(api: MatchwiseClient) -> None:
    answer = api.http.request("GET", "/openapi.json", params={}, content=None, headers={})
    paths = orjson.loads(answer.content)["paths"]
    documented = {
        (method.upper(), path) for path, operations in paths.items() for method in operations
    }
    names = {name for name in vars(Calls) if not name.startswith("_")}
    assert names == set(CALL_ARGUMENTS)
    covered = set()
    for name, arguments in CALL_ARGUMENTS.items():
        call = getattr(Calls, name)(*arguments)
        path = call.path.replace("USER", "{user_id}").replace("ITEM", "{item_id}")
        path = path.replace("EXP", "{name}")
        covered.add((call.method, path))
        assert callable(getattr(MatchwiseClient, name)) and callable(
            getattr(AsyncMatchwiseClient, name)
        ), name
    assert covered | NOT_IN_THE_CLIENT == documented
