"""Splits: no leakage between parts, per-user time order, ratios, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matchwise.data.splits import (
    global_temporal_split,
    k_core_filter,
    leave_last_out,
    random_split,
    recbole_split,
    split_counts,
    temporal_split,
)
from matchwise.errors import InvalidInput
from matchwise.models.base import InteractionSet


def _frame(n_users: int = 20, per_user: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(50, size=per_user + u % 7, replace=False)
        times = rng.permutation(len(items)) * 10 + u
        for item, t in zip(items, times, strict=True):
            rows.append((f"u{u}", f"i{item}", 1.0, int(t), float(rng.integers(1, 6))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "label", "timestamp", "rating"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _keys(frame: pd.DataFrame) -> set[tuple[str, str, int]]:
    return set(zip(frame.user_id, frame.item_id, frame.timestamp, strict=True))


def _assert_partition(frame: pd.DataFrame, parts: tuple[pd.DataFrame, ...]) -> None:
    assert sum(len(p) for p in parts) == len(frame)
    indexes = [set(p.index) for p in parts]
    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            assert not indexes[a] & indexes[b]
    assert set().union(*indexes) == set(frame.index)


def test_split_counts_follow_recbole_arithmetic() -> None:
    # a short user fills the test part before the validation part, as in RecBole
    counts = split_counts(np.array([10, 25, 5, 2, 1]), (0.8, 0.1, 0.1))
    np.testing.assert_array_equal(counts, [[8, 1, 1], [21, 2, 2], [3, 1, 1], [1, 0, 1], [1, 0, 0]])


def test_temporal_split_is_per_user_time_ordered() -> None:
    frame = _frame()
    train, valid, test = temporal_split(frame)
    _assert_partition(frame, (train, valid, test))
    for user, group in frame.groupby("user_id"):
        t_train = train.loc[train.user_id == user, "timestamp"]
        t_valid = valid.loc[valid.user_id == user, "timestamp"]
        t_test = test.loc[test.user_id == user, "timestamp"]
        assert t_train.max() < t_valid.min() <= t_valid.max() < t_test.min()
        n = len(group)
        assert len(t_valid) == int(0.1 * n) and len(t_test) == int(0.1 * n)


def test_random_split_ratios_and_determinism() -> None:
    frame = _frame()
    first = random_split(frame, (0.8, 0.1, 0.1), seed=7)
    again = random_split(frame, (0.8, 0.1, 0.1), seed=7)
    other = random_split(frame, (0.8, 0.1, 0.1), seed=8)
    _assert_partition(frame, first)
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert _keys(first[2]) != _keys(other[2])
    sizes = frame.groupby("user_id").size()
    test_sizes = first[2].groupby("user_id").size()
    np.testing.assert_array_equal(test_sizes.loc[sizes.index], np.floor(0.1 * sizes).astype(int))


def test_random_split_two_parts() -> None:
    frame = _frame()
    train, test = random_split(frame, (0.7, 0.3), seed=1)
    _assert_partition(frame, (train, test))
    assert abs(len(test) / len(frame) - 0.3) < 0.05


def test_global_temporal_split_has_one_cutoff() -> None:
    frame = _frame()
    train, valid, test = global_temporal_split(frame)
    _assert_partition(frame, (train, valid, test))
    assert train.timestamp.max() < valid.timestamp.min()
    assert valid.timestamp.max() < test.timestamp.min()
    assert abs(len(train) / len(frame) - 0.8) < 0.05


def test_global_temporal_split_with_cutoffs_and_datetimes() -> None:
    frame = _frame()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    cut = pd.Timestamp(100, unit="s", tz="UTC")
    before, after = global_temporal_split(frame, cutoffs=[cut])
    assert (before.timestamp < cut).all() and (after.timestamp >= cut).all()
    assert len(before) + len(after) == len(frame)


def test_leave_last_out() -> None:
    frame = _frame()
    train, valid, test = leave_last_out(frame)
    _assert_partition(frame, (train, valid, test))
    assert test.user_id.is_unique and valid.user_id.is_unique
    last = frame.sort_values("timestamp").groupby("user_id").tail(1)
    assert _keys(last) == _keys(test)
    short = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"], "timestamp": [1, 2]})
    tr, va, te = leave_last_out(short)
    assert len(tr) == 2 and va.empty and te.empty


def test_k_core_filter_is_iterative() -> None:
    # item z has 2 users; removing it leaves user c with 1 interaction, which must go too
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "c"],
            "item_id": ["x", "y", "x", "y", "x", "z"],
        }
    )
    kept = k_core_filter(frame, 2)
    assert set(kept.user_id) == {"a", "b"} and set(kept.item_id) == {"x", "y"}
    assert len(kept) == 4
    assert len(k_core_filter(frame, 2, item_k=0)) == 6


def test_splits_work_on_interaction_sets() -> None:
    frame = _frame()
    data = InteractionSet.from_frame(frame)
    train, valid, test = temporal_split(data)
    assert len(train) + len(valid) + len(test) == len(data)
    assert train.n_items == data.n_items and test.n_users == data.n_users
    pairs = [set(zip(p.users, p.items, strict=True)) for p in (train, valid, test)]
    assert not (pairs[0] & pairs[2]) and not (pairs[0] & pairs[1])


def test_recbole_split_filters_ratings_and_cores() -> None:
    frame = _frame(n_users=30, per_user=25)
    train, valid, test = recbole_split(frame, seed=3, k=5)
    kept = pd.concat([train, valid, test])
    assert (kept.rating >= 3).all() and (kept.label == 1.0).all()
    assert kept.groupby("user_id").size().min() >= 5
    assert kept.groupby("item_id").size().min() >= 5
    again = recbole_split(frame, seed=3, k=5)
    pd.testing.assert_frame_equal(test, again[2])
    assert not _keys(train) & _keys(test)


def test_bad_ratios_and_missing_columns() -> None:
    with pytest.raises(InvalidInput):
        random_split(_frame(), (1.0,))
    with pytest.raises(InvalidInput):
        temporal_split(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
