"""Who may be matched with a person, without scanning everyone (issue 21 item 2).

Testing the two-sided hard filters (:func:`~matchwise.features.compatibility.
mutual_preference_mask`) against every profile costs O(population) a person: ~56 CPU-ms
at a million people, whose 8 cities put ~120,000 people within reach of anyone. The
index splits the catalogue into *segments* of one gender and one set of sought genders
(a handful in practice), members grouped by distance cell (the only positions matching
sees). For the people of each segment a *view* joins the segments whose gender they seek
and who seek theirs, with one k-d tree over all of their cells' centres. A person's
candidates come from the view's cells outward from the person's own, read until
``budget`` of them pass every hard filter: the budget nearest qualifying people, by cell
distance (equally near cells by segment and cell, a cell's people by row; a cell as near
as the last one taken is always read), plus everyone without a position, whom distance
never excludes; not a scan. People of one segment in one cell share one walk and one
read of the people around them (:meth:`PeopleIndex.candidates_and_distances_of`), each
filtered alone.

With no budget, or fewer qualifying people than the budget, the candidates are exactly
the rows :func:`mutual_preference_mask` admits among the allowed ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from matchwise.features.compatibility import (
    EARTH_RADIUS_KM,
    ProfileArrays,
    haversine_km,
    mutual_preference_mask,
    within,
)

#: People in one call from whom on each wanted segment's "allowed" flags are read once.
_MANY = 64
#: Cells fetched by a segment's first nearest-cells query (more when they run out).
_FIRST_CELLS = 128


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
    members: np.ndarray  # placed rows, by cell and, within a cell, by row
    centres: np.ndarray  # (cells, 2): each cell's latitude and longitude, as its members'
    bounds: np.ndarray  # cell c's members are members[bounds[c]:bounds[c+1]]
    unplaced: np.ndarray  # rows without a position (distance never excludes them)
    any_unset_radius: bool  # someone here set no maximum distance
    traits: list[np.ndarray]  # age, age_min, age_max, max_distance_km, each as members

    @property
    def n_cells(self) -> int:
        return len(self.bounds) - 1


@dataclass
class View:
    """The cells of every segment whose people a person of one segment may be matched with
    (they seek that gender, and it seeks theirs): one k-d tree over all of them, so a
    person's nearest cells come from one walk, whatever the segments."""

    segments: list[int]  # the wanted segments, by index into PeopleIndex.segments
    tree: cKDTree | None  # over every wanted segment's cell centres; None: nobody placed
    cell_segment: np.ndarray  # each view cell's position in ``segments``
    cell: np.ndarray  # each view cell's cell within its segment
    centres: np.ndarray  # (cells, 2): latitude and longitude
    unplaced: np.ndarray  # the wanted segments' people without a position
    any_unset_radius: bool  # someone wanted set no maximum distance


@dataclass
class PeopleIndex:
    """The catalogue's people by segment and distance cell (see the module docstring)."""

    segments: list[Segment]
    widest: float  # the largest maximum distance anyone set (NaN: nobody set one)
    views: dict[tuple[int, int], View] = field(default_factory=dict)  # by (gender, seeking)

    #: rows from this one on are not in ``segments`` but in ``recent`` (profiles added to
    #: the catalogue since the index was built: :meth:`with_rows_from`)
    first_recent: int = -1
    recent: PeopleIndex | None = None

    @classmethod
    def build(cls, p: ProfileArrays, rows: np.ndarray | None = None) -> PeopleIndex:
        """The index of every row of ``p``, or of ``rows`` only (the others are never
        candidates of it)."""
        lat, lon = np.asarray(p.latitude, float), np.asarray(p.longitude, float)
        placed = np.isfinite(lat) & np.isfinite(lon)
        radius = np.asarray(p.max_distance_km, float)
        rows = np.arange(len(p.ids)) if rows is None else np.asarray(rows, np.int64)
        mine = radius[rows]
        widest = float(np.nanmax(mine)) if np.isfinite(mine).any() else float("nan")
        keys = np.column_stack([np.asarray(p.gender_bit, np.int64)[rows],
                                np.asarray(p.seeking_mask, np.int64)[rows]])  # fmt: skip
        segments = []
        if len(keys):
            found, which = np.unique(keys, axis=0, return_inverse=True)
            which = which.ravel()
            order = np.argsort(which, kind="stable")
            cuts = np.searchsorted(which[order], np.arange(len(found) + 1))
            for s, (gender, seeking) in enumerate(found.tolist()):
                members = rows[order[cuts[s] : cuts[s + 1]]]
                segments.append(_segment(p, int(gender), int(seeking), members, placed,
                                         bool((~np.isfinite(radius[members])).any())))  # fmt: skip
        views = {(g.gender_bit, g.seeking_mask): _view(segments, g.gender_bit, g.seeking_mask)
                 for g in segments}  # fmt: skip
        return cls(segments, widest, views)

    def with_rows_from(self, p: ProfileArrays, first: int) -> PeopleIndex:
        """This index with the rows of ``p`` from ``first`` on (profiles appended since it
        was built) in a second, small index beside it: adding a few people to the
        catalogue of a million then costs an index of those few, not of everyone. Their
        candidates are merged as one index would give them (:meth:`candidates_and_distances_of`)."""
        base = PeopleIndex(self.segments, self.widest, self.views)
        if first >= len(p.ids):
            return base
        recent = PeopleIndex.build(p, np.arange(first, len(p.ids)))
        return PeopleIndex(self.segments, self.widest, self.views, first, recent)

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
        a position (by cell distance, then row) and all of those without one."""
        return self.candidates_and_distances(p, me, allowed, excluded, budget)[0]

    def candidates_and_distances(
        self,
        p: ProfileArrays,
        me: int,
        allowed: np.ndarray,
        excluded: np.ndarray | None = None,
        budget: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`candidates` and each one's distance in km from ``me`` (NaN where either
        has no position), as :func:`~matchwise.features.compatibility.haversine_km` gives
        it: the walk has it per cell already, so scoring need not take it again."""
        gone = np.asarray(excluded if excluded is not None else [], np.int64)
        return self.candidates_and_distances_of(p, np.array([me], np.int64), allowed, [gone],
                                                budget)[0]  # fmt: skip

    def candidates_and_distances_of(
        self,
        p: ProfileArrays,
        people: np.ndarray,
        allowed: np.ndarray,
        excluded: list[np.ndarray],
        budget: int = 0,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`candidates_and_distances` of many people at once (``excluded[i]``
        person ``i``'s): those of one segment in one cell share one walk over the cells
        around them and one read of the people there; each person's list is what they get
        alone. With ``recent`` rows, each person's candidates among those and among the
        rest are merged: with a budget, the ``budget`` nearest of the two lists' placed
        rows (by distance, then row; each list holds its own ``budget`` nearest, so the
        nearest of both are among them) and the unplaced of both."""
        found = self._own_candidates_of(p, people, allowed, excluded, budget)
        if self.recent is None:
            return found
        more = self.recent._own_candidates_of(p, people, allowed, excluded, budget)
        return [_merged(a, b, budget) for a, b in zip(found, more, strict=True)]

    def _own_candidates_of(
        self,
        p: ProfileArrays,
        people: np.ndarray,
        allowed: np.ndarray,
        excluded: list[np.ndarray],
        budget: int = 0,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`candidates_and_distances_of` among this index's own segments."""
        none = (np.zeros(0, np.int64), np.zeros(0))
        out: list[tuple[np.ndarray, np.ndarray]] = [none] * len(people)
        groups: dict[tuple[int, int, float, float], list[int]] = {}
        views: dict[tuple[int, int], View] = {}
        for i, me in enumerate(people.tolist()):
            key = (int(p.gender_bit[me]), int(p.seeking_mask[me]))
            if key not in views:  # a profile the index was not built with: its own view
                views[key] = self.views.get(key) or _view(self.segments, *key)
            view = views[key]
            gone = np.append(excluded[i], me)
            loose = _passing(p, me, view.unplaced, allowed, gone)
            lat, lon = float(p.latitude[me]), float(p.longitude[me])
            if view.tree is None:
                out[i] = _unplaced(loose)
            elif not (np.isfinite(lat) and np.isfinite(lon)):  # distance excludes no one
                members = np.concatenate([self.segments[view.segments[s]].members
                                          for s in range(len(view.segments))])  # fmt: skip
                out[i] = _unplaced(np.concatenate([loose, _passing(p, me, members, allowed,
                                                                   gone)]))  # fmt: skip
            else:
                out[i] = (loose, np.full(len(loose), np.nan))
                groups.setdefault((*key, lat, lon), []).append(i)
        members_allowed: dict[tuple[int, int], list[np.ndarray]] = {}
        for (gender, seeking, lat, lon), group in groups.items():
            view = views[(gender, seeking)]
            # many people: each wanted segment's members' flags once, read in runs after
            if len(people) >= _MANY and (gender, seeking) not in members_allowed:
                members_allowed[(gender, seeking)] = [
                    allowed[self.segments[s].members] for s in view.segments]  # fmt: skip
            near = self._nearest(view, p, people[group], lat, lon,
                                 members_allowed.get((gender, seeking), allowed),
                                 [excluded[i] for i in group], budget)  # fmt: skip
            for i, (rows, km) in zip(group, near, strict=True):
                every = np.concatenate([out[i][0], rows]).astype(np.int64, copy=False)
                order = np.argsort(every)  # rows are distinct: any sort gives one order
                out[i] = (every[order], np.concatenate([out[i][1], km])[order])
        return out

    def _nearest(
        self, view: View, p: ProfileArrays, people: np.ndarray, lat: float, lon: float,
        allowed: np.ndarray | list[np.ndarray], excluded: list[np.ndarray], budget: int,
    ) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
        """The placed rows of ``view`` passing every filter with each of ``people`` (all in
        one cell at ``lat, lon``) and their distances: every one within reach, or, with a
        budget, the ``budget`` of smallest (cell chord, row). Cells are read outward, more
        each round, until each person's ``budget``-th passing row lies strictly nearer
        than the farthest cell read (so no equally near cell is left out)."""
        assert view.tree is not None
        here = unit_vectors(np.array([lat]), np.array([lon]))[0]
        radius = np.asarray(p.max_distance_km, float)[people]
        unset_reach = np.inf if view.any_unset_radius else self.widest
        reach = np.where(np.isfinite(radius), radius, unset_reach)
        reach_km = float(np.nanmax(reach)) if np.isfinite(reach).any() else np.inf
        bound = chord_for(reach_km) if np.isfinite(reach_km) else np.inf
        n = len(view.cell)
        k = n if budget <= 0 else min(n, _FIRST_CELLS)
        found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(people)
        marks = np.zeros(len(p.ids), bool)
        while True:
            chord, cells = view.tree.query(here, k=k, distance_upper_bound=bound)
            chord, cells = np.atleast_1d(chord), np.atleast_1d(cells)
            within = cells < n
            exhausted = k >= n or not within.all()
            chord, cells = chord[within], cells[within]
            complete = np.inf if exhausted else float(chord[-1])
            pool = _pool(self, view, cells, chord, lat, lon, allowed)
            short = 1.0  # the most any waiting person lacks, as a share of the pool
            for i, me in enumerate(people.tolist()):
                if found[i] is not None:
                    continue
                keep = _passing_in(p, me, pool, excluded[i], budget, marks)
                if budget > 0 and len(keep) >= budget:
                    if pool.chord[keep[budget - 1]] < complete:
                        found[i] = (pool.rows[keep[:budget]], pool.km[keep[:budget]])
                elif exhausted:
                    found[i] = (pool.rows[keep], pool.km[keep])
                if found[i] is None:
                    short = max(short, budget / max(len(keep), 1))
            if all(f is not None for f in found):
                return [f for f in found if f is not None]
            # enough cells for the neediest at the pass rate seen, at least twice as many
            k = int(min(n, max(2 * k, np.ceil(1.25 * short * len(cells)))))


@dataclass
class _Pool:
    """The people of some cells in the order a budget takes them, with what the filters
    read."""

    rows: np.ndarray
    chord: np.ndarray
    km: np.ndarray
    age: np.ndarray
    age_min: np.ndarray
    age_max: np.ndarray
    radius: np.ndarray
    allowed: np.ndarray


def _pool(
    index: PeopleIndex, view: View, cells: np.ndarray, chord: np.ndarray, lat: float,
    lon: float, allowed: np.ndarray | list[np.ndarray],
) -> _Pool:  # fmt: skip
    """Every member of ``cells`` (view cells, at ``chord`` from the group's cell), in the
    order a budget takes them: by chord, equally near cells by view cell (segment, then
    cell), a cell's members by row. Each segment's part is read as runs of its members'
    own arrays, then laid out in that order."""
    order = np.lexsort((cells, chord))
    cells, chord = cells[order], chord[order]
    km = haversine_km(lat, lon, view.centres[cells, 0], view.centres[cells, 1])
    owner = view.cell_segment[cells]
    local = view.cell[cells]
    first = np.zeros(len(cells), np.int64)
    sizes = np.zeros(len(cells), np.int64)
    for s in np.unique(owner).tolist():
        mine = owner == s
        bounds = index.segments[view.segments[s]].bounds
        first[mine] = bounds[local[mine]]
        sizes[mine] = bounds[local[mine] + 1] - first[mine]
    total = int(sizes.sum())
    rows = np.empty(total, np.int64)
    ok = np.empty(total, bool)
    traits = [np.empty(total) for _ in range(4)]
    at = np.cumsum(sizes) - sizes  # each cell's first position in the pool
    for s in np.unique(owner).tolist():
        mine = owner == s
        seg = index.segments[view.segments[s]]
        size = sizes[mine]
        step = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
        into, read = np.repeat(at[mine], size) + step, np.repeat(first[mine], size) + step
        rows[into] = seg.members[read]
        if isinstance(allowed, list):
            ok[into] = allowed[s][read]
        for mine_of, theirs in zip(traits, seg.traits, strict=True):
            mine_of[into] = theirs[read]
    if not isinstance(allowed, list):
        ok = allowed[rows]
    age, age_min, age_max, radius = traits
    return _Pool(rows, np.repeat(chord, sizes), np.repeat(km, sizes), age, age_min, age_max,
                 radius, ok)  # fmt: skip


def _passing_in(
    p: ProfileArrays, me: int, pool: _Pool, excluded: np.ndarray, budget: int,
    marks: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Positions in the pool, in its order, of those passing the hard filters with ``me``
    (ages both ways, distances both ways, as :func:`ages_fit` and :func:`distances_fit`
    test them) who are allowed and not excluded (nor ``me``): with a budget, only as many
    of the first as the budget can take (the exclusions, a person's few swipes, are
    looked up among those alone, in ``marks``: all False, one flag a catalogue row)."""
    keep = pool.allowed & within(pool.age, p.age_min[me], p.age_max[me])
    keep &= within(p.age[me], pool.age_min, pool.age_max)
    limit = np.fmin(pool.radius, p.max_distance_km[me])  # NaN: both NaN
    keep &= np.isnan(pool.km) | np.isnan(limit) | (pool.km <= limit)
    at = np.flatnonzero(keep)
    gone = np.append(excluded, me)
    if budget > 0:
        at = at[: budget + len(gone)]
    marks[gone] = True  # a flag a catalogue row, cleared again: no sort of either side
    out = at[~marks[pool.rows[at]]]
    marks[gone] = False
    return out


def _view(segments: list[Segment], gender: int, seeking: int) -> View:
    """The wanted segments of people of ``gender`` seeking ``seeking``, as one view."""
    wanted = [s for s, seg in enumerate(segments)
              if (seeking >> seg.gender_bit) & 1 and (seg.seeking_mask >> gender) & 1]  # fmt: skip
    placed = [s for s in wanted if segments[s].n_cells]
    none = [np.zeros(0, np.int64)]
    cell_segment = np.concatenate([np.full(segments[s].n_cells, i, np.int64)
                                   for i, s in enumerate(placed)] or none)  # fmt: skip
    cell = np.concatenate([np.arange(segments[s].n_cells) for s in placed]
                          or [np.zeros(0, np.int64)])  # fmt: skip
    centres = np.concatenate([segments[s].centres for s in placed] or [np.zeros((0, 2))])
    tree = cKDTree(unit_vectors(centres[:, 0], centres[:, 1])) if len(centres) else None
    unplaced = np.concatenate([segments[s].unplaced for s in wanted] or [np.zeros(0, np.int64)])
    any_unset = any(segments[s].any_unset_radius for s in wanted)
    return View(placed, tree, cell_segment, cell.astype(np.int64), centres,
                unplaced.astype(np.int64), any_unset)  # fmt: skip


def _segment(
    p: ProfileArrays, gender: int, seeking: int, rows: np.ndarray, placed: np.ndarray,
    any_unset: bool,
) -> Segment:  # fmt: skip
    here = rows[placed[rows]]
    unplaced = rows[~placed[rows]]
    if len(here) == 0:
        return Segment(gender, seeking, here, np.zeros((0, 2)), np.zeros(1, np.int64), unplaced,
                       any_unset, [np.zeros(0)] * 4)  # fmt: skip
    lat, lon = np.asarray(p.latitude, float)[here], np.asarray(p.longitude, float)[here]
    centres, cell = np.unique(np.column_stack([lat, lon]), axis=0, return_inverse=True)
    keys = cell.ravel().astype(np.int64)
    order = np.argsort(keys, kind="stable")  # rows ascend within a cell, as ``here`` does
    keys, members = keys[order], here[order]
    bounds = np.searchsorted(keys, np.arange(len(centres) + 1))
    traits = [np.asarray(a, float)[members]
              for a in (p.age, p.age_min, p.age_max, p.max_distance_km)]  # fmt: skip
    return Segment(gender, seeking, members, centres, bounds, unplaced, any_unset, traits)


def _merged(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint candidate lists (rows sorted, distances) as one, sorted by row: with a
    ``budget``, every unplaced row (NaN distance) and the ``budget`` nearest placed ones
    (by distance, then row)."""
    rows, km = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    if budget > 0:
        placed = np.flatnonzero(np.isfinite(km))
        if len(placed) > budget:
            nearest = placed[np.lexsort((rows[placed], km[placed]))[:budget]]
            keep = np.concatenate([np.flatnonzero(~np.isfinite(km)), nearest])
            rows, km = rows[keep], km[keep]
    order = np.argsort(rows)
    return rows[order].astype(np.int64, copy=False), km[order]


def _unplaced(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` sorted, with no distance (NaN): one side has no position."""
    return np.sort(rows), np.full(len(rows), np.nan)


def _passing(
    p: ProfileArrays, me: int, rows: np.ndarray, allowed: np.ndarray, gone: np.ndarray
) -> np.ndarray:
    """``rows`` that are allowed, not ``gone`` and pass the two-sided hard filters."""
    if len(rows) == 0:  # most segments: everyone placed
        return rows.astype(np.int64)
    rows = rows[allowed[rows] & ~np.isin(rows, gone)]
    return rows[mutual_preference_mask(p, me, rows)].astype(np.int64)
