"""A block's cache write two ways on the million-people store (issue 21 item 2): delete +
COPY (what ``serve.refresh.write_caches`` does) against COPY into a temporary table, then
``INSERT ... ON CONFLICT (user_id, candidate_kind, rank) DO UPDATE`` and a delete of ranks
past each new list (in place: the key does not change, so heap-only updates could avoid new
index entries and a vacuum). Blocks of 1,000 sampled people rewrite their own lists with the
scores nudged, the two ways taking turns; prints the backend's CPU, wall and the table's
counters per block. It rewrites the lists it samples (derived data).

    .venv/bin/python benchmarks/people_scale/cache_write_in_place.py [URL]

(the store of ``run.py --load-million``, its cache filled by ``--million-refresh``).
"""

from __future__ import annotations

import io
import json
import random
import sys
import time
from typing import Any

import psutil
import psycopg

URL = "postgresql://postgres@127.0.0.1:55446/people1m"
COLUMNS = ", ".join(["user_id", "model_version", "route", "generated_at", "candidate_id",
                     "candidate_kind", "score", "rank", "reason"])  # fmt: skip
UPSERT = """
    INSERT INTO recommendations SELECT * FROM staging
    ON CONFLICT (user_id, candidate_kind, rank) DO UPDATE SET
        candidate_id = excluded.candidate_id, score = excluded.score,
        model_version = excluded.model_version, route = excluded.route,
        reason = excluded.reason, generated_at = excluded.generated_at"""
PAST_THE_LIST = """
    DELETE FROM recommendations r
    USING (SELECT user_id, max(rank) AS last FROM staging GROUP BY user_id) s
    WHERE r.candidate_kind = 'user' AND r.user_id = s.user_id AND r.rank > s.last"""
COUNTERS = """
    SELECT n_tup_upd, n_tup_hot_upd, n_tup_del, n_tup_ins FROM pg_stat_user_tables
    WHERE relname = 'recommendations'"""


def block_text(conn: psycopg.Connection[Any], users: list[str]) -> tuple[str, int]:
    """The block's cached lists again as COPY text, every score nudged."""
    rows = conn.execute(f"SELECT {COLUMNS} FROM recommendations WHERE user_id = ANY(%s) "
                        "AND candidate_kind = 'user'", [users]).fetchall()  # fmt: skip
    out = io.StringIO()
    for row in rows:
        values = list(row)
        values[3] = values[3].isoformat(sep=" ")
        values[6] = values[6] * 0.999 + 0.0001
        out.write("\t".join(str(v) for v in values) + "\n")
    return out.getvalue(), len(rows)


def replace(conn: psycopg.Connection[Any], users: list[str], text: str) -> None:
    conn.execute("DELETE FROM recommendations WHERE candidate_kind = 'user' "
                 "AND user_id = ANY(%s)", [users])  # fmt: skip
    with conn.cursor().copy(f"COPY recommendations ({COLUMNS}) FROM STDIN") as copy:
        copy.write(text)


def in_place(conn: psycopg.Connection[Any], users: list[str], text: str) -> None:
    with conn.cursor().copy(f"COPY staging ({COLUMNS}) FROM STDIN") as copy:
        copy.write(text)
    conn.execute(UPSERT)
    conn.execute(PAST_THE_LIST)
    conn.execute("TRUNCATE staging")


def main(url: str) -> None:
    conn = psycopg.connect(url)
    backend = psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    ids = [r[0] for r in conn.execute("SELECT id FROM users TABLESAMPLE BERNOULLI (2)")]
    conn.execute("CREATE TEMP TABLE staging (LIKE recommendations INCLUDING DEFAULTS)")
    conn.commit()
    random.seed(1)
    random.shuffle(ids)
    results: dict[str, list[dict[str, float]]] = {"replace": [], "in_place": []}
    for n in range(16):
        users = ids[n * 1000 : (n + 1) * 1000]
        text, rows = block_text(conn, users)
        way = "replace" if n % 2 == 0 else "in_place"
        before = conn.execute(COUNTERS).fetchone()
        conn.commit()
        cpu, wall = sum(backend.cpu_times()[:2]), time.perf_counter()
        (replace if way == "replace" else in_place)(conn, users, text)
        conn.commit()
        cpu, wall = sum(backend.cpu_times()[:2]) - cpu, time.perf_counter() - wall
        time.sleep(1.5)  # the counters arrive a moment after the commit
        after = conn.execute(COUNTERS).fetchone()
        conn.commit()
        assert before is not None and after is not None
        results[way].append({"rows": rows, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                             "updated": after[0] - before[0],
                             "hot": after[1] - before[1]})  # fmt: skip
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else URL)
