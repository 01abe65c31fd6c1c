"""Who may be matched with a person, without scanning everyone (issue 21 item 2).

Testing the two-sided hard filters (:func:`~matchwise.features.compatibility.
mutual_preference_mask`) against every profile costs O(population) a person: ~56 CPU-ms
at a million people, whose 8 cities put ~120,000 people within reach of anyone. The
index splits the catalogue into *segments* of one gender and one set of sought genders
(a handful in practice), each with a k-d tree over its distance cells' centres (the only
positions matching sees). A person's candidates then come only from the segments whose
gender they seek and who seek theirs, cell by cell outward from the person's own cell,
and stop once ``budget`` of them pass every hard filter: the budget nearest qualifying
people (plus everyone without a position, whom distance never excludes), not a scan.

With no budget, or fewer qualifying people than the budget, the candidates are exactly
the rows :func:`mutual_preference_mask` admits among the allowed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from matchwise.features.compatibility import (
    EARTH_RADIUS_KM,
    ProfileArrays,
    ages_fit,
    distances_fit,
    haversine_km,
    mutual_preference_mask,
)

#: Cells fetched by a segment's first nearest-cells query (more when they run out).
_FIRST_CELLS = 128
#: Ages are bucketed by whole year 0..AGE_CODES - 2 inside a cell; the last code: unknown.
AGE_CODES = 256


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Positions as points on the unit sphere: chord length grows with distance."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def chord_for(km: float) -> float:
    """The unit-sphere chord of a great-circle distance, a little wide (never excludes)."""
    return 2.0 * np.sin(min(km / (2.0 * EARTH_RADIUS_KM), np.pi / 2)) * (1 + 1e-9) + 1e-12


@dataclass
class Segment:
    """The people of one gender seeking one set of genders, grouped by distance cell."""

    gender_bit: int
    seeking_mask: int
    tree: cKDTree | None  # over the cells' centres (unit vectors); None: nobody placed
    members: np.ndarray  # placed rows, by cell and, within a cell, by age (unknown last)
    keys: np.ndarray  # each member's cell * AGE_CODES + age code (ascending)
    centres: np.ndarray  # (cells, 2): each cell's latitude and longitude, as its members'
    bounds: np.ndarray  # cell c's members are members[bounds[c]:bounds[c+1]]
    unplaced: np.ndarray  # rows without a position (distance never excludes them)
    any_unset_radius: bool  # someone here set no maximum distance

    @property
    def n_cells(self) -> int:
        return len(self.bounds) - 1


@dataclass
class PeopleIndex:
    """The catalogue's people by segment and distance cell (see the module docstring)."""

    segments: list[Segment]
    widest: float  # the largest maximum distance anyone set (NaN: nobody set one)

    @classmethod
    def build(cls, p: ProfileArrays) -> PeopleIndex:
        lat, lon = np.asarray(p.latitude, float), np.asarray(p.longitude, float)
        placed = np.isfinite(lat) & np.isfinite(lon)
        radius = np.asarray(p.max_distance_km, float)
        widest = float(np.nanmax(radius)) if np.isfinite(radius).any() else float("nan")
        keys = np.column_stack([np.asarray(p.gender_bit, np.int64),
                                np.asarray(p.seeking_mask, np.int64)])  # fmt: skip
        segments = []
        if len(keys):
            found, which = np.unique(keys, axis=0, return_inverse=True)
            which = which.ravel()
            order = np.argsort(which, kind="stable")
            cuts = np.searchsorted(which[order], np.arange(len(found) + 1))
            for s, (gender, seeking) in enumerate(found.tolist()):
                rows = order[cuts[s] : cuts[s + 1]]
                segments.append(_segment(int(gender), int(seeking), rows, placed, lat, lon,
                                         np.asarray(p.age, float),
                                         bool((~np.isfinite(radius[rows])).any())))  # fmt: skip
        return cls(segments, widest)

    def candidates(
        self,
        p: ProfileArrays,
        me: int,
        allowed: np.ndarray,
        excluded: np.ndarray | None = None,
        budget: int = 0,
    ) -> np.ndarray:
        """Sorted catalogue rows that pass every hard filter with ``me`` (both sides'
        genders, ages and distances), are ``allowed`` (a boolean per row) and not
        ``excluded`` (rows): with a ``budget`` (> 0), the ``budget`` nearest of those with
        a position (ties by cell order) and all of those without one."""
        gender, seeking = int(p.gender_bit[me]), int(p.seeking_mask[me])
        here = unit_vectors(np.array([p.latitude[me]]), np.array([p.longitude[me]]))[0]
        placed_me = bool(np.isfinite(here).all())
        mine = float(p.max_distance_km[me])
        gone = np.append(np.asarray(excluded if excluded is not None else [], np.int64), me)
        allowed = allowed.copy()  # one copy beats testing every gathered row against gone
        allowed[gone] = False
        near: list[np.ndarray] = []
        chords: list[np.ndarray] = []
        loose: list[np.ndarray] = []
        for seg in self.segments:
            if not ((seeking >> seg.gender_bit) & 1 and (seg.seeking_mask >> gender) & 1):
                continue
            loose.append(_passing(p, me, seg.unplaced, allowed))
            if seg.tree is None:
                continue
            if not placed_me:  # my distance unknown: no one is excluded by distance
                loose.append(_passing(p, me, seg.members, allowed))
                continue
            reach = mine if np.isfinite(mine) else (
                np.inf if seg.any_unset_radius else self.widest)  # fmt: skip
            bound = chord_for(reach) if np.isfinite(reach) else np.inf
            rows, chord = _nearest(seg, p, me, here, bound, allowed, budget)
            near.append(rows)
            chords.append(chord)
        if near:
            rows, chord = np.concatenate(near), np.concatenate(chords)
            if 0 < budget < len(rows):
                rows = _nearest_few(rows, chord, budget)
            loose.append(rows)
        if not loose:
            return np.zeros(0, np.int64)
        return np.sort(np.concatenate(loose)).astype(np.int64, copy=False)


def _segment(
    gender: int, seeking: int, rows: np.ndarray, placed: np.ndarray, lat: np.ndarray,
    lon: np.ndarray, age: np.ndarray, any_unset: bool,
) -> Segment:  # fmt: skip
    here = rows[placed[rows]]
    unplaced = rows[~placed[rows]]
    if len(here) == 0:
        empty = np.zeros(0, np.int64)
        return Segment(gender, seeking, None, here, empty, np.zeros((0, 2)),
                       np.zeros(1, np.int64), unplaced, any_unset)  # fmt: skip
    centres, cell = np.unique(np.column_stack([lat[here], lon[here]]), axis=0,
                              return_inverse=True)  # fmt: skip
    keys = cell.ravel().astype(np.int64) * AGE_CODES + _age_code(age[here])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    bounds = np.searchsorted(keys, np.arange(len(centres) + 1) * AGE_CODES)
    tree = cKDTree(unit_vectors(centres[:, 0], centres[:, 1]))
    return Segment(gender, seeking, tree, here[order], keys, centres, bounds, unplaced,
                   any_unset)  # fmt: skip


def _age_code(age: np.ndarray) -> np.ndarray:
    """Whole years, clipped to the codes; unknown ages get the last code."""
    known = np.isfinite(age)
    code = np.clip(np.floor(np.where(known, age, 0)), 0, AGE_CODES - 2).astype(np.int64)
    return np.where(known, code, AGE_CODES - 1)


def _passing(p: ProfileArrays, me: int, rows: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``rows`` that are allowed and pass the two-sided hard filters."""
    if len(rows) == 0:  # most segments: everyone placed
        return rows
    rows = rows[allowed[rows]]
    return rows[mutual_preference_mask(p, me, rows)]


def _nearest_few(rows: np.ndarray, chord: np.ndarray, budget: int) -> np.ndarray:
    """The ``budget`` rows of smallest chord, ties by row (as a full sort by (chord, row)
    would pick them, without sorting everyone)."""
    edge = np.partition(chord, budget - 1)[budget - 1]
    inside = chord < edge
    tied = np.sort(rows[chord == edge])[: budget - int(inside.sum())]
    return np.concatenate([rows[inside], tied])


def _nearest(
    seg: Segment, p: ProfileArrays, me: int, here: np.ndarray, bound: float,
    allowed: np.ndarray, budget: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The segment's placed rows passing every filter, with their cells' chords from
    ``me``: every one within ``bound``, or, with a budget, cells outward from the nearest
    until ``budget`` pass (the whole set is never needed then).

    Gender and seeking need no test (the segment was chosen by them); inside a cell only
    the members whose age code is in my range are read, and ages and distances are then
    :func:`mutual_preference_mask`'s own tests, the distance computed once a cell."""
    assert seg.tree is not None
    n = seg.n_cells
    ages = _age_slice(p, me)
    k = n if budget <= 0 else min(n, _FIRST_CELLS)
    seen = np.zeros(0, np.int64)
    rows_found: list[np.ndarray] = [np.zeros(0, np.int64)]
    chords_found: list[np.ndarray] = [np.zeros(0)]
    passed = read = 0
    while True:
        chord, cells = seg.tree.query(here, k=k, distance_upper_bound=bound)
        chord, cells = np.atleast_1d(chord), np.atleast_1d(cells)
        within = cells < n
        exhausted = k >= n or not within.all()
        chord, cells = chord[within], cells[within]
        if len(seen):
            new = ~np.isin(cells, seen)
            chord, cells = chord[new], cells[new]
        starts, stops = _slices(seg, cells, ages)
        sizes = (stops - starts).reshape(len(cells), 2).sum(axis=1)
        at = 0
        while at < len(cells):  # a run of cells holding about what the budget still needs
            if budget > 0:
                rate = passed / read if read else 0.5
                want = 1.2 * (budget - passed) / max(rate, 0.02)
                stop = at + 1 + int(np.searchsorted(np.cumsum(sizes[at:]), want))
            else:
                stop = len(cells)
            part = slice(at, stop)
            rows, row_chord = _members(seg, p, me, cells[part], chord[part], starts, stops,
                                       part, allowed)  # fmt: skip
            rows_found.append(rows)
            chords_found.append(row_chord)
            passed += len(rows)
            read += int(sizes[part].sum())
            at = stop
            if budget > 0 and passed >= budget:
                break
        seen = np.concatenate([seen, cells[:at]])
        if budget <= 0 or exhausted or passed >= budget:
            return np.concatenate(rows_found), np.concatenate(chords_found)
        k = int(min(n, 4 * k))


def _age_slice(p: ProfileArrays, me: int) -> tuple[int, int]:
    """The age codes ``[lo, hi]`` my own range admits (a superset: whole years)."""
    low, high = float(p.age_min[me]), float(p.age_max[me])
    lo = int(np.clip(np.floor(low), 0, AGE_CODES - 2)) if np.isfinite(low) else 0
    hi = int(np.clip(np.floor(high), 0, AGE_CODES - 2)) if np.isfinite(high) else AGE_CODES - 2
    return lo, hi


def _slices(seg: Segment, cells: np.ndarray, ages: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Each cell's members in my age codes and those of unknown age: two ranges a cell
    (``starts``, ``stops``, laid out cell by cell) of ``seg.members``."""
    lo, hi = ages
    base = cells.astype(np.int64) * AGE_CODES
    bounds = np.column_stack([base + lo, base + hi + 1, base + AGE_CODES - 1, base + AGE_CODES])
    found = np.searchsorted(seg.keys, bounds.ravel()).reshape(-1, 4)
    return found[:, [0, 2]].ravel(), found[:, [1, 3]].ravel()


def _members(
    seg: Segment, p: ProfileArrays, me: int, cells: np.ndarray, chord: np.ndarray,
    starts: np.ndarray, stops: np.ndarray, part: slice, allowed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The members of ``cells`` (the ``part`` of the slices) passing every filter, each
    with its cell's chord."""
    first, last = starts[2 * part.start : 2 * part.stop], stops[2 * part.start : 2 * part.stop]
    sizes = last - first
    offsets = np.repeat(first - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
    rows = seg.members[offsets]
    per_cell = sizes.reshape(len(cells), 2).sum(axis=1)
    km = haversine_km(p.latitude[me], p.longitude[me], seg.centres[cells, 0],
                      seg.centres[cells, 1])  # fmt: skip
    km, row_chord = np.repeat(km, per_cell), np.repeat(chord, per_cell)
    keep = ages_fit(p, me, rows)
    keep &= distances_fit(p, me, rows, km)
    keep &= allowed[rows]
    return rows[keep], row_chord[keep]
