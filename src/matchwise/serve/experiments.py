"""Which experiment arm serves a user, and what an arm changes in serving.

The running experiments are read from the store every ``check_seconds`` (a few rows),
and the arm comes from :func:`matchwise.experiments.assignment.assign_arm` on the user id:
a salted hash, so every process and host that reads the same experiments gives a user
the same arm on the Redis, database-cache and live paths alike, with nothing stored per
user. An arm that changes nothing (the control) serves what would serve anyway, caches
included; any other arm is scored live (the caches hold the default lists only), and an
interleaving experiment serves both arms' rankings mixed by team draft, live.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from matchwise.db.queries import dialect_insert
from matchwise.db.tables import Experiment, ExperimentTeam
from matchwise.experiments.assignment import Arm, assign_arm
from matchwise.runtime import Runtime
from matchwise.serve.background import OneAtATime
from matchwise.settings import BlendWeights, Settings

log = logging.getLogger(__name__)

#: What an interleaving experiment reports as the arm: each position has its own team.
INTERLEAVED = "interleaved"
#: The domain an experiment covers for each kind of candidate.
DOMAIN_OF = {"item": "items", "user": "people"}


@dataclass(frozen=True)
class ArmSpec:
    """One arm: a name, a traffic weight and what it serves instead of the default: a
    registry version (active or not), the active version of a model type, or blend
    weights over ``matchwise.yaml``'s (people). None of them: the control."""

    name: str
    weight: float
    model_version: str | None = None
    model_type: str | None = None
    blend: dict[str, float] | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> ArmSpec:
        return cls(
            name=str(raw["name"]),
            weight=float(raw["weight"]),
            model_version=raw.get("model_version"),
            model_type=raw.get("model_type"),
            blend=raw.get("blend") or None,
        )

    @property
    def is_default(self) -> bool:
        """Serves exactly what serves without the experiment (so the caches may answer)."""
        return self.model_version is None and self.model_type is None and not self.blend

    def settings(self, settings: Settings) -> Settings:
        """The settings this arm serves with: the blend's weights overridden."""
        if not self.blend:
            return settings
        weights = BlendWeights.model_validate(settings.blend.model_dump() | self.blend)
        return settings.model_copy(update={"blend": weights})


@dataclass(frozen=True)
class RunningExperiment:
    """A running experiment as serving needs it."""

    id: int
    name: str
    kind: str
    domain: str
    salt: str
    arms: tuple[ArmSpec, ...]
    coverage: float
    starts_at: datetime
    stops_at: datetime | None

    @property
    def split(self) -> list[Arm]:
        return [(a.name, a.weight) for a in self.arms]

    def live_at(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.stops_at is None or now < self.stops_at)


@dataclass(frozen=True)
class Assignment:
    """A user's place in an experiment: the arm (None for interleaving, where both arms
    serve in one list)."""

    experiment: RunningExperiment
    arm: ArmSpec | None

    @property
    def label(self) -> str:
        return INTERLEAVED if self.arm is None else self.arm.name

    @property
    def needs_live(self) -> bool:
        """The caches hold default lists: any other arm, and interleaving, are live."""
        return self.arm is None or not self.arm.is_default


def running_experiments(session: Session) -> tuple[RunningExperiment, ...]:
    """Every experiment with status running (the time window is checked per request)."""
    rows = session.scalars(
        select(Experiment).where(Experiment.status == "running").order_by(Experiment.id)
    )
    return tuple(
        RunningExperiment(
            id=r.id,
            name=r.name,
            kind=r.kind,
            domain=r.domain,
            salt=r.salt,
            arms=tuple(ArmSpec.of(a) for a in r.arms),
            coverage=r.coverage,
            starts_at=r.starts_at,
            stops_at=r.stops_at,
        )
        for r in rows
    )


class ExperimentBook:
    """This process's copy of the running experiments, read again every
    ``check_seconds`` (as the registry is): every host sees a change within that while
    it serves requests, and within twice that in any case.

    A copy that lapsed less than ``check_seconds`` ago is still answered while one
    background thread reads the store again (:meth:`current`): no request waits for
    that read. Waiting for it cost requests tens of ms on a busy server: every request
    then sent the same read to a worker thread, and a worker thread's read waits for the
    GIL after each round trip while the event loop keeps it (5 ms switch interval):
    15-74 ms for the 1-4 requests in flight every 10 s, at 5,000 cached reads a second.
    """

    def __init__(self, check_seconds: float = 10.0) -> None:
        self.check_seconds = check_seconds
        self._held: tuple[float, tuple[RunningExperiment, ...]] | None = None
        self._lock = threading.Lock()
        self._generation = 0  # bumped by invalidate(): a read begun before it is not kept
        self._background = OneAtATime()

    def fresh(self) -> tuple[RunningExperiment, ...] | None:
        """The copy when it is fresh, else None (then :meth:`current` or :meth:`load`)."""
        held = self._held
        if held is None or time.monotonic() - held[0] >= self.check_seconds:
            return None
        return held[1]

    def current(self, engine: Engine) -> tuple[RunningExperiment, ...] | None:
        """The copy when fresh; when it lapsed less than ``check_seconds`` ago, the copy
        while one background thread reads the store again; None when there is none or it
        is older than that (then :meth:`load`, which reads it now)."""
        held = self._held
        if held is None:
            return None
        age = time.monotonic() - held[0]
        if age < self.check_seconds:
            return held[1]
        if age >= 2 * self.check_seconds:
            return None
        self._background.start("experiments", lambda: self._read_in_background(engine))
        return held[1]

    def load(self, engine: Engine) -> tuple[RunningExperiment, ...]:
        """The running experiments: the copy while :meth:`current` answers one, else
        read now."""
        found = self.current(engine)
        if found is not None:
            return found
        return self._read(engine)

    def _read(self, engine: Engine) -> tuple[RunningExperiment, ...]:
        generation = self._generation
        with Session(bind=engine) as session:
            running = running_experiments(session)
        with self._lock:
            if generation == self._generation:  # no change in this process meanwhile
                self._held = (time.monotonic(), running)
        return running

    def _read_in_background(self, engine: Engine) -> None:
        try:
            self._read(engine)
        except Exception as exc:  # the copy keeps serving until it is too old
            log.warning("reading the running experiments failed (%s)", exc)

    def invalidate(self) -> None:
        """Read the store again at the next request (after a change in this process)."""
        with self._lock:
            self._held = None
            self._generation += 1


def experiment_book(runtime: Runtime) -> ExperimentBook:
    return runtime.component(ExperimentBook, ExperimentBook)


def assign(
    running: tuple[RunningExperiment, ...], user_id: str, kind: str, now: datetime
) -> Assignment | None:
    """The user's arm in the running experiment of ``kind``'s domain that is within its
    window, or None (no such experiment, or the user is outside its coverage)."""
    domain = DOMAIN_OF.get(kind)
    for exp in running:
        if exp.domain != domain or not exp.live_at(now):
            continue
        if exp.kind == "interleave":
            if assign_arm(exp.salt, user_id, [(INTERLEAVED, 1.0)], exp.coverage) is None:
                return None
            return Assignment(exp, None)
        name = assign_arm(exp.salt, user_id, exp.split, exp.coverage)
        if name is None:
            return None
        return Assignment(exp, next(a for a in exp.arms if a.name == name))
    return None


def assignment_for(runtime: Runtime, user_id: str, kind: str, now: datetime) -> Assignment | None:
    """:func:`assign` over this process's copy of the running experiments."""
    return assign(experiment_book(runtime).load(runtime.read_engine), user_id, kind, now)


def record_teams(
    session: Session,
    experiment_id: int,
    user_id: str,
    served: list[tuple[str, str, int]],
    now: datetime,
) -> None:
    """Remember which arm put each ``(candidate, team, position)`` in the user's list
    (the last showing wins), so a later click or like credits that arm."""
    if not served:
        return
    rows = [
        {"experiment_id": experiment_id, "user_id": user_id, "candidate_id": candidate,
         "team": team, "position": pos, "served_at": now}
        for candidate, team, pos in served
    ]  # fmt: skip
    stmt = dialect_insert(session, ExperimentTeam.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["experiment_id", "user_id", "candidate_id"],
        set_={
            "team": stmt.excluded.team,
            "position": stmt.excluded.position,
            "served_at": stmt.excluded.served_at,
        },
    )
    session.execute(stmt, rows)
