"""Runtime: settings plus an engine, opened once by the CLI, the API or a worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from matchwise.db.engine import create_engine_for, current_revision, session_scope, upgrade
from matchwise.errors import StoreUnavailable
from matchwise.settings import Settings, load_settings

if TYPE_CHECKING:
    from matchwise.online_cache import OnlineCache


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    online: OnlineCache | None = None  # Redis, when ``settings.redis_url`` is set

    @classmethod
    def open(cls, settings: Settings | None = None, migrate: bool = True) -> Runtime:
        """Open the store; with ``migrate`` apply pending migrations first (idempotent)."""
        settings = settings or load_settings()
        if migrate:
            try:
                upgrade(settings.database_url)
            except Exception as exc:  # connection refused, bad credentials, ...
                raise StoreUnavailable(
                    f"cannot open the store at {_redact(settings.database_url)}: {exc}"
                ) from exc
        engine = create_engine_for(settings.database_url)
        online = None
        if settings.redis_url:
            from matchwise.online_cache import OnlineCache, attach

            online = OnlineCache(settings.redis_url)
            attach(engine, online)
        return cls(settings=settings, engine=engine, online=online)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.engine) as session:
            yield session

    def revision(self) -> str | None:
        return current_revision(self.engine)

    def close(self) -> None:
        if self.online is not None:
            self.online.close()
        self.engine.dispose()


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
