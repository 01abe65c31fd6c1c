"""Column-wise reads of the big tables on PostgreSQL: ``COPY (SELECT …) TO STDOUT`` parsed
by pandas' C reader a block at a time, instead of one driver row per event.

Ten million swipes read as rows are ten million tuples of Python objects (about 4 GB and
minutes before the first column exists); through COPY the server writes CSV, each block
of it becomes columns at once, and repeated strings (ids, actions) are held once as
categories while the blocks accumulate. Only PostgreSQL has COPY; callers use the row
queries of :mod:`matchwise.db.queries` on SQLite.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sqlalchemy.orm import Session

from matchwise.db import queries

#: Bytes of CSV parsed at once (a block of ~1M events).
BLOCK_BYTES = 64 << 20
#: The people columns stored as JSON: read as text, decoded a column at a time.
JSON_COLUMNS = ("tags", "seeking", "photo_embeddings", "attributes")


def copy_blocks(session: Session, query: str, block_bytes: int | None = None) -> Iterator[bytes]:
    """``COPY (query) TO STDOUT (FORMAT csv)`` in blocks of about ``block_bytes`` (default
    :data:`BLOCK_BYTES`), each ending at a line break."""
    block_bytes = block_bytes or BLOCK_BYTES
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live connection inside the session's transaction
    buffer = bytearray()
    with raw.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        for data in copy:
            buffer += data
            if len(buffer) >= block_bytes:
                cut = buffer.rfind(b"\n") + 1
                yield bytes(buffer[:cut])
                del buffer[:cut]
    if buffer:
        yield bytes(buffer)


def training_interactions(session: Session, domain: str) -> pd.DataFrame:
    """What :func:`matchwise.db.queries.training_interactions` returns (``user_id,
    item_id, action, value, occurred_at``, time order, then id), read through COPY:
    ids and actions as object columns whose repeated strings are shared, ``value``
    float64, ``occurred_at`` UTC."""
    target = "item_id" if domain == "items" else "target_user_id"
    names = ["user_id", "item_id", "action", "value", "occurred_at"]
    query = (
        f"SELECT user_id, {target}, action, value, "
        "to_char(occurred_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
        f"FROM interactions WHERE {target} IS NOT NULL ORDER BY occurred_at, id"
    )
    text = ["user_id", "item_id", "action"]
    parts: list[pd.DataFrame] = []
    for block in copy_blocks(session, query):
        parts.append(pd.read_csv(io.BytesIO(block), header=None, names=names,
                                 dtype={**dict.fromkeys(text, "category"), "value": np.float64,
                                        "occurred_at": str},
                                 keep_default_na=False, na_values={"value": [""]},
                                 low_memory=False))  # fmt: skip  # one pass: 30% less CPU
        parts[-1]["occurred_at"] = pd.to_datetime(parts[-1]["occurred_at"], utc=True,
                                                  format="ISO8601")  # fmt: skip
    if not parts:
        return pd.DataFrame({n: pd.Series(dtype=object) for n in names}).astype(
            {"value": np.float64, "occurred_at": "datetime64[ns, UTC]"}
        )
    columns: dict[str, pd.Series] = {}
    for name in names:
        if name in text:  # one set of categories for every block, then plain objects
            joined = union_categoricals([p[name] for p in parts], ignore_order=True)
            columns[name] = pd.Series(joined).astype(object)
        else:
            columns[name] = pd.concat([p[name] for p in parts], ignore_index=True)
        for part in parts:
            del part[name]
    return pd.DataFrame(columns)


def training_users(session: Session) -> pd.DataFrame:
    """What :func:`matchwise.db.queries.training_users` returns, read through COPY: the
    same Python values a person (text, ints, floats, decoded JSON), built
    into the frame by the same :func:`~matchwise.db.queries.training_users_frame`, without a
    driver row and three JSON columns decoded by the driver per person (a million
    people: most of a minute). NULLs are told from empty strings by ``IS NULL`` flags."""
    names = [c.key for c in queries.TRAINING_USER_COLUMNS]
    nullable = ["age", "gender", "city", "bio", "tags", "elo", "photo_embeddings", "attributes"]
    rows = copied_rows(session, "users", names, nullable, {"age": int, "elo": float})
    return queries.training_users_frame(rows)


def users_frame(session: Session) -> pd.DataFrame:
    """:func:`matchwise.db.queries.users_frame` (every profile, what the people catalogue
    reads), through COPY on PostgreSQL: the same values and dtypes, without a driver row a
    person (two-thirds of loading the catalogue of a million people). SQLite: the row
    query."""
    if session.get_bind().dialect.name != "postgresql":
        return queries.users_frame(session)
    names = list(queries.USER_COLUMNS)
    nullable = [n for n in names if n not in ("id", "active", "moderation_status")]
    convert: dict[str, Any] = {
        **dict.fromkeys(["age", "age_min", "age_max"], int),
        **dict.fromkeys(["max_distance_km", "latitude", "longitude", "elo"], float),
        "active": lambda v: v == "t",
    }
    columns = copied_columns(session, "users", names, nullable, convert)
    return pd.DataFrame(columns, columns=names)


def copied_rows(
    session: Session, table: str, names: list[str], nullable: list[str],
    convert: dict[str, Any],
) -> list[tuple[Any, ...]]:  # fmt: skip
    """:func:`copied_columns` as one tuple a row, as the driver gives them."""
    columns = copied_columns(session, table, names, nullable, convert)
    return list(zip(*(columns[n] for n in names), strict=True))


def copied_columns(
    session: Session, table: str, names: list[str], nullable: list[str],
    convert: dict[str, Any],
) -> dict[str, list[Any]]:  # fmt: skip
    """Every row of ``table``'s columns ``names``, a list of Python values a column as the
    driver would give them (``convert``: how a column's text becomes its value, text when
    absent; JSON columns decoded; None where a ``nullable`` column is NULL, told from an
    empty string by an ``IS NULL`` flag), read through COPY."""
    selected = ", ".join(f"{n}::text" if n in JSON_COLUMNS else n for n in names)
    flags = ", ".join(f"{n} IS NULL" for n in nullable)
    query = f"SELECT {selected}{', ' + flags if flags else ''} FROM {table}"
    parts = [pd.read_csv(io.BytesIO(block), header=None, dtype=object, keep_default_na=False,
                         na_filter=False, low_memory=False,
                         names=names + [f"{n}_null" for n in nullable])
             for block in copy_blocks(session, query)]  # fmt: skip
    if not parts:
        return {n: [] for n in names}
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    columns: dict[str, list[Any]] = {}
    for name in names:
        values = frame[name].tolist()
        null = (frame[f"{name}_null"] == "t").tolist() if name in nullable else None
        if name in JSON_COLUMNS:  # one decode of the whole column: ~3x less than one a value
            texts = values if null is None else [
                "null" if n else v for v, n in zip(values, null, strict=True)]  # fmt: skip
            columns[name] = json.loads("[" + ",".join(texts) + "]")
        elif name not in convert:
            columns[name] = values if null is None else [
                None if n else v for v, n in zip(values, null, strict=True)]  # fmt: skip
        else:
            read = convert[name]
            columns[name] = [read(v) for v in values] if null is None else [
                None if n else read(v) for v, n in zip(values, null, strict=True)]  # fmt: skip
        del frame[name]
    return columns


def active_people_places(session: Session) -> pd.DataFrame:
    """Every active user's ``id, gender, seeking, lat, lon`` through COPY (gender ``""``
    when unset, ``seeking`` as its JSON text, positions NaN when unset): a million rows
    in seconds where the driver's rows, JSON decoded one by one, took ~20 s."""
    query = ("SELECT id, coalesce(gender, ''), coalesce(seeking::text, '[]'), latitude, "
             "longitude FROM users WHERE active")  # fmt: skip
    names = ["id", "gender", "seeking", "lat", "lon"]
    parts = [pd.read_csv(io.BytesIO(block), header=None, names=names, keep_default_na=False,
                         na_values={"lat": [""], "lon": [""]},
                         dtype={"id": object, "gender": object, "seeking": object,
                                "lat": np.float64, "lon": np.float64})
             for block in copy_blocks(session, query)]  # fmt: skip
    if not parts:
        return pd.DataFrame({n: pd.Series(dtype=object if n in names[:3] else np.float64)
                             for n in names})  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def swipe_counts(session: Session, by: str) -> pd.DataFrame:
    """:func:`matchwise.db.queries.swipe_counts` through COPY on PostgreSQL (a million
    people's counts as CSV parsed at once, not a driver row each); SQLite: the row query."""
    if session.get_bind().dialect.name != "postgresql":
        return queries.swipe_counts(session, by)
    sql = queries.swipe_counts_query(by).compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    parts = [pd.read_csv(io.BytesIO(block), header=None, names=["id", "likes", "swipes"],
                         dtype={"id": object, "likes": np.float64, "swipes": np.float64},
                         keep_default_na=False)
             for block in copy_blocks(session, str(sql))]  # fmt: skip
    if not parts:
        return pd.DataFrame({"likes": [], "swipes": []}, index=pd.Index([], name="id"))
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame.set_index("id")
