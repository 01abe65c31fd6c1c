"""Dataset building: labels from the action table, negatives, splits, hashed ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from matchwise.actions import merge_action_table
from matchwise.data.dataset import (
    label_interactions,
    load_dataset,
    sample_negatives,
    save_dataset,
)
from matchwise.data.synthetic import generate_items
from matchwise.db import queries
from matchwise.errors import InvalidInput
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
