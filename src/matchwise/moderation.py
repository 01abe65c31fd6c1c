"""Moderation in the loop: reports and classifier flags hide a profile until reviewed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matchwise.audit import audit
from matchwise.db import queries
from matchwise.db.tables import ModerationFlag, Report, User, utcnow
from matchwise.errors import Conflict, InvalidInput, NotFound
from matchwise.online_cache import note_visibility
from matchwise.schemas import FlagOut, ReportIn, ReportOut, ResolveIn

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


def file_report(
    session: Session,
    reporter_id: str,
    reported_id: str,
    reason: str,
    details: str | None = None,
    threshold: int = 3,
) -> tuple[Report, bool]:
    """Record a report; when ``threshold`` distinct users reported someone, hide them.

    Returns the report and whether the profile is now held for review.
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
    reporters = session.scalar(
        select(func.count(func.distinct(Report.reporter_id))).where(
            Report.reported_id == reported_id
        )
    )
    held = False
    if reporters and reporters >= threshold:
        flag_profile(session, reported_id, "reports", {"reports": int(reporters), reason: True})
        held = True
    return report, held


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


def report(session: Session, body: ReportIn, threshold: int) -> ReportOut:
    """``POST /v1/reports``: record the report; say whether the profile is now held."""
    row, held = file_report(session, body.reporter_id, body.reported_id, body.reason,
                            body.details, threshold=threshold)  # fmt: skip
    return ReportOut(report_id=row.id, held_for_review=held)


def decide(session: Session, body: ResolveIn) -> FlagOut:
    """``POST /v1/admin/moderation``: resolve one flag and show it (one flag read, not
    the whole queue)."""
    flag = resolve_flag(session, body.flag_id, body.decision, body.moderator, body.note)
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
    audit(session, actor, f"moderation.{decision}", flag.user_id, {"flag": flag_id, "note": note})
    return flag
