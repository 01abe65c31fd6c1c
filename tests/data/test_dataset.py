"""Dataset building: labels from the action table, negatives, splits, hashed ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from matchwise.actions import merge_action_table
from matchwise.data import splits
from matchwise.data.dataset import (
    label_interactions,
    load_dataset,
    make_dataset,
    sample_negatives,
    save_dataset,
)
from matchwise.data.synthetic import generate_items, generate_people
from matchwise.db import queries
from matchwise.errors import InvalidInput
from matchwise.hashing import hash_ids
from matchwise.ingest.bulk import write_bundle
from matchwise.ops.privacy import hash_id
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.dataset import build_dataset

TABLE = merge_action_table(None)


def _frame(rows: list[tuple[str, str, str, float | None, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "action", "value", "occurred_at"])


def test_labels_follow_the_seed_table_and_collapse_per_pair() -> None:
    raw = _frame([
        ("u", "a", "view", None, "2026-01-01"),
        ("u", "a", "click", None, "2026-01-02"),
        ("u", "a", "apply", None, "2026-01-03"),
        ("u", "b", "view", None, "2026-01-01"),
        ("u", "c", "dislike", None, "2026-01-01"),
        ("u", "d", "impression", None, "2026-01-01"),
        ("v", "a", "rate", 5.0, "2026-01-01"),
        ("v", "b", "rate", 2.0, "2026-01-01"),
    ])  # fmt: skip
    out = label_interactions(raw, TABLE).set_index(["user_id", "item_id"])
    assert out.loc[("u", "a"), "label"] == 1.0 and out.loc[("u", "a"), "positive"]
    assert out.loc[("u", "a"), "weight"] == pytest.approx(0.5 + 1.0 + 3.0)
    assert out.loc[("u", "b"), "label"] == 0.4 and not out.loc[("u", "b"), "positive"]
    assert out.loc[("u", "c"), "label"] == 0.0
    assert ("u", "d") not in out.index  # impressions are not labels
    assert out.loc[("v", "a"), "positive"] and not out.loc[("v", "b"), "positive"]


def test_negatives_avoid_seen_items() -> None:
    labelled = label_interactions(
        _frame([("u", str(i), "like", None, "2026-01-01") for i in range(5)]), TABLE
    )
    items = [str(i) for i in range(50)]
    for strategy in ("uniform", "popularity"):
        neg = sample_negatives(labelled, items, 3, strategy, seed=1)  # type: ignore[arg-type]
        assert len(neg) == 15 and (neg["label"] == 0).all()
        assert not set(neg["item_id"]) & set(labelled["item_id"])
    with pytest.raises(InvalidInput, match="negative strategy"):
        sample_negatives(labelled, items, 1, "hard")  # type: ignore[arg-type]


def test_negatives_per_user_count_avoid_seen_and_reuse_the_users_times() -> None:
    rows = [("u", str(i), "like", None, f"2026-01-0{1 + i}") for i in range(3)]
    rows += [("v", str(i), "like", None, "2026-02-01") for i in range(5, 6)]
    rows += [("v", "7", "dislike", None, "2026-02-02")]
    rows += [("w", str(i), "like", None, "2026-03-01") for i in range(20)]  # saw everything
    labelled = label_interactions(_frame(rows), TABLE)
    items = [str(i) for i in range(20)]
    for strategy in ("uniform", "popularity"):
        neg = sample_negatives(labelled, items, 2, strategy, seed=3)  # type: ignore[arg-type]
        assert neg.groupby("user_id").size().to_dict() == {"u": 6, "v": 2}
        seen = set(zip(labelled["user_id"], labelled["item_id"], strict=True))
        assert not seen & set(zip(neg["user_id"], neg["item_id"], strict=True))
        times = labelled[labelled["positive"]].groupby("user_id")["timestamp"].agg(set)
        assert all(t in times[u] for u, t in zip(neg["user_id"], neg["timestamp"], strict=True))
        assert set(neg[neg["user_id"] == "u"]["timestamp"]) == times["u"]


def test_training_events_read_back_with_their_times_and_values(runtime: Runtime) -> None:
    """The store's events come back as written, on either store: UTC times to the
    microsecond as a datetime column, rating values as floats, missing values as NaN."""
    bundle = generate_items(n_users=30, n_items=20, n_interactions=300, seed=2)
    events = bundle.interactions
    rated = events.iloc[:2].assign(
        event_id=["rate-1", "rate-2"], action="rate", value=[4.0, 2.5],
        occurred_at=pd.to_datetime(["2026-03-01 10:00:00.123456", "2026-03-01 10:00:01"],
                                   utc=True, format="ISO8601"),
    )  # fmt: skip
    bundle.interactions = pd.concat([events, rated], ignore_index=True)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    with runtime.session() as session:
        raw = queries.training_interactions(session, "items")
    assert isinstance(raw["occurred_at"].dtype, pd.DatetimeTZDtype)
    assert raw["occurred_at"].is_monotonic_increasing

    def rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
        times = frame["occurred_at"].dt.tz_convert("UTC").dt.as_unit("us").astype("int64")
        values = frame["value"].fillna(-1.0).astype(float)
        return sorted(zip(frame["user_id"], frame["item_id"], frame["action"], values, times,
                          strict=True))  # fmt: skip

    assert rows(raw) == rows(bundle.interactions)


@pytest.fixture
def items_store(sqlite_url: str, tmp_path: Path) -> Runtime:
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    bundle = generate_items(n_users=120, n_items=80, n_interactions=4000, seed=5)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    return runtime


def test_build_save_load_round_trip(items_store: Runtime, tmp_path: Path) -> None:
    s = items_store.settings
    with items_store.session() as session:
        ds = build_dataset(session, s.action_table, s.hash_secret, negative_samples=2)
    stats = ds.manifest["stats"]
    assert stats["rows"]["train"] > stats["rows"]["test"] > 0
    assert "negative_sample" in stats["actions"]
    # time-ordered per user: every user's validation/test rows come after their training rows
    last_train = ds.train[ds.train["action"] != "negative_sample"].groupby("user_id")["timestamp"]
    first_test = ds.test.groupby("user_id")["timestamp"].min()
    both = first_test.index.intersection(last_train.max().index)
    assert (first_test[both] >= last_train.max()[both]).all()
    # no raw ids in the snapshot
    assert not set(ds.train["user_id"]) & {f"u{i}" for i in range(120)}
    assert hash_id(s.hash_secret, "u0") in set(ds.users["id"])
    folder = save_dataset(ds, tmp_path / "snap")
    again = load_dataset(folder)
    assert again.manifest["version"] == ds.manifest["version"]
    train, valid, test = again.interaction_sets()
    assert train.n_items == test.n_items == len(again.items)
    with items_store.session() as session:
        ds2 = build_dataset(session, s.action_table, s.hash_secret, negative_samples=2)
    assert ds2.manifest["version"] == ds.manifest["version"]  # deterministic


def test_no_positives_is_a_clear_error(sqlite_url: str) -> None:
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    with runtime.session() as session, pytest.raises(InvalidInput, match="no positive"):
        build_dataset(session, TABLE, "secret")


def test_load_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a dataset snapshot"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("negatives", [0, 2])
@pytest.mark.parametrize("split", ["temporal", "random", "leave_last_out"])
def test_ids_hashed_once_give_the_parts_hashed_one_by_one(split: str, negatives: int) -> None:
    """make_dataset hashes the ids once, before the split (issue 21: each part's columns
    were hashed again, ten million ids a column at a million people): the parts, users,
    candidates and version are those of raw ids split, sampled, then hashed part by part."""
    bundle = generate_people(n_users=300, n_swipes=3_000, seed=8)
    raw = bundle.interactions.drop(columns=["item_id"]).rename(
        columns={"target_user_id": "item_id"}
    )[["user_id", "item_id", "action", "value", "occurred_at"]]
    made = make_dataset(raw, bundle.users, None, TABLE, "s", domain="people", split=split,  # type: ignore[arg-type]
                        negative_samples=negatives, seed=5)  # fmt: skip
    labelled = label_interactions(raw, TABLE)
    parts = {"temporal": lambda f: splits.temporal_split(f),
             "random": lambda f: splits.random_split(f, seed=5),
             "leave_last_out": splits.leave_last_out}[split](labelled)  # fmt: skip
    train, valid, test = (p.reset_index(drop=True) for p in parts)
    if negatives:
        drawn = sample_negatives(train, bundle.users["id"], negatives, seed=5)
        train = pd.concat([train, drawn], ignore_index=True)
    for want, got in ((train, made.train), (valid, made.valid), (test, made.test)):
        want = want.assign(user_id=hash_ids("s", want["user_id"]),
                           item_id=hash_ids("s", want["item_id"]))  # fmt: skip
        pd.testing.assert_frame_equal(got, want)
    assert made.users["id"].tolist() == [hash_id("s", u) for u in bundle.users["id"]]
    assert made.items["id"].tolist() == made.users["id"].tolist()
    assert made.manifest["stats"]["rows"]["train"] == len(train)


def test_hash_ids_is_hash_id_per_value_and_keeps_missing_ids_missing() -> None:
    values = pd.Series(["b", None, "a", "b", 7], index=[4, 3, 2, 1, 0], name="user_id")
    out = hash_ids("k", values)
    assert out.index.tolist() == [4, 3, 2, 1, 0] and out.name == "user_id"
    assert [out[4], out[2], out[1], out[0]] == [hash_id("k", v) for v in ("b", "a", "b", "7")]
    assert pd.isna(out[3])
    assert hash_ids("k", pd.Series([None, None])).isna().all()
