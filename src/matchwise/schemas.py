"""The wire contract: pydantic v2 models for profiles, items, events and responses."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from matchwise.actions import Action

Id = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@\-]+$", examples=["u_42"]),
]
TagText = Annotated[str, Field(min_length=1, max_length=64)]

#: JSON-schema key on the fields that take an action name: the API's OpenAPI document
#: turns it into an ``enum`` of the actions that server accepts (its action table).
ACTION_MARK = "x-matchwise-action"


def _action(example: str) -> Any:
    """An ``action`` field: lower-cased, one of the server's actions (checked on ingest)."""
    return Field(
        max_length=32,
        examples=[example],
        description="One of the server's actions (this field's enum): by default "
        f"{', '.join(Action)}; `actions:` in matchwise.yaml adds others.",
        json_schema_extra={ACTION_MARK: True},
    )


#: Largest value an integer field may hold: the store keeps them as 32-bit integers.
INT32_MAX = 2**31 - 1
#: Largest database id (64-bit).
INT64_MAX = 2**63 - 1
#: Timestamps must fall in this range (UTC): wider is a typo or an attack, and the edges
#: of the calendar cannot even be converted to UTC.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MIN_AGE, MAX_AGE = 13, 120

Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]


def _utc(value: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC. Outside 1900-2200 it is refused."""
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        aware = EARLIEST - timedelta(days=1) if value.year < 1000 else LATEST
    if not EARLIEST <= aware < LATEST:
        raise ValueError(f"time {value.isoformat()} is outside {EARLIEST.year}-{LATEST.year}")
    return aware


Timestamp = Annotated[datetime, AfterValidator(_utc)]

#: Caps on free-form and list fields, so one profile cannot be megabytes.
MAX_PHOTOS, MAX_EMBEDDING_DIMS = 20, 2048
MAX_ATTRIBUTE_KEYS, MAX_ATTRIBUTES_BYTES = 100, 32_768


def _small_attributes(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_ATTRIBUTE_KEYS:
        raise ValueError(f"at most {MAX_ATTRIBUTE_KEYS} attributes, got {len(value)}")
    size = len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes are {size:,} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES:,}")
    return value


Attributes = Annotated[dict[str, Any], AfterValidator(_small_attributes)]


def _storable(value: Any, where: str) -> None:
    """Text the store can keep: no NUL characters (PostgreSQL refuses them), and numbers
    that are numbers (no NaN or Infinity), in free-form values such as ``attributes``."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character (\\u0000)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, f"{where} key")
            _storable(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            _storable(item, f"{where}[{n}]")


class Strict(BaseModel):
    """Input models: unknown fields refused, booleans only as true/false, numbers finite,
    text without NUL characters."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, allow_inf_nan=False, strict=False
    )

    @model_validator(mode="after")
    def _storable_fields(self) -> Any:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, BaseModel):
                _storable(value, name)
        return self


class UserIn(Strict):
    """A profile. In the people domain the preference fields drive the hard filters."""

    id: Id
    name: str | None = Field(default=None, max_length=200, description="Private; never served.")
    email: str | None = Field(default=None, max_length=320, description="Private; never served.")
    birth_date: date | None = Field(
        default=None, description=f"Gives the age when ``age`` is not set ({MIN_AGE}-{MAX_AGE})."
    )
    age: int | None = Field(default=None, ge=MIN_AGE, le=MAX_AGE)
    gender: str | None = Field(default=None, max_length=32, examples=["woman"])
    seeking: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=16, description="Genders this person wants."
    )
    age_min: int | None = Field(default=None, ge=MIN_AGE, le=MAX_AGE)
    age_max: int | None = Field(default=None, ge=MIN_AGE, le=MAX_AGE)
    max_distance_km: float | None = Field(default=None, gt=0, le=40_075)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    city: str | None = Field(default=None, max_length=120)
    bio: str | None = Field(default=None, max_length=5000)
    tags: list[TagText] = Field(
        default_factory=list, max_length=200, description="Hobbies/interests."
    )
    attributes: Attributes = Field(default_factory=dict)
    photo_embeddings: list[list[float]] | None = Field(
        default=None,
        max_length=MAX_PHOTOS,
        description="Optional image embeddings computed by the app, one per photo.",
    )
    active: StrictBool = True

    @model_validator(mode="after")
    def _consistent(self) -> UserIn:
        if self.birth_date is not None:
            age = age_on(self.birth_date, datetime.now(UTC).date())
            if not MIN_AGE <= age <= MAX_AGE:
                raise ValueError(
                    f"birth_date {self.birth_date.isoformat()} gives age {age}; "
                    f"ages {MIN_AGE}-{MAX_AGE} are accepted"
                )
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError("age_min must be <= age_max")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude must be given together")
        if self.photo_embeddings:
            dims = {len(v) for v in self.photo_embeddings}
            if len(dims) != 1 or 0 in dims or dims.pop() > MAX_EMBEDDING_DIMS:
                raise ValueError(
                    f"photo_embeddings must be vectors of one length (1..{MAX_EMBEDDING_DIMS})"
                )
        return self

    @field_validator("gender")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @field_validator("seeking")
    @classmethod
    def _lower_all(cls, value: list[str]) -> list[str]:
        return sorted({v.strip().lower() for v in value if v.strip()})


def age_on(born: date, today: date) -> int:
    """Age in whole years on ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class ItemIn(Strict):
    """Something to recommend: an event, a startup, a film."""

    id: Id
    kind: str = Field(default="item", max_length=32, examples=["event"])
    title: str | None = Field(default=None, max_length=500)
    text: str | None = Field(default=None, max_length=20_000)
    category: str | None = Field(default=None, max_length=120)
    city: str | None = Field(default=None, max_length=120)
    owner_id: Id | None = None
    starts_at: Timestamp | None = None
    tags: list[TagText] = Field(default_factory=list, max_length=200)
    attributes: Attributes = Field(default_factory=dict)
    active: StrictBool = True


class InteractionIn(Strict):
    """A generic interaction (seeds 003/004): a user acts on an item or on another user."""

    event_type: Literal["interaction"] = "interaction"
    event_id: str | None = Field(
        default=None, max_length=128, description="Unique id; a retried event is ignored."
    )
    user_id: Id
    action: str = _action("click")
    item_id: Id | None = None
    target_user_id: Id | None = None
    value: float | None = None
    position: Int32 | None = None
    duration_ms: Int32 | None = None
    session_id: str | None = Field(default=None, max_length=128)
    context_hash: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=64)
    route: str | None = Field(default=None, max_length=16)
    timestamp: Timestamp | None = None
    experiment: str | None = Field(
        default=None,
        max_length=64,
        description="The experiment named by the recommendation response this event "
        "follows (optional: left out, the arm is derived from the user id)",
    )
    arm: str | None = Field(
        default=None,
        max_length=64,
        description="The arm named by that response (for an interleaved list, the "
        "candidate's team); optional, as experiment",
    )

    @field_validator("action")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _one_target(self) -> InteractionIn:
        if self.item_id is not None and self.target_user_id is not None:
            raise ValueError("give item_id or target_user_id, not both")
        return self


#: What a candidate is: another person (people domain) or an item.
CandidateKind = Literal["user", "item"]


class ImpressionEvent(Strict):
    """Seed 001: candidates shown to a user, with their positions."""

    event_type: Literal["impression"]
    event_id: str | None = Field(default=None, max_length=128)
    user_id: Id
    candidate_ids: list[Id] = Field(min_length=1, max_length=1000)
    positions: list[Int32] | None = None
    candidate_kind: CandidateKind | None = Field(
        default=None,
        description="What the candidates are. Left out: inferred from the ids (known users "
        "or known items); an id that is neither, or both, needs it.",
    )
    context_hash: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=64)
    route: str | None = Field(default=None, max_length=16)
    timestamp: Timestamp | None = None
    experiment: str | None = Field(
        default=None,
        max_length=64,
        description="The experiment named by the recommendation response this event "
        "follows (optional: left out, the arm is derived from the user id)",
    )
    arm: str | None = Field(
        default=None,
        max_length=64,
        description="The arm named by that response (for an interleaved list, the "
        "candidate's team); optional, as experiment",
    )

    @model_validator(mode="after")
    def _aligned(self) -> ImpressionEvent:
        if self.positions is not None and len(self.positions) != len(self.candidate_ids):
            raise ValueError("positions must have one entry per candidate_id")
        return self


class Swipe(Strict):
    candidate_id: Id
    action: str = _action("like")
    duration_ms: Int32 | None = None

    @field_validator("action")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class SwipeBatchEvent(Strict):
    """Seed 001: several swipes from one session."""

    event_type: Literal["swipe_batch"]
    event_id: str | None = Field(default=None, max_length=128)
    user_id: Id
    swipes: list[Swipe] = Field(min_length=1, max_length=1000)
    session_id: str | None = Field(default=None, max_length=128)
    timestamp: Timestamp | None = None


#: Seed 001's names for the two people of a match, and matchwise's.
_SEED_MATCH_FIELDS = {"user_a_id": "user_id", "user_b_id": "matched_user_id"}


def _either_match_shape(schema: dict[str, Any]) -> None:
    """Document both shapes a match event takes: seed 001's ``user_a_id``/``user_b_id``
    or ``user_id``/``matched_user_id``."""
    properties = schema.setdefault("properties", {})
    for seed_name, name in _SEED_MATCH_FIELDS.items():
        properties[seed_name] = {**properties[name], "title": seed_name.replace("_", " "),
                                 "description": f"Another name for {name}"}  # fmt: skip
    required = [f for f in schema.get("required", []) if f not in _SEED_MATCH_FIELDS.values()]
    schema["required"] = required
    schema["anyOf"] = [
        {"required": list(_SEED_MATCH_FIELDS.values())},
        {"required": list(_SEED_MATCH_FIELDS)},
    ]


class MatchEvent(Strict):
    """A match the app reports, as ``user_a_id``, ``user_b_id`` and ``match_type`` (the
    dating app's event schema) or as ``user_id`` and ``matched_user_id``. Stored like the
    match a mutual like makes, and like it never between two people one of whom blocked
    the other."""

    model_config = ConfigDict(json_schema_extra=_either_match_shape)

    event_type: Literal["match"]
    event_id: str | None = Field(default=None, max_length=128)
    user_id: Id
    matched_user_id: Id
    match_type: str = Field(
        default="mutual_like",
        max_length=32,
        description="How the app made the match, e.g. mutual_like. Every type makes the "
        "match; GET /v1/users/{id}/matches says how matchwise sees it.",
    )
    timestamp: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _seed_shape(cls, data: Any) -> Any:
        """``user_a_id``/``user_b_id`` (seed 001's names) become ``user_id``/``matched_user_id``."""
        if not isinstance(data, dict) or not set(_SEED_MATCH_FIELDS) & set(data):
            return data
        if set(_SEED_MATCH_FIELDS.values()) & set(data):
            raise ValueError(
                "give user_a_id and user_b_id, or user_id and matched_user_id, not a mix"
            )
        for seed_name in _SEED_MATCH_FIELDS:
            if seed_name not in data:
                raise ValueError("user_a_id and user_b_id go together: both are required")
        return {_SEED_MATCH_FIELDS.get(k, k): v for k, v in data.items()}

    @field_validator("match_type")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


def _event_type(value: Any) -> str:
    """Events without ``event_type`` are generic interactions."""
    if isinstance(value, dict):
        return str(value.get("event_type") or "interaction")
    return str(getattr(value, "event_type", "interaction"))


Event = Annotated[
    Annotated[InteractionIn, Tag("interaction")]
    | Annotated[ImpressionEvent, Tag("impression")]
    | Annotated[SwipeBatchEvent, Tag("swipe_batch")]
    | Annotated[MatchEvent, Tag("match")],
    Discriminator(_event_type),
]


class EventBatch(Strict):
    events: list[Event] = Field(min_length=1)


class UserBatch(Strict):
    users: list[UserIn] = Field(min_length=1)


class ItemBatch(Strict):
    items: list[ItemIn] = Field(min_length=1)


class UpsertResult(BaseModel):
    created: int
    updated: int


#: Two user ids, documented as an array of two strings: the JSON a tuple gives, in the form
#: every OpenAPI tool reads (a tuple's ``prefixItems`` trips some, schemathesis among them).
UserPair = Annotated[
    tuple[str, str],
    WithJsonSchema({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}),
]


class IngestResult(BaseModel):
    """What a batch did: rows written, and events skipped because their id was seen."""

    written: int
    duplicates: int
    sampled_out: int = Field(default=0, description="Analytics events dropped by sampling")
    matches_created: list[UserPair] = Field(
        default_factory=list, description="The pairs of people this batch matched"
    )
    matches_refused: int = Field(
        default=0,
        description="Match events not stored: one of the two people blocked the other",
    )


class ExplanationOut(BaseModel):
    """Why a candidate scored what it did (``explain=true``)."""

    contributions: dict[str, float] = Field(
        description="Each signal's part of raw_score (weight x signal); they add up to it. "
        "People: model, reciprocal, compatibility, bio, interaction (the swipe adjustment), "
        "elo, popularity, swipe_rates (those in play); items: model (the serving model's "
        "raw score) or the heuristic's interests, popularity, city, upcoming"
    )
    raw_score: float = Field(description="The blend's or model's score before the scale map")
    score: float = Field(description="raw_score on the served scale, [0, 1]")
    scale: str = Field(description="How raw_score maps onto score, in words")


class RecommendationOut(BaseModel):
    candidate_id: str = Field(description="The item's or person's id")
    candidate_kind: Literal["user", "item"] = Field(description="user (a person) or item")
    score: float = Field(
        description="In [0, 1], higher is better, on every route: the serving model's or "
        "blend's score by a fixed increasing map (README: Scores), so the order is the model's"
    )
    rank: int = Field(description="Position in the list without the excluded ids, from 1")
    reason: str = Field(description="A short reason that is true of this candidate")
    title: str | None = Field(default=None, description="An item's title; null for people")
    explanation: ExplanationOut | None = Field(
        default=None,
        description="Only with explain=true: each signal's contribution (null where the "
        "candidate could not be explained again)",
    )
    team: str | None = Field(
        default=None,
        description="Only in an interleaved list (an interleaving experiment): the arm "
        "whose ranking put the candidate here; a click or like on it credits that arm",
    )


class RecommendationsOut(BaseModel):
    user_id: str = Field(description="The user the list is for")
    route: str = Field(description="cold, warm, hot, cache or fallback: what served the list")
    model_version: str = Field(description="The model version (or heuristic) that ranked it")
    generated_at: datetime = Field(description="When the list was computed")
    experiment: str | None = Field(
        default=None,
        description="The running experiment the user is in (null: none). Echo it, with "
        "arm, on the impressions and events this list leads to",
    )
    arm: str | None = Field(
        default=None,
        description="The user's arm in that experiment ('interleaved' for an interleaving "
        "experiment: each candidate's team says which arm picked it); the same on every "
        "host and every tier",
    )
    recommendations: list[RecommendationOut]
    explained: Literal["live", "recomputed"] | None = Field(
        default=None,
        description="Only with explain=true: live (explanations made with the scores), or "
        "recomputed (a cached list: its candidates scored again at explained_at by "
        "explained_by; their explanations' scores may differ from the cached scores)",
    )
    explained_at: datetime | None = Field(
        default=None, description="Only with explain=true: when the explanations were made"
    )
    explained_by: str | None = Field(
        default=None, description="Only with explain=true: the model version that explained"
    )


class InteractionOut(BaseModel):
    written: int
    duplicates: int
    match_created: bool = False
    refresh_enqueued: bool = False


class ErrorOut(BaseModel):
    error: str = Field(description="Machine-readable error class, e.g. not_found")
    message: str = Field(description="What is wrong, for a person")
    details: list[dict[str, Any]] | None = None
    request_id: str | None = Field(
        default=None, description="On server errors: the id that finds the detail in the log"
    )


class ReportIn(Strict):
    """A user reporting another user."""

    reporter_id: Id
    reported_id: Id
    reason: Literal[
        "spam", "scam", "harassment", "inappropriate", "fake_profile", "underage", "other"
    ]
    details: str | None = Field(default=None, max_length=5000)


class ReportOut(BaseModel):
    report_id: int
    held_for_review: bool


class FlagOut(BaseModel):
    id: int
    user_id: str
    source: str
    labels: dict[str, Any]
    status: str
    reports: int
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = None


class ResolveIn(Strict):
    flag_id: int = Field(ge=1, le=INT64_MAX)
    decision: Literal["approve", "remove"]
    note: str | None = Field(default=None, max_length=2000)
    moderator: str | None = Field(
        default=None, max_length=200, deprecated=True,
        description="Ignored: the audit log names the API key's owner.",
    )  # fmt: skip


class RateSummary(BaseModel):
    impressions: float
    clicks: float
    ctr: float | None
    conversions: float
    conversion_rate: float | None


class DailyRates(RateSummary):
    day: str


class ModelRates(RateSummary):
    model_version: str | None
    route: str | None


class MetricsOut(BaseModel):
    days: int
    since: str
    totals: RateSummary
    daily: list[DailyRates]
    by_model: list[ModelRates]


class CoverageOut(BaseModel):
    catalogue: int = Field(description="Active candidates of this kind")
    cache: float | None = Field(description="Share of them in at least one cached list")
    impressions: float | None = Field(description="Share shown in the window's impressions")


class FreshnessOut(BaseModel):
    lists: int = Field(description="Cached lists (one per user and candidate kind)")
    max_age_hours: float = Field(description="cache_max_age_seconds in hours")
    median_hours: float | None
    p95_hours: float | None
    oldest_hours: float | None
    stale_share: float | None = Field(
        description="Share of lists older than max_age_hours (computed live when asked for)"
    )


class RouteSharesOut(BaseModel):
    total: float
    counts: dict[str, float]
    shares: dict[str, float] = Field(description="Per route; they add up to 1")


class RoutesOut(BaseModel):
    requests: RouteSharesOut = Field(
        description="Recommendation requests this API process answered since requests_since"
    )
    requests_since: str
    impressions: RouteSharesOut = Field(description="Logged impressions of the window")


class OnlineOut(BaseModel):
    model_version: str | None
    impressions: float
    clicks: float
    ctr: float | None
    conversions: float
    conversion_rate: float | None
    matches: float
    match_rate: float | None


class FeatureDriftOut(BaseModel):
    feature: str
    psi: float = Field(description="Population stability index, training sample vs. served")
    reference_n: int
    current_n: int


class VersionDriftOut(BaseModel):
    model_version: str
    available: bool = Field(description="False: no training sample saved with this version")
    features: list[FeatureDriftOut]
    note: str | None = None


class MonitoringFlag(BaseModel):
    metric: str = Field(description="e.g. psi.<version>.score, freshness.stale_share")
    value: float
    threshold: float
    level: Literal["warning", "alert"]
    message: str


class MonitoringOut(BaseModel):
    generated_at: str
    window_days: int
    coverage: dict[str, CoverageOut] = Field(description="Per candidate kind: item, user")
    freshness: FreshnessOut
    routes: RoutesOut
    online: list[OnlineOut] = Field(description="Per model version the events carry")
    drift: list[VersionDriftOut] = Field(description="Per model version in the ranking cache")
    flags: list[MonitoringFlag] = Field(description="Figures past settings.monitoring's thresholds")


class SafetyIn(Strict):
    """A text and/or a stored profile to classify."""

    text: str | None = Field(default=None, min_length=1, max_length=10_000)
    profile_id: Id | None = None
    thresholds: (
        Annotated[dict[str, Annotated[float, Field(ge=0, le=1)]], Field(max_length=16)] | None
    ) = Field(default=None, description="Per-label overrides of the decision thresholds")

    @model_validator(mode="after")
    def _something(self) -> SafetyIn:
        if self.text is None and self.profile_id is None:
            raise ValueError("give a text, a profile_id, or both")
        return self


class SafetyOut(BaseModel):
    probabilities: dict[str, float]
    flags: dict[str, bool]


class LabelIn(Strict):
    """A moderator's label on a text; the next `matchwise train safety` learns from it."""

    text: str = Field(min_length=1, max_length=10_000)
    label: Literal["inappropriate", "spam_scam", "harassment"]
    value: StrictBool
    moderator: str | None = Field(
        default=None, max_length=200, deprecated=True,
        description="Ignored: the label is stored under the API key's owner.",
    )  # fmt: skip


class FailedModelOut(BaseModel):
    """An active model version this process could not load (retried in the background)."""

    model_type: str
    version: str
    error: str
    attempts: int
    retry_in_seconds: float
    serving: str = Field(
        description="What answers instead: the previous version, the other loaded models "
        "of its routes, or the heuristic 'fallback'"
    )


class HealthOut(BaseModel):
    """``/healthz``: always 200 while the process lives; ``degraded`` names what is wrong."""

    status: Literal["ok", "degraded"]
    revision: str
    failed_models: list[FailedModelOut] = Field(default_factory=list)


class ReadyOut(BaseModel):
    """``/readyz``: 200 ``ready`` once the warm-up has loaded the active models, their
    indexes and the catalogues (and stored bio vectors); 503 ``warming`` until then."""

    status: Literal["ready", "warming"]
    models: list[str] = Field(default_factory=list, description="Versions loaded")
    items: int = Field(default=0, description="Items in the loaded catalogue")
    people: int = Field(default=0, description="Profiles in the loaded people catalogue")
    bio_vectors: int = Field(default=0, description="People with a stored bio vector")
    seconds: float | None = Field(default=None, description="How long the warm-up took")


class TokenIn(Strict):
    """A user token to mint: the user it acts for, what it may do, for how long."""

    user_id: Id
    scope: Literal["user", "read", "ingest"] = Field(
        default="user",
        description="user: read that user's recommendations and matches and record their "
        "swipes and reports (a user's app); read: only read; ingest: only record",
    )
    expires_in: int | None = Field(
        default=None,
        ge=60,
        le=86_400,
        description="Seconds; default user_token_seconds (1 h), at most user_token_max_seconds",
    )


class TokenOut(BaseModel):
    """A user token: send it as ``Authorization: Bearer TOKEN``; shown once, not stored."""

    token: str
    expires_at: datetime
    user_id: str
    scope: str


MatchType = Literal["mutual_like", "superlike", "reported"]


class MatchOut(BaseModel):
    user_id: str = Field(description="The other person of the match")
    matched_at: datetime
    match_type: MatchType = Field(
        description="mutual_like: both liked; superlike: both liked, one with a superlike; "
        "reported: the app reported the match without both likes recorded here"
    )


class MatchesOut(BaseModel):
    """A user's matches, newest first; people not shown now (deactivated, held, removed)
    and anyone blocked either way are never listed."""

    user_id: str
    total: int = Field(description="Matches listed over all pages")
    offset: int = Field(description="Where this page starts")
    next_offset: int | None = Field(description="The next page's offset; null on the last")
    matches: list[MatchOut]


class SimilarCandidateOut(BaseModel):
    candidate_id: str
    candidate_kind: CandidateKind
    score: float = Field(
        description="How alike, in [0, 1]: cosine of the model's vectors (EASE: its weight "
        "over the largest), or of the sets of people who acted on both (co-occurrence)"
    )
    rank: int
    title: str | None = Field(default=None, description="An item's title; null for people")


class SimilarOut(BaseModel):
    """Items like an item, or people like a person ("more like this"), most alike first."""

    id: str = Field(description="The item or person the list is like (never in it)")
    kind: CandidateKind
    source: Literal["model", "co-occurrence"] = Field(
        description="model: the active model's vectors; co-occurrence: the interactions "
        "(no loaded model knows the id)"
    )
    model_type: str | None = Field(description="The model that answered; null for co-occurrence")
    model_version: str | None = Field(description="Its version; null for co-occurrence")
    similar: list[SimilarCandidateOut]


class ErasureOut(BaseModel):
    """What ``DELETE /v1/users/{id}`` (or ``/v1/admin/users/{id}``) erased. Trained models
    forget the person at the next retrain; model versions older than
    ``model_retention_days`` are deleted."""

    tombstone: str = Field(
        description="Keyed hash left in the audit log instead of the id (same secret as exports)"
    )
    deleted: dict[str, int] = Field(description="Rows deleted, per table")
    scrubbed: dict[str, int] = Field(description="Rows kept but rewritten without the person")
    text_cache: int = Field(description="Cached bio embeddings purged")
    online_keys: int = Field(description="Redis keys deleted or rewritten (0 without Redis)")


# --- experiments (ops.experiments) ------------------------------------------------------


class ArmIn(Strict):
    """One arm: a name, a traffic weight, and at most one of what it serves instead of
    the default (none: the control, what serves without the experiment)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    weight: float = Field(default=1.0, gt=0, description="Share of traffic (any scale)")
    model_version: str | None = Field(
        default=None, max_length=64, description="A registry version, active or not"
    )
    model_type: str | None = Field(
        default=None, max_length=50, description="The active version of this model type"
    )
    blend: dict[str, float] | None = Field(
        default=None, description="People: blend weights over matchwise.yaml's"
    )


class ExperimentIn(Strict):
    """A new experiment; it runs from ``starts_at`` (default now) once created."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    kind: Literal["ab", "interleave"] = Field(
        default="ab", description="ab: each user sees one arm; interleave: two arms in one list"
    )
    arms: list[ArmIn] = Field(min_length=2, max_length=20, description="The first is the control")
    domain: Literal["items", "people"] | None = Field(
        default=None, description="Default: the server's domain"
    )
    coverage: float = Field(default=1.0, ge=0, le=1, description="Share of users in it")
    outcome_actions: list[str] | None = Field(
        default=None,
        max_length=50,
        description="Actions that count as a conversion; default the positive actions",
    )
    mde: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="Smallest relative lift worth detecting (0.1 = 10%): sizes the "
        "sample-size figure and the sequential test",
    )
    salt: str | None = Field(default=None, max_length=64, description="Default: generated")
    starts_at: Timestamp | None = None
    stops_at: Timestamp | None = None


class ExperimentOut(BaseModel):
    name: str
    kind: str
    domain: str
    status: str = Field(
        description="running; ended (its stops_at passed: nobody is assigned any more); "
        "stopped; or promoted"
    )
    salt: str
    arms: list[ArmIn]
    coverage: float
    outcome_actions: list[str]
    mde: float
    starts_at: datetime
    stops_at: datetime | None
    promoted_arm: str | None
    created_at: datetime
    updated_at: datetime


class MetricOut(BaseModel):
    """An arm's metric over its users, with a 95% t interval (delta method on users)."""

    value: float
    ci_low: float
    ci_high: float
    std_error: float


class ArmStatsOut(BaseModel):
    arm: str
    users: int = Field(description="Users of the arm with an impression (or an echo) in the window")
    impressions: int
    clicks: int
    conversions: int
    matches: int = Field(description="People: matches made by these users in the window")
    metrics: dict[str, MetricOut | None] = Field(
        description="ctr, conversion (per impression), converted_users (share), "
        "clicks_per_user, conversions_per_user, match_rate (people); null when an arm "
        "has fewer than two users or no impressions"
    )


class ComparisonOut(BaseModel):
    """An arm against the control on one metric."""

    arm: str
    metric: str
    difference: float
    relative: float | None
    ci_low: float = Field(description="Fixed-horizon 95% interval (Welch)")
    ci_high: float
    p_value: float = Field(description="Fixed-horizon p-value: valid once, at the planned size")
    sequential_ci_low: float = Field(description="Always-valid interval: valid at every look")
    sequential_ci_high: float
    sequential_p_value: float
    significant: bool = Field(description="sequential_p_value < alpha")


class SampleRatioOut(BaseModel):
    observed: dict[str, int]
    expected: dict[str, float]
    p_value: float
    flagged: bool = Field(description="The split is broken (p < 0.001): trust no result")


class InterleavingOut(BaseModel):
    wins: dict[str, int] = Field(description="Users whose clicks and likes favoured each arm")
    ties: int
    preference: float = Field(description="(wins of the second - wins of the first) / users")
    p_value: float = Field(description="Sign test over the users with a winner")
    winner: str | None = Field(description="The preferred arm when significant")


class ExperimentReportOut(BaseModel):
    experiment: ExperimentOut
    window_start: datetime
    window_end: datetime
    primary_metric: str
    arms: list[ArmStatsOut]
    comparisons: list[ComparisonOut]
    sample_ratio: SampleRatioOut | None
    users_needed_per_arm: int | None = Field(
        description="Users per arm to detect a relative lift of mde on the primary metric "
        "with 80% power at 5% (from the control's spread so far)"
    )
    arm_mismatches: int = Field(
        description="Users whose echoed arm differs from their hashed arm (an app bug)"
    )
    interleaving: InterleavingOut | None
    alpha: float


class PromoteIn(Strict):
    arm: str | None = Field(
        default=None,
        max_length=64,
        description="The arm to promote; default the arm that beats the control significantly",
    )


class PromoteOut(BaseModel):
    experiment: ExperimentOut
    arm: str
    activated: str | None = Field(description="The model version activated, if any")
    note: str = Field(description="What promoting the arm did, in words")
