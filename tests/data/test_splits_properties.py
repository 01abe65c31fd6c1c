"""Splits: what holds by definition (hypothesis: the parts partition the rows, per-user and
global time order, RecBole's counts), and the edges mutation testing found unchecked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@st.composite
def interaction_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=40))
    users = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))  # ties on purpose
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "label": np.ones(n, dtype=np.float32),
            "timestamp": np.asarray(times, dtype=np.int64),
        }
    )
    # a non-default index: parts must keep the caller's labels
    frame.index = pd.Index(draw(st.permutations(list(range(100, 100 + n)))), dtype=np.int64)
    return frame


ratios_st = st.lists(st.integers(0, 10), min_size=2, max_size=4).filter(lambda r: sum(r) > 0)


def _assert_partition(frame: pd.DataFrame, parts: tuple[pd.DataFrame, ...]) -> None:
    seen: set[int] = set()
    for part in parts:
        labels = set(part.index)
        assert not labels & seen, "a row is in two parts"
        seen |= labels
        pd.testing.assert_frame_equal(part, frame.loc[part.index])  # rows unchanged
    assert seen == set(frame.index), "a row is in no part"


@PROPERTY
@given(frame=interaction_frames(), ratios=ratios_st, seed=st.integers(0, 3))
def test_per_user_splits_partition_the_rows_with_recbole_counts(
    frame: pd.DataFrame, ratios: list[int], seed: int
) -> None:
    sizes = frame.groupby("user_id").size()
    counts = pd.DataFrame(split_counts(sizes.to_numpy(), ratios), index=sizes.index)
    for parts in (temporal_split(frame, ratios), random_split(frame, ratios, seed=seed)):
        assert len(parts) == len(ratios)
        _assert_partition(frame, parts)
        for p, part in enumerate(parts):
            got = part.groupby("user_id").size().reindex(sizes.index, fill_value=0)
            np.testing.assert_array_equal(got.to_numpy(), counts[p].to_numpy())
    # temporal: per user, no part holds a time earlier than any row of the part before
    parts = temporal_split(frame, ratios)
    for user in sizes.index:
        times = [p.loc[p.user_id == user, "timestamp"] for p in parts]
        times = [t for t in times if len(t)]
        for before, after in zip(times, times[1:], strict=False):
            assert before.max() <= after.min()


@PROPERTY
@given(n=st.lists(st.integers(0, 200), max_size=20), ratios=ratios_st)
def test_split_counts_add_up_and_follow_floor(n: list[int], ratios: list[int]) -> None:
    counts = split_counts(np.array(n, dtype=np.int64), ratios)
    assert counts.dtype == np.int64 and counts.shape == (len(n), len(ratios))
    assert (counts >= 0).all()
    np.testing.assert_array_equal(counts.sum(axis=1), n)
    r = np.asarray(ratios, dtype=np.float64) / sum(ratios)
    for part in range(1, len(ratios)):
        floor = np.floor(r[part] * np.array(n, dtype=np.float64)).astype(np.int64)
        extra = counts[:, part] - floor
        assert set(extra.tolist()) <= {0, 1}
        # one extra only for a part with a share below one interaction, never for a zero share
        assert not (extra & (floor > 0)).any() and not (extra & (r[part] == 0)).any()


@PROPERTY
@given(frame=interaction_frames(), ratios=ratios_st)
def test_global_temporal_split_one_cutoff_for_everyone(
    frame: pd.DataFrame, ratios: list[int]
) -> None:
    parts = global_temporal_split(frame, ratios)
    assert len(parts) == len(ratios)
    _assert_partition(frame, parts)
    nonempty = [p.timestamp for p in parts if len(p)]
    for before, after in zip(nonempty, nonempty[1:], strict=False):
        assert before.max() < after.min()  # rows at a cut-off go to the later part


@PROPERTY
@given(frame=interaction_frames(), n_test=st.integers(0, 2), n_valid=st.integers(0, 2))
def test_leave_last_out_partitions_and_takes_the_last(
    frame: pd.DataFrame, n_test: int, n_valid: int
) -> None:
    train, valid, test = leave_last_out(frame, n_test=n_test, n_valid=n_valid)
    _assert_partition(frame, (train, valid, test))
    ordered = frame.assign(row=np.arange(len(frame))).sort_values(
        ["timestamp", "row"], kind="stable"
    )
    for user, rows in ordered.groupby("user_id", sort=False):
        labels = list(rows.index)
        if len(labels) <= n_test + n_valid:
            assert set(labels) <= set(train.index)
            continue
        assert set(test.index[test.user_id == user]) == set(labels[len(labels) - n_test :])
        expected_valid = labels[len(labels) - n_test - n_valid : len(labels) - n_test]
        assert set(valid.index[valid.user_id == user]) == set(expected_valid)


@PROPERTY
@given(frame=interaction_frames(), k=st.integers(0, 4))
def test_k_core_is_the_largest_subset_where_everyone_has_k(frame: pd.DataFrame, k: int) -> None:
    kept = k_core_filter(frame, k)
    pd.testing.assert_frame_equal(kept, frame.loc[kept.index])
    if len(kept):
        assert kept.groupby("user_id").size().min() >= k
        assert kept.groupby("item_id").size().min() >= k
    # the naive peel (drop the rows of anyone under k, repeat) keeps exactly the same rows
    rows = frame
    while True:
        users, items = rows.user_id.value_counts(), rows.item_id.value_counts()
        ok = rows.user_id.map(users).ge(k) & rows.item_id.map(items).ge(k)
        if ok.all():
            break
        rows = rows[ok]
    assert set(kept.index) == set(rows.index)


# --- edges -------------------------------------------------------------------------------------
def _one_user(times: list[object]) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {"user_id": ["u"] * n, "item_id": [f"i{j}" for j in range(n)], "timestamp": times}
    )


def test_empty_and_single_row_inputs() -> None:
    empty = pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []})
    for parts in (
        temporal_split(empty),
        random_split(empty),
        global_temporal_split(empty),
        leave_last_out(empty),
    ):
        assert len(parts) == 3
        assert all(p.empty and list(p.columns) == list(empty.columns) for p in parts)
    assert k_core_filter(empty, 2).empty
    one = _one_user([5])
    for parts in (temporal_split(one), random_split(one)):
        assert [len(p) for p in parts] == [1, 0, 0]  # a user's only row trains
    # one cut-off for everyone: train holds the rows strictly before the 80% quantile
    assert [len(p) for p in global_temporal_split(one)] == [0, 0, 1]


def test_ratios_zero_parts_and_unnormalised() -> None:
    frame = _one_user(list(range(10)))
    assert [len(p) for p in temporal_split(frame, (8, 1, 1))] == [8, 1, 1]
    assert [len(p) for p in temporal_split(frame, (1.0, 0.0))] == [10, 0]
    assert [len(p) for p in temporal_split(frame, (0.5, 0.0, 0.5))] == [5, 0, 5]
    for bad in ((0, 0), (-1, 2), (1.0,), [[0.5, 0.5]]):
        with pytest.raises(InvalidInput, match="^ratios must be two or more non-negative numbers"):
            temporal_split(frame, bad)  # type: ignore[arg-type]


def test_global_quantile_cutoffs_on_exact_boundaries() -> None:
    frame = _one_user(list(range(10)))
    assert [len(p) for p in global_temporal_split(frame, (0.5, 0.5))] == [5, 5]
    assert [len(p) for p in global_temporal_split(frame, (0.9, 0.1))] == [9, 1]
    # a zero last share puts the cut-off at the last time: still a partition, in order
    parts = global_temporal_split(frame, (1.0, 0.0))
    assert sum(len(p) for p in parts) == 10 and parts[0].timestamp.max() < 9


def test_global_explicit_cutoffs() -> None:
    frame = _one_user(list(range(10)))
    assert [len(p) for p in global_temporal_split(frame, cutoffs=[3, 3, 7])] == [3, 0, 4, 3]
    for bad in ([5, 1], [1, 5, 3]):
        with pytest.raises(InvalidInput, match="^cutoffs must be ascending$"):
            global_temporal_split(frame, cutoffs=bad)
    # datetimes: cut-offs in any time zone are instants
    times = pd.date_range("2025-01-01", periods=10, freq="h", tz="UTC")
    dated = _one_user(list(times))
    cut = [
        pd.Timestamp("2025-01-01 04:00", tz="Europe/Paris"),  # 03:00 UTC
        pd.Timestamp("2025-01-01 06:00", tz="UTC"),
    ]
    assert [len(p) for p in global_temporal_split(dated, cutoffs=cut)] == [3, 3, 4]


def test_timestamps_are_compared_as_instants() -> None:
    # text with offsets: 10:00+02:00 is 08:00 UTC, before 09:00 UTC
    frame = _one_user(["2025-01-01T10:00:00+02:00", "2025-01-01T09:00:00+00:00"])
    train, test = temporal_split(frame, (0.5, 0.5))
    assert train.item_id.tolist() == ["i0"] and test.item_id.tolist() == ["i1"]
    # fractions of a unit are not rounded away
    floats = _one_user([0.7, 0.2])
    train, test = temporal_split(floats, (0.5, 0.5))
    assert train.item_id.tolist() == ["i1"]
    no_times = InteractionSet(
        user_ids=np.array(["u"]), item_ids=np.array(["i"]), users=[0], items=[0], labels=[1.0]
    )
    with pytest.raises(
        InvalidInput, match="^a temporal split needs timestamps; this InteractionSet has none$"
    ):
        temporal_split(no_times)
    with pytest.raises(InvalidInput, match="^interaction frame has no 'timestamp' column$"):
        leave_last_out(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))


def test_random_split_default_seed_and_per_user_permutation_order() -> None:
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame(
        {"user_id": rng.integers(0, 3, n).astype(str), "item_id": np.arange(n).astype(str)}
    )
    for part, default in zip(random_split(frame, seed=0), random_split(frame), strict=True):
        pd.testing.assert_frame_equal(part, default)
    # each user's rows are dealt out in the order the seeded permutation visits them
    seed = 9
    parts = random_split(frame, (0.5, 0.25, 0.25), seed=seed)
    visit = np.random.default_rng(seed).permutation(n)
    for user in frame.user_id.unique():
        rows = [frame.index[i] for i in visit if frame.user_id.iloc[i] == user]
        c = split_counts(np.array([len(rows)]), (0.5, 0.25, 0.25))[0]
        assert list(parts[0].index[parts[0].user_id == user].sort_values()) == sorted(rows[: c[0]])
        assert set(parts[2].index[parts[2].user_id == user]) == set(rows[c[0] + c[1] :])


def test_leave_last_out_counts_and_messages() -> None:
    frame = _one_user([1, 2, 3, 4])
    train, valid, test = leave_last_out(frame, n_test=0, n_valid=1)
    assert test.empty and valid.item_id.tolist() == ["i3"] and len(train) == 3
    train, valid, test = leave_last_out(frame, n_test=2, n_valid=0)
    assert valid.empty and test.item_id.tolist() == ["i2", "i3"]
    for n_test, n_valid in ((-1, 1), (1, -1)):
        with pytest.raises(InvalidInput, match="^n_test and n_valid must be >= 0$"):
            leave_last_out(frame, n_test=n_test, n_valid=n_valid)


def test_k_core_defaults_and_per_side_overrides() -> None:
    grid = pd.DataFrame(
        [(f"u{u}", f"i{i}") for u in range(10) for i in range(10)], columns=["user_id", "item_id"]
    )
    assert len(k_core_filter(grid)) == 100  # default k = 10: exactly ten each is kept
    assert len(k_core_filter(grid, 11)) == 0
    assert len(k_core_filter(grid, 11, user_k=10, item_k=10)) == 100
    assert len(k_core_filter(grid, 11, user_k=10)) == 0  # items still need 11


def test_recbole_split_defaults_and_temporal_order() -> None:
    rows = [(f"u{u}", f"i{i}", 3.0, u * 100 + (i * 7) % 12) for u in range(12) for i in range(12)]
    rows += [(f"u{u}", f"j{u}", 2.0, 0) for u in range(12)]  # below 3: dropped first
    rows += [(f"u{u}", f"i{u}", 3.0, 5000) for u in range(2)]  # a repeat pair, still kept
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    parts = recbole_split(frame)
    kept = pd.concat(parts)
    assert len(kept) == 12 * 12 + 2 and (kept.label == 1.0).all()  # ratings 3 kept: 3.0 >= 3
    for part, seeded in zip(parts, recbole_split(frame, seed=2020), strict=True):
        pd.testing.assert_frame_equal(part, seeded)
    assert not recbole_split(frame, seed=3)[2].equals(recbole_split(frame, seed=4)[2])
    assert len(recbole_split(frame, k=14)[0]) == 0  # k is the core: 12 or 13 < 14
    # ratios reach the per-user split: with 0.5/0.25/0.25 a 12-row user tests 3
    train, valid, test = recbole_split(frame, ratios=(0.5, 0.25, 0.25), order="temporal")
    assert (test.groupby("user_id").size().loc[[f"u{u}" for u in range(2, 12)]] == 3).all()
    for user, rows_ in test.groupby("user_id"):
        assert rows_.timestamp.min() >= train.loc[train.user_id == user, "timestamp"].max()
    with pytest.raises(InvalidInput, match="^order must be 'random' or 'temporal', got 'time'$"):
        recbole_split(frame, order="time")
    with pytest.raises(
        InvalidInput, match=r"^recbole_split needs three ratios \(train, validation, test\)$"
    ):
        recbole_split(frame, ratios=(0.5, 0.5))
