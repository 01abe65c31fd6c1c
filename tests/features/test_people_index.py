"""The people index (issue 21 item 2): without a budget it admits exactly whom a scan of
everyone with the two-sided hard filters admits; with one, the nearest ``budget`` of them
(plus everyone without a position), never anyone the filters exclude."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matchwise.features.compatibility import ProfileArrays, haversine_km, mutual_preference_mask
from matchwise.features.people_index import PeopleIndex

CITIES = [(52.52, 13.40), (48.86, 2.35), (51.51, -0.13), (-33.87, 151.21)]
TAGS = ["hiking", "jazz", "chess", "yoga", "cooking", "films", "running", "art"]


def _population(n: int, seed: int, spread: float = 1.0) -> ProfileArrays:
    """People in four cities with every kind of missing value the filters must tolerate
    (``spread`` scales how far from the centre they live)."""
    return ProfileArrays.from_frame(_frame(n, seed, spread), cell_km=1.5)


def _frame(n: int, seed: int, spread: float = 1.0) -> pd.DataFrame:
    """:func:`_population`'s profiles as a users frame."""
    rng = np.random.default_rng(seed)
    city = rng.integers(0, len(CITIES), n)
    lat = np.array([CITIES[c][0] for c in city]) + rng.normal(0, 0.15 * spread, n)
    lon = np.array([CITIES[c][1] for c in city]) + rng.normal(0, 0.2 * spread, n)
    unplaced = rng.random(n) < 0.05
    genders = np.array(["woman", "man", "nonbinary", None], dtype=object)
    seeking = [["man"], ["woman"], ["woman", "man"], ["nonbinary", "woman", "man"], []]
    age = rng.integers(18, 60, n) + np.where(rng.random(n) < 0.2, rng.random(n), 0.0)
    # fractional ages and bounds: the index buckets ages by whole year, the filters do not
    frame = pd.DataFrame(
        {
            "id": [f"p{i:05d}" for i in range(n)],
            "gender": genders[rng.choice(4, n, p=[0.45, 0.45, 0.07, 0.03])],
            "seeking": [seeking[k] for k in rng.choice(5, n, p=[0.4, 0.4, 0.1, 0.05, 0.05])],
            "age": np.where(rng.random(n) < 0.03, np.nan, age),
            "age_min": np.where(rng.random(n) < 0.1, np.nan, age - rng.integers(1, 8, n) - 0.3),
            "age_max": np.where(rng.random(n) < 0.1, np.nan, age + rng.integers(1, 10, n) + 0.7),
            "max_distance_km": np.where(
                rng.random(n) < 0.1, np.nan, rng.choice([5.0, 10.0, 25.0, 50.0, 1000.0], n)
            ),
            "latitude": np.where(unplaced, np.nan, lat),
            "longitude": np.where(unplaced, np.nan, lon),
            "tags": [list(rng.choice(TAGS, rng.integers(0, 4), replace=False)) for _ in range(n)],
        }
    )
    return frame


def _scan(p: ProfileArrays, me: int, allowed: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """What serving did before the index: test everyone."""
    keep = allowed.copy()
    keep[gone] = False
    rows = np.flatnonzero(keep)
    return rows[mutual_preference_mask(p, me, rows)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_without_a_budget_the_index_admits_exactly_what_a_scan_does(seed: int) -> None:
    p = _population(3000, seed)
    index = PeopleIndex.build(p)
    rng = np.random.default_rng(seed)
    allowed = rng.random(len(p)) < 0.9
    for me in rng.choice(len(p), 150, replace=False):
        gone = rng.choice(len(p), 20, replace=False)
        found = index.candidates(p, int(me), allowed, gone, budget=0)
        np.testing.assert_array_equal(found, _scan(p, int(me), allowed, gone))


def test_a_budget_keeps_the_nearest_qualifying_and_everyone_unplaced() -> None:
    p = _population(4000, 7)
    index = PeopleIndex.build(p)
    allowed = np.ones(len(p), bool)
    none = np.zeros(0, np.int64)
    placed = np.isfinite(p.latitude) & np.isfinite(p.longitude)
    bound = 0
    for me in np.flatnonzero(placed)[:200]:
        full = _scan(p, int(me), allowed, none)
        found = index.candidates(p, int(me), allowed, none, budget=25)
        assert set(found) <= set(full)  # never anyone a filter excludes
        assert set(full[~placed[full]]) <= set(found)  # distance never excludes these
        near = found[placed[found]]
        assert len(near) == min(25, int(placed[full].sum()))
        dropped = np.setdiff1d(full[placed[full]], near)
        if len(dropped):
            bound += 1
            km = haversine_km(p.latitude[me], p.longitude[me], p.latitude, p.longitude)
            assert km[near].max() <= km[dropped].min() + 1e-6  # the nearest are kept
    assert bound > 30  # the budget did bind for many people here


def test_the_budget_counts_after_exclusions() -> None:
    """A person who swiped their nearest people still gets a full budget of others."""
    p = _population(4000, 9)
    index = PeopleIndex.build(p)
    allowed = np.ones(len(p), bool)
    placed = np.isfinite(p.latitude) & np.isfinite(p.longitude)
    none = np.zeros(0, np.int64)
    me = next(int(m) for m in np.flatnonzero(placed)
              if placed[_scan(p, int(m), allowed, none)].sum() >= 80)  # fmt: skip
    first = index.candidates(p, me, allowed, None, budget=30)
    again = index.candidates(p, me, allowed, first, budget=30)
    assert not set(first) & set(again)
    assert len(again[placed[again]]) == 30


@pytest.mark.parametrize("budget", [0, 7, 40])
def test_many_people_at_once_get_what_each_gets_alone(budget: int) -> None:
    """People sharing a segment and a cell share one walk (candidates_and_distances_of);
    each list is the one that person gets alone, exclusions each their own."""
    p = _population(3000, 11, spread=0.1)
    index = PeopleIndex.build(p)
    rng = np.random.default_rng(budget)
    allowed = rng.random(len(p)) < 0.95
    keys = np.column_stack([p.gender_bit, p.seeking_mask, p.latitude, p.longitude])
    _, group, sizes = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    crowded = np.flatnonzero(sizes[group.ravel()] >= 3)  # people who share a cell and segment
    people = np.concatenate([crowded[:120], rng.choice(len(p), 60, replace=False)])
    excluded = [rng.choice(len(p), int(rng.integers(0, 30)), replace=False) for _ in people]
    together = [
        rows for rows, _ in index.candidates_and_distances_of(p, people, allowed, excluded, budget)
    ]
    assert len(crowded) >= 120
    placed = np.isfinite(p.latitude) & np.isfinite(p.longitude)
    if budget:  # the budget cut most lists
        assert sum(int(placed[f].sum()) == budget for f in together) > 60
    for me, gone, found in zip(people, excluded, together, strict=True):
        alone = index.candidates(p, int(me), allowed, gone, budget)
        np.testing.assert_array_equal(found, alone)
        if budget == 0:
            np.testing.assert_array_equal(found, _scan(p, int(me), allowed, np.append(gone, me)))


def test_the_budget_takes_everyone_nearer_than_its_farthest() -> None:
    """With a budget, every qualifying person strictly nearer than the farthest one taken
    is taken (a cell as near as the last one taken is never left unread), and the list is
    full whenever enough qualify."""
    p = _population(4000, 13)
    index = PeopleIndex.build(p)
    allowed = np.ones(len(p), bool)
    none = np.zeros(0, np.int64)
    placed = np.isfinite(p.latitude) & np.isfinite(p.longitude)
    cut = 0
    for me in np.flatnonzero(placed)[:150]:
        full = _scan(p, int(me), allowed, none)
        near = full[placed[full]]
        found = index.candidates(p, int(me), allowed, none, budget=20)
        taken = found[placed[found]]
        assert len(taken) == min(20, len(near))
        km = haversine_km(p.latitude[me], p.longitude[me], p.latitude, p.longitude)
        if len(taken) < len(near):
            cut += 1
            farthest = km[taken].max()
            assert set(near[km[near] < farthest - 1e-9]) <= set(taken), me
    assert cut > 50


@pytest.mark.parametrize("budget", [0, 25])
def test_the_distances_given_are_each_pairs_haversine(budget: int) -> None:
    """candidates_and_distances(_of) gives each candidate's distance from the person as
    scoring would take it pair by pair (to the bit: lists must rank alike whichever path
    made them), NaN where either has no position; the rows are candidates'."""
    p = _population(3000, 17)
    index = PeopleIndex.build(p)
    allowed = np.ones(len(p), bool)
    placed = np.isfinite(p.latitude) & np.isfinite(p.longitude)
    people = np.concatenate([np.flatnonzero(placed)[:80], np.flatnonzero(~placed)[:10]])
    none = [np.zeros(0, np.int64)] * len(people)
    pairs = index.candidates_and_distances_of(p, people, allowed, none, budget)
    nan_seen = 0
    for me, (rows, km) in zip(people, pairs, strict=True):
        np.testing.assert_array_equal(rows, index.candidates(p, int(me), allowed, None, budget))
        mine = np.full(len(rows), int(me))
        want = haversine_km(p.latitude[mine], p.longitude[mine], p.latitude[rows],
                            p.longitude[rows])  # fmt: skip
        assert km.tobytes() == want.tobytes(), me
        nan_seen += int(np.isnan(km).sum())
        alone = index.candidates_and_distances(p, int(me), allowed, None, budget)
        assert alone[0].tolist() == rows.tolist() and alone[1].tobytes() == km.tobytes()
    assert nan_seen > 0  # the unplaced on either side were among them


@pytest.mark.parametrize("budget", [0, 40])
def test_rows_appended_since_the_index_was_built_are_found_as_if_built_with_them(
    budget: int,
) -> None:
    """A patched catalogue (serve.people_catalogue) keeps its index and adds one of the
    rows appended since: each person's candidates and distances are what one index of
    everyone gives (with a budget, the same nearest: equal distances, as ties between
    equally near cells may be broken by another row)."""
    frame = _frame(3000, 4)
    first = ProfileArrays.from_frame(frame.iloc[:2500], cell_km=1.5)
    grown = first.appended(frame.iloc[2500:])
    patched = PeopleIndex.build(first).with_rows_from(grown, 2500)
    whole = PeopleIndex.build(grown)
    assert patched.recent is not None and patched.first_recent == 2500
    rng = np.random.default_rng(4)
    allowed = rng.random(len(grown)) < 0.9
    people = np.concatenate([rng.choice(2500, 60, replace=False), np.arange(2500, 2600)])
    excluded = [rng.choice(len(grown), 5, replace=False) for _ in people]
    got = patched.candidates_and_distances_of(grown, people, allowed, excluded, budget)
    want = whole.candidates_and_distances_of(grown, people, allowed, excluded, budget)
    found_new = 0
    for (rows, km), (want_rows, want_km) in zip(got, want, strict=True):
        if budget == 0:
            np.testing.assert_array_equal(rows, want_rows)
            np.testing.assert_allclose(km, want_km, equal_nan=True)
        else:
            assert len(rows) == len(want_rows)
            unplaced = ~np.isfinite(km)
            np.testing.assert_array_equal(rows[unplaced], want_rows[~np.isfinite(want_km)])
            np.testing.assert_allclose(
                np.sort(km[~unplaced]), np.sort(want_km[np.isfinite(want_km)])
            )
        found_new += int((rows >= 2500).sum())
    assert found_new > 0  # the appended rows are candidates


def test_appended_profiles_keep_the_encoding_of_those_before_them() -> None:
    """Genders and tags first seen in appended rows get bits and columns after the others:
    every filter and shared-tag count is what profiles built together give."""
    frame = _frame(800, 5)
    frame.loc[700:, "gender"] = "agender"  # a gender, and tags, nobody before had
    frame.loc[700:, "seeking"] = pd.Series([["agender", "woman"]] * 100, index=frame.index[700:])
    frame.loc[750:, "tags"] = pd.Series([["kitesurfing", "hiking"]] * 50, index=frame.index[750:])
    together = ProfileArrays.from_frame(frame, cell_km=1.5)
    grown = ProfileArrays.from_frame(frame.iloc[:700], cell_km=1.5).appended(frame.iloc[700:])
    np.testing.assert_array_equal(grown.ids, together.ids)
    assert "agender" in grown.gender_codes and "kitesurfing" in grown.tag_vocabulary
    everyone = np.arange(len(grown))
    for me in [0, 5, 350, 699, 700, 720, 760, 799]:
        np.testing.assert_array_equal(
            mutual_preference_mask(grown, me, everyone),
            mutual_preference_mask(together, me, everyone),
        )
        shared = (grown.tags @ grown.tags[me].T).toarray().ravel()
        np.testing.assert_array_equal(
            shared, (together.tags @ together.tags[me].T).toarray().ravel()
        )
    assert grown.tag_bits is not None and together.tag_bits is not None
    bits = [bin(int(b)).count("1") for b in grown.tag_bits]
    assert bits == [bin(int(b)).count("1") for b in together.tag_bits]
