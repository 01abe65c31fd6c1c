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
#: The people columns stored as JSON: read as text, decoded with ``json.loads``.
JSON_COLUMNS = ("tags", "photo_embeddings", "attributes")


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
    same Python values a person (text, ints, floats, JSON through ``json.loads``), built
    into the frame by the same :func:`~matchwise.db.queries.training_users_frame`, without a
    driver row and three JSON columns decoded by the driver per person (a million
    people: most of a minute). NULLs are told from empty strings by ``IS NULL`` flags."""
    names = [c.key for c in queries.TRAINING_USER_COLUMNS]
    nullable = ["age", "gender", "city", "bio", "tags", "elo", "photo_embeddings", "attributes"]
    selected = ", ".join(f"{n}::text" if n in JSON_COLUMNS else n for n in names)
    flags = ", ".join(f"{n} IS NULL" for n in nullable)
    query = f"SELECT {selected}, {flags} FROM users"
    parts = [pd.read_csv(io.BytesIO(block), header=None, dtype=object, keep_default_na=False,
                         na_filter=False, low_memory=False,
                         names=names + [f"{n}_null" for n in nullable])
             for block in copy_blocks(session, query)]  # fmt: skip
    if not parts:
        return queries.training_users_frame([])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    convert: dict[str, Any] = {"age": int, "elo": float, **dict.fromkeys(JSON_COLUMNS, json.loads)}
    columns: dict[str, list[Any]] = {}
    for name in names:
        values, read = frame[name].tolist(), convert.get(name, str)
        null = (frame[f"{name}_null"] == "t").tolist() if name in nullable else None
        if null is None:
            columns[name] = values if name not in convert else [read(v) for v in values]
        else:
            columns[name] = [None if n else read(v) for v, n in zip(values, null, strict=True)]
    return queries.training_users_frame(list(zip(*(columns[n] for n in names), strict=True)))
