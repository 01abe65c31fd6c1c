"""Copies of cached lists in a server's memory (PostgreSQL): a cached read answered
without a round trip, kept true by change notices.

A database cached read costs the database more than the whole request costs the API
(benchmarks/RESULTS.md), so a server keeps the lists it read, per user, and drops one
as soon as a change may alter it: the user decided on someone or someone refused them
(the user's copies), a candidate was hidden, shown or changed (every copy holding it), a
list was re-made or anything else changed in bulk (every copy). The process that
commits a change drops its own copies before it answers (``Runtime``'s after-commit
hook); every other server drops them when the change notice arrives
(:mod:`matchwise.db.notify`, delivered at commit; milliseconds).

Copies are used only while this process hears the notices: the API's listener calls
:meth:`ListCopies.heard` after every round trip to the database (at least every second)
and copies are answered only within :data:`HEARD_WITHIN` seconds of the last; after a
longer silence, or a broken connection, notices may have been lost, so every copy is
dropped. A read that began before a drop of its user
(or of everything) is not kept, so a copy never outlives a change it raced with. Each
copy also expires after ``seconds``, which bounds its age whatever happens to the
notices (a quarter of them sooner, at random, so copies made together do not all go
at once); at most ``max_users`` users' copies are kept (least recently used first out).
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

from matchwise.db.notify import take_lists_changed

T = TypeVar("T")

#: Copies are answered only this soon after the listener last heard from the database.
HEARD_WITHIN = 3.0
#: Users whose last drop is remembered for reads still in flight; older ones are
#: forgotten, and a read begun before the oldest forgotten drop is not kept.
REMEMBERED_DROPS = 100_000


class ListCopies(Generic[T]):
    """Per user, lists by key (kind and length), each with the candidates it holds."""

    def __init__(
        self, max_users: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_users = max_users
        self.seconds = seconds
        self._heard_at = -math.inf
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._lock = threading.Lock()
        #: user -> key -> (expiry on the clock, candidates held, the copy)
        self._users: OrderedDict[str, dict[Hashable, tuple[float, frozenset[str], T]]] = (
            OrderedDict()
        )
        self._turn = 0  # counts drops; a read remembers the turn it began in
        self._dropped: OrderedDict[str, int] = OrderedDict()  # user -> turn of last drop
        self._dropped_all = 0  # turn of the last drop of everything (or by candidate)

    @property
    def enabled(self) -> bool:
        """Whether copies are answered and kept now (see the module docstring)."""
        return (self.max_users > 0 and self.seconds > 0
                and self._clock() - self._heard_at <= HEARD_WITHIN)  # fmt: skip

    def heard(self) -> None:
        """The listener heard from the database now, and has applied every notice it got;
        after a silence too long to trust, every copy goes first."""
        now = self._clock()
        if now - self._heard_at > HEARD_WITHIN:
            self.drop_all()
        self._heard_at = now

    def deaf(self) -> None:
        """The listener lost its connection: no copy is answered or kept until it is
        back, and none made before survives."""
        self._heard_at = -math.inf
        self.drop_all()

    def turn(self) -> int:
        """Taken before a read from the store; :meth:`keep` needs it."""
        return self._turn

    def get(self, user_id: str, key: Hashable) -> T | None:
        """The user's copy under ``key``, if one is kept and young enough."""
        if not self.enabled:
            return None
        with self._lock:
            lists = self._users.get(user_id)
            entry = None if lists is None else lists.get(key)
            if entry is None or self._clock() > entry[0]:
                self.misses += 1
                return None
            self._users.move_to_end(user_id)
            self.hits += 1
            return entry[2]

    def keep(
        self, user_id: str, key: Hashable, value: T, candidates: Iterable[str], since: int
    ) -> bool:
        """Keep ``value``, read from the store in turn ``since``, unless a drop of its user
        (or of everything) came after that turn began; whether it was kept."""
        if not self.enabled:
            return False
        held = frozenset(candidates)
        with self._lock:
            if since < self._dropped_all or self._dropped.get(user_id, 0) > since:
                return False
            lists = self._users.get(user_id)
            if lists is None:
                lists = self._users[user_id] = {}
            expires = self._clock() + self.seconds * (1 - random.random() / 4)
            lists[key] = (expires, held, value)
            self._users.move_to_end(user_id)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)
            return True

    def drop(self, users: Iterable[str] = (), candidates: Iterable[str] = ()) -> None:
        """Drop the copies of ``users`` and every copy holding one of ``candidates``."""
        users, candidates = list(users), frozenset(candidates)
        if not users and not candidates:
            return
        with self._lock:
            self._turn += 1
            for user_id in users:
                self._users.pop(user_id, None)
                self._dropped[user_id] = self._turn
                self._dropped.move_to_end(user_id)
            while len(self._dropped) > REMEMBERED_DROPS:
                _, turn = self._dropped.popitem(last=False)
                self._dropped_all = max(self._dropped_all, turn)
            if candidates:
                # a read in flight could hold one of them: none of those is kept
                self._dropped_all = self._turn
                for user_id in list(self._users):
                    lists = self._users[user_id]
                    for key in [k for k, (_, held, _) in lists.items() if held & candidates]:
                        del lists[key]
                    if not lists:
                        del self._users[user_id]

    def drop_all(self) -> None:
        with self._lock:
            self._turn += 1
            self._dropped_all = self._turn
            self._users.clear()
            self._dropped.clear()

    def __len__(self) -> int:
        return sum(len(lists) for lists in self._users.values())


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


__all__ = ["ListCopies", "install_list_copies"]
