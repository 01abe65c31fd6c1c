"""The operator's keys and per-user tokens under attack, on both stores: a revoked key
stops within a second, bad keys are rate-limited per address without slowing good ones,
a flood of unknown keys cannot evict a valid one, and a user token acts for its own user
only (every other use 403 saying why; expired or tampered 401)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from matchwise.api import create_app
from matchwise.db.tables import Interaction, Report
from matchwise.ingest.profiles import upsert_users
from matchwise.ops.auth import create_key, mint_token, revoke_key
from matchwise.runtime import Runtime
from tests.utils.factories import people_fixture

RECS = "/v1/recommendations?user_id="


@pytest.fixture
def keys(runtime: Runtime) -> dict[str, str]:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        return {
            scope: create_key(s, scope, name="tests")[0] for scope in ("ingest", "read", "admin")
        }


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


class KeyLookups:
    """Counts the queries of one key in ``api_keys`` on the read engine (where requests
    check keys; the background re-read of every key is not counted)."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.read_engine
        self.count = 0

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys.key_hash =" in statement:
            self.count += 1

    def __enter__(self) -> KeyLookups:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


# --- the operator's keys ---------------------------------------------------------------


def test_a_revoked_key_is_refused_within_a_second(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    with runtime.session() as s:
        key, row = create_key(s, "read")
    assert client.get(RECS + "alice", headers=bearer(key)).status_code == 200  # now cached
    with runtime.session() as s:  # as `matchwise keys revoke` does, from another process
        revoke_key(s, row.id)
    deadline = time.monotonic() + 5  # generous: the promise is one second
    while (answer := client.get(RECS + "alice", headers=bearer(key))).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key still works after 5 s"
        time.sleep(0.05)
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]


def test_bad_keys_from_one_address_get_429_while_good_keys_pass(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    good = bearer(keys["read"])
    assert client.get(RECS + "alice", headers=good).status_code == 200
    statuses = [
        client.get(RECS + "alice", headers=bearer(f"mw_guess_{n}")).status_code for n in range(60)
    ]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert set(statuses) == {401, 429} and statuses.index(429) <= 50
    refused = client.get(RECS + "alice", headers=bearer("mw_one_more_guess"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "too many invalid" in refused.json()["message"]

    assert client.get(RECS + "alice", headers=good).status_code == 200  # the same address
    client.app.state.key_cache.ttl = 0  # every key checked in the store again, yet:
    assert client.get(RECS + "alice", headers=good).status_code == 200
    with KeyLookups(runtime) as lookups:  # a limited address's guesses cost no query
        assert client.get(RECS + "alice", headers=bearer("mw_guess_x")).status_code == 429
    assert lookups.count == 0

    other = TestClient(client.app, raise_server_exceptions=False, client=("203.0.113.7", 1))
    assert other.get(RECS + "alice", headers=bearer("mw_guess_y")).status_code == 401


def test_a_flood_of_unknown_keys_does_not_evict_a_valid_one(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    cache = client.app.state.key_cache
    cache.ttl = 600  # long enough that only an eviction could send the key to the store
    good = bearer(keys["read"])
    assert client.get(RECS + "alice", headers=good).status_code == 200
    for n in range(10_001):
        assert cache.scope_of(runtime.read_session, f"mw_flood_{n}") is None
    with KeyLookups(runtime) as lookups:
        assert client.get(RECS + "alice", headers=good).status_code == 200
    assert lookups.count == 0, "the valid key was evicted and looked up again"


# --- per-user tokens ---------------------------------------------------------------------


def mint(client: TestClient, key: str, user_id: str, **body: Any) -> Any:
    return client.post("/v1/tokens", json={"user_id": user_id, **body}, headers=bearer(key))


def test_a_user_token_acts_for_its_own_user_only(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    admin = bearer(keys["admin"])
    for pair in (("alice", "bob"), ("bob", "alice")):
        like = {"user_id": pair[0], "target_user_id": pair[1], "action": "like"}
        assert client.post("/v1/interactions", json=like, headers=admin).status_code == 200
    minted = mint(client, keys["ingest"], "alice")
    assert minted.status_code == 200
    body = minted.json()
    assert body["user_id"] == "alice" and body["scope"] == "user"
    alice = bearer(body["token"])

    assert client.get(RECS + "alice", headers=alice).status_code == 200
    matches = client.get("/v1/users/alice/matches", headers=alice)
    assert matches.status_code == 200
    assert [m["user_id"] for m in matches.json()["matches"]] == ["bob"]
    swipe = {"user_id": "alice", "target_user_id": "carl", "action": "pass"}
    assert client.post("/v1/interactions", json=swipe, headers=alice).status_code == 200
    report = {"reporter_id": "alice", "reported_id": "carl", "reason": "spam"}
    assert client.post("/v1/reports", json=report, headers=alice).status_code == 200
    batch = {"events": [{"event_type": "swipe_batch", "user_id": "alice",
                         "swipes": [{"candidate_id": "ivan", "action": "like"}]}]}  # fmt: skip
    assert client.post("/v1/events", json=batch, headers=alice).status_code == 200

    with runtime.session() as s:
        written = s.scalar(select(func.count()).select_from(Interaction))
    forbidden: list[tuple[str, str, Any, str]] = [
        ("GET", RECS + "bob", None, "not for 'bob'"),
        ("GET", "/v1/users/bob/matches", None, "not for 'bob'"),
        ("POST", "/v1/interactions", {**swipe, "user_id": "bob"}, "not for 'bob'"),
        ("POST", "/v1/reports", {**report, "reporter_id": "bob"}, "not for 'bob'"),
        ("POST", "/v1/events", {"events": [*batch["events"], {**swipe, "user_id": "bob"}]},
         "not for 'bob'"),
        ("POST", "/v1/interactions", {**swipe, "action": "match"}, "may not record a match"),
        ("POST", "/v1/events", {"events": [{"event_type": "match", "user_id": "alice",
                                            "matched_user_id": "ivan"}]}, "may not record a match"),
        ("POST", "/v1/users", {"users": [{"id": "alice", "age": 99}]}, "needs an API key"),
        ("POST", "/v1/tokens", {"user_id": "alice"}, "needs an API key"),
        ("GET", "/v1/admin/moderation", None, "needs an API key"),
        ("GET", "/v1/admin/metrics", None, "needs an API key"),
    ]  # fmt: skip
    for method, url, json, why in forbidden:
        answer = client.request(method, url, json=json, headers=alice)
        assert answer.status_code == 403, (method, url, answer.text)
        assert why in answer.json()["message"], (method, url, answer.text)
    with runtime.session() as s:  # nothing of a refused batch was written
        assert s.scalar(select(func.count()).select_from(Interaction)) == written
        assert s.scalar(select(func.count()).select_from(Report)) == 1


def test_a_token_scope_limits_it_and_only_ingest_or_admin_keys_mint(
    client: TestClient, keys: dict[str, str]
) -> None:
    refused = mint(client, keys["read"], "alice")
    assert refused.status_code == 403 and "needs 'ingest'" in refused.json()["message"]
    reader = bearer(mint(client, keys["admin"], "alice", scope="read").json()["token"])
    assert client.get(RECS + "alice", headers=reader).status_code == 200
    swipe = {"user_id": "alice", "target_user_id": "carl", "action": "like"}
    answer = client.post("/v1/interactions", json=swipe, headers=reader)
    assert answer.status_code == 403 and "scope 'read'" in answer.json()["message"]

    default = mint(client, keys["ingest"], "alice").json()
    lifetime = datetime.fromisoformat(default["expires_at"]).timestamp() - time.time()
    assert 3600 - 60 < lifetime <= 3600  # an hour by default
    too_long = mint(client, keys["ingest"], "alice", expires_in=2 * 86_400)
    assert too_long.status_code == 422 and "expires_in" in too_long.json()["message"]


def test_expired_or_tampered_tokens_are_401(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    expired = mint_token(runtime.settings, "alice", seconds=60, now=time.time() - 120)
    answer = client.get(RECS + "alice", headers=bearer(expired.token))
    assert answer.status_code == 401 and "expired" in answer.json()["message"]

    token = mint(client, keys["ingest"], "alice").json()["token"]
    bobs_claims = mint(client, keys["ingest"], "bob").json()["token"].split(".")[0]
    for forged in (
        bobs_claims + "." + token.split(".")[1],  # bob's claims under alice's signature
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # a changed signature
        mint_token(runtime.settings.model_copy(update={"hash_secret": "guess"}), "bob").token,
        "mwt_not-a-token",
    ):
        answer = client.get(RECS + "bob", headers=bearer(forged))
        assert answer.status_code == 401, forged
        assert "user token" in answer.json()["message"]
