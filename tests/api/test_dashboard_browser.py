"""The dashboard as a person uses it: real Chromium (Debian's, driven by Playwright)
against a real uvicorn server on loopback. It logs in, sees the overview's charts, opens
every page, clicks activate, roll back and approve and checks the store changed,
searches the explorer, and saves a screenshot of each page under
``var/dashboard-screenshots/`` (ignored by git). Every request the browser makes is
intercepted: anything not addressed to the server on 127.0.0.1 fails the test.

``scripts/browser-test-setup.sh`` installs Chromium and playwright when they are
missing, as ``scripts/pg-test-server.sh`` installs PostgreSQL; the test is skipped,
saying why, only when that fails outside CI.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from matchwise.api import create_app
from matchwise.db.tables import ModelVersion, ModerationFlag
from tests.api.test_dashboard import Store, active, stocked
from tests.utils.live_server import live_server

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "browser-test-setup.sh"
SHOTS = ROOT / "var" / "dashboard-screenshots"


def _chromium() -> str:
    """Chromium's path, installing it (and playwright) first when missing."""
    try:
        out = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=900,
                             cwd=ROOT, env={**os.environ, "VENV": str(ROOT / ".venv")})  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"cannot run {SETUP.name}: {exc}"
    else:
        if out.returncode == 0:
            return out.stdout.strip().splitlines()[-1]
        reason = f"{SETUP.name} failed: {out.stderr.strip()[-400:]}"
    if os.environ.get("CI"):
        raise RuntimeError(f"browser tests cannot run: {reason}")
    pytest.skip(f"Chromium is not available: {reason}")


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path) -> Iterator[Store]:
    made = stocked(sqlite_url, tmp_path)
    yield made
    made.runtime.close()


def test_a_person_logs_in_and_uses_every_page(chromium: str, store: Store) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    with live_server(create_app(runtime=store.runtime)) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        here = urlsplit(base).netloc

        def only_here(route: Any) -> None:
            url = route.request.url
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about") or parts.netloc == here:
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        context.route("**/*", only_here)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        expect = sync_api.expect

        def shot(name: str) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)

        page.goto(f"{base}/dashboard")
        assert page.url.endswith("/dashboard/login")
        shot("login")
        page.fill("#key", store.key)
        page.click("button[type=submit]")
        expect(page.locator("svg.chart")).to_have_count(5)
        expect(page.locator("svg.chart path.current").first).to_be_visible()
        expect(page.locator(".count .label", has_text="users")).to_be_visible()
        shot("overview")

        page.click("nav >> text=Models")
        old_row = page.locator(f"tr[data-version='{_version(store, store.old)}']")
        expect(old_row.locator(".state")).not_to_contain_text("active")
        old_row.locator("button.activate").click()
        expect(page.locator(".flash.ok")).to_contain_text("is now active")
        expect(old_row.locator(".state")).to_contain_text("active")
        assert active(store.runtime) == store.old
        shot("models")
        page.locator("tr.active button.rollback").click()
        expect(page.locator(".flash.ok")).to_contain_text("rolled back")
        assert active(store.runtime) == store.new
        page.click(f"a[href='/dashboard/models/{store.old}']")
        expect(page.frame_locator("iframe.report").locator("h1")).to_contain_text("ease")
        shot("model-report")
        page.goto(f"{base}/dashboard/models")
        page.click(".compare-form button")
        expect(page.locator("#compare")).to_contain_text("ndcg@10")
        shot("compare")

        page.click("nav >> text=Experiments")
        expect(page.locator("[data-experiment='ease-ab']")).to_contain_text("Sample ratio")
        shot("experiments")

        page.click("nav >> text=Explorer")
        page.fill("#user", store.user)
        page.press("#user", "Enter")
        expect(page.locator("table.recs")).to_have_count(2)
        expect(page.locator("table.recs .breakdown").first).to_contain_text("model")
        page.locator("h3", has_text="As served").scroll_into_view_if_needed()
        shot("explorer")
        page.goto(f"{base}/dashboard/explorer?item={store.item}")
        expect(page.get_by_text("Similar items")).to_be_visible()

        page.click("nav >> text=Moderation")
        expect(page.locator("#queue")).to_contain_text("gift card")
        shot("moderation")
        page.locator("#queue button.approve").first.click()
        expect(page.locator("#queue")).to_contain_text("The queue is empty")
        expect(page.locator("#moderation-audit")).to_contain_text("moderation.approve")
        with store.runtime.read_session() as session:
            assert session.scalar(select(ModerationFlag.status)) == "approved"

        page.click("nav >> text=Jobs and health")
        expect(page.locator("#jobs")).to_contain_text("retention")
        shot("jobs")

        page.click(".logout button")
        assert page.url.endswith("/dashboard/login")
        page.goto(f"{base}/dashboard/models")
        assert page.url.endswith("/dashboard/login")
        browser.close()
    assert outside == [], f"the browser reached outside the server: {outside}"
    assert errors == []


def _version(store: Store, ident: str) -> str:
    with store.runtime.read_session() as session:
        return str(session.scalar(select(ModelVersion.version).where(ModelVersion.id == ident)))
