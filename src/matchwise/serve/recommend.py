"""The router (seed 003): the cache when fresh, else cold / warm / hot by the
user's history, items or people; the same function serves the API, the CLI and
refreshes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from matchwise.db import queries
from matchwise.db.engine import HeldReads
from matchwise.experiments.interleaving import interleaving_seed, team_draft
from matchwise.models.heuristic import HEURISTIC_VERSION
from matchwise.runtime import Runtime
from matchwise.serve.cache import read_cache
from matchwise.serve.experiments import ArmSpec, Assignment, assignment_for, record_teams
from matchwise.serve.items import heuristic_items, model_items
from matchwise.serve.people import people_recommendations
from matchwise.serve.state import serving_state
from matchwise.serve.types import (
    EXPLAINED_AGAIN,
    EXPLAINED_LIVE,
    Ask,
    Kind,
    Page,
    RecommendationList,
    RecommendFilters,
    resolve_request,
)
from matchwise.settings import Settings


def recommend(
    runtime: Runtime,
    session: Session,
    user_id: str,
    limit: int | None = None,
    filters: RecommendFilters | None = None,
    kind: Kind | None = None,
    now: datetime | None = None,
    use_cache: bool | None = None,
    page: Page | None = None,
    explain: bool = False,
    experiments: bool = True,
    reads: HeldReads | None = None,
    inputs: tuple[queries.Profile, queries.History] | None = None,
) -> RecommendationList:
    """Ranked candidates for ``user_id``; raises NotFound for an unknown user.

    Serves the per-user cache when enabled, fresh (younger than
    ``cache_max_age_seconds``), the request has no filters and the cached list holds the
    ``page`` (default: the first ``limit``); computes live otherwise. ``explain`` marks
    how each candidate's explanation was obtained: with the score (live), or computed
    again now for a cached list's candidates (:func:`explain_again`).

    With ``experiments`` (off only for what fills the caches), a user in a running
    experiment gets their arm (``serve.experiments``): the control arm as above, any
    other arm and interleaving computed live; the list names the experiment and arm.

    With ``reads`` (the API's live path), the user's profile and history are read on
    held read connections, outside ``session``'s transaction (see :func:`compute`); with
    ``inputs`` they were read already (awaited on the event loop, ``serve.tiers``).
    """
    settings = runtime.settings
    limit, kind = resolve_request(settings, limit, kind)
    page = page or Page()
    filters = filters or RecommendFilters()
    now = now or datetime.now(UTC)
    if use_cache is None:
        use_cache = settings.use_cache
    assigned = assignment_for(runtime, user_id, kind, now) if experiments else None
    fetch = page.fetch(limit)
    if use_cache and filters == RecommendFilters() and not (assigned and assigned.needs_live):
        cached = read_cache(session, user_id, fetch, kind, settings.cache_max_age_seconds, now)
        if cached is not None and page.holds(cached, limit):
            found = page.cut(cached, limit)  # cached rows imply the user exists
            found = explain_again(runtime, session, found, kind) if explain else found
            return in_experiment(found, assigned)
    if assigned is not None and assigned.arm is None:
        result = interleaved(runtime, session, user_id, fetch, kind, filters, now, assigned,
                             reads)  # fmt: skip
        result = page.cut(result, limit)
        served = [(r.candidate_id, r.team or "", r.rank) for r in result.recommendations]
        args = (assigned.experiment.id, user_id, served, now)
        if session.get_bind() is runtime.engine:  # a write session (the CLI's): in it
            record_teams(session, *args)
        else:  # a read-only one (the API's live path): a short write transaction
            runtime.transaction(record_teams, *args)
    else:
        arm = None if assigned is None else assigned.arm
        result = page.cut(compute(runtime, session, user_id, fetch, kind, filters, now, arm=arm,
                                  reads=reads, inputs=inputs), limit)  # fmt: skip
    if explain:
        result = replace(result, explained=EXPLAINED_LIVE, explained_at=result.generated_at,
                         explained_by=result.model_version)  # fmt: skip
    return in_experiment(result, assigned)


def in_experiment(result: RecommendationList, assigned: Assignment | None) -> RecommendationList:
    """The list naming the user's experiment and arm (unchanged outside any)."""
    if assigned is None:
        return result
    return replace(result, experiment=assigned.experiment.name, arm=assigned.label)


def interleaved(
    runtime: Runtime,
    session: Session,
    user_id: str,
    limit: int,
    kind: Kind,
    filters: RecommendFilters,
    now: datetime,
    assigned: Assignment,
    reads: HeldReads | None = None,
) -> RecommendationList:
    """Team-draft interleaving of the experiment's first two arms' rankings, each
    candidate marked with the arm (team) that picked it. The coin flips are seeded by the
    salt, the user and the hour, so one user sees one mixing per hour on every host."""
    exp = assigned.experiment
    arm_a, arm_b = exp.arms[0], exp.arms[1]
    list_a = compute(runtime, session, user_id, limit, kind, filters, now, arm=arm_a, reads=reads)
    list_b = compute(runtime, session, user_id, limit, kind, filters, now, arm=arm_b, reads=reads)
    seed = interleaving_seed(exp.salt, user_id, now.strftime("%Y-%m-%dT%H"))
    mixed = team_draft([r.candidate_id for r in list_a.recommendations],
                       [r.candidate_id for r in list_b.recommendations], limit, seed)  # fmt: skip
    picked = {"a": {r.candidate_id: r for r in list_a.recommendations},
              "b": {r.candidate_id: r for r in list_b.recommendations}}  # fmt: skip
    names = {"a": arm_a.name, "b": arm_b.name}
    pairs = zip(mixed.items, mixed.teams, strict=True)
    recs = [replace(picked[team][cid], rank=n, team=names[team])
            for n, (cid, team) in enumerate(pairs, start=1)]  # fmt: skip
    version = f"{list_a.model_version}|{list_b.model_version}"[:64]
    return RecommendationList(user_id, list_a.route, version, now, recs)


def explain_again(
    runtime: Runtime, session: Session, result: RecommendationList, kind: Kind
) -> RecommendationList:
    """A cached list with each candidate's explanation computed now, by what would serve
    the user now, for those candidates alone but scored as in the whole list: the list
    says so (``explained``: recomputed, ``explained_at``, ``explained_by``), and a
    candidate that would no longer be served gets none."""
    now = datetime.now(UTC)
    ids = frozenset(r.candidate_id for r in result.recommendations)
    again = compute(runtime, session, result.user_id, max(len(ids), 1), kind,
                    RecommendFilters(include_past=True), now, only=ids)  # fmt: skip
    found = {r.candidate_id: r.explanation for r in again.recommendations}
    recs = [replace(r, explanation=found.get(r.candidate_id)) for r in result.recommendations]
    return replace(result, recommendations=recs, explained=EXPLAINED_AGAIN, explained_at=now,
                   explained_by=again.model_version)  # fmt: skip


def compute(
    runtime: Runtime,
    session: Session,
    user_id: str,
    limit: int,
    kind: Kind,
    filters: RecommendFilters,
    now: datetime,
    only: frozenset[str] | None = None,
    arm: ArmSpec | None = None,
    reads: HeldReads | None = None,
    inputs: tuple[queries.Profile, queries.History] | None = None,
) -> RecommendationList:
    """The first ``limit`` of the user's list computed now, on the route their history
    picks (never the cache); with ``only``, those candidates alone; with an experiment
    ``arm``, by what that arm serves (its model, its blend weights).

    With ``reads``, the profile and history come from held read connections in two
    statements and ``session`` is not used for them: a read-only session that nothing
    else touches then never begins a transaction (on SQLite its BEGIN and COMMIT cost
    more than the two reads). ``inputs``: the profile and history, read already."""
    if inputs is not None:
        user, history = inputs
    elif reads is not None:
        user, history = queries.serving_inputs(reads, user_id)
    else:
        user = queries.serving_profile(session, user_id)
        history = queries.history_of(session, user_id)
    return compute_for(runtime, session, user, history, limit, kind, filters, now, only, arm)


def compute_for(
    runtime: Runtime,
    session: Session,
    user: queries.Profile,
    history: queries.History,
    limit: int,
    kind: Kind,
    filters: RecommendFilters,
    now: datetime,
    only: frozenset[str] | None = None,
    arm: ArmSpec | None = None,
) -> RecommendationList:
    """:func:`compute` for a user whose profile and history are already read: a batch
    refresh reads a block of users' in two queries (``serve.refresh``)."""
    settings, state = runtime.settings, serving_state(runtime)
    model, pinned = None, False
    if arm is not None and not arm.is_default:
        settings = arm.settings(settings)
        if arm.model_version is not None:
            model, pinned = state.pinned(session, arm.model_version), True
        elif arm.model_type is not None:
            model, pinned = state.model(session, arm.model_type), True
    ask = Ask(session, settings, state, user, history, route_for(history.count(), settings),
              limit, filters, now, only, model, pinned)  # fmt: skip
    route = ask.route
    if kind == "item" and route != "cold":
        served = model_items(ask)
        if served is not None:
            return served
        route = "fallback"  # no active model for this user: the heuristic answers
    if kind == "user":
        return people_recommendations(replace(ask, route=route))
    recs = heuristic_items(replace(ask, route=route))
    return RecommendationList(
        user_id=user.id,
        route=route,
        model_version=HEURISTIC_VERSION,
        generated_at=now,
        recommendations=recs,
    )


def route_for(n_interactions: int, settings: Settings) -> str:
    """Seed 003's router: cold below ``cold_below``, hot above ``hot_above``, else warm."""
    if n_interactions < settings.router.cold_below:
        return "cold"
    if n_interactions > settings.router.hot_above:
        return "hot"
    return "warm"
