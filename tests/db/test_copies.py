"""Copies of cached lists in memory (``db.copies.ListCopies``): answered only while the
listener hears the database, dropped by user or by candidate, never kept when a drop
raced the read, bounded in number and in age, and invisible to the garbage collector."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest

from matchwise.db import copies as copies_module
from matchwise.db.copies import HEARD_WITHIN, ListCopies


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _copies(clock: Clock, max_copies: int = 10, seconds: float = 30.0) -> ListCopies[str]:
    copies: ListCopies[str] = ListCopies(max_copies, seconds, clock=clock)
    copies.heard()
    return copies


def _keep(copies: ListCopies[str], user: str, held: tuple[str, ...] = ("a", "b")) -> bool:
    return copies.keep(user, ("item", 20), f"list of {user}", held, copies.turn())


def test_a_kept_copy_is_answered_until_it_is_dropped() -> None:
    clock = Clock()
    copies = _copies(clock)
    assert copies.get("u1", ("item", 20)) is None
    assert _keep(copies, "u1") and _keep(copies, "u2")
    assert copies.get("u1", ("item", 20)) == "list of u1"
    assert copies.get("u1", ("item", 5)) is None  # another length is another list
    copies.drop(users=["u1"])
    assert copies.get("u1", ("item", 20)) is None
    assert copies.get("u2", ("item", 20)) == "list of u2"


def test_a_candidate_drop_takes_every_copy_holding_it_and_no_other() -> None:
    clock = Clock()
    copies = _copies(clock)
    _keep(copies, "u1", ("a", "b"))
    _keep(copies, "u2", ("c",))
    copies.drop(candidates=["b"])
    assert copies.get("u1", ("item", 20)) is None
    assert copies.get("u2", ("item", 20)) == "list of u2"
    assert len(copies) == 1  # the stale one is gone once found out


def test_a_read_that_raced_a_drop_is_not_kept() -> None:
    clock = Clock()
    copies = _copies(clock)
    began = copies.turn()  # a read of u1 starts ...
    copies.drop(users=["u1"])  # ... u1 swipes meanwhile
    assert not copies.keep("u1", "k", "before the swipe", ("a",), began)
    assert copies.get("u1", "k") is None
    # another user's read of the same turn is kept: the drop was not theirs
    assert copies.keep("u2", "k", "u2's", ("a",), began)
    # a drop by candidate refuses the reads begun before it that hold the candidate
    began = copies.turn()
    copies.drop(candidates=["zzz"])
    assert not copies.keep("u3", "k", "u3's", ("a", "zzz"), began)
    assert copies.keep("u3", "k", "u3's", ("a", "b"), began)
    # and a drop of everything every read begun before it
    began = copies.turn()
    copies.drop_all()
    assert not copies.keep("u4", "k", "u4's", ("a",), began)
    assert copies.keep("u4", "k", "u4's", ("a",), copies.turn())


def test_a_forgotten_drop_refuses_every_read_begun_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(copies_module, "REMEMBERED_DROPS", 2)
    copies = _copies(Clock())
    began = copies.turn()
    copies.drop(users=["u1"])
    copies.drop(users=["u2"])
    copies.drop(users=["u3"])  # u1's drop is forgotten now
    assert not copies.keep("u1", "k", "stale", ("a",), began)


def test_copies_are_answered_only_while_the_listener_hears_the_database() -> None:
    clock = Clock()
    copies = _copies(clock)
    _keep(copies, "u1")
    clock.now += HEARD_WITHIN + 0.5  # no answer from the database for a while
    assert not copies.enabled
    assert copies.get("u1", ("item", 20)) is None
    assert not _keep(copies, "u2")
    copies.heard()  # back: what was kept before the silence is gone
    assert copies.get("u1", ("item", 20)) is None
    assert _keep(copies, "u1")
    copies.deaf()  # the connection broke
    assert copies.get("u1", ("item", 20)) is None and len(copies) == 0
    copies.heard()
    assert copies.get("u1", ("item", 20)) is None


def test_never_heard_means_never_used() -> None:
    copies: ListCopies[str] = ListCopies(10, 30.0)
    assert not copies.enabled
    assert not copies.keep("u1", "k", "x", (), copies.turn())


def test_copies_expire_and_stay_within_their_number() -> None:
    clock = Clock()
    copies = _copies(clock, max_copies=3, seconds=30.0)  # one list each here
    for n in range(5):
        _keep(copies, f"u{n}")
        copies.get("u0", ("item", 20))  # u0 is read again and again: kept
    assert {u for u in ("u0", "u1", "u2", "u3", "u4")
            if copies.get(u, ("item", 20))} == {"u0", "u3", "u4"}  # fmt: skip
    _pass(clock, copies, 20)  # younger than three quarters of 30 s: still answered
    assert copies.get("u4", ("item", 20)) == "list of u4"
    _pass(clock, copies, 11)  # older than 30 s: gone
    assert copies.get("u4", ("item", 20)) is None


def _pass(clock: Clock, copies: ListCopies[str], seconds: int) -> None:
    """``seconds`` go by, the listener hearing the database every second."""
    for _ in range(seconds):
        clock.now += 1
        copies.heard()


@pytest.mark.parametrize(("max_copies", "seconds"), [(0, 30.0), (10, 0.0)])
def test_zero_turns_copies_off(max_copies: int, seconds: float) -> None:
    copies = _copies(Clock(), max_copies=max_copies, seconds=seconds)
    assert not _keep(copies, "u1")
    assert copies.get("u1", ("item", 20)) is None


def test_the_collector_does_not_walk_the_copies() -> None:
    """Thousands of copies must not lengthen the collector's full passes (a tail-latency
    cost): once collections have seen them, none of their parts is tracked."""
    copies = _copies(Clock(), max_copies=1000)
    for n in range(1000):
        packed = ("v1", datetime.now(UTC), (f"c{n}",), (0.5,), ("why",), (None,))
        assert copies.keep(f"u{n}", ("item", 20), packed, packed[2], copies.turn())
    copies.drop(users=["u1"], candidates=["c2"])
    for _ in range(3):  # each pass stops tracking the tuples whose parts it untracked
        gc.collect()
    entries = list(copies._copies.items())
    tracked = [e for e in entries if gc.is_tracked(e[0]) or gc.is_tracked(e[1])]
    assert len(entries) == 1000 and not tracked
