"""The batched people refresh (issue 21 item 2) caches, for every person, a list that
passes every two-sided hard filter (gender and seeking, ages, distance, not swiped, not
refused or blocked either way, shown) and is exactly the list a live request computes at
the same moment: candidates, ranks, scores, reasons, route and model version, on SQLite
and PostgreSQL, with blocks that do not divide the people evenly and people spread over
cities far apart (so the people index really prunes), and with a candidate budget that
binds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from matchwise.actions import DECIDED_ACTIONS, HIDES_ACTOR_FROM_TARGET
from matchwise.data.synthetic import generate_people
from matchwise.db.tables import Interaction, User
from matchwise.db.tables import Recommendation as CachedRow
from matchwise.features.compatibility import mutual_preference_mask
from matchwise.hashing import hash_id
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import ingest_events
from matchwise.runtime import Runtime
from matchwise.scale import refresh_people_with_ray
from matchwise.schemas import InteractionIn
from matchwise.serve import people_refresh
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.people_refresh import PeopleRefresher, people_by_place, refresh_people
from matchwise.serve.recommend import recommend
from matchwise.serve.state import model_columns
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    bundle = generate_people(n_users=150, n_swipes=1500, seed=21, start=start, n_cities=2)
    swipes = bundle.interactions
    # a few blocks, each way round, between people who never swiped each other
    seen = set(zip(swipes["user_id"], swipes["target_user_id"], strict=True))
    blocks = [
        (a, b)
        for a, b in zip(bundle.users["id"][:30], bundle.users["id"][30:60], strict=True)
        if (a, b) not in seen and (b, a) not in seen
    ]
    extra = pd.DataFrame({"event_id": [f"blk{i}" for i in range(len(blocks))],
                          "user_id": [a for a, _ in blocks],
                          "target_user_id": [b for _, b in blocks], "action": "block",
                          "occurred_at": swipes["occurred_at"].max()})  # fmt: skip
    bundle.interactions = pd.concat([swipes, extra], ignore_index=True)
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    with runtime.session() as s:  # one person deactivated, one held: never candidates
        s.execute(update(User).where(User.id == "p5").values(active=False))
        s.execute(update(User).where(User.id == "p6").values(moderation_status="held"))
    train_model(runtime, "reciprocal", domain="people", activate="always")
    # each of ten people is blocked by the person at the top of their list: a refusal the
    # refresh must read from the other side
    for user_id in [f"p{i}" for i in range(60, 70)]:
        with runtime.session() as s:
            top = recommend(runtime, s, user_id, limit=1, kind="user", use_cache=False,
                            experiments=False).recommendations  # fmt: skip
            if top:
                block = InteractionIn(user_id=top[0].candidate_id, target_user_id=user_id,
                                      action="block")  # fmt: skip
                ingest_events(s, [block], settings.action_table)
    yield runtime
    runtime.close()


def _cached(runtime: Runtime) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    with runtime.session() as s:
        rows = s.execute(
            select(CachedRow.user_id, CachedRow.candidate_id, CachedRow.rank, CachedRow.score,
                   CachedRow.reason, CachedRow.route, CachedRow.model_version,
                   CachedRow.generated_at)
            .where(CachedRow.candidate_kind == "user")
            .order_by(CachedRow.user_id, CachedRow.rank)
        ).all()  # fmt: skip
    for user, *row in rows:
        out.setdefault(user, []).append(tuple(row))
    return out


def test_people_refresh_passes_every_hard_filter_and_matches_the_live_list(
    store: Runtime,
) -> None:
    stats = refresh_people(store, None, top_n=10, block=7)
    cached = _cached(store)
    assert stats["users"] == 149  # everyone active
    assert stats["rows"] == sum(len(v) for v in cached.values()) > 0
    with store.session() as s:
        events = s.execute(select(Interaction.user_id, Interaction.target_user_id,
                                  Interaction.action)).all()  # fmt: skip
        cat = PeopleCatalogue.load(s, store.settings.location_cell_km)
    decided = {(a, b) for a, b, act in events if b is not None and act in DECIDED_ACTIONS}
    refused = {(b, a) for a, b, act in events if b is not None and act in HIDES_ACTOR_FROM_TARGET}
    p = cat.profiles
    blocked = {
        (b, a) for a, b, act in events if act == "block" and b in {f"p{i}" for i in range(60, 70)}
    }
    assert len(blocked) >= 5  # the fixture's blocks of people at the top of a list
    routes = set()
    for user_id, rows in cached.items():
        me = cat.position[user_id]
        shown = np.array([cat.position[c] for c, *_ in rows])
        assert mutual_preference_mask(p, me, shown).all(), user_id
        assert cat.visible[shown].all() and not {"p5", "p6"} & {c for c, *_ in rows}
        for candidate, *_ in rows:
            assert (user_id, candidate) not in decided | refused, (user_id, candidate)
        now = rows[0][-1]
        with store.session() as s:
            live = recommend(store, s, user_id, limit=10, kind="user", use_cache=False,
                             now=now, experiments=False)  # fmt: skip
        expected = [(r.candidate_id, r.rank, r.score, r.reason, live.route, live.model_version,
                     now) for r in live.recommendations]  # fmt: skip
        assert rows == expected, user_id
        routes.add(live.route)
    assert "warm" in routes or "hot" in routes  # the reciprocal model was compared too

    # without a binding budget the index admits exactly whom the filters admit, and the
    # segments and cells leave most people unread
    index, everyone = cat.people_index(), np.arange(len(cat.visible))
    for me in range(len(cat.visible)):
        admitted = everyone[cat.visible & mutual_preference_mask(p, me, everyone)]
        found = index.candidates(p, me, cat.visible, None, store.settings.people_candidate_budget)
        assert found.tolist() == admitted.tolist(), me


def test_with_a_binding_budget_refresh_and_live_lists_still_agree(
    store: Runtime, db_url: str, tmp_path: Path
) -> None:
    """Four candidates a person (fewer than most qualify for here): both paths rank the
    same four nearest qualifying people, so the cache holds what a request computes."""
    settings = store.settings.model_copy(update={"people_candidate_budget": 4})
    runtime = Runtime.open(settings, migrate=False)
    try:
        refresh_people(runtime, None, top_n=10, block=7)
        cached = _cached(runtime)
        bound = 0
        for user_id, rows in cached.items():
            assert len(rows) <= 4
            with runtime.session() as s:
                live = recommend(runtime, s, user_id, limit=10, kind="user", use_cache=False,
                                 now=rows[0][-1], experiments=False)  # fmt: skip
            expected = [(x.candidate_id, x.rank, x.score) for x in live.recommendations]
            assert [(c, r, sc) for c, r, sc, *_ in rows] == expected, user_id
            bound += len(rows) == 4
        assert bound > 20  # the budget did cut many lists
    finally:
        runtime.close()


def test_people_held_after_the_catalogue_loaded_are_skipped_window_after_window(
    store: Runtime,
) -> None:
    """The refresh loads the catalogue once; people held since are found in the store and
    skipped, however many lead the list (more than a window: the next one is read)."""
    refresher = PeopleRefresher.open(store)
    longest: list[str] = []
    for user_id in [f"p{i}" for i in range(70, 150)]:
        with store.session() as s:
            found = recommend(store, s, user_id, limit=40, kind="user", use_cache=False,
                              experiments=False).recommendations  # fmt: skip
        if len(found) > len(longest):
            user, longest = user_id, [r.candidate_id for r in found]
    assert len(longest) >= 15
    with store.session() as s:  # the first 13: more than the refresh's window of 2 + 10
        s.execute(update(User).where(User.id.in_(longest[:13])).values(moderation_status="held"))
    refresher.refresh([user], top_n=2)
    assert [c for c, *_ in _cached(store)[user]] == longest[13:15]


@pytest.mark.slow
def test_ray_people_refresh_writes_what_the_serial_one_writes(store: Runtime) -> None:
    ray = pytest.importorskip("ray")
    refresh_people(store, None, top_n=8)
    serial = {u: [(c, r) for c, r, *_ in rows] for u, rows in _cached(store).items()}
    with store.session() as s:
        s.query(CachedRow).delete()
    stats = refresh_people_with_ray(store, None, top_n=8, num_cpus=2, chunk_size=40, block=9)
    got = {u: [(c, r) for c, r, *_ in rows] for u, rows in _cached(store).items()}
    assert stats["users"] == 149 and stats["tasks"] == 4
    assert got == serial
    assert len(stats["actor_peak_rss_mib"]) == 2  # one figure per actor process
    assert not ray.is_initialized()


def test_people_are_refreshed_neighbourhood_by_neighbourhood(
    store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ray driver orders people by segment and distance cell before cutting chunks, so
    the people of one cell and segment sit together (they share the index's walk); asked
    by id or read with one scan of everyone, the order is the same."""
    with store.session() as s:
        ids = [u for (u,) in s.execute(select(User.id).where(User.active.is_(True)))]
        cat = PeopleCatalogue.load(s, store.settings.location_cell_km)
    ordered = people_by_place(store, list(reversed(ids)))
    assert sorted(ordered) == sorted(ids) and len(ordered) == len(ids)
    p = cat.profiles
    keys = [(int(p.gender_bit[cat.position[u]]), int(p.seeking_mask[cat.position[u]]),
             float(p.latitude[cat.position[u]]), float(p.longitude[cat.position[u]]))
            for u in ordered if u in cat.position]  # fmt: skip
    runs = sum(1 for a, b in zip(keys, keys[1:], strict=False) if a != b) + 1
    assert runs == len(set(keys))  # each (segment, cell) is one run
    assert len(set(keys)) < len(keys)  # and some hold several people
    assert people_by_place(store, ordered[:5]) == sorted(ordered[:5], key=ordered.index)
    monkeypatch.setattr(people_refresh, "_BY_ID", 0)  # as for more than 10,000 people
    assert people_by_place(store, list(reversed(ids))) == ordered
    assert people_by_place(store, ordered[:5]) == sorted(ordered[:5], key=ordered.index)


def test_reasons_are_the_same_without_tag_words(store: Runtime) -> None:
    """Past 64 tags there are no tag words: shared tags (and the reasons naming them) come
    from the sparse rows, and every list is the same."""
    refresher = PeopleRefresher.open(store)
    users = [f"p{i}" for i in range(0, 150, 3)]
    refresher.refresh(users, top_n=10)
    with_words = _cached(store)
    assert refresher.cat.profiles.tag_bits is not None
    assert any("you both like" in row[3] for rows in with_words.values() for row in rows)
    refresher.cat.profiles.tag_bits = None
    refresher._reasons.clear()
    refresher.refresh(users, top_n=10)
    assert {u: [r[:6] for r in rows] for u, rows in _cached(store).items()} == {
        u: [r[:6] for r in rows] for u, rows in with_words.items()
    }


def test_model_columns_are_each_ids_column_or_minus_one() -> None:
    """The catalogue's model columns, hashed together, are each id's own lookup."""
    secret = "s3cret"
    ids = np.array([f"p{i}" for i in range(50)] + ["x", "", "p3"], dtype=object)
    index = {hash_id(secret, f"p{i}"): 100 + i for i in range(0, 60, 2)}
    want = [index.get(hash_id(secret, str(i)), -1) for i in ids]
    assert model_columns(index, ids, secret).tolist() == want
    assert model_columns({}, ids, secret).tolist() == [-1] * len(ids)
    assert model_columns(index, np.array([], dtype=object), secret).tolist() == []
