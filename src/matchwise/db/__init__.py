"""The store: SQLAlchemy tables, engine/session helpers and Alembic migrations."""

from matchwise.db.engine import create_engine_for, session_scope, upgrade
from matchwise.db.tables import (
    ApiKey,
    AuditLog,
    Base,
    Interaction,
    Item,
    Job,
    Match,
    ModelVersion,
    Recommendation,
    User,
)

__all__ = [
    "ApiKey",
    "AuditLog",
    "Base",
    "Interaction",
    "Item",
    "Job",
    "Match",
    "ModelVersion",
    "Recommendation",
    "User",
    "create_engine_for",
    "session_scope",
    "upgrade",
]
