"""Ingestion benchmark (issue 16 item 3): 4 clients posting batches of 1,000 events to
``POST /v1/events`` of a ``matchwise serve`` on loopback, on SQLite and PostgreSQL, and
in the same run the bulk-write ceilings from Python (PostgreSQL ``COPY`` and
``executemany … ON CONFLICT``; SQLite ``executemany`` with ``INSERT OR IGNORE`` in one
transaction). Called by ``run.py --paths ingest_sqlite,ingest_postgresql``.

The batches are serialised before the clock starts (the clients only send bytes), every
event has its own event_id, and after the timed run one batch is posted again: it must
come back with ``written == 0`` (a retried batch counts once).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import sqlalchemy as sa

ACTIONS = ("view", "click", "register", "favorite", "share")  # none sampled


def _batches(n_batches: int, size: int, n_users: int, n_items: int, tag: str) -> list[bytes]:
    rng = random.Random(16)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=1)
    out = []
    for b in range(n_batches):
        events = [
            {
                "event_id": f"{tag}-{b}-{j}",
                "user_id": f"u{rng.randrange(n_users)}",
                "item_id": f"e{rng.randrange(n_items)}",
                "action": rng.choice(ACTIONS),
                "timestamp": (start + pd.Timedelta(seconds=b * size + j)).isoformat(),
            }
            for j in range(size)
        ]
        out.append(json.dumps({"events": events}).encode())
    return out


def _post(port: int, key: str, body: bytes) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/v1/events", body,
                     {"Content-Type": "application/json", "X-API-Key": key})  # fmt: skip
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /v1/events: {response.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


def _clients(port: int, key: str, batches: list[bytes], clients: int) -> tuple[float, int]:
    """Post every batch, ``clients`` at a time (each on its own keep-alive connection)."""
    queue = list(enumerate(batches))
    lock = threading.Lock()
    written = [0]
    errors: list[BaseException] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                conn.request("POST", "/v1/events", body,
                             {"Content-Type": "application/json", "X-API-Key": key})  # fmt: skip
                response = conn.getresponse()
                data = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status} {data[:300]!r}")
                with lock:
                    written[0] += json.loads(data)["written"]
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"ingestion client failed: {errors[0]}")
    return elapsed, written[0]


def _ceilings(url: str, rows: int) -> dict[str, float]:
    """Rows/s of the bulk writes themselves, from Python, into a scratch table shaped
    like the interactions' hot columns (unique event_id)."""
    data = [(f"c{i}", f"u{i % 1000}", f"e{i % 977}", "view") for i in range(rows)]
    out: dict[str, float] = {}
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[1]
        conn = sqlite3.connect(path)
        conn.execute("DROP TABLE IF EXISTS bench_ceiling")
        conn.execute("CREATE TABLE bench_ceiling (id INTEGER PRIMARY KEY, event_id TEXT "
                     "UNIQUE, user_id TEXT, item_id TEXT, action TEXT)")  # fmt: skip
        t = time.perf_counter()
        with conn:
            conn.executemany("INSERT OR IGNORE INTO bench_ceiling (event_id, user_id, item_id, "
                             "action) VALUES (?, ?, ?, ?)", data)  # fmt: skip
        out["executemany_insert_or_ignore_rows_per_s"] = rows / (time.perf_counter() - t)
        conn.execute("DROP TABLE bench_ceiling")
        conn.close()
        return out
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_ceiling")
        conn.execute("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, event_id text "
                     "UNIQUE, user_id text, item_id text, action text)")  # fmt: skip
        conn.commit()
        t = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_ceiling (event_id, user_id, item_id, "
                                            "action) FROM STDIN") as copy:  # fmt: skip
            for row in data:
                copy.write_row(row)
        conn.commit()
        out["copy_rows_per_s"] = rows / (time.perf_counter() - t)
        conn.execute("TRUNCATE bench_ceiling")
        conn.commit()
        t = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_ceiling (event_id, user_id, item_id, action) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", data)  # fmt: skip
        conn.commit()
        out["executemany_on_conflict_rows_per_s"] = rows / (time.perf_counter() - t)
        conn.execute("DROP TABLE bench_ceiling")
        conn.commit()
    return out


def _wait(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback only)
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def run_ingest(url: str, work: Path, port: int, args: Any) -> dict[str, Any]:
    """Prepare users and items in the store at ``url`` (empty), serve it, post the batches."""
    from matchwise.data.synthetic import generate_items
    from matchwise.ingest.bulk import write_bundle
    from matchwise.ops.auth import create_key
    from matchwise.runtime import Runtime
    from matchwise.settings import Settings

    artifacts = work / "ingest-artifacts"
    settings = Settings(database_url=url, artifact_root=str(artifacts))
    runtime = Runtime.open(settings)
    bundle = generate_items(n_users=args.users, n_items=args.items, n_interactions=1000,
                            seed=7, start=pd.Timestamp.now(tz="UTC").normalize()
                            - pd.Timedelta(days=60))  # fmt: skip
    write_bundle(runtime, bundle, settings.action_table)
    with runtime.session() as s:
        key, _ = create_key(s, "ingest", name="bench-ingest")
    runtime.close()
    tag = f"b{int(time.time())}"
    batches = _batches(args.ingest_batches, args.batch_size, args.users, args.items, tag)
    env = {**os.environ, "MATCHWISE_DATABASE_URL": url, "MATCHWISE_ARTIFACT_ROOT": str(artifacts),
           "MATCHWISE_REALTIME_REFRESH_ENABLED": "false"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "matchwise", "serve", "--port", str(port), "--workers", "1"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/healthz")
        warm = _batches(2, args.batch_size, args.users, args.items, tag + "w")
        for body in warm:
            _post(port, key, body)
        elapsed, written = _clients(port, key, batches, args.connections)
        retried = _post(port, key, batches[0])
    finally:
        server.terminate()
        server.wait(timeout=30)
    events = len(batches) * args.batch_size
    if written != events or retried["written"] != 0:
        raise RuntimeError(f"de-duplication broken: {written} of {events} written, "
                           f"the retried batch wrote {retried['written']}")  # fmt: skip
    return {
        "events": events,
        "batch_size": args.batch_size,
        "clients": args.connections,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed, 1),
        "retried_batch": {"written": retried["written"], "duplicates": retried["duplicates"]},
        **{k: round(v, 1) for k, v in _ceilings(url, 100_000).items()},
    }


def fresh_postgres_database(admin_url: str, name: str) -> str:
    """An empty database ``name`` on the server of ``admin_url`` (dropped if it was there)."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name
