"""Online experiments as operators run them: create, list, show with per-arm statistics,
stop, promote; every change audit-logged. The API and the CLI call these functions.

Attribution needs no exposure log. A user's arm is a salted hash of their id
(:func:`matchwise.experiments.assignment.assign_arms`), so the arm of every user who sent
an impression during the experiment's window is known exactly, whether or not the app
echoed ``experiment``/``arm`` (or only ``model_version``/``route``, or nothing) on its
events; serving writes nothing per request for A/B tests, and ingestion stays as it was.
An echoed arm that differs from the hashed one is counted (``arm_mismatches``): an app
that mixes up responses. Exposed users are those with an impression (or an echo) in the
window; their clicks, outcome actions and matches in the window are their outcomes.
Interleaving needs a record (which arm put which candidate in a list), kept by serving in
``experiment_teams``; a click or outcome action on a candidate credits its team.

Statistics are on users, the unit of randomisation (:mod:`matchwise.experiments.stats`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import stats as sps
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from matchwise import registry
from matchwise.db.audit import audit
from matchwise.db.tables import Experiment, ExperimentTeam, Interaction, Match, ModelVersion
from matchwise.errors import Conflict, InvalidInput, NotFound
from matchwise.experiments.assignment import assign_arms, validate_arms
from matchwise.experiments.interleaving import outcome, preference
from matchwise.experiments.stats import (
    ArmEstimate,
    compare,
    estimate,
    mixing_variance_for,
    sample_ratio_mismatch,
    sample_size_mean,
    sequential_compare,
)
from matchwise.models.catalog import MODEL_TYPES, serving_traits
from matchwise.schemas import (
    ArmIn,
    ArmStatsOut,
    ComparisonOut,
    ExperimentIn,
    ExperimentOut,
    ExperimentReportOut,
    InterleavingOut,
    MetricOut,
    PromoteOut,
    SampleRatioOut,
)
from matchwise.settings import BlendWeights, Settings

ALPHA = 0.05
POWER = 0.8
#: The metric promote and the sample size go by: outcome actions per impression.
PRIMARY = "conversion"
CLICK = "click"


def _now() -> datetime:
    return datetime.now(UTC)


def _get(session: Session, name: str, lock: bool = False) -> Experiment:
    stmt = select(Experiment).where(Experiment.name == name)
    row = session.scalar(stmt.with_for_update() if lock else stmt)
    if row is None:
        raise NotFound(f"no experiment named {name!r}")
    return row


def _status(row: Experiment, now: datetime) -> str:
    """``ended`` for one still marked running whose ``stops_at`` has passed: nobody is
    assigned any more, so it is not running, and only a person can stop or promote it."""
    if row.status == "running" and row.stops_at is not None and row.stops_at <= now:
        return "ended"
    return row.status


def out(row: Experiment) -> ExperimentOut:
    return ExperimentOut(
        name=row.name, kind=row.kind, domain=row.domain, status=_status(row, _now()),
        salt=row.salt,
        arms=[ArmIn(**a) for a in row.arms], coverage=row.coverage,
        outcome_actions=list(row.outcome_actions), mde=row.mde, starts_at=row.starts_at,
        stops_at=row.stops_at, promoted_arm=row.promoted_arm, created_at=row.created_at,
        updated_at=row.updated_at,
    )  # fmt: skip


# --- create ----------------------------------------------------------------------------------
def _domain_of_type(model_type: str) -> str | None:
    serves = serving_traits(model_type)[0]
    if "people" in serves:
        return "people"
    return "items" if serves & {"warm", "hot"} else None


def _check_arm(session: Session, arm: ArmIn, domain: str) -> None:
    """An arm serves one thing, of the experiment's domain, that can serve now."""
    given = [f for f in ("model_version", "model_type", "blend") if getattr(arm, f)]
    if len(given) > 1:
        raise InvalidInput(f"arm {arm.name!r}: give one of model_version, model_type or "
                           f"blend, not {' and '.join(given)}")  # fmt: skip
    if arm.model_version is not None:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == arm.model_version))
        if row is None:
            raise InvalidInput(f"arm {arm.name!r}: no model version {arm.model_version!r} in "
                               "the registry (see `matchwise models list`)")  # fmt: skip
        if _domain_of_type(row.model_type) != domain:
            raise InvalidInput(f"arm {arm.name!r}: {row.model_type} {row.version} does not "
                               f"serve the {domain} domain")  # fmt: skip
    if arm.model_type is not None:
        if arm.model_type not in MODEL_TYPES or _domain_of_type(arm.model_type) != domain:
            raise InvalidInput(f"arm {arm.name!r}: {arm.model_type!r} is not a model type "
                               f"that serves the {domain} domain")  # fmt: skip
        if registry.active_version(session, arm.model_type) is None:
            raise InvalidInput(f"arm {arm.name!r}: no active version of {arm.model_type}; "
                               "activate one, or name a model_version")  # fmt: skip
    if arm.blend:
        if domain != "people":
            raise InvalidInput(f"arm {arm.name!r}: blend weights are for the people domain")
        try:
            BlendWeights.model_validate(arm.blend)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise InvalidInput(f"arm {arm.name!r}: blend.{where}: {first['msg']}") from exc


def create(session: Session, settings: Settings, spec: ExperimentIn, actor: str) -> ExperimentOut:
    """Store a new experiment, running from ``starts_at`` (default now). Refused: a name
    in use, arms that cannot serve, a second running experiment in the same domain (their
    users would overlap and neither result could be trusted)."""
    domain = spec.domain or settings.domain
    validate_arms([(a.name, a.weight) for a in spec.arms])
    if spec.kind == "interleave" and len(spec.arms) != 2:
        raise InvalidInput("an interleaving experiment has exactly two arms")
    for arm in spec.arms:
        _check_arm(session, arm, domain)
    table = settings.action_table
    actions = spec.outcome_actions or sorted(a for a, rule in table.items() if rule.positive)
    unknown = sorted(set(actions) - set(table))
    if unknown:
        raise InvalidInput(f"outcome_actions: unknown actions {unknown}")
    starts = spec.starts_at or _now()
    if spec.stops_at is not None and spec.stops_at <= starts:
        raise InvalidInput("stops_at must be after starts_at")
    if session.scalar(select(Experiment.id).where(Experiment.name == spec.name)) is not None:
        raise Conflict(f"an experiment named {spec.name!r} exists; pick another name")
    running = session.scalar(
        select(Experiment.name).where(
            Experiment.status == "running", Experiment.domain == domain,
            or_(Experiment.stops_at.is_(None), Experiment.stops_at > _now()),
        )
    )  # fmt: skip
    if running is not None:
        raise Conflict(f"experiment {running!r} is running in the {domain} domain; stop it "
                       "first (one at a time, so no user is in two)")  # fmt: skip
    row = Experiment(
        name=spec.name, kind=spec.kind, domain=domain,
        salt=spec.salt or f"{spec.name}:{secrets.token_hex(4)}",
        arms=[a.model_dump(exclude_none=True) for a in spec.arms], coverage=spec.coverage,
        outcome_actions=actions, mde=spec.mde, starts_at=starts, stops_at=spec.stops_at,
        status="running",
    )  # fmt: skip
    session.add(row)
    session.flush()
    details = {"kind": row.kind, "domain": domain, "arms": row.arms, "coverage": row.coverage}
    audit(session, actor, "experiment.create", row.name, details)
    return out(row)


def list_experiments(session: Session, status: str | None = None) -> list[ExperimentOut]:
    stmt = select(Experiment).order_by(Experiment.id.desc())
    if status in ("running", "ended"):  # both stored as running; stops_at tells them apart
        stmt = stmt.where(Experiment.status == "running")
    elif status:
        stmt = stmt.where(Experiment.status == status)
    return [e for e in map(out, session.scalars(stmt)) if status is None or e.status == status]


def stop(session: Session, name: str, actor: str) -> ExperimentOut:
    """End a running experiment now: its users go back to the default at once."""
    row = _get(session, name, lock=True)
    if row.status != "running":
        raise Conflict(f"experiment {name!r} is {row.status}, not running: nothing to stop")
    now = _now()
    row.status = "stopped"
    row.stops_at = now if row.stops_at is None or row.stops_at > now else row.stops_at
    session.flush()
    audit(session, actor, "experiment.stop", row.name, {"stops_at": row.stops_at.isoformat()})
    return out(row)


# --- statistics ------------------------------------------------------------------------------
def _metric(est: ArmEstimate | None) -> MetricOut | None:
    if est is None:
        return None
    low, high = est.interval(ALPHA)
    return MetricOut(value=est.value, ci_low=low, ci_high=high, std_error=est.std_error)


def _estimate(num: np.ndarray, den: np.ndarray | None = None) -> ArmEstimate | None:
    try:
        return estimate(num, den)
    except InvalidInput:  # fewer than two users, or nothing to divide by
        return None


def _window(row: Experiment, now: datetime) -> tuple[datetime, datetime]:
    end = now if row.stops_at is None else min(row.stops_at, now)
    return row.starts_at, max(end, row.starts_at)


def _events(session: Session, row: Experiment, start: datetime, end: datetime) -> pd.DataFrame:
    """Impressions, clicks, outcome actions and echoes of this experiment in the window,
    on the experiment's kind of candidate."""
    target = Interaction.target_user_id if row.domain == "people" else Interaction.item_id
    actions = sorted({"impression", CLICK, *row.outcome_actions})
    stmt = select(Interaction.user_id, Interaction.action, target.label("candidate"),
                  Interaction.experiment, Interaction.arm).where(
        Interaction.occurred_at >= start, Interaction.occurred_at < end,
        or_(and_(Interaction.action.in_(actions), target.is_not(None)),
            Interaction.experiment == row.name),
    )  # fmt: skip
    rows = session.execute(stmt).all()
    return pd.DataFrame(rows, columns=["user_id", "action", "candidate", "experiment", "arm"])


def _matches(session: Session, start: datetime, end: datetime) -> pd.Series:
    pairs = session.execute(
        select(Match.user_a, Match.user_b).where(Match.created_at >= start, Match.created_at < end)
    ).all()
    people = [p for pair in pairs for p in pair]
    return pd.Series(people, dtype=object).value_counts()


def _per_user(events: pd.DataFrame, outcome_actions: Sequence[str]) -> pd.DataFrame:
    e = events
    frame = pd.DataFrame({
        "impressions": (e["action"] == "impression").groupby(e["user_id"]).sum(),
        "clicks": (e["action"] == CLICK).groupby(e["user_id"]).sum(),
        "conversions": e["action"].isin(list(outcome_actions)).groupby(e["user_id"]).sum(),
        "echoed": e["experiment"].notna().groupby(e["user_id"]).any(),
    })  # fmt: skip
    return frame[(frame["impressions"] > 0) | frame["echoed"]]


def _comparisons(
    control: str, arm: str, metrics: dict[str, dict[str, ArmEstimate | None]], mde: float
) -> list[ComparisonOut]:
    found = []
    z = float(sps.norm.ppf(1 - ALPHA / 2) + sps.norm.ppf(POWER))
    for metric, by_arm in metrics.items():
        a, b = by_arm.get(control), by_arm.get(arm)
        if a is None or b is None:
            continue
        fixed = compare(a, b, ALPHA)
        # the mixing variance: the difference's variance at the size that detects a
        # relative lift of mde (narrowest interval there); the current one if that is 0
        horizon = (mde * a.value / z) ** 2 or fixed.std_error**2
        if not (math.isfinite(horizon) and horizon > 0):
            continue
        seq = sequential_compare(a, b, mixing_variance_for(horizon, ALPHA), ALPHA)
        found.append(ComparisonOut(
            arm=arm, metric=metric, difference=fixed.difference, relative=fixed.relative,
            ci_low=fixed.ci_low, ci_high=fixed.ci_high, p_value=fixed.p_value,
            sequential_ci_low=seq.ci_low, sequential_ci_high=seq.ci_high,
            sequential_p_value=seq.p_value, significant=seq.significant,
        ))  # fmt: skip
    return found


def _interleaving(
    session: Session, row: Experiment, events: pd.DataFrame, start: datetime, end: datetime
) -> InterleavingOut:
    """Per user, credit each arm with the clicks and outcome actions on candidates its
    ranking put in the user's list; the arm with more credit wins the user."""
    teams = pd.DataFrame(
        session.execute(
            select(ExperimentTeam.user_id, ExperimentTeam.candidate_id, ExperimentTeam.team).where(
                ExperimentTeam.experiment_id == row.id,
                ExperimentTeam.served_at >= start, ExperimentTeam.served_at < end,
            )
        ).all(),
        columns=["user_id", "candidate", "team"],
    )  # fmt: skip
    names = [a["name"] for a in row.arms]
    credited = events[events["action"].isin([CLICK, *row.outcome_actions])]
    joined = credited.merge(teams, on=["user_id", "candidate"])
    credit = (
        joined.groupby(["user_id", "team"]).size().unstack(fill_value=0)
        .reindex(index=teams["user_id"].unique(), columns=names, fill_value=0)
    )  # fmt: skip
    outcomes = [outcome(a, b) for a, b in credit.to_numpy().tolist()]
    result = preference(outcomes, ALPHA)
    return InterleavingOut(
        wins={names[0]: result.wins_a, names[1]: result.wins_b}, ties=result.ties,
        preference=result.preference_b, p_value=result.p_value,
        winner={"a": names[0], "b": names[1]}.get(result.winner),
    )  # fmt: skip


def report(session: Session, name: str, now: datetime | None = None) -> ExperimentReportOut:
    """The experiment with its statistics so far (see the module docstring)."""
    row = _get(session, name)
    start, end = _window(row, now or _now())
    events = _events(session, row, start, end)
    names = [a["name"] for a in row.arms]
    split = [(a["name"], float(a["weight"])) for a in row.arms]
    users = _per_user(events, row.outcome_actions)
    if row.kind == "interleave":
        users["arm"] = None
    else:
        users["arm"] = assign_arms(row.salt, users.index.astype(str), split, row.coverage)
    users = users[users["arm"].notna()] if row.kind == "ab" else users
    matches = _matches(session, start, end) if row.domain == "people" else pd.Series(dtype=int)
    users["matches"] = users.index.map(matches).fillna(0).astype(int) if len(users) else 0
    echoed = events[(events["experiment"] == row.name) & events["arm"].notna()]
    mismatches = 0
    if row.kind == "ab" and len(echoed):
        derived = users["arm"].to_dict()
        wrong = echoed[[derived.get(u) not in (None, a) for u, a in
                        zip(echoed["user_id"], echoed["arm"], strict=True)]]  # fmt: skip
        mismatches = int(wrong["user_id"].nunique())
    arms_out: list[ArmStatsOut] = []
    metrics: dict[str, dict[str, ArmEstimate | None]] = {}
    for arm in names if row.kind == "ab" else []:
        u = users[users["arm"] == arm]
        imp, clk = u["impressions"].to_numpy(float), u["clicks"].to_numpy(float)
        conv, mt = u["conversions"].to_numpy(float), u["matches"].to_numpy(float)
        found = {
            "ctr": _estimate(clk, imp),
            PRIMARY: _estimate(conv, imp),
            "converted_users": _estimate((conv > 0).astype(float)),
            "clicks_per_user": _estimate(clk),
            "conversions_per_user": _estimate(conv),
        }
        if row.domain == "people":
            found["match_rate"] = _estimate((mt > 0).astype(float))
        for metric, est in found.items():
            metrics.setdefault(metric, {})[arm] = est
        arms_out.append(ArmStatsOut(
            arm=arm, users=len(u), impressions=int(imp.sum()), clicks=int(clk.sum()),
            conversions=int(conv.sum()), matches=int(mt.sum()),
            metrics={m: _metric(e) for m, e in found.items()},
        ))  # fmt: skip
    comparisons = [c for arm in names[1:] for c in _comparisons(names[0], arm, metrics, row.mde)]
    srm = None
    interleaving = None
    if row.kind == "ab":
        check = sample_ratio_mismatch({a.arm: a.users for a in arms_out}, split)
        srm = SampleRatioOut(
            observed=dict(zip(check.arms, check.observed, strict=True)),
            expected=dict(zip(check.arms, check.expected, strict=True)),
            p_value=check.p_value, flagged=check.flagged,
        )  # fmt: skip
    else:
        interleaving = _interleaving(session, row, events, start, end)
    needed = None
    control = metrics.get(PRIMARY, {}).get(names[0])
    if control is not None and control.unit_sd > 0 and control.value > 0:
        needed = sample_size_mean(control.unit_sd, row.mde, baseline=control.value,
                                  relative=True, alpha=ALPHA, power=POWER)  # fmt: skip
    return ExperimentReportOut(
        experiment=out(row), window_start=start, window_end=end, primary_metric=PRIMARY,
        arms=arms_out, comparisons=comparisons, sample_ratio=srm,
        users_needed_per_arm=needed, arm_mismatches=mismatches, interleaving=interleaving,
        alpha=ALPHA,
    )  # fmt: skip


# --- promote ---------------------------------------------------------------------------------
def _winner(rep: ExperimentReportOut) -> str | None:
    """The arm that beats the control on the primary metric with an always-valid
    p-value below alpha (the largest lift when several do); for interleaving, the arm
    the sign test prefers."""
    if rep.interleaving is not None:
        return rep.interleaving.winner
    better = [c for c in rep.comparisons
              if c.metric == PRIMARY and c.significant and c.difference > 0]  # fmt: skip
    return max(better, key=lambda c: c.difference).arm if better else None


def promote(
    session: Session,
    store: registry.ArtifactStore,
    name: str,
    arm: str | None,
    actor: str,
    now: datetime | None = None,
) -> PromoteOut:
    """Make an arm what serves: activate its model version (audit-logged by the
    registry too), end the experiment. Refused while the experiment is not running or
    stopped, while the sample-ratio check flags a broken split, or when no arm is named
    and none has won."""
    row = _get(session, name, lock=True)
    if row.status not in ("running", "stopped"):
        raise Conflict(f"experiment {name!r} is {row.status}; only a running or stopped "
                       "experiment can be promoted")  # fmt: skip
    rep = report(session, name, now)
    if rep.sample_ratio is not None and rep.sample_ratio.flagged:
        raise Conflict(
            f"experiment {name!r}: the split is broken (sample-ratio mismatch, p = "
            f"{rep.sample_ratio.p_value:.2g}; users {rep.sample_ratio.observed} against "
            f"expected { ({k: round(v) for k, v in rep.sample_ratio.expected.items()}) }): "
            "no result can be trusted, so nothing is promoted; find why assignment or "
            "logging lost users"
        )
    names = [a["name"] for a in row.arms]
    if arm is None:
        arm = _winner(rep)
        if arm is None:
            raise Conflict(f"experiment {name!r}: no arm beats {names[0]!r} on {PRIMARY} "
                           f"with an always-valid p < {ALPHA} yet; keep it running, or name "
                           "an arm to promote it anyway")  # fmt: skip
    if arm not in names:
        raise InvalidInput(f"experiment {name!r} has no arm {arm!r}; its arms: {names}")
    spec = next(a for a in row.arms if a["name"] == arm)
    activated = None
    if spec.get("model_version"):
        version = registry.get_version(session, spec["model_version"])
        registry.activate_version(session, store, version.id, actor=actor)
        activated = version.version
        note = f"activated {version.model_type} {version.version}"
    elif spec.get("model_type"):
        active = registry.active_version(session, spec["model_type"])
        note = (f"{spec['model_type']} {active.version if active else '(none)'} is already "
                "active; the router picks among active types as before")  # fmt: skip
    elif spec.get("blend"):
        note = f"set these blend weights in matchwise.yaml to serve them: {spec['blend']}"
    else:
        note = "the control already serves; the experiment ends"
    row.status, row.promoted_arm = "promoted", arm
    when = now or _now()
    if row.stops_at is None or row.stops_at > when:
        row.stops_at = when
    session.flush()
    srm_p = None if rep.sample_ratio is None else rep.sample_ratio.p_value
    details = {"arm": arm, "activated": activated, "sample_ratio_p": srm_p, "note": note}
    audit(session, actor, "experiment.promote", row.name, details)
    return PromoteOut(experiment=out(row), arm=arm, activated=activated, note=note)


__all__ = ["create", "list_experiments", "promote", "report", "stop"]
