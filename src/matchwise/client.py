"""A typed Python client for the matchwise HTTP API, sync (:class:`MatchwiseClient`) and
async (:class:`AsyncMatchwiseClient`), over httpx.

It knows the wire contract (:mod:`matchwise.schemas`) and nothing else of the server, so
an app installs matchwise and talks to a matchwise service without loading its models:
each method sends one request and returns the response model the API documents, and an
error answer (4xx/5xx) raises :class:`MatchwiseAPIError` with the status and the
server's own message. Connection failures and timeouts are httpx's own exceptions.

Credentials: an API key, or a user token minted with :meth:`MatchwiseClient.mint_token`
(see :meth:`MatchwiseClient.with_token`), sent as ``Authorization: Bearer``. Pass your own
``httpx.Client``/``httpx.AsyncClient`` as ``http`` for pooling, proxies or tests (FastAPI's
``TestClient`` is one; so is an ``httpx.AsyncClient`` over ``httpx.ASGITransport``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, TypeAdapter

from matchwise.schemas import (
    ErasureOut,
    ExperimentIn,
    ExperimentOut,
    ExperimentReportOut,
    FlagOut,
    HealthOut,
    IngestResult,
    InteractionIn,
    InteractionOut,
    ItemIn,
    LabelIn,
    MatchesOut,
    MetricsOut,
    MonitoringOut,
    PromoteOut,
    ReadyOut,
    RecommendationsOut,
    ReportIn,
    ReportOut,
    ResolveIn,
    SafetyOut,
    SimilarOut,
    TokenOut,
    UpsertResult,
    UserIn,
)

__all__ = ["AsyncMatchwiseClient", "MatchwiseAPIError", "MatchwiseClient"]

T = TypeVar("T")
#: A request body: a schema model (sent as the fields it was given) or plain JSON-able data.
Body = BaseModel | Mapping[str, Any]
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
_FLAGS: TypeAdapter[list[FlagOut]] = TypeAdapter(list[FlagOut])
_IDS: TypeAdapter[dict[str, int]] = TypeAdapter(dict[str, int])
_EXPERIMENTS: TypeAdapter[list[ExperimentOut]] = TypeAdapter(list[ExperimentOut])


class Response(Protocol):
    """What the clients read of an answer: an ``httpx.Response`` or one like it."""

    @property
    def status_code(self) -> int: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


class HTTP(Protocol):
    """A synchronous HTTP client: ``httpx.Client`` or one with its interface (Starlette's
    ``TestClient`` is one, on httpx or its successor)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any],
        content: bytes | None,
        headers: dict[str, str],
    ) -> Response: ...

    def close(self) -> None: ...


class AsyncHTTP(Protocol):
    """An asynchronous HTTP client: ``httpx.AsyncClient`` or one with its interface."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any],
        content: bytes | None,
        headers: dict[str, str],
    ) -> Response: ...

    async def aclose(self) -> None: ...


class MatchwiseAPIError(Exception):
    """The API answered with an error: ``status_code``, the machine-readable ``error``
    (e.g. ``not_found``), the server's ``message`` for a person, and where given the
    validation ``details``, the ``request_id`` of a server error and ``retry_after``."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(f"{status_code} {error}: {message}")
        self.status_code = status_code
        self.error = error
        self.message = message
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: Response) -> MatchwiseAPIError:
        """The server's ``{"error", "message"}`` body; a body that is not one (a proxy's
        page, say) becomes the message as text."""
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        retry_after = response.headers.get("retry-after")
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return cls(
                response.status_code,
                str(body.get("error") or "error"),
                body["message"],
                details=body.get("details"),
                request_id=body.get("request_id"),
                retry_after=retry_after,
            )
        text = response.text.strip()[:500] or response.reason_phrase
        return cls(response.status_code, "http_error", text, retry_after=retry_after)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, and how its answer becomes ``T``: what both clients send."""

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


def _json(body: Body) -> Any:
    """A model as the fields it was given (the server fills the rest as it would);
    anything else as it is."""
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_unset=True)
    return dict(body)


def _params(**given: Any) -> dict[str, Any]:
    """Query parameters that were given (None means: leave it to the server)."""
    return {name: value for name, value in given.items() if value is not None}


def _segment(value: str) -> str:
    """An id as one path segment."""
    return quote(value, safe="")


class Calls:
    """The API's operations as :class:`Call` values, one per method of the clients."""

    @staticmethod
    def health() -> Call[HealthOut]:
        return Call("GET", "/healthz", HealthOut.model_validate_json)

    @staticmethod
    def ready() -> Call[ReadyOut]:
        return Call("GET", "/readyz", ReadyOut.model_validate_json)

    @staticmethod
    def upsert_users(users: Iterable[UserIn | Mapping[str, Any]]) -> Call[UpsertResult]:
        body = {"users": [_json(u) for u in users]}
        return Call("POST", "/v1/users", UpsertResult.model_validate_json, body=body)

    @staticmethod
    def upsert_items(items: Iterable[ItemIn | Mapping[str, Any]]) -> Call[UpsertResult]:
        body = {"items": [_json(i) for i in items]}
        return Call("POST", "/v1/items", UpsertResult.model_validate_json, body=body)

    @staticmethod
    def send_events(events: Iterable[Body]) -> Call[IngestResult]:
        body = {"events": [_json(e) for e in events]}
        return Call("POST", "/v1/events", IngestResult.model_validate_json, body=body)

    @staticmethod
    def record_interaction(interaction: InteractionIn | Mapping[str, Any]) -> Call[InteractionOut]:
        return Call(
            "POST", "/v1/interactions", InteractionOut.model_validate_json, body=_json(interaction)
        )

    @staticmethod
    def recommendations(
        user_id: str,
        *,
        limit: int | None = None,
        kind: Literal["item", "user"] | None = None,
        category: str | None = None,
        city: str | None = None,
        include_past: bool | None = None,
        fresh: bool | None = None,
        offset: int | None = None,
        exclude: Sequence[str] | None = None,
        explain: bool | None = None,
    ) -> Call[RecommendationsOut]:
        params = _params(
            user_id=user_id,
            limit=limit,
            kind=kind,
            category=category,
            city=city,
            include_past=include_past,
            fresh=fresh,
            offset=offset,
            exclude=None if exclude is None else list(exclude),
            explain=explain,
        )
        return Call(
            "GET", "/v1/recommendations", RecommendationsOut.model_validate_json, params=params
        )

    @staticmethod
    def matches(
        user_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> Call[MatchesOut]:
        return Call(
            "GET",
            f"/v1/users/{_segment(user_id)}/matches",
            MatchesOut.model_validate_json,
            params=_params(limit=limit, offset=offset),
        )

    @staticmethod
    def similar_items(
        item_id: str,
        *,
        limit: int | None = None,
        category: str | None = None,
        city: str | None = None,
        include_past: bool | None = None,
    ) -> Call[SimilarOut]:
        params = _params(limit=limit, category=category, city=city, include_past=include_past)
        return Call(
            "GET",
            f"/v1/items/{_segment(item_id)}/similar",
            SimilarOut.model_validate_json,
            params=params,
        )

    @staticmethod
    def similar_users(
        user_id: str, *, limit: int | None = None, city: str | None = None
    ) -> Call[SimilarOut]:
        return Call(
            "GET",
            f"/v1/users/{_segment(user_id)}/similar",
            SimilarOut.model_validate_json,
            params=_params(limit=limit, city=city),
        )

    @staticmethod
    def report(report: ReportIn | Mapping[str, Any]) -> Call[ReportOut]:
        return Call("POST", "/v1/reports", ReportOut.model_validate_json, body=_json(report))

    @staticmethod
    def mint_token(
        user_id: str,
        *,
        scope: Literal["user", "read", "ingest"] | None = None,
        expires_in: int | None = None,
    ) -> Call[TokenOut]:
        body = _params(user_id=user_id, scope=scope, expires_in=expires_in)
        return Call("POST", "/v1/tokens", TokenOut.model_validate_json, body=body)

    @staticmethod
    def classify(
        text: str | None = None,
        *,
        profile_id: str | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> Call[SafetyOut]:
        body = _params(
            text=text,
            profile_id=profile_id,
            thresholds=None if thresholds is None else dict(thresholds),
        )
        return Call("POST", "/v1/safety/classify", SafetyOut.model_validate_json, body=body)

    @staticmethod
    def erase_user(user_id: str) -> Call[ErasureOut]:
        return Call("DELETE", f"/v1/users/{_segment(user_id)}", ErasureOut.model_validate_json)

    @staticmethod
    def moderation(
        *, status: Literal["open", "approved", "removed"] | None = None, limit: int | None = None
    ) -> Call[list[FlagOut]]:
        return Call(
            "GET",
            "/v1/admin/moderation",
            _FLAGS.validate_json,
            params=_params(status=status, limit=limit),
        )

    @staticmethod
    def resolve_flag(decision: ResolveIn | Mapping[str, Any]) -> Call[FlagOut]:
        return Call(
            "POST", "/v1/admin/moderation", FlagOut.model_validate_json, body=_json(decision)
        )

    @staticmethod
    def metrics(*, days: int | None = None) -> Call[MetricsOut]:
        return Call(
            "GET", "/v1/admin/metrics", MetricsOut.model_validate_json, params=_params(days=days)
        )

    @staticmethod
    def monitoring(
        *, window_days: int | None = None, stored: bool | None = None
    ) -> Call[MonitoringOut]:
        return Call("GET", "/v1/admin/monitoring", MonitoringOut.model_validate_json,
                    params=_params(window_days=window_days, stored=stored))  # fmt: skip

    @staticmethod
    def add_safety_label(label: LabelIn | Mapping[str, Any]) -> Call[dict[str, int]]:
        return Call("POST", "/v1/admin/safety/labels", _IDS.validate_json, body=_json(label))

    @staticmethod
    def create_experiment(spec: ExperimentIn | Mapping[str, Any]) -> Call[ExperimentOut]:
        return Call(
            "POST", "/v1/admin/experiments", ExperimentOut.model_validate_json, body=_json(spec)
        )

    @staticmethod
    def experiments(*, status: str | None = None) -> Call[list[ExperimentOut]]:
        return Call("GET", "/v1/admin/experiments", _EXPERIMENTS.validate_json,
                    params=_params(status=status))  # fmt: skip

    @staticmethod
    def experiment(name: str) -> Call[ExperimentReportOut]:
        return Call("GET", f"/v1/admin/experiments/{_segment(name)}",
                    ExperimentReportOut.model_validate_json)  # fmt: skip

    @staticmethod
    def stop_experiment(name: str) -> Call[ExperimentOut]:
        return Call("POST", f"/v1/admin/experiments/{_segment(name)}/stop",
                    ExperimentOut.model_validate_json, body={})  # fmt: skip

    @staticmethod
    def promote_experiment(name: str, arm: str | None = None) -> Call[PromoteOut]:
        return Call("POST", f"/v1/admin/experiments/{_segment(name)}/promote",
                    PromoteOut.model_validate_json, body={"arm": arm})  # fmt: skip


class _Base:
    """What both clients hold: where the API is, and the credential they send."""

    def __init__(
        self, base_url: str | None, api_key: str | None, token: str | None, owned: bool
    ) -> None:
        if api_key is not None and token is not None:
            raise ValueError("give api_key or token, not both: a request carries one credential")
        self._prefix = (base_url or "").rstrip("/")
        self._credential = token if token is not None else api_key
        self._owned = owned

    def _url(self, path: str) -> str:
        return f"{self._prefix}{path}"

    def _request(self, call: Call[Any]) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._credential is not None:
            headers["Authorization"] = f"Bearer {self._credential}"
        content = None
        if call.body is not None:
            content = orjson.dumps(call.body)
            headers["Content-Type"] = "application/json"
        return {
            "method": call.method,
            "url": self._url(call.path),
            "params": call.params,
            "content": content,
            "headers": headers,
        }


def _answer(call: Call[T], response: Response) -> T:
    if response.status_code >= 400:
        raise MatchwiseAPIError.from_response(response)
    return call.parse(response.content)


class MatchwiseClient(_Base):
    """The API from synchronous code. ``MatchwiseClient(base_url, api_key)``; with your own
    ``http`` client the ``base_url`` may be left out (that client's own is used). Close it
    (or use ``with``) when it made its own httpx client."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        token: str | None = None,
        http: HTTP | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if http is None:
            http = httpx.Client(base_url=base_url or DEFAULT_BASE_URL, timeout=timeout)
            super().__init__(None, api_key, token, owned=True)
        else:
            super().__init__(base_url, api_key, token, owned=False)
        self.http: HTTP = http

    def with_token(self, token: str) -> MatchwiseClient:
        """A client acting with a user token (for that user only), on the same connection."""
        return MatchwiseClient(self._prefix or None, token=token, http=self.http)

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def call(self, call: Call[T]) -> T:
        """Send one :class:`Call`; the typed methods below all come here."""
        return _answer(call, self.http.request(**self._request(call)))

    def health(self) -> HealthOut:
        """``GET /healthz``: liveness, schema revision, models that failed to load."""
        return self.call(Calls.health())

    def ready(self) -> ReadyOut:
        """``GET /readyz``: what the warm-up loaded; a 503 error while it still runs."""
        return self.call(Calls.ready())

    def upsert_users(self, users: Iterable[UserIn | Mapping[str, Any]]) -> UpsertResult:
        """``POST /v1/users``: insert or update profiles (ingest key)."""
        return self.call(Calls.upsert_users(users))

    def upsert_items(self, items: Iterable[ItemIn | Mapping[str, Any]]) -> UpsertResult:
        """``POST /v1/items``: insert or update items (ingest key)."""
        return self.call(Calls.upsert_items(items))

    def send_events(self, events: Iterable[Body]) -> IngestResult:
        """``POST /v1/events``: a batch of interactions, impressions, swipe batches, matches."""
        return self.call(Calls.send_events(events))

    def record_interaction(self, interaction: InteractionIn | Mapping[str, Any]) -> InteractionOut:
        """``POST /v1/interactions``: one interaction; says whether it made a match."""
        return self.call(Calls.record_interaction(interaction))

    def recommendations(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        kind: Literal["item", "user"] | None = None,
        category: str | None = None,
        city: str | None = None,
        include_past: bool | None = None,
        fresh: bool | None = None,
        offset: int | None = None,
        exclude: Sequence[str] | None = None,
        explain: bool | None = None,
    ) -> RecommendationsOut:
        """``GET /v1/recommendations``: a user's ranked candidates, each with a reason;
        ``offset`` and ``exclude`` page and leave ids out, ``explain`` adds each signal's
        contribution to the score."""
        return self.call(
            Calls.recommendations(
                user_id,
                limit=limit,
                kind=kind,
                category=category,
                city=city,
                include_past=include_past,
                fresh=fresh,
                offset=offset,
                exclude=exclude,
                explain=explain,
            )
        )

    def matches(
        self, user_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> MatchesOut:
        """``GET /v1/users/{user_id}/matches``: a user's matches, newest first."""
        return self.call(Calls.matches(user_id, limit=limit, offset=offset))

    def similar_items(
        self,
        item_id: str,
        *,
        limit: int | None = None,
        category: str | None = None,
        city: str | None = None,
        include_past: bool | None = None,
    ) -> SimilarOut:
        """``GET /v1/items/{item_id}/similar``: items like this one ("more like this")."""
        return self.call(
            Calls.similar_items(
                item_id, limit=limit, category=category, city=city, include_past=include_past
            )
        )

    def similar_users(
        self, user_id: str, *, limit: int | None = None, city: str | None = None
    ) -> SimilarOut:
        """``GET /v1/users/{user_id}/similar``: people like this person."""
        return self.call(Calls.similar_users(user_id, limit=limit, city=city))

    def report(self, report: ReportIn | Mapping[str, Any]) -> ReportOut:
        """``POST /v1/reports``: a user reports another."""
        return self.call(Calls.report(report))

    def mint_token(
        self,
        user_id: str,
        *,
        scope: Literal["user", "read", "ingest"] | None = None,
        expires_in: int | None = None,
    ) -> TokenOut:
        """``POST /v1/tokens``: a short-lived token for one user's app."""
        return self.call(Calls.mint_token(user_id, scope=scope, expires_in=expires_in))

    def classify(
        self,
        text: str | None = None,
        *,
        profile_id: str | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> SafetyOut:
        """``POST /v1/safety/classify``: safety labels for a text and/or a stored profile."""
        return self.call(Calls.classify(text, profile_id=profile_id, thresholds=thresholds))

    def erase_user(self, user_id: str) -> ErasureOut:
        """``DELETE /v1/users/{user_id}``: erase a person (admin key, or their own token)."""
        return self.call(Calls.erase_user(user_id))

    def moderation(
        self,
        *,
        status: Literal["open", "approved", "removed"] | None = None,
        limit: int | None = None,
    ) -> list[FlagOut]:
        """``GET /v1/admin/moderation``: profiles held for review (admin key)."""
        return self.call(Calls.moderation(status=status, limit=limit))

    def resolve_flag(self, decision: ResolveIn | Mapping[str, Any]) -> FlagOut:
        """``POST /v1/admin/moderation``: approve or remove a held profile (admin key)."""
        return self.call(Calls.resolve_flag(decision))

    def metrics(self, *, days: int | None = None) -> MetricsOut:
        """``GET /v1/admin/metrics``: impressions, CTR and conversion (admin key)."""
        return self.call(Calls.metrics(days=days))

    def monitoring(
        self, *, window_days: int | None = None, stored: bool | None = None
    ) -> MonitoringOut:
        """``GET /v1/admin/monitoring``: coverage, freshness, routes, drift, flags (admin key)."""
        return self.call(Calls.monitoring(window_days=window_days, stored=stored))

    def add_safety_label(self, label: LabelIn | Mapping[str, Any]) -> dict[str, int]:
        """``POST /v1/admin/safety/labels``: a moderator's label (admin key)."""
        return self.call(Calls.add_safety_label(label))

    def create_experiment(self, spec: ExperimentIn | Mapping[str, Any]) -> ExperimentOut:
        """``POST /v1/admin/experiments``: start an experiment (admin key)."""
        return self.call(Calls.create_experiment(spec))

    def experiments(self, *, status: str | None = None) -> list[ExperimentOut]:
        """``GET /v1/admin/experiments``: experiments, newest first (admin key)."""
        return self.call(Calls.experiments(status=status))

    def experiment(self, name: str) -> ExperimentReportOut:
        """``GET /v1/admin/experiments/{name}``: one with its statistics (admin key)."""
        return self.call(Calls.experiment(name))

    def stop_experiment(self, name: str) -> ExperimentOut:
        """``POST /v1/admin/experiments/{name}/stop`` (admin key)."""
        return self.call(Calls.stop_experiment(name))

    def promote_experiment(self, name: str, arm: str | None = None) -> PromoteOut:
        """``POST /v1/admin/experiments/{name}/promote``: make an arm serve (admin key)."""
        return self.call(Calls.promote_experiment(name, arm))


class AsyncMatchwiseClient(_Base):
    """The API from async code: the same methods as :class:`MatchwiseClient`, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        token: str | None = None,
        http: AsyncHTTP | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if http is None:
            http = httpx.AsyncClient(base_url=base_url or DEFAULT_BASE_URL, timeout=timeout)
            super().__init__(None, api_key, token, owned=True)
        else:
            super().__init__(base_url, api_key, token, owned=False)
        self.http: AsyncHTTP = http

    def with_token(self, token: str) -> AsyncMatchwiseClient:
        """A client acting with a user token (for that user only), on the same connection."""
        return AsyncMatchwiseClient(self._prefix or None, token=token, http=self.http)

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def call(self, call: Call[T]) -> T:
        """Send one :class:`Call`; the typed methods below all come here."""
        return _answer(call, await self.http.request(**self._request(call)))

    async def health(self) -> HealthOut:
        return await self.call(Calls.health())

    async def ready(self) -> ReadyOut:
        return await self.call(Calls.ready())

    async def upsert_users(self, users: Iterable[UserIn | Mapping[str, Any]]) -> UpsertResult:
        return await self.call(Calls.upsert_users(users))

    async def upsert_items(self, items: Iterable[ItemIn | Mapping[str, Any]]) -> UpsertResult:
        return await self.call(Calls.upsert_items(items))

    async def send_events(self, events: Iterable[Body]) -> IngestResult:
        return await self.call(Calls.send_events(events))

    async def record_interaction(
        self, interaction: InteractionIn | Mapping[str, Any]
    ) -> InteractionOut:
        return await self.call(Calls.record_interaction(interaction))

    async def recommendations(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        kind: Literal["item", "user"] | None = None,
        category: str | None = None,
        city: str | None = None,
        include_past: bool | None = None,
        fresh: bool | None = None,
        offset: int | None = None,
        exclude: Sequence[str] | None = None,
        explain: bool | None = None,
    ) -> RecommendationsOut:
        return await self.call(
            Calls.recommendations(
                user_id,
                limit=limit,
                kind=kind,
                category=category,
                city=city,
                include_past=include_past,
                fresh=fresh,
                offset=offset,
                exclude=exclude,
                explain=explain,
            )
        )

    async def matches(
        self, user_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> MatchesOut:
        return await self.call(Calls.matches(user_id, limit=limit, offset=offset))

    async def similar_items(
        self,
        item_id: str,
        *,
        limit: int | None = None,
        category: str | None = None,
        city: str | None = None,
        include_past: bool | None = None,
    ) -> SimilarOut:
        return await self.call(
            Calls.similar_items(
                item_id, limit=limit, category=category, city=city, include_past=include_past
            )
        )

    async def similar_users(
        self, user_id: str, *, limit: int | None = None, city: str | None = None
    ) -> SimilarOut:
        return await self.call(Calls.similar_users(user_id, limit=limit, city=city))

    async def report(self, report: ReportIn | Mapping[str, Any]) -> ReportOut:
        return await self.call(Calls.report(report))

    async def mint_token(
        self,
        user_id: str,
        *,
        scope: Literal["user", "read", "ingest"] | None = None,
        expires_in: int | None = None,
    ) -> TokenOut:
        return await self.call(Calls.mint_token(user_id, scope=scope, expires_in=expires_in))

    async def classify(
        self,
        text: str | None = None,
        *,
        profile_id: str | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> SafetyOut:
        return await self.call(Calls.classify(text, profile_id=profile_id, thresholds=thresholds))

    async def erase_user(self, user_id: str) -> ErasureOut:
        return await self.call(Calls.erase_user(user_id))

    async def moderation(
        self,
        *,
        status: Literal["open", "approved", "removed"] | None = None,
        limit: int | None = None,
    ) -> list[FlagOut]:
        return await self.call(Calls.moderation(status=status, limit=limit))

    async def resolve_flag(self, decision: ResolveIn | Mapping[str, Any]) -> FlagOut:
        return await self.call(Calls.resolve_flag(decision))

    async def metrics(self, *, days: int | None = None) -> MetricsOut:
        return await self.call(Calls.metrics(days=days))

    async def monitoring(
        self, *, window_days: int | None = None, stored: bool | None = None
    ) -> MonitoringOut:
        return await self.call(Calls.monitoring(window_days=window_days, stored=stored))

    async def add_safety_label(self, label: LabelIn | Mapping[str, Any]) -> dict[str, int]:
        return await self.call(Calls.add_safety_label(label))

    async def create_experiment(self, spec: ExperimentIn | Mapping[str, Any]) -> ExperimentOut:
        return await self.call(Calls.create_experiment(spec))

    async def experiments(self, *, status: str | None = None) -> list[ExperimentOut]:
        return await self.call(Calls.experiments(status=status))

    async def experiment(self, name: str) -> ExperimentReportOut:
        return await self.call(Calls.experiment(name))

    async def stop_experiment(self, name: str) -> ExperimentOut:
        return await self.call(Calls.stop_experiment(name))

    async def promote_experiment(self, name: str, arm: str | None = None) -> PromoteOut:
        return await self.call(Calls.promote_experiment(name, arm))
