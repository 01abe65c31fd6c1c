"""``GET /v1/items/{id}/similar`` and ``GET /v1/users/{id}/similar`` ("more like this"),
on both stores: from co-occurrence when no model knows the id, with its known right
answer; from the active model's vectors once one is trained (EASE for items, the
reciprocal model for people); never the id itself, nothing hidden, past or erased, and
none of the caller's blocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from matchwise.api import create_app
from matchwise.data.synthetic import generate_items
from matchwise.hashing import hash_id
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.ops.auth import create_key, mint_token
from matchwise.ops.moderation import flag_profile
from matchwise.ops.privacy import erase_user
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn, ItemIn
from matchwise.serve.similar import similar_items
from matchwise.serve.state import serving_state
from matchwise.serve.types import RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.ingest.test_blocks_and_likes import generated_people
from tests.utils.factories import NOW, items_fixture, people_fixture, person

SPORT = ItemIn(id="e5", title="Bike tour", category="sport", city="Berlin", tags=["bike"],
               starts_at=NOW + pd.Timedelta(days=4))  # fmt: skip


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with runtime.session() as s:
        key = create_key(s, "read", name="tests")[0]
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        yield c


def _similar(client: TestClient, path: str, token: str | None = None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _ids(body: dict[str, Any]) -> list[str]:
    return [c["candidate_id"] for c in body["similar"]]


def _act(runtime: Runtime, *triples: tuple[str, str, str]) -> None:
    """(who, action, what): ``what`` is an item when it is e1..e9, else a person."""
    events = [
        InteractionIn(user_id=who, action=action, item_id=what)
        if what[:1] == "e" and what[1:].isdigit()
        else InteractionIn(user_id=who, action=action, target_user_id=what)
        for who, action, what in triples
    ]
    with runtime.session() as s:
        ingest_events(s, events, runtime.settings.action_table)


def test_items_like_an_item_from_co_occurrence(runtime: Runtime, client: TestClient) -> None:
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, [*items_fixture(), SPORT])
    _act(runtime,
         *((who, "like", e) for who in ("alice", "bob", "carl") for e in ("e1", "e2")),
         ("ivan", "like", "e1"), ("ivan", "register", "e4"),
         ("dan_too_old", "like", "e1"), ("dan_too_old", "like", "e3"),  # e3 is past
         ("erin_woman", "like", "e1"), ("erin_woman", "favorite", "e5"),
         ("fred_far", "click", "e1"), ("fred_far", "click", "e2"))  # fmt: skip

    body = _similar(client, "/v1/items/e1/similar")
    assert body["source"] == "co-occurrence" and body["model_version"] is None
    assert [(c["candidate_id"], c["score"]) for c in body["similar"]] == [
        ("e2", round(3 / np.sqrt(6 * 3), 6)), ("e4", round(1 / np.sqrt(6), 6)),
        ("e5", round(1 / np.sqrt(6), 6)),
    ]  # fmt: skip
    assert body["similar"][0]["title"] == "Jazz night"
    assert _ids(_similar(client, "/v1/items/e1/similar", include_past=True)) == [
        "e2", "e3", "e4", "e5"]  # fmt: skip
    assert _ids(_similar(client, "/v1/items/e1/similar", category="tech")) == ["e4"]
    assert _ids(_similar(client, "/v1/items/e1/similar", city="Munich", limit=1)) == ["e4"]
    assert _ids(_similar(client, "/v1/items/e2/similar")) == ["e1"]

    with runtime.session() as s:  # the catalogue in memory still holds e5: checked anyway
        upsert_items(s, [SPORT.model_copy(update={"active": False})])
    assert _ids(_similar(client, "/v1/items/e1/similar")) == ["e2", "e4"]
    assert client.get("/v1/items/nope/similar").status_code == 404
    assert client.get("/v1/items/e1/similar", params={"limit": 0}).status_code == 422


def test_people_like_a_person_from_co_occurrence(runtime: Runtime, client: TestClient) -> None:
    with runtime.session() as s:
        upsert_users(s, [*people_fixture(), person("wen"), person("wu")])
    _act(runtime,
         *((w, "like", m) for w in ("alice", "wen", "wu") for m in ("bob", "carl")),
         ("alice", "like", "ivan"), ("wen", "like", "hal_picky"),
         ("bob", "like", "alice"), ("carl", "like", "alice"))  # fmt: skip
    tokens = {who: mint_token(runtime.settings, who).token for who in ("alice", "carl", "ivan")}

    body = _similar(client, "/v1/users/bob/similar")
    assert body["source"] == "co-occurrence" and body["kind"] == "user"
    assert [(c["candidate_id"], c["score"]) for c in body["similar"]] == [
        ("carl", 1.0), ("hal_picky", 0.5), ("ivan", 0.5)]  # fmt: skip
    assert all(c["title"] is None for c in body["similar"])
    assert _ids(_similar(client, "/v1/users/bob/similar", tokens["carl"])) == ["hal_picky", "ivan"]

    with runtime.session() as s:
        flag_profile(s, "hal_picky", "classifier", {"spam_scam": 0.97})  # held
    _act(runtime, ("alice", "block", "ivan"))
    assert _ids(_similar(client, "/v1/users/bob/similar")) == ["carl", "ivan"]
    assert _ids(_similar(client, "/v1/users/bob/similar", tokens["alice"])) == ["carl"]
    for who, target in (("ivan", "alice"), ("alice", "hal_picky")):  # blocked, held
        hidden = client.get(f"/v1/users/{target}/similar",
                            headers={"Authorization": f"Bearer {tokens[who]}"})  # fmt: skip
        assert hidden.status_code == 404, hidden.text
    erase_user(runtime, "carl", "tests")  # the API process's catalogue still holds carl
    assert _ids(_similar(client, "/v1/users/bob/similar")) == ["ivan"]
    assert client.get("/v1/users/carl/similar").status_code == 404


def test_items_like_an_item_from_the_active_model(runtime: Runtime, client: TestClient) -> None:
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=60, n_items=50, n_interactions=2000, seed=4, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    trained = train_model(runtime, "ease", domain="items", activate="always")
    serving_state(runtime).invalidate()  # as the retrain job does: serve the new version now
    item = str(bundle.items["id"].iloc[0])

    body = _similar(client, f"/v1/items/{item}/similar", include_past=True, limit=100)
    assert (body["source"], body["model_type"]) == ("model", "ease")
    assert body["model_version"] == trained.version
    with runtime.read_session() as s:
        loaded = serving_state(runtime).model(s, "ease")
    assert loaded is not None
    index = loaded.trained.item_index
    weights = np.asarray(loaded.trained.model.B_[index[item]])  # type: ignore[attr-defined]
    expected = sorted((i for i in index if i != item and weights[index[i]] > 0),
                      key=lambda i: (-weights[index[i]], i))  # fmt: skip
    assert _ids(body) == expected[:100] and item not in _ids(body)
    assert body["similar"][0]["score"] == 1.0
    upcoming = _ids(_similar(client, f"/v1/items/{item}/similar", limit=100))
    starts = bundle.items.set_index("id")["starts_at"]
    now = pd.Timestamp.now(tz="UTC")
    assert set(upcoming) < set(expected)  # the past ones left out
    assert all(pd.isna(starts[i]) or pd.Timestamp(starts[i]) >= now for i in upcoming)


def test_people_like_a_person_from_the_reciprocal_model(
    runtime: Runtime, client: TestClient
) -> None:
    users = generated_people(runtime)
    trained = train_model(runtime, "reciprocal", domain="people", activate="always")
    serving_state(runtime).invalidate()
    secret = runtime.settings.hash_secret
    with runtime.read_session() as s:
        loaded = serving_state(runtime).model(s, "reciprocal")
    assert loaded is not None
    known = [u for u in users if hash_id(secret, u) in loaded.trained.item_index]
    target = known[0]

    body = _similar(client, f"/v1/users/{target}/similar", limit=20)
    assert (body["source"], body["model_type"]) == ("model", "reciprocal")
    assert body["model_version"] == trained.version
    listed = _ids(body)
    assert listed and target not in listed
    scores = [c["score"] for c in body["similar"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1

    gone, held = listed[0], listed[1]
    with runtime.session() as s:
        flag_profile(s, held, "classifier", {"spam_scam": 0.97})
    erase_user(runtime, gone, "tests")  # the model still holds gone's hash
    after = _ids(_similar(client, f"/v1/users/{target}/similar", limit=20))
    assert gone not in after and held not in after and after[0] == listed[2]


@pytest.mark.slow  # a two-tower training: ~30 s on a busy machine
def test_items_like_an_item_from_the_two_towers_vectors(sqlite_url: str, tmp_path: Path) -> None:
    """The two-tower's candidate tower, as serving loaded it (one store: the maths is the
    subject here, the store paths are covered above)."""
    runtime = Runtime.open(Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "a")),
                           migrate=False)  # fmt: skip
    try:
        start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
        bundle = generate_items(n_users=60, n_items=50, n_interactions=2000, seed=4, start=start)
        write_bundle(runtime, bundle, runtime.settings.action_table)
        trained = train_model(runtime, "two_tower", domain="items", activate="always",
                              config_overrides={"epochs": 2, "patience": 1})  # fmt: skip
        item = str(bundle.items["id"].iloc[0])
        with runtime.read_session() as s:
            out = similar_items(runtime, s, item, limit=100,
                                filters=RecommendFilters(include_past=True))  # fmt: skip
            loaded = serving_state(runtime).model(s, "two_tower")
        assert loaded is not None and loaded.item_vectors is not None
        assert (out.source, out.model_type, out.model_version) == (
            "model", "two_tower", trained.version)  # fmt: skip
        index, vectors = loaded.trained.item_index, loaded.item_vectors
        cosine = (
            vectors
            @ vectors[index[item]]
            / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(vectors[index[item]]))
        )
        expected = sorted((i for i in index if i != item and cosine[index[i]] > 0),
                          key=lambda i: (-round(float(cosine[index[i]]), 5), i))  # fmt: skip
        listed = [c.candidate_id for c in out.similar]
        assert item not in listed and set(listed) == set(expected[:100])
        assert [round(c.score, 4) for c in out.similar] == sorted(
            (round(float(cosine[index[i]]), 4) for i in listed), reverse=True)  # fmt: skip
    finally:
        runtime.close()
