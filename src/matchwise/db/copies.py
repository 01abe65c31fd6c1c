"""Copies of cached lists in an API server's memory: a cached read answered again
without a round trip (PostgreSQL) or after one cheap check (SQLite), kept true by the
store's change notices or its change stamp.

A database cached read costs the database more than the whole request costs the API
(benchmarks/RESULTS.md), so a server keeps the lists it read and drops one as soon as a
change may alter it: the user decided on someone or someone refused them (the user's
copies), a candidate was hidden, shown or changed (every copy holding it), a list was
re-made or anything else changed in bulk (every copy). The process that commits a
change drops its own copies before it answers (``Runtime``'s after-commit hook); every
other server drops them when the change notice arrives (:mod:`matchwise.db.notify`,
delivered at commit; milliseconds).

On PostgreSQL copies are used only while this process hears the notices: the API's
listener calls :meth:`ListCopies.heard` after every round trip to the database (at least
every second) and copies are answered only within :data:`HEARD_WITHIN` seconds of the
last; after a longer silence, or a broken connection, notices may have been lost, so
every copy is dropped. SQLite has no notices: there every cached read first asks the
database whether anything was committed since the last read (``PRAGMA data_version``,
:func:`change_stamp`), and any change at all, by any process, drops every copy: exact,
and useful while reads outnumber writes.

A copy read before a drop that concerns it (its user, a candidate it holds, or
everything) is never answered, so a copy never outlives a change it raced with. Each
copy also expires after ``seconds``, which bounds its age whatever happens to the
notices (a quarter of them sooner, at random, so copies made together do not all go at
once); at most ``max_copies`` copies are kept (least recently used first out).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from matchwise.db.engine import HeldReads
from matchwise.db.notify import take_lists_changed

T = TypeVar("T")

#: Copies are answered only this soon after the listener last heard from the database.
HEARD_WITHIN = 3.0
#: Users and candidates whose last drop is remembered; when one is forgotten, every copy
#: read before it goes too.
REMEMBERED_DROPS = 100_000


class ListCopies(Generic[T]):
    """Copies by (user, key), each with the candidates it holds and the turn its read
    began in. A drop only notes its turn (per user, per candidate, or for everything);
    a copy read before a drop that concerns it is stale and never answered. Nothing here
    holds an object the garbage collector must walk (plain tuples of values, dicts of
    strings and numbers), so thousands of copies do not lengthen its full passes."""

    def __init__(
        self, max_copies: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_copies = max_copies
        self.seconds = seconds
        self.hits = 0
        self.misses = 0
        self._heard_at = -math.inf
        self._clock = clock
        self._lock = threading.Lock()
        #: (user, key) -> (expiry on the clock, turn its read began in, candidates, copy)
        self._copies: OrderedDict[tuple[str, Hashable], tuple[float, int, tuple[str, ...], T]]
        self._copies = OrderedDict()
        self._turn = 0  # counts drops; a read remembers the turn it began in
        self._user_dropped: OrderedDict[str, int] = OrderedDict()  # user -> turn
        self._candidate_dropped: OrderedDict[str, int] = OrderedDict()  # candidate -> turn
        self._all_dropped = 0  # the turn of the last drop of everything
        self._stamp: Hashable = None  # SQLite: the change stamp last observed

    @property
    def configured(self) -> bool:
        """Whether copies are on at all (``list_copies`` and ``list_copy_seconds``)."""
        return self.max_copies > 0 and self.seconds > 0

    @property
    def enabled(self) -> bool:
        """Whether copies are answered and kept now (see the module docstring)."""
        return self.configured and self._clock() - self._heard_at <= HEARD_WITHIN

    def heard(self) -> None:
        """The listener heard from the database now, and has applied every notice it got;
        after a silence too long to trust, every copy goes first."""
        now = self._clock()
        if now - self._heard_at > HEARD_WITHIN:
            self.drop_all()
        self._heard_at = now

    def observe(self, stamp: Hashable) -> None:
        """(SQLite, which has no notices) The database's change stamp read now
        (:func:`change_stamp`): a different one than last time drops every copy; either
        way the database was heard, and exactly."""
        if stamp != self._stamp:
            self.drop_all()
            self._stamp = stamp
        self._heard_at = self._clock()

    def deaf(self) -> None:
        """The listener lost its connection: no copy is answered or kept until it is
        back, and none made before survives."""
        self._heard_at = -math.inf
        self.drop_all()

    def turn(self) -> int:
        """Taken before a read from the store; :meth:`keep` needs it."""
        return self._turn

    def get(self, user_id: str, key: Hashable) -> T | None:
        """The user's copy under ``key``, if one is kept, young enough and not stale."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._copies.get((user_id, key))
            if entry is None or not self._fresh(user_id, entry):
                if entry is not None:
                    del self._copies[(user_id, key)]
                self.misses += 1
                return None
            self._copies.move_to_end((user_id, key))
            self.hits += 1
            return entry[3]

    def _fresh(self, user_id: str, entry: tuple[float, int, tuple[str, ...], T]) -> bool:
        expires, since, held, _ = entry
        if self._clock() > expires or since < self._all_dropped:
            return False
        if self._user_dropped.get(user_id, 0) > since:
            return False
        dropped = self._candidate_dropped
        return not dropped or all(dropped.get(c, 0) <= since for c in held)

    def keep(
        self, user_id: str, key: Hashable, value: T, candidates: Iterable[str], since: int
    ) -> bool:
        """Keep ``value``, read from the store in turn ``since`` (a drop after that turn
        began makes it stale at once); whether it was kept."""
        if not self.enabled:
            return False
        expires = self._clock() + self.seconds * (1 - random.random() / 4)
        held = candidates if isinstance(candidates, tuple) else tuple(candidates)
        entry = (expires, since, held, value)
        with self._lock:
            if not self._fresh(user_id, entry):
                return False
            self._copies[(user_id, key)] = entry
            self._copies.move_to_end((user_id, key))
            while len(self._copies) > self.max_copies:
                self._copies.popitem(last=False)
            return True

    def drop(self, users: Iterable[str] = (), candidates: Iterable[str] = ()) -> None:
        """Copies of ``users``, and every copy holding one of ``candidates``, go stale."""
        users, candidates = list(users), list(candidates)
        if not users and not candidates:
            return
        with self._lock:
            self._turn += 1
            for dropped, ids in ((self._user_dropped, users),
                                 (self._candidate_dropped, candidates)):  # fmt: skip
                for one in ids:
                    dropped[one] = self._turn
                    dropped.move_to_end(one)
                while len(dropped) > REMEMBERED_DROPS:  # forgotten: all before it go
                    self._all_dropped = max(self._all_dropped, dropped.popitem(last=False)[1])

    def drop_all(self) -> None:
        with self._lock:
            self._turn += 1
            self._all_dropped = self._turn
            self._copies.clear()
            self._user_dropped.clear()
            self._candidate_dropped.clear()

    def __len__(self) -> int:
        """Copies held, stale ones not yet found out included."""
        return len(self._copies)


def change_stamp(reads: HeldReads) -> tuple[int, int]:
    """SQLite: which held connection, and its ``PRAGMA data_version``, which changes
    whenever any other connection (another process's, or this one's writers) committed
    since that connection last asked. One statement, a few microseconds."""

    def stamp(connection: Any) -> tuple[int, int]:
        return id(connection), int(connection.execute("PRAGMA data_version").fetchone()[0])

    return reads.run(stamp)


def install_list_copies(sessions: sessionmaker[Session], copies: ListCopies[Any]) -> None:
    """Sessions made by ``sessions`` (the runtime's write sessions) drop this process's
    copies of what they changed right after their commit, before the API answers."""

    def committed(session: Session) -> None:
        noted = take_lists_changed(session)
        if noted is None:
            return
        if noted["all"]:
            copies.drop_all()
        else:
            copies.drop(noted["users"], noted["candidates"])

    def rolled_back(session: Session) -> None:
        take_lists_changed(session)

    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)


__all__ = ["ListCopies", "change_stamp", "install_list_copies"]
