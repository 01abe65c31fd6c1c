"""Moderation in the loop: reports and classifier flags hide a profile until reviewed.

Reports cannot be turned into a weapon: a hold needs ``threshold`` distinct reporters
whose accounts have some standing (old enough, active enough), each counted once, and a
moderator's approval stands until people who had not reported the profile before it do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matchwise.actions import DEFAULT_ACTION_TABLE
from matchwise.db import queries
from matchwise.db.audit import audit
from matchwise.db.matching import sync_matches
from matchwise.db.notify import lists_changed
from matchwise.db.online import note_visibility
from matchwise.db.tables import Interaction, ModerationFlag, Report, User, utcnow
from matchwise.errors import Conflict, InvalidInput, NotFound
from matchwise.schemas import FlagOut, ReportIn, ReportOut, ResolveIn
from matchwise.settings import Settings

REPORT_REASONS = (
    "spam",
    "scam",
    "harassment",
    "inappropriate",
    "fake_profile",
    "underage",
    "other",
)
DECISIONS = ("approve", "remove")
DEFAULT_MEANINGFUL = frozenset(
    str(a) for a, rule in DEFAULT_ACTION_TABLE.items() if rule.meaningful
)


def _open_flag(session: Session, user_id: str) -> ModerationFlag | None:
    return session.scalar(
        select(ModerationFlag)
        .where(ModerationFlag.user_id == user_id, ModerationFlag.status == "open")
        .limit(1)
    )


def flag_profile(
    session: Session, user_id: str, source: str, labels: dict[str, Any], actor: str = "system"
) -> ModerationFlag:
    """Hold ``user_id`` for review (one open flag per user; later signals are merged)."""
    user = queries.get_user(session, user_id)
    flag = _open_flag(session, user_id)
    if flag is None:
        flag = ModerationFlag(user_id=user_id, source=source, labels=labels, status="open")
        session.add(flag)
    else:
        flag.labels = {**flag.labels, **labels}
        if source not in flag.source.split("+"):
            flag.source = f"{flag.source}+{source}"[:16]
    if user.moderation_status == "ok":
        user.moderation_status = "hidden"
        note_visibility(session, "user", [user_id])
    session.flush()
    audit(session, actor, "moderation.flag", user_id, {"source": source, "labels": labels})
    return flag


@dataclass(frozen=True)
class ReportPolicy:
    """When reports hold a profile: ``threshold`` distinct reporters, each with an account
    at least ``min_account_age_days`` old and ``min_interactions`` meaningful interactions."""

    threshold: int = 3
    min_account_age_days: float = 7.0
    min_interactions: int = 10
    meaningful: frozenset[str] = DEFAULT_MEANINGFUL

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportPolicy:
        return cls(
            threshold=settings.report_threshold,
            min_account_age_days=settings.report_min_account_age_days,
            min_interactions=settings.report_min_interactions,
            meaningful=frozenset(a for a, rule in settings.action_table.items() if rule.meaningful),
        )


def file_report(
    session: Session,
    reporter_id: str,
    reported_id: str,
    reason: str,
    details: str | None = None,
    policy: ReportPolicy = ReportPolicy(),
    actor: str = "system",
) -> tuple[Report, bool]:
    """Record a report; hold the profile once enough reporters count (:func:`counted_reporters`).

    Every report is kept for the moderators, counted or not. Returns the report and
    whether the profile is now held for review.
    """
    if reason not in REPORT_REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(REPORT_REASONS)}, not {reason!r}")
    if reporter_id == reported_id:
        raise InvalidInput("a user cannot report themselves")
    queries.get_user(session, reporter_id)
    queries.get_user(session, reported_id)
    report = Report(reporter_id=reporter_id, reported_id=reported_id, reason=reason,
                    details=details)  # fmt: skip
    session.add(report)
    session.flush()
    reporters = counted_reporters(session, reported_id, policy)
    held = len(reporters) >= policy.threshold
    if held:
        flag_profile(session, reported_id, "reports", {"reports": len(reporters), reason: True},
                     actor=actor)  # fmt: skip
    return report, held


def counted_reporters(session: Session, reported_id: str, policy: ReportPolicy) -> set[str]:
    """The reporters of ``reported_id`` that count towards a hold: each once, only those
    with standing, and after a moderator approved the profile only those who had not
    reported it before the approval (a repeat report does not undo a review)."""
    approved_at = session.scalar(
        select(func.max(ModerationFlag.resolved_at)).where(
            ModerationFlag.user_id == reported_id, ModerationFlag.status == "approved"
        )
    )
    stmt = select(Report.reporter_id).where(Report.reported_id == reported_id).distinct()
    if approved_at is not None:
        earlier = select(Report.reporter_id).where(
            Report.reported_id == reported_id, Report.created_at <= approved_at
        )
        stmt = stmt.where(Report.created_at > approved_at, Report.reporter_id.not_in(earlier))
    candidates = list(session.scalars(stmt))
    return with_standing(session, candidates, policy) if candidates else set()


def with_standing(session: Session, user_ids: list[str], policy: ReportPolicy) -> set[str]:
    """Those of ``user_ids`` whose account is old and active enough for their reports to
    count. An account's age runs from its profile or its first event, whichever is older
    (imported users are not new)."""
    now = utcnow()
    created = dict(
        session.execute(select(User.id, User.created_at).where(User.id.in_(user_ids))).all()
    )
    activity: dict[str, tuple[datetime | None, int]] = {
        user: (first, int(count))
        for user, first, count in session.execute(
            select(Interaction.user_id, func.min(Interaction.occurred_at),
                   func.count(Interaction.id).filter(Interaction.action.in_(policy.meaningful)))
            .where(Interaction.user_id.in_(user_ids))
            .group_by(Interaction.user_id)
        ).all()
    }  # fmt: skip
    min_age = timedelta(days=policy.min_account_age_days)
    standing = set()
    for user, joined in created.items():
        first, count = activity.get(user, (None, 0))
        since = min(joined, first) if first is not None else joined
        if now - since >= min_age and count >= policy.min_interactions:
            standing.add(user)
    return standing


def list_flags(session: Session, status: str | None = "open", limit: int = 100) -> list[dict]:
    stmt = select(ModerationFlag).order_by(ModerationFlag.id).limit(limit)
    if status:
        stmt = stmt.where(ModerationFlag.status == status)
    return [flag_view(session, flag) for flag in session.scalars(stmt)]


def flag_view(session: Session, flag: ModerationFlag) -> dict[str, Any]:
    """One flag as the admin API shows it, with the number of reports on its profile."""
    reports = session.scalar(select(func.count()).where(Report.reported_id == flag.user_id))
    return {
        "id": flag.id,
        "user_id": flag.user_id,
        "source": flag.source,
        "labels": flag.labels,
        "status": flag.status,
        "reports": int(reports or 0),
        "created_at": flag.created_at,
        "resolved_at": flag.resolved_at,
        "resolved_by": flag.resolved_by,
        "note": flag.note,
    }


def report(session: Session, body: ReportIn, settings: Settings, actor: str) -> ReportOut:
    """``POST /v1/reports``: record the report; say whether the profile is now held.
    ``actor`` is the API key's owner (the audit log's "who")."""
    row, held = file_report(session, body.reporter_id, body.reported_id, body.reason,
                            body.details, policy=ReportPolicy.from_settings(settings),
                            actor=actor)  # fmt: skip
    return ReportOut(report_id=row.id, held_for_review=held)


def decide(session: Session, body: ResolveIn, actor: str) -> FlagOut:
    """``POST /v1/admin/moderation``: resolve one flag and show it (one flag read, not
    the whole queue). ``actor`` is the verified key's owner, never a name from the body."""
    flag = resolve_flag(session, body.flag_id, body.decision, actor, body.note)
    return FlagOut(**flag_view(session, flag))


def resolve_flag(
    session: Session, flag_id: int, decision: str, actor: str, note: str | None = None
) -> ModerationFlag:
    """``approve`` shows the profile again; ``remove`` keeps it out for good."""
    if decision not in DECISIONS:
        raise InvalidInput(f"decision must be 'approve' or 'remove', not {decision!r}")
    flag = session.get(ModerationFlag, flag_id)
    if flag is None:
        raise NotFound(f"no moderation flag {flag_id}")
    if flag.status != "open":
        raise Conflict(f"flag {flag_id} was already resolved ({flag.status})")
    flag.status = "approved" if decision == "approve" else "removed"
    flag.resolved_at = utcnow()
    flag.resolved_by = actor
    flag.note = note
    user = session.get(User, flag.user_id)
    if user is not None:
        user.moderation_status = "ok" if decision == "approve" else "removed"
        note_visibility(session, "user", [user.id])
    session.flush()
    if decision == "approve":  # the matches their mutual likes earned while held
        sync_matches(session, flag.user_id)
        lists_changed(session, everything=True)  # copies of lists made while held lack them
    audit(session, actor, f"moderation.{decision}", flag.user_id, {"flag": flag_id, "note": note})
    return flag
