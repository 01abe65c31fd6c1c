"""Dashboard pages with 1,000,000 interactions in the store (issue 14): each page must
render in under a second.

Run from the repository root::

    .venv/bin/python benchmarks/dashboard/run.py [--interactions 1000000] [--database-url URL]

Builds a store (a fresh SQLite file under var/ by default; ``--database-url`` for a
PostgreSQL one, emptied first) with synthetic users, items and interactions spread over
90 days, EASE trained and active, 2,000 users' lists cached, a flagged profile; then logs
in to the dashboard through FastAPI's TestClient and times every page ``--reps`` times
(the first request of each page, after the pages before it, is reported apart: the
overview reads past days once and reuses them for five minutes). Writes
``benchmarks/dashboard/results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from matchwise.api import create_app  # noqa: E402
from matchwise.bench.provenance import provenance  # noqa: E402
from matchwise.data.synthetic import generate_items  # noqa: E402
from matchwise.db.engine import create_engine_for, upgrade  # noqa: E402
from matchwise.db.tables import Item, User  # noqa: E402
from matchwise.ingest.bulk import write_bundle  # noqa: E402
from matchwise.ops.auth import create_key  # noqa: E402
from matchwise.ops.moderation import flag_profile  # noqa: E402
from matchwise.runtime import Runtime  # noqa: E402
from matchwise.serve.refresh import refresh_users  # noqa: E402
from matchwise.settings import Settings  # noqa: E402
from matchwise.train.pipeline import train_model  # noqa: E402


def build(url: str, artifacts: Path, n: int) -> tuple[Runtime, dict[str, float]]:
    timings = {}
    if url.startswith("postgresql"):
        engine = create_engine_for(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    settings = Settings(database_url=url, artifact_root=str(artifacts), analytics_sample_rate=1.0)
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=90)
    began = time.perf_counter()
    bundle = generate_items(n_users=max(n // 50, 100), n_items=2000, n_interactions=n, seed=14,
                            start=start, days=90, kind="event")  # fmt: skip
    timings["generate_s"] = time.perf_counter() - began
    began = time.perf_counter()
    write_bundle(runtime, bundle, settings.action_table)
    timings["write_s"] = time.perf_counter() - began
    began = time.perf_counter()
    train_model(runtime, "ease", activate="always")
    timings["train_s"] = time.perf_counter() - began
    with runtime.read_session() as session:
        users = list(session.scalars(select(User.id).order_by(User.id).limit(2000)))
    began = time.perf_counter()
    refresh_users(runtime, users, top_n=20)
    timings["refresh_s"] = time.perf_counter() - began
    with runtime.session() as session:
        flag_profile(session, users[-1], "safety", {"spam": 0.9}, actor="bench")
    return runtime, timings


def measure(runtime: Runtime, reps: int) -> dict[str, dict[str, float]]:
    with runtime.session() as session:
        key, _ = create_key(session, "admin", name="bench")
        user = session.scalar(select(User.id).order_by(User.id))
        item = session.scalar(select(Item.id).order_by(Item.id))
    pages = {
        "overview (30 days)": "/dashboard",
        "overview (90 days)": "/dashboard?days=90",
        "models": "/dashboard/models",
        "experiments": "/dashboard/experiments",
        "explorer: user": f"/dashboard/explorer?user={user}",
        "explorer: item": f"/dashboard/explorer?item={item}",
        "moderation": "/dashboard/moderation",
        "jobs and health": "/dashboard/jobs",
    }
    out = {}
    client = TestClient(create_app(runtime=runtime), base_url="https://testserver",
                        follow_redirects=False)  # fmt: skip
    with client:
        assert client.post("/dashboard/login", data={"key": key}).status_code == 303
        for name, path in pages.items():
            began = time.perf_counter()
            assert client.get(path).status_code == 200, path  # the first, after the others
            first = time.perf_counter() - began
            times = []
            for _ in range(reps):
                began = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - began)
                assert response.status_code == 200, path
            out[name] = {"first_ms": round(first * 1000, 1),
                         "median_ms": round(statistics.median(times) * 1000, 1),
                         "max_ms": round(max(times) * 1000, 1)}  # fmt: skip
            print(f"{name:22s} first {out[name]['first_ms']:7.1f} ms  median "
                  f"{out[name]['median_ms']:7.1f} ms  max {out[name]['max_ms']:7.1f} ms",
                  flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--reuse", action="store_true",
                        help="time the pages on the SQLite store a previous run built")  # fmt: skip
    args = parser.parse_args(argv)
    work = ROOT / "var" / "bench-dashboard"
    work.mkdir(parents=True, exist_ok=True)
    url = args.database_url
    db = work / "store.db"
    if url is None:
        url = f"sqlite:///{db}"
    if args.reuse and url == f"sqlite:///{db}" and db.exists():
        settings = Settings(database_url=url, artifact_root=str(work / "artifacts"))
        runtime, timings = Runtime.open(settings), {}
    else:
        db.unlink(missing_ok=True)
        runtime, timings = build(url, work / "artifacts", args.interactions)
    print({k: round(v, 1) for k, v in timings.items()}, flush=True)
    try:
        pages = measure(runtime, args.reps)
    finally:
        runtime.close()
    store = "postgresql" if url.startswith("postgresql") else "sqlite"
    result = {"store": store, "interactions": args.interactions, "reps": args.reps,
              "build": {k: round(v, 1) for k, v in timings.items()}, "pages": pages,
              "provenance": provenance(14)}  # fmt: skip
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if not timings and store in previous:  # --reuse: the store is the one built before
        result["build"] = previous[store]["build"]
    previous[store] = result
    args.out.write_text(json.dumps(previous, indent=2) + "\n")


if __name__ == "__main__":
    main()
