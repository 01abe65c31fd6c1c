"""What the online core hands around: a request's filters and kind, a ranked list."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.orm import Session

from matchwise.db import queries
from matchwise.errors import InvalidInput
from matchwise.settings import Settings

if TYPE_CHECKING:  # the state holds models and catalogues; these types only name it
    from matchwise.serve.state import LoadedModel, ServingState

Kind = Literal["item", "user"]


@dataclass
class RecommendFilters:
    """Business filters a caller may add to any request."""

    category: str | None = None
    city: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    include_past: bool = False


@dataclass(frozen=True)
class Explanation:
    """Why a candidate scored what it did: each signal's part of the raw score (they add
    up to it), and the map from the raw score to the served one."""

    contributions: dict[str, float]
    raw_score: float
    score: float
    scale: str

    def wire(self) -> dict[str, Any]:
        """The shape of ``schemas.ExplanationOut``."""
        return {"contributions": self.contributions, "raw_score": self.raw_score,
                "score": self.score, "scale": self.scale}  # fmt: skip


def explanation(contributions: dict[str, float], score: float, scale: str) -> Explanation:
    """An :class:`Explanation` whose raw score is the sum of ``contributions``, rounded
    so the sum shown is the sum of the parts shown."""
    parts = {name: round(float(v), 6) for name, v in contributions.items()}
    return Explanation(parts, round(sum(parts.values()), 6), round(float(score), 6), scale)


@dataclass
class Recommendation:
    candidate_id: str
    candidate_kind: Kind
    score: float
    rank: int
    reason: str
    title: str | None = None
    #: Filled on the live path (and, for ``explain``, recomputed for cached lists).
    explanation: Explanation | None = None
    #: In an interleaved list, the arm whose ranking put this candidate here.
    team: str | None = None

    def wire(self, explain: bool = False) -> dict[str, Any]:
        """The shape of ``schemas.RecommendationOut`` (API and CLI JSON); ``explain`` adds
        the explanation (null where none could be computed)."""
        out = {"candidate_id": self.candidate_id, "candidate_kind": self.candidate_kind,
               "score": self.score, "rank": self.rank, "reason": self.reason,
               "title": self.title}  # fmt: skip
        if explain:
            out["explanation"] = None if self.explanation is None else self.explanation.wire()
        if self.team is not None:
            out["team"] = self.team
        return out


#: How a list's explanations were obtained (``RecommendationList.explained``).
EXPLAINED_LIVE = "live"
EXPLAINED_AGAIN = "recomputed"


@dataclass
class RecommendationList:
    user_id: str
    route: str
    model_version: str
    generated_at: datetime
    recommendations: list[Recommendation] = field(default_factory=list)
    #: None, or how the explanations were obtained: ``live`` (with the scores, at
    #: ``generated_at``), ``recomputed`` (a cached list's candidates scored again now, at
    #: ``explained_at``: their explanations' scores may differ from the cached ones).
    explained: str | None = None
    explained_at: datetime | None = None
    explained_by: str | None = None  # the model version (or heuristic) that explained
    #: The running experiment the user is in, and their arm (``interleaved`` for an
    #: interleaving experiment); None for both outside any experiment.
    experiment: str | None = None
    arm: str | None = None


#: At most this many ids in one request's ``exclude``.
MAX_EXCLUDE = 200
#: ``offset + limit`` at most: a page lies within the first 1,000 of a list.
MAX_PAGE_END = 1000
_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,64}$")


@dataclass(frozen=True)
class Page:
    """Which part of the ranked list a request wants: the list without ``exclude`` (ids
    the app wants left out this time), from position ``offset`` on. Every tier answers
    through :meth:`cut`, so a page is the same whichever tier serves it."""

    offset: int = 0
    exclude: frozenset[str] = frozenset()

    @property
    def plain(self) -> bool:
        return self.offset == 0 and not self.exclude

    def fetch(self, limit: int) -> int:
        """How many of the list to read or compute to fill a page of ``limit``."""
        return self.offset + limit + len(self.exclude)

    def holds(self, result: RecommendationList, limit: int) -> bool:
        """Whether a cached list answers this page: a plain first page always (as before:
        a short list is the answer), any other only when the page lies within it;
        past its end the page is computed live."""
        if self.plain:
            return True
        kept = sum(r.candidate_id not in self.exclude for r in result.recommendations)
        return kept >= self.offset + limit

    def cut(self, result: RecommendationList, limit: int) -> RecommendationList:
        """The page: excluded ids dropped, ``offset`` skipped, ``limit`` kept, ranked by
        position in the list without the excluded ids (the first is ``offset + 1``)."""
        if self.plain and len(result.recommendations) <= limit:
            return result  # the hot path: nothing to cut
        kept = [r for r in result.recommendations if r.candidate_id not in self.exclude]
        page = kept[self.offset : self.offset + limit]
        recs = [replace(r, rank=self.offset + n) for n, r in enumerate(page, start=1)]
        return replace(result, recommendations=recs)


def resolve_page(limit: int, offset: int = 0, exclude: Iterable[str] = ()) -> Page:
    """A checked :class:`Page` (InvalidInput, a 422 on the API, with what is wrong):
    ``offset`` >= 0, ``offset + limit`` at most :data:`MAX_PAGE_END`, ``exclude`` at most
    :data:`MAX_EXCLUDE` ids of 1-64 characters (letters, digits, ``_.:@-``)."""
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}")
    if offset + limit > MAX_PAGE_END:
        raise InvalidInput(
            f"offset + limit must be at most {MAX_PAGE_END} (got {offset} + {limit}): "
            f"pages reach down to position {MAX_PAGE_END} of a list"
        )
    ids = frozenset(exclude)
    if len(ids) > MAX_EXCLUDE:
        raise InvalidInput(f"exclude holds {len(ids)} ids; at most {MAX_EXCLUDE} per request")
    bad = sorted(i for i in ids if not _ID.match(i))
    if bad:
        raise InvalidInput(f"exclude: {bad[0][:80]!r} is not an id (1-64 letters, digits or _.:@-)")
    return Page(offset, ids)


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
    #: Only these candidates, in the list's order (scored as in the whole list): what
    #: explaining a cached list computes again. None: the first ``limit``.
    only: frozenset[str] | None = None
    #: An experiment arm's model (``pinned``): only it may serve this request (None with
    #: ``pinned``: it could not be loaded, so the heuristic answers).
    model: LoadedModel | None = None
    pinned: bool = False
