"""Nobody can find where someone is: matching sees positions only as ~1.5 km cells.

Each attack runs through the HTTP API with profiles the attacker creates at positions of
its choosing, as the published ones against Tinder (exact distances, 2014) and Bumble
(bisecting the edge of a rounded distance) did. The target sits 0.4 cell north and 0.4
cell east of its cell's centre, 0.57 cell from it; the best an attacker can learn is the
cell, so every estimate must land at least half a cell from where the target really is.

Teeth: on the code before location cells (positions used exactly as sent) the same
attacks landed 0.5 m (scores of six viewers) and under 1 mm (bisecting max_distance_km,
four viewers) from the target, and these tests failed; with 1.5 km cells both land on the
cell's centre, 849 m from her. :func:`test_the_attacks_find_people_to_metres_without_cells`
shows the teeth on today's code: with 1 m cells they land within 0.8 m.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy.optimize import least_squares

from matchwise.api import create_app
from matchwise.errors import InvalidInput
from matchwise.features import compatibility
from matchwise.features.compatibility import EARTH_RADIUS_KM, haversine_km
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings

BERLIN = (52.52, 13.405)
KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0
Position = tuple[float, float]


@contextmanager
def _client(settings: Settings) -> Iterator[TestClient]:
    runtime = Runtime.open(settings, migrate=False)
    with runtime.session() as s:
        key, _ = create_key(s, "admin", name="location-privacy")
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            yield client
    finally:
        runtime.close()


def _cell_km(settings: Settings) -> float | None:
    # getattr: the code before location cells has no such setting, and these attacks
    # must run there too (they find people to metres; see the module docstring)
    value = getattr(settings, "location_cell_km", None)
    return None if value is None else float(value)


def _server_position(settings: Settings) -> Callable[[Position], Position]:
    """Where the server puts a position it is sent. The attacker knows the grid (README),
    so it places its viewers at cell centres and knows exactly where the server sees them:
    the strongest attacker there is. Without cells, positions are used as sent."""
    cell_km = _cell_km(settings)

    def where(pos: Position) -> Position:
        if cell_km is None:
            return pos
        lat, lon = compatibility.location_cell(pos[0], pos[1], cell_km)
        return float(lat), float(lon)

    return where


def _moved(pos: Position, east_km: float, north_km: float) -> Position:
    lat = pos[0] + north_km / KM_PER_DEGREE
    return lat, pos[1] + east_km / (KM_PER_DEGREE * math.cos(math.radians(pos[0])))


def _km(a: Position, b: Position) -> float:
    return float(haversine_km(a[0], a[1], np.array([b[0]]), np.array([b[1]]))[0])


def _target(settings: Settings) -> tuple[Position, Position, float]:
    """(true position, its cell's centre, cell size): 0.4 cell off the centre on both axes."""
    cell = _cell_km(settings) or 1.5
    centre = _server_position(settings)(BERLIN)
    return _moved(centre, 0.4 * cell, 0.4 * cell), centre, cell


def _profile(ident: str, pos: Position, **kw: Any) -> dict[str, Any]:
    """A man seeking women (a viewer); ``gender="woman", seeking=["man"]`` for a target.
    Viewers have no hobbies, so nothing but distance tells them apart."""
    body = {"id": ident, "age": 30, "gender": "man", "seeking": ["woman"], "age_min": 25,
            "age_max": 40, "max_distance_km": 100.0, "latitude": pos[0], "longitude": pos[1],
            "tags": []}  # fmt: skip
    body.update(kw)
    return body


def _target_profile(ident: str, pos: Position) -> dict[str, Any]:
    return _profile(ident, pos, gender="woman", seeking=["man"], tags=["hiking"])


def _post(client: TestClient, *profiles: dict[str, Any]) -> None:
    response = client.post("/v1/users", json={"users": list(profiles)})
    assert response.status_code == 200, response.text


def _shown(client: TestClient, viewer: str) -> dict[str, dict[str, Any]]:
    response = client.get(
        "/v1/recommendations", params={"user_id": viewer, "kind": "user", "fresh": "true",
                                       "limit": 50},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return {r["candidate_id"]: r for r in response.json()["recommendations"]}


def _viewers_around(centre: Position, count: int, first_km: float) -> list[Position]:
    """``count`` chosen positions on a spiral around ``centre`` (3 to 9 km away)."""
    out = []
    for i in range(count):
        angle = 2 * math.pi * i / count
        r = first_km + i
        out.append(_moved(centre, r * math.sin(angle), r * math.cos(angle)))
    return out


def _fit(
    viewers: list[Position], residuals: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Position:
    """The position whose distances to ``viewers`` best explain what was observed: a
    coarse grid over ±15 km, then least squares from the best grid point."""
    origin = (float(np.mean([v[0] for v in viewers])), float(np.mean([v[1] for v in viewers])))
    lat_v = np.array([v[0] for v in viewers])
    lon_v = np.array([v[1] for v in viewers])

    def at(xy: np.ndarray) -> Position:
        return _moved(origin, float(xy[0]), float(xy[1]))

    def cost(xy: np.ndarray) -> np.ndarray:
        lat, lon = at(xy)
        return residuals(haversine_km(lat, lon, lat_v, lon_v), xy)

    grid = [np.array([x, y]) for x in np.arange(-15, 15.1, 0.5) for y in np.arange(-15, 15.1, 0.5)]
    start = min(grid, key=lambda xy: float(np.sum(cost(xy) ** 2)))
    best = least_squares(cost, start, xtol=1e-12, ftol=1e-15, gtol=1e-15)
    return at(best.x)


# --- 1. trilateration from the score -------------------------------------------------------


def _score_attack(client: TestClient, settings: Settings, target: Position) -> Position:
    """Six viewers read the target's score; the compatibility term is ``k·exp(-d/50 km)``
    plus what does not depend on distance (the same for every viewer: ``offset``)."""
    where = _server_position(settings)
    viewers = [where(p) for p in _viewers_around(target, 6, 3.0)]
    _post(client, _target_profile("target", target),
          *[_profile(f"viewer-{i}", p) for i, p in enumerate(viewers)])  # fmt: skip
    scores = np.array([_shown(client, f"viewer-{i}")["target"]["score"]
                       for i in range(len(viewers))])  # fmt: skip
    # the served score is the blend mapped linearly onto [0, 1]: the attacker need not
    # know the map's slope or offset, only the shape; both are fitted out
    observed = (scores - scores.mean()) / (scores.std() or 1.0)

    def residuals(d: np.ndarray, _: np.ndarray) -> np.ndarray:
        shape = np.exp(-d / 50.0)
        return (shape - shape.mean()) / (shape.std() or 1.0) - observed

    return _fit(viewers, residuals)


def test_scores_reveal_at_most_the_cell(settings: Settings) -> None:
    target, centre, cell = _target(settings)
    with _client(settings) as client:
        estimate = _score_attack(client, settings, target)
    error = _km(estimate, target)
    assert error >= 0.5 * cell, f"the scores put the target {error * 1000:.1f} m from her"
    assert _km(estimate, centre) < 0.05 * cell  # what it learns: her cell


# --- 2. bisecting max_distance_km ----------------------------------------------------------


def _bisection_attack(
    client: TestClient, settings: Settings, target: Position, resolution_km: float
) -> Position:
    """Four viewers each find their distance to the target by bisecting their own
    ``max_distance_km`` (is she shown or not), then trilaterate. Each probe is a new
    account: a re-posted profile reaches the people catalogue on its next reload (up to
    30 s), which slows an attacker down but stops none."""
    where = _server_position(settings)
    viewers = [where(p) for p in _viewers_around(target, 4, 3.0)]
    _post(client, _target_profile("target", target))
    distances = []
    for i, viewer in enumerate(viewers):
        low, high, probe = 0.0, 16.0, 0
        while high - low > resolution_km:
            limit = (low + high) / 2
            ident = f"viewer-{i}-{probe}"
            _post(client, _profile(ident, viewer, max_distance_km=limit))
            if "target" in _shown(client, ident):
                high = limit
            else:
                low = limit
            probe += 1
        distances.append((low + high) / 2)
    measured = np.array(distances)
    return _fit(viewers, lambda d, _: d - measured)


def test_bisecting_max_distance_reveals_at_most_the_cell(settings: Settings) -> None:
    target, centre, cell = _target(settings)
    with _client(settings) as client:
        estimate = _bisection_attack(client, settings, target, resolution_km=0.002)
    error = _km(estimate, target)
    assert error >= 0.5 * cell, f"bisection put the target {error * 1000:.1f} m from her"
    assert _km(estimate, centre) < 0.05 * cell


def test_the_attacks_find_people_to_metres_without_cells(sqlite_url: str, tmp_path: Path) -> None:
    """The teeth: with 1 m cells (as good as exact) the same attacks land within metres."""
    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "artifacts"),
                        location_cell_km=0.001)  # fmt: skip
    target, _, _ = _target(settings)
    with _client(settings) as client:
        by_score = _score_attack(client, settings, target)
        by_bisection = _bisection_attack(client, settings, target, resolution_km=0.0005)
    assert _km(by_score, target) < 0.01, _km(by_score, target)
    assert _km(by_bisection, target) < 0.01, _km(by_bisection, target)


# --- 3. reasons and what a position inside a cell changes ----------------------------------


def test_reasons_never_give_a_figure(settings: Settings) -> None:
    target, centre, _ = _target(settings)
    chosen = [_moved(centre, east, north) for east in (-40, -9.5, -2, 0.3, 1, 6, 9.9, 25)
              for north in (-30, -10.2, -0.7, 0, 2.5, 11, 45)]  # fmt: skip
    with _client(settings) as client:
        _post(client, _target_profile("target", target),
              *[_profile(f"viewer-{i}", p) for i, p in enumerate(chosen)])  # fmt: skip
        reasons = {_shown(client, f"viewer-{i}")["target"]["reason"] for i in range(len(chosen))}
    assert reasons and all(
        not re.search(r"\d|\bkm\b|kilomet|mile|metre|meter", r, re.IGNORECASE) for r in reasons
    ), reasons


def test_where_in_her_cell_she_is_changes_nothing_anyone_sees(settings: Settings) -> None:
    """Two targets alike but for where in one cell they are, seen by viewers who are
    alike but for where in one cell they are: every score and reason is the same."""
    target, centre, cell = _target(settings)
    twin = _moved(centre, -0.4 * cell, -0.3 * cell)
    chosen = [_server_position(settings)(p) for p in _viewers_around(centre, 5, 0.5)]
    with _client(settings) as client:
        _post(client, _target_profile("target", target), _target_profile("twin", twin))
        for i, p in enumerate(chosen):
            _post(client, _profile(f"viewer-{i}", _moved(p, 0.3 * cell, 0.3 * cell)),
                  _profile(f"double-{i}", _moved(p, -0.3 * cell, -0.2 * cell)))  # fmt: skip
        for i in range(len(chosen)):
            seen = [_shown(client, f"{who}-{i}") for who in ("viewer", "double")]
            answers = {(r[t]["score"], r[t]["reason"]) for r in seen for t in ("target", "twin")}
            assert len(answers) == 1, (i, answers)


# --- the grid itself -----------------------------------------------------------------------


@pytest.mark.parametrize("cell_km", [0.5, 1.5, 10.0])
def test_cells_are_about_cell_km_everywhere_poles_and_seam_included(cell_km: float) -> None:
    rng = np.random.default_rng(5)
    lat = np.r_[rng.uniform(-90, 90, 20_000), 90, -90, 89.9999, 0, 0, 45, 45]
    lon = np.r_[rng.uniform(-180, 180, 20_000), 17, -120, 180, 180, -180, 179.9999, -179.9999]
    c_lat, c_lon = compatibility.location_cell(lat, lon, cell_km)
    off = haversine_km(lat, lon, c_lat, c_lon)
    assert off.max() <= 0.8 * cell_km  # never far from its centre, even at a pole
    assert np.median(off) == pytest.approx(0.4 * cell_km, rel=0.05)  # a square's median
    again = compatibility.location_cell(c_lat, c_lon, cell_km)
    assert np.array_equal(again[0], c_lat) and np.array_equal(again[1], c_lon)
    # 180 and -180 are one cell; either side of the seam are neighbours
    assert (c_lat[-4], c_lon[-4]) == (c_lat[-3], c_lon[-3])
    seam = haversine_km(c_lat[-2], c_lon[-2], c_lat[-1:], c_lon[-1:])[0]
    assert 0.9 * cell_km <= seam <= 1.1 * cell_km
    # neighbouring cells are ~cell_km apart at any latitude (columns widen in degrees)
    for latitude in (0.0, 45.0, 70.0, 85.0):
        row_lat, row_lon = compatibility.location_cell(
            np.full(400, latitude), np.linspace(10, 11, 400), cell_km
        )
        centres = np.unique(row_lon)
        steps = haversine_km(row_lat[0], centres[:-1], row_lat[0], centres[1:])
        assert steps == pytest.approx(cell_km, rel=0.05)


def test_cells_keep_missing_positions_missing_and_refuse_nonsense() -> None:
    lat, lon = compatibility.location_cell(np.array([np.nan, 52.5]), np.array([np.nan, 13.4]))
    assert np.isnan(lat[0]) and np.isnan(lon[0]) and np.isfinite(lat[1])
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InvalidInput):
            compatibility.location_cell(52.5, 13.4, bad)


def test_profiles_become_cells_with_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().location_cell_km == compatibility.DEFAULT_LOCATION_CELL_KM == 1.5
    monkeypatch.setenv("MATCHWISE_LOCATION_CELL_KM", "2")
    assert Settings().location_cell_km == 2.0
    field = Settings.model_fields["location_cell_km"]
    assert field.description and "cell" in field.description
    frame = pd.DataFrame({"id": ["a", "b"], "latitude": [52.5234, None],
                          "longitude": [13.4011, None]})  # fmt: skip
    profiles = compatibility.ProfileArrays.from_frame(frame, cell_km=2.0)
    expected = compatibility.location_cell(52.5234, 13.4011, 2.0)
    assert (profiles.latitude[0], profiles.longitude[0]) == expected
    assert np.isnan(profiles.latitude[1]) and profiles.cell_km == 2.0
