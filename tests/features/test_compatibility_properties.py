"""Structured compatibility: the hard filters never let through anyone a rule excludes
(hypothesis, against a one-pair-at-a-time reading of the rules), distances and location
cells by definition, profiles read from frames, and the soft scores' formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchwise.errors import InvalidInput
from matchwise.features.compatibility import (
    ALL_GENDERS,
    EARTH_RADIUS_KM,
    KM_PER_DEGREE,
    UNKNOWN_GENDER_BIT,
    ProfileArrays,
    haversine_km,
    location_cell,
    mutual_preference_mask,
    soft_scores,
    tag_matrix,
)

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)
GENDERS = ["woman", "man", "nonbinary"]


# --- the hard filters --------------------------------------------------------------------------
def _maybe(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), strategy)


profile_st = st.fixed_dictionaries(
    {
        "gender": st.one_of(st.none(), st.sampled_from([*GENDERS, "Woman", "other"])),
        "seeking": st.lists(st.sampled_from([*GENDERS, "MAN", "alien"]), max_size=3),
        "age": _maybe(st.integers(18, 70).map(float)),
        "age_min": _maybe(st.integers(18, 50).map(float)),
        "age_max": _maybe(st.integers(25, 80).map(float)),
        "max_distance_km": _maybe(st.sampled_from([1.0, 5.0, 20.0, 80.0])),
        "latitude": _maybe(st.floats(52.3, 52.7)),
        "longitude": _maybe(st.floats(13.1, 13.7)),
    }
)


def _fits(p: ProfileArrays, a: int, b: int) -> bool:
    """Does b pass a's filter (and a b's)? The rules one pair at a time, in Python."""
    if a == b:
        return False
    for x, y in ((a, b), (b, a)):
        if not (int(p.seeking_mask[x]) >> int(p.gender_bit[y])) & 1:
            return False
        age, low, high = p.age[y], p.age_min[x], p.age_max[x]
        if not math.isnan(age):
            if not math.isnan(low) and age < low:
                return False
            if not math.isnan(high) and age > high:
                return False
    limits = [v for v in (p.max_distance_km[a], p.max_distance_km[b]) if not math.isnan(v)]
    positions = (p.latitude[a], p.longitude[a], p.latitude[b], p.longitude[b])
    if limits and not any(math.isnan(v) for v in positions):
        la, lo, lb, lob = (math.radians(v) for v in positions)
        cos_angle = math.sin(la) * math.sin(lb) + math.cos(la) * math.cos(lb) * math.cos(lob - lo)
        distance = EARTH_RADIUS_KM * math.acos(max(-1.0, min(1.0, cos_angle)))
        if distance > min(limits) + 1e-6:
            return False
    return True


@PROPERTY
@given(profiles=st.lists(profile_st, min_size=2, max_size=8), user=st.integers(0, 7))
def test_mutual_preference_mask_never_admits_anyone_a_rule_excludes(
    profiles: list[dict[str, object]], user: int
) -> None:
    frame = pd.DataFrame(profiles).assign(id=[f"p{i}" for i in range(len(profiles))])
    p = ProfileArrays.from_frame(frame)
    user %= len(p)
    candidates = np.arange(len(p))
    mask = mutual_preference_mask(p, user, candidates)
    assert mask.dtype == bool and mask.shape == (len(p),)
    assert not mask[user]
    for c in candidates:
        assert bool(mask[c]) == _fits(p, user, int(c)), f"candidate {c}"
    # symmetric: a pair passes the filter of either side or of neither
    for c in candidates:
        assert mask[c] == mutual_preference_mask(p, int(c), np.array([user]))[0]
    # a subset of candidates gets the same answers
    subset = candidates[::2]
    np.testing.assert_array_equal(mutual_preference_mask(p, user, subset), mask[subset])


def _pair_frame(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "id": ["a", "b"],
        "gender": ["woman", "man"],
        "seeking": [["man"], ["woman"]],
    }
    return pd.DataFrame({**base, **columns})


def test_filters_take_bounds_inclusively_and_unknowns_never_exclude() -> None:
    def passes(**columns: list[object]) -> bool:
        p = ProfileArrays.from_frame(_pair_frame(**columns))
        return bool(mutual_preference_mask(p, 0, np.array([1]))[0])

    assert passes(age=[30, 40], age_min=[40, 30], age_max=[40, 30])  # exactly at both ends
    assert not passes(age=[30, 41], age_min=[40, 30], age_max=[40, 35])
    assert not passes(age=[30, 39], age_min=[40, 30], age_max=[45, 35])
    assert not passes(age=[36, 40], age_min=[30, 30], age_max=[45, 35])  # b's wish fails
    assert passes(age=[None, 40], age_min=[30, 50], age_max=[45, 60])  # a's age unknown
    assert passes(age=[30, 40], age_min=[None, None], age_max=[None, None])
    assert not passes(seeking=[["woman"], ["woman"]])  # a does not seek b
    assert not passes(seeking=[["man"], ["man"]])  # b does not seek a
    assert passes(seeking=[[], []])  # no stated preference: everyone
    # distance: at the limit passes, the stricter side's limit counts, unknown never excludes
    where = {"latitude": [52.52, 52.60], "longitude": [13.40, 13.40]}
    p = ProfileArrays.from_frame(_pair_frame(**where))
    d = float(haversine_km(p.latitude[0], p.longitude[0], p.latitude[1:], p.longitude[1:])[0])
    assert passes(**where, max_distance_km=[d, None])
    assert passes(**where, max_distance_km=[None, d])
    assert not passes(**where, max_distance_km=[d - 0.01, 100.0])
    assert not passes(**where, max_distance_km=[100.0, d - 0.01])
    assert passes(**where, max_distance_km=[None, None])
    assert passes(latitude=[52.5, None], longitude=[13.4, None], max_distance_km=[1.0, 1.0])


# --- distances and cells -----------------------------------------------------------------------
lat_st = st.floats(-90.0, 90.0)
lon_st = st.floats(-180.0, 180.0)


@PROPERTY
@given(lat1=lat_st, lon1=lon_st, lat2=lat_st, lon2=lon_st)
def test_haversine_is_the_great_circle_distance(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    def unit(lat: float, lon: float) -> np.ndarray:
        la, lo = math.radians(lat), math.radians(lon)
        return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])

    u, v = unit(lat1, lon1), unit(lat2, lon2)
    angle = math.atan2(float(np.linalg.norm(np.cross(u, v))), float(u @ v))
    got = float(haversine_km(lat1, lon1, np.array([lat2]), np.array([lon2]))[0])
    assert got == pytest.approx(EARTH_RADIUS_KM * angle, abs=1e-6)
    assert got == pytest.approx(
        float(haversine_km(lat2, lon2, np.array([lat1]), np.array([lon1]))[0])
    )


def test_haversine_antipodes_and_missing_positions() -> None:
    lats = np.linspace(-89.0, 89.0, 41)
    lons = np.linspace(-179.0, 179.0, 41)
    far = haversine_km(lats, lons, -lats, lons + 180.0)
    np.testing.assert_allclose(far, math.pi * EARTH_RADIUS_KM, rtol=1e-7)  # no NaN
    gaps = haversine_km(52.5, np.nan, np.array([52.5, np.nan]), np.array([13.4, 13.4]))
    assert np.isnan(gaps).all()


def _grid(cell_km: float) -> tuple[int, float]:
    rows = max(1, round(180.0 * KM_PER_DEGREE / cell_km))
    return rows, 180.0 / rows


@PROPERTY
@given(lat=lat_st, lon=lon_st, cell_km=st.sampled_from([0.5, 1.5, 7.0, 300.0, 5000.0]))
def test_location_cell_centre_is_on_the_grid_and_holds_the_position(
    lat: float, lon: float, cell_km: float
) -> None:
    c_lat, c_lon = (float(v) for v in location_cell(lat, lon, cell_km))
    rows, row_deg = _grid(cell_km)
    row = (c_lat + 90.0) / row_deg - 0.5
    assert row == pytest.approx(round(row), abs=1e-6) and 0 <= round(row) < rows
    assert abs(lat - c_lat) <= row_deg / 2 + 1e-9
    ring = 2.0 * math.pi * EARTH_RADIUS_KM * math.cos(math.radians(c_lat))
    columns = max(1.0, round(ring / cell_km))
    col_deg = 360.0 / columns
    col = (c_lon + 180.0) / col_deg - 0.5
    assert col == pytest.approx(round(col), abs=1e-6) and 0 <= round(col) < columns
    gap = abs((lon - c_lon + 180.0) % 360.0 - 180.0)
    assert gap <= col_deg / 2 + 1e-9
    # the centre's cell is itself
    again = location_cell(c_lat, c_lon, cell_km)
    assert (float(again[0]), float(again[1])) == pytest.approx((c_lat, c_lon), abs=1e-9)


def test_location_cell_worked_examples_and_edges() -> None:
    # 5000 km cells: 4 rows of 45 degrees; the row at 10 N is centred at 22.5 N, and its
    # ring (36,983 km) holds 7 columns of 51.4 degrees, the fourth centred on 0
    assert tuple(map(float, location_cell(10.0, 10.0, 5000.0))) == pytest.approx((22.5, 0.0))
    assert tuple(map(float, location_cell(-10.0, -170.0, 5000.0))) == pytest.approx(
        (-22.5, -180.0 + 0.5 * 360.0 / 7)
    )
    # one row and one column when a cell is larger than the planet
    assert tuple(map(float, location_cell(60.0, 100.0, 50_000.0))) == (0.0, 0.0)
    # the poles are in the end rows; +-180 is one column edge
    rows, row_deg = _grid(1.5)
    assert float(location_cell(90.0, 0.0)[0]) == pytest.approx(90.0 - row_deg / 2)
    assert float(location_cell(-90.0, 0.0)[0]) == pytest.approx(-90.0 + row_deg / 2)
    east = location_cell(0.0, 180.0)
    west = location_cell(0.0, -180.0)
    assert float(east[1]) == float(west[1]) < -179.9
    for lon in (np.nextafter(180.0, 0.0), 179.9999999999, 179.99):
        assert -180.0 < float(location_cell(0.0, lon)[1]) < 180.0
    nan_lat, nan_lon = location_cell(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))
    assert np.isnan(nan_lat[0]) and np.isnan(nan_lon[1])
    small = location_cell(52.52, 13.405, 0.5)
    assert haversine_km(52.52, 13.405, small[0], small[1]) < 0.5
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(InvalidInput, match="^cell_km must be a positive number, got "):
            location_cell(0.0, 0.0, bad)


# --- profiles from a frame ------------------------------------------------------------------------
def test_profiles_from_a_frame() -> None:
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "gender": ["Woman", "man", None, "robot"],
            "seeking": [["MAN", "nonbinary"], [], None, ("woman", "ghost")],
            "age": [30, "unknown", None, 41],
            "age_min": [25, 20, None, 18],
            "age_max": [35, 30, None, 99],
            "max_distance_km": [10, None, 5, 50],
            "latitude": [52.52, None, 48.85, 40.0],
            "longitude": [13.405, 2.35, 2.35, -3.7],
            "tags": [["Hiking", "chess"], None, ["hiking"], []],
        }
    )
    p = ProfileArrays.from_frame(frame, cell_km=3.0)
    assert p.ids.tolist() == ["1", "2", "3", "4"] and len(p) == 4
    # every stated gender and every sought one gets a code, lower-cased, in sorted order
    assert p.gender_codes == {"ghost": 0, "man": 1, "nonbinary": 2, "robot": 3, "woman": 4}
    assert p.gender_bit.tolist() == [4, 1, UNKNOWN_GENDER_BIT, 3]
    assert p.seeking_mask.tolist() == [(1 << 1) | (1 << 2), ALL_GENDERS, ALL_GENDERS, 1 | (1 << 4)]
    assert p.age.dtype == np.float64
    np.testing.assert_array_equal(p.age, [30.0, np.nan, np.nan, 41.0])
    np.testing.assert_array_equal(p.age_min, [25.0, 20.0, np.nan, 18.0])
    np.testing.assert_array_equal(p.age_max, [35.0, 30.0, np.nan, 99.0])
    np.testing.assert_array_equal(p.max_distance_km, [10.0, np.nan, 5.0, 50.0])
    cells = location_cell(frame.latitude.to_numpy(float), frame.longitude.to_numpy(float), 3.0)
    np.testing.assert_array_equal(p.latitude, cells[0])
    np.testing.assert_array_equal(p.longitude, cells[1])
    assert np.isnan(p.latitude[1]) and np.isnan(p.longitude[1]) and not np.isnan(p.latitude[2])
    assert p.cell_km == 3.0
    assert p.tag_vocabulary == ["chess", "hiking"]
    assert p.tags.toarray().tolist() == [[1, 1], [0, 0], [0, 1], [0, 0]]
    # missing columns: unknown everything, nobody excluded
    bare = ProfileArrays.from_frame(pd.DataFrame({"id": ["x", "y"]}))
    assert bare.gender_bit.tolist() == [UNKNOWN_GENDER_BIT] * 2
    assert bare.seeking_mask.tolist() == [ALL_GENDERS] * 2
    for column in (bare.age, bare.age_min, bare.age_max, bare.max_distance_km, bare.latitude):
        assert np.isnan(column).all() and len(column) == 2
    assert bare.tags.shape == (2, 0) and bare.cell_km == 1.5
    assert mutual_preference_mask(bare, 0, np.array([0, 1])).tolist() == [False, True]


def test_tag_matrix_with_and_without_a_vocabulary() -> None:
    matrix, vocab = tag_matrix([["b", "a", "a"], [], ["c"], []])
    assert vocab == ["a", "b", "c"] and matrix.dtype == np.float32
    assert matrix.shape == (4, 3)
    assert matrix.toarray().tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]]
    fixed, same = tag_matrix([["a", "zzz"], ["b"]], vocabulary=["a", "b", "unused"])
    assert same == ["a", "b", "unused"] and fixed.shape == (2, 3)
    assert fixed.toarray().tolist() == [[1, 0, 0], [0, 1, 0]]


# --- soft scores ----------------------------------------------------------------------------------
def test_soft_scores_formulas() -> None:
    frame = pd.DataFrame(
        {
            "id": ["u", "a", "b", "c"],
            "age": [30, 40, None, 30],
            "latitude": [52.52, 52.52, None, 53.52],
            "longitude": [13.405, 13.405, None, 13.405],
            "tags": [["x", "y"], ["x", "y", "z"], [], ["y"]],
        }
    )
    p = ProfileArrays.from_frame(frame)
    s = soft_scores(p, 0, np.array([1, 2, 3]))
    np.testing.assert_array_equal(s.shared_tags, [2, 0, 1])
    np.testing.assert_allclose(s.jaccard, [2 / 3, 0.0, 1 / 2])
    np.testing.assert_allclose(s.age_fit, [math.exp(-1.0), 0.5, 1.0])
    c = location_cell(np.array([52.52, 53.52]), np.array([13.405, 13.405]))
    d = float(haversine_km(c[0][0], c[1][0], c[0][1:], c[1][1:])[0])
    np.testing.assert_allclose(s.distance_km[[0, 2]], [0.0, d])
    assert np.isnan(s.distance_km[1])
    np.testing.assert_allclose(s.proximity, [1.0, 0.5, math.exp(-d / 50.0)])
    np.testing.assert_allclose(s.total, 0.5 * s.jaccard + 0.25 * s.age_fit + 0.25 * s.proximity)
    scaled = soft_scores(p, 0, np.array([1, 3]), age_scale=5.0, distance_scale_km=10.0)
    np.testing.assert_allclose(scaled.age_fit, [math.exp(-2.0), 1.0])
    np.testing.assert_allclose(scaled.proximity, [1.0, math.exp(-d / 10.0)])
    # nobody has tags: Jaccard 0, not NaN
    no_tags = ProfileArrays.from_frame(pd.DataFrame({"id": ["u", "a"]}))
    assert soft_scores(no_tags, 0, np.array([1])).jaccard.tolist() == [0.0]


@pytest.mark.parametrize("vocabulary", [40, 64, 90])
def test_tag_words_give_the_sparse_products_counts_to_the_bit(vocabulary: int) -> None:
    """Up to 64 tags the shared-tag counts come from 64-bit words (a popcount); they must
    be the sparse product's, dtype and all, so a list ranks the same either way; past 64
    the sparse product itself is used."""
    rng = np.random.default_rng(vocabulary)
    names = [f"t{i}" for i in range(vocabulary)]
    tags = [list(rng.choice(names, size=rng.integers(0, 12), replace=False)) for _ in range(300)]
    p = ProfileArrays.from_frame(pd.DataFrame({"id": [f"u{i}" for i in range(300)], "tags": tags}))
    assert (p.tag_bits is None) == (vocabulary > 64)
    sparse = ProfileArrays.from_frame(pd.DataFrame({"id": p.ids, "tags": tags}))
    sparse.tag_bits = None  # the sparse path, whatever the vocabulary
    candidates = rng.choice(300, size=200, replace=False)
    for me in range(0, 300, 7):
        words, rows = soft_scores(p, me, candidates), soft_scores(sparse, me, candidates)
        for name in ("shared_tags", "jaccard"):
            got, want = getattr(words, name), getattr(rows, name)
            assert got.dtype == want.dtype and got.tolist() == want.tolist(), (me, name)
    assert soft_scores(p, 0, np.zeros(0, np.int64)).jaccard.shape == (0,)


@pytest.mark.parametrize("vocabulary", [40, 90])
def test_soft_scores_of_pairs_are_each_users_own_to_the_bit(vocabulary: int) -> None:
    """Many users' candidates scored at once (a row of ``user`` per pair, as a refresh
    block scores them) give each user's own scores exactly, on both tag paths."""
    rng = np.random.default_rng(vocabulary)
    names = [f"t{i}" for i in range(vocabulary)]
    n = 200
    frame = pd.DataFrame({
        "id": [f"u{i}" for i in range(n)],
        "tags": [list(rng.choice(names, size=rng.integers(0, 9), replace=False)) for _ in range(n)],
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 60, n)),
        "latitude": np.where(rng.random(n) < 0.1, np.nan, 52.5 + rng.normal(0, 0.3, n)),
        "longitude": 13.4 + rng.normal(0, 0.3, n),
    })  # fmt: skip
    p = ProfileArrays.from_frame(frame, cell_km=1.5)
    users = rng.choice(n, 12, replace=False)
    lists = [rng.choice(n, int(rng.integers(0, 40)), replace=False) for _ in users]
    pairs = soft_scores(p, np.repeat(users, [len(c) for c in lists]), np.concatenate(lists))
    at = 0
    for user, candidates in zip(users, lists, strict=True):
        alone = soft_scores(p, int(user), candidates)
        for name in ("shared_tags", "jaccard", "age_fit", "distance_km", "proximity"):
            got = getattr(pairs, name)[at : at + len(candidates)]
            want = getattr(alone, name)
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)
        at += len(candidates)
