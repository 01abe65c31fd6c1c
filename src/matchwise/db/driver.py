"""Prebuilt Core statements run straight on the DBAPI cursor, for the serving hot paths.

SQLAlchemy's result machinery (row objects, type processors) costs more than the query
itself on a cached read, and over 10,000 rows it holds the GIL for ~100 ms in one go:
every live request in flight stalls while the catalogue reloads. Here the statement is
compiled once per dialect and the driver's tuples come back as they are, so callers
decode what the driver leaves raw: SQLite returns JSON as text, datetimes as text and
booleans as 0/1 (see :func:`as_utc`, :func:`as_json`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine
from sqlalchemy.sql import Executable

from matchwise.db.engine import AsyncHeldReads, HeldReads
from matchwise.errors import StoreUnavailable

_COMPILED: dict[tuple[str, int], tuple[Executable, str, Callable[[dict[str, Any]], Any]]] = {}


def _compiled(stmt: Executable, dialect: Dialect) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    key = (dialect.name, id(stmt))
    held = _COMPILED.get(key)
    if held is None or held[0] is not stmt:
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        names = compiled.positiontup

        def params(values: dict[str, Any]) -> Any:
            bound = compiled.construct_params(values)
            return tuple(bound[n] for n in names) if names is not None else bound

        held = _COMPILED[key] = (stmt, compiled.string, params)
    return held[1], held[2]


def rows(connection: Connection, stmt: Executable, values: dict[str, Any] | None = None) -> list:
    """All rows of a module-level statement, as driver tuples, on ``connection``'s DBAPI
    connection (inside its transaction). ``stmt`` must be long-lived: it is cached by id."""
    sql, params = _compiled(stmt, connection.dialect)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, params(values or {}))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def rows_from(
    engine: Engine | HeldReads, stmt: Executable, values: dict[str, Any] | None = None
) -> list:
    """:func:`rows` on a pooled connection of its own (or a held one: one round trip,
    see :class:`HeldReads`): no session, no ORM."""
    sql, params = _compiled(stmt, engine.dialect)
    if isinstance(engine, HeldReads):
        bound = params(values or {})

        def fetch(dbapi_conn: Any) -> list:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(sql, bound)
                return list(cursor.fetchall())
            finally:
                cursor.close()

        return engine.run(fetch)
    driver_error: type[Exception] = getattr(engine.dialect.dbapi, "Error", OSError)
    try:
        dbapi_conn = engine.raw_connection()
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute(sql, params(values or {}))
            out = list(cursor.fetchall())
            cursor.close()
        finally:
            dbapi_conn.close()  # back to the pool, which rolls the read transaction back
    except driver_error as exc:
        raise StoreUnavailable(f"database error: {exc}") from exc
    return out


async def rows_awaited(
    reads: AsyncHeldReads, stmt: Executable, values: dict[str, Any] | None = None
) -> list:
    """:func:`rows_from` awaited on the event loop, on a held async connection."""
    sql, params = _compiled(stmt, reads.dialect)
    return await reads.rows(sql, params(values or {}))


def as_utc(value: Any) -> datetime | None:
    """A stored naive-UTC timestamp as an aware datetime (SQLite hands back text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_json(value: Any) -> Any:
    """A JSON column's value (SQLite hands back text, PostgreSQL the decoded value)."""
    return json.loads(value) if isinstance(value, str) else value
