"""What the online core hands around: a request's filters and kind, a ranked list."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.orm import Session

from matchwise.db import queries
from matchwise.errors import InvalidInput
from matchwise.settings import Settings

if TYPE_CHECKING:  # the state holds models and catalogues; these types only name it
    from matchwise.serve.state import ServingState

Kind = Literal["item", "user"]


@dataclass
class RecommendFilters:
    """Business filters a caller may add to any request."""

    category: str | None = None
    city: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    include_past: bool = False


@dataclass
class Recommendation:
    candidate_id: str
    candidate_kind: Kind
    score: float
    rank: int
    reason: str
    title: str | None = None

    def wire(self) -> dict[str, Any]:
        """The shape of ``schemas.RecommendationOut`` (API and CLI JSON)."""
        return {"candidate_id": self.candidate_id, "candidate_kind": self.candidate_kind,
                "score": self.score, "rank": self.rank, "reason": self.reason,
                "title": self.title}  # fmt: skip


@dataclass
class RecommendationList:
    user_id: str
    route: str
    model_version: str
    generated_at: datetime
    recommendations: list[Recommendation] = field(default_factory=list)


def resolve_request(
    settings: Settings, limit: int | None = None, kind: Kind | None = None
) -> tuple[int, Kind]:
    """The list length (default ``default_top_n``, 1-1000) and candidate kind (default:
    the configured domain's) of a request."""
    limit = limit or settings.default_top_n
    if limit < 1 or limit > 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    return limit, kind or ("user" if settings.domain == "people" else "item")


def cacheable(
    settings: Settings,
    limit: int | None = None,
    kind: Kind | None = None,
    filters: RecommendFilters | None = None,
) -> tuple[int, Kind] | None:
    """The (limit, kind) a cache may answer this request with, or None when it must be
    computed live (cache off, or filters given)."""
    if not settings.use_cache or (filters is not None and filters != RecommendFilters()):
        return None
    return resolve_request(settings, limit, kind)


@dataclass(frozen=True)
class Ask:
    """One request being answered live: the store, the settings and serving state, who
    asks with what history, on which tier, for how many, under which filters."""

    session: Session
    settings: Settings
    state: ServingState
    user: queries.Profile
    history: queries.History
    route: str
    limit: int
    filters: RecommendFilters
    now: datetime
