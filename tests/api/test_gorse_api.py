"""Gorse's REST API under /api, driven by Gorse's official Python client (PyGorse,
imported as ``gorse``) against a live matchwise server, on SQLite and PostgreSQL: the
scenarios of PyGorse's own test file on data each test loads itself, plus raw HTTP for
what the client does not cover (shapes, status codes, headers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from gorse import AsyncGorse, Gorse, GorseException
from sqlalchemy import select

from matchwise.api.app import create_app
from matchwise.db.tables import Interaction
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from tests.utils.live_server import live_server

STAMP = "2024-03-01T12:00:00Z"


@dataclass
class Server:
    url: str
    key: str
    runtime: Runtime

    def client(self) -> Gorse:
        return Gorse(self.url, self.key, timeout=30)

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key if key is not None else self.key}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def server(runtime: Runtime) -> Iterator[Server]:
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="gorse tests")
    with live_server(create_app(runtime=runtime)) as url:
        yield Server(url, key, runtime)


def _catalogue(client: Gorse) -> None:
    """Ten items in two categories; five users who like i1 and i2 together (so they are
    neighbours), and i3 most of all (so it is popular)."""
    items = [
        {
            "ItemId": f"i{n}",
            "IsHidden": False,
            "Categories": ["odd" if n % 2 else "even"],
            "Timestamp": f"2024-01-{n:02d}T00:00:00Z",
            "Labels": ["x"],
            "Comment": f"item {n}",
        }
        for n in range(1, 11)
    ]
    for item in items:
        assert client.insert_item(item) == {"RowAffected": 1}
    client.insert_users([{"UserId": f"u{n}"} for n in range(1, 7)])
    feedback = [
        {"FeedbackType": "like", "UserId": f"u{n}", "ItemId": item, "Timestamp": STAMP}
        for n in range(1, 6)
        for item in ("i1", "i2", "i3")
    ]
    feedback += [{"FeedbackType": "like", "UserId": "u6", "ItemId": "i3", "Timestamp": STAMP}]
    assert client.insert_feedbacks(feedback) == {"RowAffected": len(feedback)}


def test_users_through_the_client(server: Server) -> None:
    client = server.client()
    user = {
        "UserId": "1000",
        "Labels": {"gender": "M", "occupation": "engineer"},
        "Comment": "zhenghaoz",
    }
    assert client.insert_user(user) == {"RowAffected": 1}
    assert client.get_user("1000") == user
    assert client.insert_users(
        [{"UserId": "1001", "Labels": ["a", "b"], "Comment": ""}, {"UserId": "1002"}]
    ) == {"RowAffected": 2}
    assert client.get_user("1002") == {"UserId": "1002", "Labels": None, "Comment": ""}
    with server.http() as http:  # PATCH: a field left null stays as it was
        assert http.patch("/api/user/1000", json={"Comment": "new"}).json() == {"RowAffected": 1}
        assert http.get("/api/user/1000").json()["Labels"] == user["Labels"]
        assert http.get("/api/user/1000").json()["Comment"] == "new"
    users, cursor = client.get_users(2)
    assert [u["UserId"] for u in users] == ["1000", "1001"] and cursor
    assert client.delete_user("1000") == {"RowAffected": 1}
    with pytest.raises(GorseException) as missing:
        client.get_user("1000")
    assert missing.value.status_code == 404
    assert missing.value.message == "1000: user not found"


def test_items_through_the_client(server: Server) -> None:
    client = server.client()
    item = {
        "ItemId": "2000",
        "IsHidden": True,
        "Labels": {"embedding": [0.1, 0.2, 0.3]},
        "Categories": ["Comedy", "Animation"],
        "Timestamp": "2015-07-10T00:00:00Z",
        "Comment": "Minions (2015)",
    }
    assert client.insert_item(item) == {"RowAffected": 1}
    assert client.get_item("2000") == item
    # nulls stay unchanged: only the comment moves
    assert client.update_item("2000", comment="小黄人 (2015)") == {"RowAffected": 1}
    assert client.get_item("2000") == item | {"Comment": "小黄人 (2015)"}
    assert client.update_item("2000", is_hidden=False) == {"RowAffected": 1}
    assert client.get_item("2000")["IsHidden"] is False
    with server.http() as http:
        assert http.put("/api/item/2000/category/Family").json() == {"RowAffected": 1}
        assert http.get("/api/item/2000").json()["Categories"] == ["Comedy", "Animation", "Family"]
        assert http.delete("/api/item/2000/category/Comedy").json() == {"RowAffected": 1}
        assert http.get("/api/item/2000").json()["Categories"] == ["Animation", "Family"]
        bad = http.post("/api/item", json={"ItemId": "2001", "Timestamp": "not a time"})
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/plain")
    with pytest.raises(GorseException) as search:  # as Gorse without search columns
        client.search_items("Minions")
    assert search.value.status_code == 400
    assert client.delete_item("2000") == {"RowAffected": 1}
    with pytest.raises(GorseException) as missing:
        client.get_item("2000")
    assert (missing.value.status_code, missing.value.message) == (404, "2000: item not found")


def test_cursor_paging_walks_every_row_exactly_once(server: Server) -> None:
    client = server.client()
    client.insert_users([{"UserId": f"p{n:02d}"} for n in range(23)])
    for n in range(23):
        client.insert_item({"ItemId": f"q{n:02d}"})
    client.insert_feedbacks(
        [
            {
                "FeedbackType": "read",
                "UserId": f"p{n:02d}",
                "ItemId": f"q{n:02d}",
                "Timestamp": STAMP,
            }
            for n in range(23)
        ]
    )
    for fetch, key, want in (
        (client.get_users, "UserId", [f"p{n:02d}" for n in range(23)]),
        (client.get_items, "ItemId", [f"q{n:02d}" for n in range(23)]),
        (client.get_feedbacks, "ItemId", [f"q{n:02d}" for n in range(23)]),
    ):
        seen: list[str] = []
        cursor = ""
        while True:
            page, cursor = fetch(5, cursor)
            assert len(page) <= 5
            seen += [row[key] for row in page]
            if not cursor:
                break
        assert sorted(seen) == want  # each row once, none missing


def test_feedback_adds_on_post_and_overwrites_on_put(server: Server) -> None:
    client = server.client()
    row = {
        "FeedbackType": "watch",
        "UserId": "2000",
        "ItemId": "1",
        "Value": 1.0,
        "Timestamp": STAMP,
        "Comment": "",
    }
    client.insert_user({"UserId": "2000"})
    assert client.insert_feedbacks([row]) == {"RowAffected": 1}  # the item is created
    assert client.insert_feedbacks([row | {"Value": 2.0}]) == {"RowAffected": 1}
    with server.http() as http:
        got = http.get("/api/feedback/2000/1").json()
        assert got == [row | {"Value": 3.0}]  # POST adds to the stored value
        assert http.put("/api/feedback", json=[row | {"Value": 5.0}]).json() == {"RowAffected": 1}
        assert http.get("/api/feedback/2000/1").json()[0]["Value"] == 5.0  # PUT overwrites
    client.insert_feedback("star", "2000", "2", STAMP, 1.0)
    assert [f["ItemId"] for f in client.list_feedbacks("watch", "2000")] == ["1"]
    assert [f["ItemId"] for f in client.list_feedbacks("star", "2000")] == ["2"]
    with server.runtime.session() as s:  # mapped through gorse_feedback_actions; unknown kept
        actions = dict(s.execute(select(Interaction.item_id, Interaction.action)).all())
    assert actions == {"1": "watch", "2": "favorite"}
    assert client.delete_feedback("2000", "1") == {"RowAffected": 1}
    assert client.list_feedbacks("watch", "2000") == []
    assert client.delete_feedback("2000", "1") == {"RowAffected": 0}


def test_feedback_by_type_user_and_item(server: Server) -> None:
    client = server.client()
    rows = [
        {"FeedbackType": kind, "UserId": "v1", "ItemId": item, "Timestamp": STAMP}
        for kind, item in (("a_b", "w1"), ("axb", "w1"), ("a%", "w2"), ("like", "w2"))
    ]
    client.insert_feedbacks(rows)
    with server.http() as http:
        typed = http.get("/api/feedback/a_b").json()  # LIKE's wildcards taken literally
        assert [(f["FeedbackType"], f["ItemId"]) for f in typed["Feedback"]] == [("a_b", "w1")]
        assert [f["FeedbackType"] for f in http.get("/api/feedback/a%25").json()["Feedback"]] == [
            "a%"
        ]
        one = http.get("/api/feedback/like/v1/w2").json()
        assert (one["FeedbackType"], one["UserId"], one["ItemId"]) == ("like", "v1", "w2")
        assert one["Timestamp"] == STAMP
        assert http.get("/api/feedback/like/v1/w1").status_code == 404
        on_item = http.get("/api/item/w1/feedback/").json()
        assert sorted(f["FeedbackType"] for f in on_item) == ["a_b", "axb"]
        assert [f["FeedbackType"] for f in http.get("/api/item/w1/feedback/axb").json()] == ["axb"]
        assert http.delete("/api/feedback/axb/v1/w1").json() == {"RowAffected": 1}
        assert [f["FeedbackType"] for f in http.get("/api/user/v1/feedback").json()] == [
            "a_b",
            "a%",
            "like",
        ]


def test_recommend_never_shows_a_hidden_item(server: Server) -> None:
    client = server.client()
    _catalogue(client)
    client.insert_feedback("like", "u6", "i5", STAMP)
    before = [s.id for s in client.get_recommend("u6", n=10)]
    assert "i1" in before and "i3" not in before  # i3: u6 gave feedback on it
    client.update_item("i1", is_hidden=True)
    after = client.get_recommend("u6", n=10)
    assert after and "i1" not in [s.id for s in after]
    assert all(isinstance(s.score, float) for s in after)
    with server.http() as http:
        plain = http.get("/api/recommend/u6", params={"n": 3}).json()
        assert plain == [s.id for s in after][:3]  # without X-API-Version: 2, ids only
        odd = http.get("/api/recommend/u6", params=[("category", "odd"), ("n", 10)]).json()
        assert odd and all(int(i[1:]) % 2 for i in odd)
        both = http.get("/api/recommend/u6", params=[("category", "odd"), ("category", "even")])
        assert set(both.json()) == set(http.get("/api/recommend/u6").json())
        assert http.get("/api/recommend/u6/even").json() == [
            i for i in http.get("/api/recommend/u6").json() if int(i[1:]) % 2 == 0
        ]
        shown = http.get("/api/recommend/u6", params={"n": 2, "write-back-type": "read"}).json()
        read = [f["ItemId"] for f in client.list_feedbacks("read", "u6")]
        assert sorted(read) == sorted(shown)  # written back as feedback, so not shown again
        assert not set(shown) & set(http.get("/api/recommend/u6").json())
        missing = http.get("/api/recommend/nobody")
        assert (missing.status_code, missing.text) == (404, "nobody: user not found")


def test_neighbours_session_latest_and_popular(server: Server) -> None:
    client = server.client()
    _catalogue(client)
    neighbours = client.get_neighbors("i1", n=3)
    assert neighbours[0]["Id"] in {"i2", "i3"} and "i1" not in [x["Id"] for x in neighbours]
    session = client.session_recommend(
        [{"FeedbackType": "like", "UserId": "anon", "ItemId": "i1", "Timestamp": STAMP}], n=3
    )
    assert {x["Id"] for x in session} <= {"i2", "i3"} and session
    with server.http() as http:
        assert http.get("/api/item/i1/neighbors/", params={"n": 3}).json() == neighbours
        people = http.get("/api/user/u1/neighbors").json()
        assert people and all(set(p) == {"Id", "Score"} for p in people)
        latest = http.get("/api/latest", params={"n": 3}).json()
        assert [x["Id"] for x in latest] == ["i10", "i9", "i8"]
        assert [x["Id"] for x in http.get("/api/latest/odd", params={"n": 2}).json()] == [
            "i9",
            "i7",
        ]
        popular = http.get("/api/popular", params={"n": 3}).json()
        assert popular[0] == {"Id": "i3", "Score": 6.0}
        assert [x["Id"] for x in http.get("/api/popular/even").json()] == ["i2"]
        assert http.get("/api/item/nothing/neighbors").status_code == 404


def test_the_key_is_checked_as_gorse_checks_it(server: Server) -> None:
    with server.runtime.session() as s:
        reader, _ = create_key(s, "read", name="read only")
    with server.http(key="") as http:
        refused = http.get("/api/users")
        assert (refused.status_code, refused.text) == (401, "unauthorized")
    with pytest.raises(GorseException) as wrong:
        Gorse(server.url, "mw_not-a-key").get_users(1)
    assert (wrong.value.status_code, wrong.value.message) == (401, "unauthorized")
    with server.http(key=reader) as http:
        assert http.get("/api/users").status_code == 200
        assert http.post("/api/user", json={"UserId": "x"}).status_code == 403
        assert http.get("/api/health/ready").json()["Ready"] is True
    with server.http(key="") as http:  # health needs no key, as in Gorse
        assert http.get("/api/health/live").status_code == 200


def test_the_async_client(server: Server) -> None:
    async def run() -> None:
        client = AsyncGorse(server.url, server.key)
        assert await client.insert_user({"UserId": "a1"}) == {"RowAffected": 1}
        assert await client.insert_item({"ItemId": "b1"}) == {"RowAffected": 1}
        assert await client.insert_feedback("like", "a1", "b1", STAMP) == {"RowAffected": 1}
        assert [f["ItemId"] for f in await client.list_feedbacks("like", "a1")] == ["b1"]
        users, _ = await client.get_users(10)
        assert [u["UserId"] for u in users] == ["a1"]
        assert await client.delete_feedback("a1", "b1") == {"RowAffected": 1}

    asyncio.run(run())
