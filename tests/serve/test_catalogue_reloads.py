"""Catalogue reloads in the background: coalesced, and resting after each in proportion
to its cost, so a catalogue of a million people (a reload of ~90 s) is not re-read
back to back by every write notice (serve.state.reload_rest)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import store_users
from matchwise.registry import ArtifactStore
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.state import RELOAD_REST, ServingState, reload_rest, serving_state
from tests.utils.factories import person


def test_the_rest_is_proportional_to_the_last_reload() -> None:
    assert reload_rest(0.0, 100.0, 100.0) == 0.0  # nothing reloaded yet: at once
    assert reload_rest(2.0, 100.0, 100.0) == RELOAD_REST * 2.0
    assert reload_rest(2.0, 100.0, 103.0) == RELOAD_REST * 2.0 - 3.0
    assert reload_rest(2.0, 100.0, 200.0) == 0.0  # long ago: at once
    assert reload_rest(0.05, 10.0, 10.0) < 0.2  # small catalogues are not held back


class _SlowReloads(ServingState):
    """A catalogue whose reload takes ``seconds``; records when each began and ended."""

    def __init__(self, tmp: str, seconds: float) -> None:
        super().__init__(ArtifactStore(tmp))
        self.seconds = seconds
        self.runs: list[tuple[float, float]] = []

    def _reload(self, what: str, engine: object) -> None:
        began = time.monotonic()
        time.sleep(self.seconds)
        self.runs.append((began, time.monotonic()))


def _wait_idle(state: ServingState) -> None:
    for thread in threading.enumerate():
        if thread.name == "matchwise-reload-people":
            thread.join(timeout=30)


def test_write_notices_during_slow_reloads_rest_between_them(tmp_path: Path) -> None:
    state = _SlowReloads(str(tmp_path), seconds=0.1)
    began = time.monotonic()
    while time.monotonic() - began < 1.0:  # a notice every 10 ms for a second
        last_notice = time.monotonic()
        state._reload_in_background("people", None)
        time.sleep(0.01)
    _wait_idle(state)
    runs = state.runs
    assert len(runs) >= 2
    for (one_began, ended), (next_began, _) in zip(runs, runs[1:], strict=False):
        assert next_began - ended >= RELOAD_REST * (ended - one_began) - 0.01  # rested
    # coalesced: 100 notices, a reload every 0.4 s at most; the last notice has its reload
    assert len(runs) <= 4
    assert runs[-1][0] >= last_notice


def test_closing_stops_a_resting_reloader(tmp_path: Path) -> None:
    state = _SlowReloads(str(tmp_path), seconds=0.5)
    state._reload_in_background("people", None)
    time.sleep(0.1)
    state._reload_in_background("people", None)  # runs after a 1.5 s rest
    time.sleep(0.5)  # the first has ended; the reloader rests now
    state.close()
    _wait_idle(state)
    assert len(state.runs) == 1


def test_requests_that_need_the_people_loaded_wait_for_one_load(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two new people ask at once: one load of the people serves both (at a million
    profiles a load is ~90 s and several GB; one per request would exhaust memory)."""
    with runtime.session() as s:
        store_users(
            s, runtime.settings, [person("ann"), person("ben", gender="man", seeking=["woman"])]
        )
    loads: list[float] = []
    real = PeopleCatalogue.load.__func__  # type: ignore[attr-defined]

    def slow_load(cls: type[PeopleCatalogue], *args: Any, **kwargs: Any) -> PeopleCatalogue:
        loads.append(time.monotonic())
        time.sleep(0.3)  # both requests arrive while the first load runs
        return real(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(PeopleCatalogue, "load", classmethod(slow_load))
    state = serving_state(runtime)
    cell_km = runtime.settings.location_cell_km
    got: dict[str, PeopleCatalogue] = {}

    def ask(user: str) -> None:
        with runtime.read_session() as s:
            got[user] = state.people(s, cell_km, must_have=user)

    threads = [threading.Thread(target=ask, args=(u,)) for u in ("ann", "ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(loads) == 1
    assert got["ann"] is got["ben"] and {"ann", "ben"} <= set(got["ann"].position)
    with runtime.session() as s:  # someone the loaded catalogue lacks: patched in alone
        store_users(s, runtime.settings, [person("cat")])
    ask("cat")
    assert len(loads) == 1 and "cat" in got["cat"].position
    # patched into the loaded one (by the request, or on SQLite by the write's own commit)
    assert got["cat"].ancestors[0] == (got["ann"].loaded_at, len(got["ann"]))


def _swipe(runtime: Runtime, who: str, whom: str) -> None:
    with runtime.session() as s:
        ingest_events(s, [InteractionIn(user_id=who, target_user_id=whom, action="like")],
                      runtime.settings.action_table)  # fmt: skip


def test_a_reload_for_a_written_profile_carries_the_swipe_counts_over(runtime: Runtime) -> None:
    """A profile written needs the profiles read again, not two passes over every swipe:
    a reload while the counts are young carries them over (a new person: 0); once they
    are ``catalogue_max_age_seconds`` old, the next reload counts again."""
    man = {"gender": "man", "seeking": ["woman"]}
    with runtime.session() as s:
        store_users(s, runtime.settings, [person("ann"), person("ben", **man)])
    _swipe(runtime, "ann", "ben")
    state = serving_state(runtime)
    cell_km = runtime.settings.location_cell_km
    with runtime.read_session() as s:
        first = state.people(s, cell_km)
    assert first.likes_received[first.position["ben"]] == 1.0
    with runtime.session() as s:
        store_users(s, runtime.settings, [person("cid", **man)])
    _swipe(runtime, "ann", "cid")  # counted only when the counts are due
    state._reload("people", runtime.read_engine)
    carried = state._people
    assert carried is not None and carried is not first and "cid" in carried.position
    assert carried.counted_at == first.counted_at and carried.like_rate == first.like_rate
    assert carried.likes_received[carried.position["ben"]] == 1.0
    assert carried.likes_received[carried.position["cid"]] == 0.0  # not counted yet
    assert carried.likes_given[carried.position["ann"]] == 1.0
    state.catalogue_seconds = 0.0  # the counts are due
    state._reload("people", runtime.read_engine)
    counted = state._people
    assert counted is not None and counted.counted_at > first.counted_at
    assert counted.likes_received[counted.position["cid"]] == 1.0
    assert counted.likes_given[counted.position["ann"]] == 2.0
