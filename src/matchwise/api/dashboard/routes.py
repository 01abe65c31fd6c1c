"""``/dashboard``: the operators' pages, server-rendered, behind an admin key.

Every page and action goes through :func:`admin`, which reads the signed session cookie
(:mod:`.session`) and checks that its key is still an unrevoked admin key; every POST
also needs the session's CSRF token and, when the browser names one, this site as its
origin. The pages call the same service functions as the admin API and the CLI, and an
action's audit entry names the key that acted (``api.actor.describe``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.templating import Jinja2Templates

from matchwise.api.actor import UNAUTHENTICATED, describe
from matchwise.api.dashboard import charts, data
from matchwise.api.dashboard.session import (
    COOKIE,
    SESSION_SECONDS,
    DashboardSession,
    admin_key,
    csrf_ok,
    decode,
    encode,
    key_row,
    new_session,
)
from matchwise.db.tables import AuditLog, Item, ModerationFlag, User
from matchwise.errors import MatchwiseError, NotFound
from matchwise.ops import experiments as experiments_ops
from matchwise.ops.analytics import personalization_metrics
from matchwise.ops.auth import client_bucket
from matchwise.ops.moderation import flag_view, resolve_flag
from matchwise.registry import (
    ArtifactStore,
    activate_version,
    get_version,
    list_versions,
    rollback,
)
from matchwise.runtime import Runtime
from matchwise.serve.similar import similar_items, similar_users
from matchwise.serve.state import health
from matchwise.serve.tiers import answer
from matchwise.train.pipeline import reports_folder

T = TypeVar("T")
PREFIX = "/dashboard"
STATIC = f"{PREFIX}/static"
#: Pages load only what the package ships: styles and scripts from /dashboard/static,
#: charts inline, images inline.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'")  # fmt: skip
#: A training report is a page of its own with inline styles and PNGs: nothing else.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
NAV = (("overview", "Overview", PREFIX), ("models", "Models", f"{PREFIX}/models"),
       ("experiments", "Experiments", f"{PREFIX}/experiments"),
       ("explorer", "Explorer", f"{PREFIX}/explorer"),
       ("moderation", "Moderation", f"{PREFIX}/moderation"),
       ("jobs", "Jobs and health", f"{PREFIX}/jobs"))  # fmt: skip

templates = Jinja2Templates(directory=str(files("matchwise.api.dashboard") / "templates"))
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def when(value: datetime | None) -> str:
    """A timestamp as the pages show it: UTC to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "–"


templates.env.filters["when"] = when


class LoginRequired(Exception):
    """No valid dashboard session: the login page answers."""


class Refused(Exception):
    """A POST without the session's CSRF token, or from another origin."""


@dataclass(frozen=True)
class Admin:
    session: DashboardSession
    actor: str


def install(app: FastAPI) -> None:
    """The dashboard's pages, its shipped assets and the answers to a missing session."""
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=str(files("matchwise.api.dashboard") / "static")),
              name="dashboard-static")  # fmt: skip

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _headers(HTMLResponse(f"<p>refused: {Markup.escape(str(exc))}</p>", 403))


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _read(request: Request, fn: Callable[..., T], *args: Any) -> T:
    with _runtime(request).read_session() as session:
        return fn(session, *args)


def admin(request: Request) -> Admin:
    """The signed-in admin, or :class:`LoginRequired`. Runs in the thread pool (one
    indexed read of the key's row)."""
    runtime = _runtime(request)
    found = decode(runtime.settings.hash_secret, request.cookies.get(COOKIE))
    if found is None:
        raise LoginRequired()
    if not runtime.settings.auth_enabled:
        return Admin(found, UNAUTHENTICATED)
    row = _read(request, key_row, found.key_id)
    if row is None:  # revoked, or no longer admin: the session ends with the key
        raise LoginRequired()
    return Admin(found, describe(row.id, row.name))


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST came from; it must be this site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    here = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return origin == here or origin.startswith(here + "/")


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def admin_post(request: Request) -> tuple[Admin, dict[str, str]]:
    """The admin and the form of a dashboard action: refused without the session's CSRF
    token or from another origin."""
    who = await run_in_threadpool(admin, request)
    if not _same_origin(request):
        raise Refused("this form was sent from another site")
    form = await _form(request)
    if not csrf_ok(who.session, form.get("csrf")):
        raise Refused("the form's CSRF token is missing or wrong; reload the page")
    return who, form


def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def render(request: Request, template: str, who: Admin | None, code: int = 200,
           **context: Any) -> Response:  # fmt: skip
    context |= {"nav": NAV, "static": STATIC, "prefix": PREFIX, "who": who,
                "csrf": who.session.csrf if who else "",
                "message": request.query_params.get("message"),
                "error": request.query_params.get("error")}  # fmt: skip
    return _headers(templates.TemplateResponse(request, template, context, status_code=code))


def back(path: str, message: str | None = None, error: str | None = None) -> Response:
    """303 to a page (Post/Redirect/Get), with what happened."""
    query = f"message={quote(message)}" if message else f"error={quote(error or '')}"
    sep = "&" if "?" in path else "?"
    return _headers(RedirectResponse(f"{path}{sep}{query}", status_code=303))


def _page(request: Request) -> int:
    try:
        return max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        return 0


# --- login -------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", None,
                  auth=_runtime(request).settings.auth_enabled)  # fmt: skip


@router.post("/login")
async def login(request: Request) -> Response:
    """An admin key in, a signed session cookie out (the key itself is never stored)."""
    runtime = _runtime(request)
    settings = runtime.settings
    if not _same_origin(request):
        raise Refused("this form was sent from another site")
    key = (await _form(request)).get("key", "").strip()
    client = client_bucket(request.client.host if request.client else None)
    limiter = request.app.state.auth_failures
    if settings.auth_enabled:
        wait = limiter.wait(client, settings.bad_key_burst, settings.bad_key_per_second)
        if wait > 0:
            return render(request, "login.html", None, code=429, auth=True,
                          failed=f"too many failed keys; retry in {wait:.0f} s")  # fmt: skip
        row = await run_in_threadpool(_read, request, admin_key, key) if key else None
        if row is None:
            limiter.fail(client, settings.bad_key_burst, settings.bad_key_per_second)
            return render(request, "login.html", None, code=401, auth=True,
                          failed="that is not an admin API key")  # fmt: skip
        session = new_session(row.id)
    else:
        session = new_session("")
    response = RedirectResponse(PREFIX, status_code=303)
    response.set_cookie(COOKIE, encode(settings.hash_secret, session), max_age=SESSION_SECONDS,
                        path=PREFIX, secure=True, httponly=True, samesite="strict")  # fmt: skip
    return _headers(response)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await admin_post(request)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, secure=True, httponly=True, samesite="strict")
    return _headers(response)


# --- overview ----------------------------------------------------------------------------


@router.get("")
def overview(request: Request) -> Response:
    who = admin(request)
    try:
        days = int(request.query_params.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in data.PERIODS else 30
    settings = _runtime(request).settings
    past = _runtime(request).component(data.PastDays, data.PastDays)
    view = _read(request, data.overview, settings, days, past)
    svgs = [Markup(charts.line_chart(s["title"], view["labels"], s["current"], s["previous"],
                                     percent=s["percent"]))  # fmt: skip
            for s in view["series"]]  # fmt: skip
    return render(request, "overview.html", who, page="overview", view=view,
                  charts=list(zip(view["series"], svgs, strict=True)),
                  periods=data.PERIODS)  # fmt: skip


# --- models ------------------------------------------------------------------------------


def _models_view(session: Session, page: int) -> dict[str, Any]:
    rows = list_versions(session)
    start = page * data.PAGE_SIZE
    audit_rows = session.scalars(
        select(AuditLog).where(AuditLog.action.like("model.%"))
        .order_by(AuditLog.id.desc()).limit(20)
    ).all()  # fmt: skip
    return {
        "versions": data.paged(rows[start : start + data.PAGE_SIZE + 1], page),
        "types": sorted({r.model_type for r in rows}),
        "all": rows,
        "audit": audit_rows,
    }


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few figures a registry row shows: the validation metrics, else the test ones."""
    chosen = metrics.get("validation") or metrics.get("test") or metrics
    return {k: v for k, v in data.flatten(chosen).items() if isinstance(v, int | float)}


@router.get("/models")
def models(request: Request) -> Response:
    who = admin(request)
    view = _read(request, _models_view, _page(request))
    return render(request, "models.html", who, page="models", view=view, headline=headline)


def _version_view(session: Session, ident: str, artifact_root: str) -> dict[str, Any]:
    row = get_version(session, ident)
    report = reports_folder(artifact_root) / f"{row.version}.html"
    return {"row": row, "metrics": data.flatten(row.metrics), "has_report": report.is_file()}


@router.get("/models/compare")
def compare(request: Request) -> Response:
    """Two versions side by side: every metric either has, and the difference."""
    who = admin(request)
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    root = _runtime(request).settings.artifact_root
    try:
        left, right = _read(request, _version_view, a, root), _read(request, _version_view, b, root)
    except NotFound as exc:
        return back(f"{PREFIX}/models", error=str(exc))
    names = sorted(set(left["metrics"]) | set(right["metrics"]))
    return render(request, "compare.html", who, page="models", left=left, right=right,
                  names=names)  # fmt: skip


@router.get("/models/{ident}")
def model_version(request: Request, ident: str) -> Response:
    who = admin(request)
    try:
        view = _read(request, _version_view, ident, _runtime(request).settings.artifact_root)
    except NotFound as exc:
        return back(f"{PREFIX}/models", error=str(exc))
    return render(request, "model.html", who, page="models", view=view)


@router.get("/models/{ident}/report")
def model_report(request: Request, ident: str) -> Response:
    """The version's training report, as training wrote it (self-contained HTML)."""
    admin(request)
    root = _runtime(request).settings.artifact_root
    try:
        view = _read(request, _version_view, ident, root)
    except NotFound as exc:
        return _headers(HTMLResponse(f"<p>{Markup.escape(str(exc))}</p>", 404))
    path = reports_folder(root) / f"{view['row'].version}.html"
    if not path.is_file():
        return _headers(HTMLResponse("<p>no report was kept for this version</p>", 404))
    response = HTMLResponse(path.read_text())
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return _headers(response)


@router.post("/models/{ident}/activate")
async def activate(request: Request, ident: str) -> Response:
    who, _ = await admin_post(request)
    runtime = _runtime(request)
    store = ArtifactStore(runtime.settings.artifact_root)
    try:
        row = await run_in_threadpool(runtime.transaction, _activate, store, ident, who.actor)
    except MatchwiseError as exc:
        return back(f"{PREFIX}/models", error=str(exc))
    return back(f"{PREFIX}/models", message=f"{row[0]} {row[1]} is now active")


def _activate(session: Session, store: ArtifactStore, ident: str, actor: str) -> tuple[str, str]:
    row = activate_version(session, store, ident, actor=actor)
    return row.model_type, row.version


def _rollback(
    session: Session, store: ArtifactStore, model_type: str, actor: str
) -> tuple[str, str]:
    row = rollback(session, store, model_type, actor=actor)
    return row.model_type, row.version


@router.post("/models/rollback")
async def roll_back(request: Request) -> Response:
    who, form = await admin_post(request)
    runtime = _runtime(request)
    store = ArtifactStore(runtime.settings.artifact_root)
    try:
        row = await run_in_threadpool(runtime.transaction, _rollback, store,
                                      form.get("model_type", ""), who.actor)  # fmt: skip
    except MatchwiseError as exc:
        return back(f"{PREFIX}/models", error=str(exc))
    return back(f"{PREFIX}/models", message=f"{row[0]} rolled back to {row[1]}")


# --- experiments -------------------------------------------------------------------------


def _experiments_view(session: Session) -> dict[str, Any]:
    shown: list[dict[str, Any]] = []
    for exp in experiments_ops.list_experiments(session):
        try:
            rep = experiments_ops.report(session, exp.name)
        except MatchwiseError as exc:  # a report that cannot be computed: say why
            shown.append({"experiment": exp, "report": None, "problem": str(exc)})
            continue
        shown.append({"experiment": exp, "report": rep, "problem": None})
    online = personalization_metrics(session, days=30)["by_model"]
    return {"experiments": shown, "online": online}


@router.get("/experiments")
def experiments(request: Request) -> Response:
    who = admin(request)
    view = _read(request, _experiments_view)
    return render(request, "experiments.html", who, page="experiments", view=view)


@router.post("/experiments/{name}/stop")
async def stop_experiment(request: Request, name: str) -> Response:
    who, _ = await admin_post(request)
    runtime = _runtime(request)
    try:
        await run_in_threadpool(runtime.transaction, experiments_ops.stop, name, who.actor)
    except MatchwiseError as exc:
        return back(f"{PREFIX}/experiments", error=str(exc))
    return back(f"{PREFIX}/experiments", message=f"experiment {name} stopped")


@router.post("/experiments/{name}/promote")
async def promote_experiment(request: Request, name: str) -> Response:
    who, form = await admin_post(request)
    runtime = _runtime(request)
    store = ArtifactStore(runtime.settings.artifact_root)
    arm = form.get("arm") or None
    try:
        done = await run_in_threadpool(runtime.transaction, experiments_ops.promote, store,
                                       name, arm, who.actor)  # fmt: skip
    except MatchwiseError as exc:
        return back(f"{PREFIX}/experiments", error=str(exc))
    return back(f"{PREFIX}/experiments", message=f"{name}: promoted {done.arm}; {done.note}")


# --- explorer ----------------------------------------------------------------------------


def _user_view(session: Session, user_id: str) -> dict[str, Any] | None:
    user = session.get(User, user_id)
    if user is None:
        return None
    return {"profile": data.profile(user), "history": data.history(session, user_id),
            "recommended_to": data.recommended_to(session, user_id)}  # fmt: skip


def _item_view(session: Session, runtime: Runtime, item_id: str) -> dict[str, Any] | None:
    item = session.get(Item, item_id)
    if item is None:
        return None
    try:
        similar = similar_items(runtime, session, item_id, limit=10)
    except MatchwiseError:
        similar = None
    return {"item": data.item_view(item), "recommended_to": data.recommended_to(session, item_id),
            "similar": similar}  # fmt: skip


def _similar_people(session: Session, runtime: Runtime, user_id: str) -> Any:
    try:
        return similar_users(runtime, session, user_id, limit=10)
    except MatchwiseError:
        return None


async def _lists(request: Request, user_id: str) -> list[dict[str, Any]]:
    """The user's list as serving answers it (cache tiers first) and computed live on the
    route their history picks, each candidate with its signal breakdown."""
    runtime = _runtime(request)
    reader = request.app.state.online_reader
    out: list[dict[str, Any]] = []
    for title, fresh in (("As served (caches first)", False), ("Computed live", True)):
        try:
            result = await answer(runtime, reader, user_id, 10, fresh=fresh, explain=True)
        except MatchwiseError as exc:
            out.append({"title": title, "result": None, "problem": str(exc)})
            continue
        out.append({"title": title, "result": result, "problem": None})
    return out


@router.get("/explorer")
async def explorer(request: Request) -> Response:
    who = await run_in_threadpool(admin, request)
    runtime = _runtime(request)
    params = request.query_params
    user_id = params.get("user", "").strip()[:64]
    item_id = params.get("item", "").strip()[:64]
    person_id = params.get("person", "").strip()[:64]
    context: dict[str, Any] = {"user_id": user_id, "item_id": item_id, "person_id": person_id}
    if user_id:
        context["user"] = await run_in_threadpool(_read, request, _user_view, user_id)
        if context["user"] is not None:
            context["lists"] = await _lists(request, user_id)
    if item_id:
        context["item"] = await run_in_threadpool(_read, request, _item_view, runtime, item_id)
    if person_id:
        person = await run_in_threadpool(_read, request, _user_view, person_id)
        context["person"] = person
        if person is not None:
            context["similar_people"] = await run_in_threadpool(
                _read, request, _similar_people, runtime, person_id
            )
    return render(request, "explorer.html", who, page="explorer", **context)


# --- moderation --------------------------------------------------------------------------


def _moderation_view(session: Session, status: str, page: int) -> dict[str, Any]:
    stmt = select(ModerationFlag).order_by(ModerationFlag.id)
    if status != "all":
        stmt = stmt.where(ModerationFlag.status == status)
    flags = list(session.scalars(stmt.limit(data.PAGE_SIZE + 1).offset(page * data.PAGE_SIZE)))
    shown = data.paged(flags, page)
    users = {u.id: u for u in session.scalars(
        select(User).where(User.id.in_([f.user_id for f in shown.rows])))}  # fmt: skip
    reports = data.reports_on(session, list(users))
    rows = [{**flag_view(session, f), "bio": getattr(users.get(f.user_id), "bio", None),
             "name": getattr(users.get(f.user_id), "name", None),
             "filed": reports.get(f.user_id, [])[:5]}
            for f in shown.rows]  # fmt: skip
    audit_rows = session.scalars(
        select(AuditLog).where(AuditLog.action.like("moderation.%"))
        .order_by(AuditLog.id.desc()).limit(30)
    ).all()  # fmt: skip
    return {"flags": data.Paged(rows, page, shown.has_next), "audit": audit_rows}


@router.get("/moderation")
def moderation(request: Request) -> Response:
    who = admin(request)
    status = request.query_params.get("status", "open")
    status = status if status in ("open", "approved", "removed", "all") else "open"
    view = _read(request, _moderation_view, status, _page(request))
    return render(request, "moderation.html", who, page="moderation", view=view, status=status)


@router.post("/moderation/{flag_id}")
async def decide(request: Request, flag_id: int) -> Response:
    who, form = await admin_post(request)
    runtime = _runtime(request)
    decision = form.get("decision", "")
    note = form.get("note") or None
    try:
        await run_in_threadpool(runtime.transaction, resolve_flag, flag_id, decision,
                                who.actor, note)  # fmt: skip
    except MatchwiseError as exc:
        return back(f"{PREFIX}/moderation", error=str(exc))
    return back(f"{PREFIX}/moderation", message=f"flag {flag_id}: {decision}d")


# --- jobs and health ---------------------------------------------------------------------


def _jobs_view(session: Session, runtime: Runtime, status: str | None, page: int) -> dict[str, Any]:
    return {"jobs": data.jobs_page(session, status, page), "counts": data.job_counts(session),
            "workers": data.workers(session),
            "cache": data.cache_freshness(session, runtime.settings)}  # fmt: skip


def redis_state(runtime: Runtime) -> dict[str, Any]:
    """What this process knows of Redis: configured or not, its breaker, staleness."""
    if runtime.online is None:
        return {"configured": False}
    state = runtime.online.health
    breaker = state.breaker
    return {"configured": True, "breaker_open": breaker.failures >= breaker.threshold,
            "stale": state.stale, "recent_failures": breaker.failures}  # fmt: skip


@router.get("/jobs")
def jobs(request: Request) -> Response:
    who = admin(request)
    runtime = _runtime(request)
    status = request.query_params.get("status") or None
    status = status if status in ("queued", "running", "done", "failed") else None
    view = _read(request, _jobs_view, runtime, status, _page(request))
    return render(request, "jobs.html", who, page="jobs", view=view, status=status,
                  health=health(runtime), redis=redis_state(runtime),
                  now=datetime.now(UTC))  # fmt: skip
