"""SQLAlchemy 2 tables; identical on SQLite and PostgreSQL (the migrations create them)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ID = String(64)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite (no tz) and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# BigInteger primary keys autoincrement on PostgreSQL; SQLite only does so for INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    """A person: the actor of interactions, and in the people domain also a candidate."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    birth_date: Mapped[date | None] = mapped_column(Date)
    age: Mapped[int | None] = mapped_column(Integer)
    gender: Mapped[str | None] = mapped_column(String(32))
    seeking: Mapped[list[str]] = mapped_column(JSON, default=list)
    age_min: Mapped[int | None] = mapped_column(Integer)
    age_max: Mapped[int | None] = mapped_column(Integer)
    max_distance_km: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    city: Mapped[str | None] = mapped_column(String(120), index=True)
    bio: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    photo_embeddings: Mapped[list[Any] | None] = mapped_column(JSON)
    elo: Mapped[float] = mapped_column(Float, default=1500.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    moderation_status: Mapped[str] = mapped_column(String(16), default="ok")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Item(Base):
    """A thing to recommend: an event, a startup, a film."""

    __tablename__ = "items"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="item")
    title: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(120), index=True)
    city: Mapped[str | None] = mapped_column(String(120), index=True)
    owner_id: Mapped[str | None] = mapped_column(ID)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Interaction(Base):
    """One event: a user acting on another user or on an item (or searching)."""

    __tablename__ = "interactions"
    __table_args__ = (
        CheckConstraint(
            "NOT (target_user_id IS NOT NULL AND item_id IS NOT NULL)",
            name="ck_interactions_one_target",
        ),
        Index("ix_interactions_user_time", "user_id", "occurred_at"),
        Index("ix_interactions_item", "item_id"),
        Index("ix_interactions_target_actor", "target_user_id", "user_id"),
        Index("ix_interactions_user_target", "user_id", "target_user_id"),
        Index("ix_interactions_user_item", "user_id", "item_id"),
        Index("ix_interactions_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    target_user_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("users.id", ondelete="CASCADE")
    )
    item_id: Mapped[str | None] = mapped_column(ID, ForeignKey("items.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)
    position: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    session_id: Mapped[str | None] = mapped_column(String(128))
    context_hash: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str | None] = mapped_column(String(16))
    #: The experiment and arm the app echoed from the recommendation response (optional:
    #: attribution re-derives the arm from the user id when they are left out).
    experiment: Mapped[str | None] = mapped_column(String(64))
    arm: Mapped[str | None] = mapped_column(String(64))
    sample_weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Match(Base):
    """A mutual like; ``user_a < user_b`` so a pair has exactly one row."""

    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("user_a", "user_b", name="uq_matches_pair"),
        CheckConstraint("user_a < user_b", name="ck_matches_ordered"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_a: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    user_b: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recommendation(Base):
    """The per-user ranking cache (seed 004's user_recommendations). Derived data, so no
    foreign key to users (migration 0007: checking each refreshed row cost more than
    writing it); erasing a person deletes their lists (:mod:`matchwise.ops.privacy`).
    Keyed by (user, kind, rank), the order a list is read in, and no other index
    (migration 0008: a second index over a refresh's 50 rows a person cost ~40% of them).
    PostgreSQL's planner is told a person has a list's worth of rows (migration 0009: its
    page sample of a large cache guessed ~1,300, and planned a block's delete as a scan)."""

    __tablename__ = "recommendations"

    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    candidate_id: Mapped[str] = mapped_column(ID)
    candidate_kind: Mapped[str] = mapped_column(String(8), primary_key=True, default="item")
    score: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(16), default="batch")
    reason: Mapped[str | None] = mapped_column(String(300))
    generated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """Model registry (seed 001): exactly one active version per model type."""

    __tablename__ = "model_registry"
    __table_args__ = (
        UniqueConstraint("model_type", "version", name="uq_model_registry_type_version"),
        Index(
            "uq_model_registry_one_active",
            "model_type",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    model_type: Mapped[str] = mapped_column(String(50))
    version: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(1000))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    """A queued unit of background work (retrain, refresh_user, retention)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_run_after", "status", "run_after"),
        Index(
            "uq_jobs_open_dedupe",
            "dedupe_key",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_type: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditLog(Base):
    """Who did what to which model or profile, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """An API key, stored as a SHA-256 hash, with one scope (ingest, read, admin)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DailyAggregate(Base):
    """Counts kept after raw events pass the retention window (and for fast metrics)."""

    __tablename__ = "interaction_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    action: Mapped[str] = mapped_column(String(32), primary_key=True)
    route: Mapped[str] = mapped_column(String(16), primary_key=True, default="")
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    weighted_events: Mapped[float] = mapped_column(Float, default=0.0)


class Report(Base):
    """A user reporting another user's profile or behaviour."""

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_reported", "reported_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    reporter_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    reported_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(32))
    details: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModerationFlag(Base):
    """A profile held for review: flagged by the safety classifier or by reports."""

    __tablename__ = "moderation_flags"
    __table_args__ = (Index("ix_moderation_flags_status", "status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


class ModerationLabel(Base):
    """A moderator's label on a text, used to retrain the safety classifier."""

    __tablename__ = "moderation_labels"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(32))
    value: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OnlineOutbox(Base):
    """Changes Redis must learn (who is hidden, who a user has decided on), written in
    the transaction that makes them and deleted once Redis has them: a change made
    while Redis is unreachable is delivered when it returns, never lost."""

    __tablename__ = "online_outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentSecret(Base):
    """Secrets generated once per store at first run (the hashing key of user ids), so
    no deployment hashes with a constant that ships with the code; every host sharing
    the store reads the same value."""

    __tablename__ = "deployment_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    """An online experiment (``ops.experiments``): arms, a split by a salted hash of the
    user id (``experiments.assignment``), a time window and a status. ``arms`` is a list
    of ``{name, weight, model_version | model_type | blend}``; an arm with none of the
    three serves what would serve without the experiment (the control)."""

    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("kind IN ('ab', 'interleave')", name="ck_experiments_kind"),
        CheckConstraint("domain IN ('items', 'people')", name="ck_experiments_domain"),
        CheckConstraint(
            "status IN ('draft', 'running', 'stopped', 'promoted')", name="ck_experiments_status"
        ),
        Index("ix_experiments_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="ab")
    domain: Mapped[str] = mapped_column(String(16))
    salt: Mapped[str] = mapped_column(String(64))
    arms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    coverage: Mapped[float] = mapped_column(Float, default=1.0)
    outcome_actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    mde: Mapped[float] = mapped_column(Float, default=0.1)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stops_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="running")
    promoted_arm: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExperimentTeam(Base):
    """Interleaving's record: which arm (team) put a candidate in a user's list, the last
    time an interleaved list showed it; a click or like on it credits that arm."""

    __tablename__ = "experiment_teams"

    experiment_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    candidate_id: Mapped[str] = mapped_column(ID, primary_key=True)
    team: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    served_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProfileEmbedding(Base):
    """A profile's bio embedding, computed by the worker when the profile is written, never
    inside a request. ``content_hash`` is the text key of the bio it was computed from
    (``features.text.text_key``): serving uses a vector only while it matches the bio."""

    __tablename__ = "profile_embeddings"

    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
