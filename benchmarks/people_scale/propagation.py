"""A new or changed profile reaching every server's fresh lists (issue 21 item 4), at the
size of the store given (a million people: ``run.py --load-million``).

Two ``matchwise serve`` processes share the store, as behind a load balancer. Each trial
writes one profile through the first server's API (``POST /v1/users``: a new person, or
an existing one moved next to someone, alternately), made to fit one asking person
(``A``: their cell, their wishes, their tags), then asks both servers for ``A``'s fresh
people list (``fresh=true``, ``limit=1000``: the candidate budget) every 20 ms until the
profile is in it. What is recorded: seconds from the write's 200 to the first list that
holds the profile, per server; each server's RSS when ready and after the trials.

    .venv/bin/python benchmarks/people_scale/propagation.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:55433/people1m --trials 10

``--pythonpath DIR`` runs the servers on other code (another commit's ``src``), the
baseline of the same run. ``--patch-cost`` instead loads the people catalogue in this
process and times :meth:`PeopleCatalogue.patched` with 1 to 300 profiles (the CPU a
server spends on each patch) next to the full load it replaces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from matchwise.runtime import Runtime
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.settings import Settings

HERE = Path(__file__).resolve().parent
POLL_SECONDS = 0.02


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def start_server(url: str, port: int, artifacts: str, pythonpath: str | None,
                 log: Path) -> subprocess.Popen[bytes]:  # fmt: skip
    env = {**os.environ, "MATCHWISE_DATABASE_URL": url, "MATCHWISE_ARTIFACT_ROOT": artifacts,
           "MATCHWISE_DOMAIN": "people", "MATCHWISE_AUTH_ENABLED": "false"}  # fmt: skip
    env.pop("MATCHWISE_CONFIG", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.Popen([sys.executable, "-m", "matchwise", "serve", "--port", str(port),
                             "--no-access-log"], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)  # fmt: skip


def wait_ready(client: httpx.Client, server: subprocess.Popen[bytes], limit: float) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        if server.poll() is not None:
            raise RuntimeError(f"the server on {client.base_url} exited")
        try:
            if client.get("/readyz", timeout=5).status_code == 200:
                return round(time.perf_counter() - began, 1)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on {client.base_url} was not ready in {limit} s")


def asking_people(url: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` active people with a position, a gender and stated wishes, drawn at random."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, age, gender, seeking, age_min, age_max, latitude, longitude, city, tags "
            "FROM users TABLESAMPLE BERNOULLI (0.5) REPEATABLE (:seed) WHERE active AND "
            "latitude IS NOT NULL AND gender IS NOT NULL AND age IS NOT NULL LIMIT :n"),
            {"seed": seed, "n": 40 * n}).mappings().all()  # fmt: skip
        rng = np.random.default_rng(seed)
        chosen = [dict(rows[i]) for i in rng.permutation(len(rows))]
        chosen = [p for p in chosen if p["seeking"]][:n]
        # an existing person of each one's sought gender, far away (moved next to them)
        used: set[str] = set()
        for p in chosen:
            p["mover"] = conn.execute(sa.text(
                "SELECT id FROM users WHERE gender = :g AND city IS DISTINCT FROM :c AND id <> :me "
                "AND id NOT IN (SELECT target_user_id FROM interactions WHERE user_id = :me "
                "AND target_user_id IS NOT NULL) AND NOT id = ANY(:used) ORDER BY id OFFSET :o "
                "LIMIT 1"), {"g": p["seeking"][0], "c": p["city"], "me": p["id"],
                             "used": sorted(used), "o": int(rng.integers(0, 100_000))},
            ).scalar()  # fmt: skip
            used.add(p["mover"])
    engine.dispose()
    return chosen


def fitting(asker: dict[str, Any], ident: str) -> dict[str, Any]:
    """A profile that passes every hard filter with ``asker``, in the asker's cell."""
    age = int(asker["age"])
    if asker["age_min"] is not None:
        age = max(age, int(asker["age_min"]))
    if asker["age_max"] is not None:
        age = min(age, int(asker["age_max"]))
    return {"id": ident, "age": max(age, 18), "gender": asker["seeking"][0],
            "seeking": [asker["gender"]], "age_min": 18, "age_max": 99,
            "max_distance_km": 100.0, "latitude": asker["latitude"],
            "longitude": asker["longitude"], "city": asker["city"],
            "tags": list(asker["tags"] or [])[:5]}  # fmt: skip


def trial(one: httpx.Client, two: httpx.Client, asker: dict[str, Any], profile: dict[str, Any],
          limit: float) -> dict[str, Any] | None:  # fmt: skip
    """Seconds until each server's fresh list holds ``profile`` (None: it already did)."""
    params = {"user_id": asker["id"], "kind": "user", "fresh": "true", "limit": 1000}

    def holds(client: httpx.Client) -> bool:
        answer = client.get("/v1/recommendations", params=params, timeout=120)
        answer.raise_for_status()
        return profile["id"] in {r["candidate_id"] for r in answer.json()["recommendations"]}

    if holds(one) or holds(two):
        return None
    posted = one.post("/v1/users", json={"users": [profile]}, timeout=120)
    posted.raise_for_status()
    written = time.perf_counter()
    seen: dict[str, float | None] = {"writer": None, "other": None}
    while any(v is None for v in seen.values()) and time.perf_counter() - written < limit:
        for name, client in (("other", two), ("writer", one)):
            if seen[name] is None and holds(client):
                seen[name] = round(time.perf_counter() - written, 3)
        time.sleep(POLL_SECONDS)
    return {"asker": asker["id"], "profile": profile["id"], "seconds": seen}


def patch_cost(url: str, seed: int) -> dict[str, Any]:
    """Seconds (median of 5) to patch 1, 10, 100 and 300 existing profiles into the
    catalogue, each patch applied to the result of the one before, as a server does."""
    runtime = Runtime.open(Settings(database_url=url), migrate=False)
    rng = np.random.default_rng(seed)
    try:
        began = time.perf_counter()
        with runtime.read_session() as session:
            cat = PeopleCatalogue.load(session, runtime.settings.location_cell_km)
        loaded = round(time.perf_counter() - began, 1)
        out: dict[str, Any] = {"people": len(cat), "load_seconds": loaded,
                               "rss_after_load_mib": rss_mib(os.getpid())}  # fmt: skip
        ids = cat.profiles.ids
        for size in (1, 10, 100, 300):
            took = []
            for _ in range(5):
                chosen = [str(ids[i]) for i in rng.choice(len(ids), size, replace=False)]
                began = time.perf_counter()
                with runtime.read_session() as session:
                    cat = cat.patched(session, chosen)
                took.append(time.perf_counter() - began)
            out[f"patch_{size}_seconds"] = round(statistics.median(took), 3)
        out["rows_after"] = len(cat)
        out["rss_after_patches_mib"] = rss_mib(os.getpid())
        return out
    finally:
        runtime.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the store (people loaded)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--port", type=int, default=8771, help="the first server's; +1")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--limit", type=float, default=900.0, help="seconds a trial waits")
    parser.add_argument("--pythonpath", default=None, help="run the servers on this code")
    parser.add_argument("--label", default="this commit")
    parser.add_argument("--out", type=Path, default=HERE / "propagation.json")
    parser.add_argument("--patch-cost", action="store_true", help="time patches in-process")
    args = parser.parse_args()
    if args.patch_cost:
        measured = {"command": " ".join(sys.argv), **patch_cost(args.url, args.seed)}
        print(json.dumps(measured, indent=1))
        recorded = json.loads(args.out.read_text()) if args.out.exists() else {}
        recorded[f"{datetime.now(UTC):%Y_%m_%d_%H%M}_patch_cost"] = measured
        args.out.write_text(json.dumps(recorded, indent=1) + "\n")
        return 0

    work = Path(tempfile.mkdtemp(prefix="propagation-"))
    askers = asking_people(args.url, args.trials, args.seed)
    run = datetime.now(UTC).strftime("%H%M%S")
    servers = [start_server(args.url, args.port + n, str(work / "artifacts"), args.pythonpath,
                            work / f"server{n}.log") for n in (0, 1)]  # fmt: skip
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{args.port + n}") for n in (0, 1)]
    out: dict[str, Any] = {"label": args.label, "command": " ".join(sys.argv),
                           "date": datetime.now(UTC).isoformat(timespec="seconds"),
                           "machine": f"{platform.machine()}, {os.cpu_count()} cores"}  # fmt: skip
    try:
        out["ready_seconds"] = [wait_ready(c, s, 1800) for c, s in zip(clients, servers,
                                                                      strict=True)]  # fmt: skip
        out["rss_ready_mib"] = [rss_mib(s.pid) for s in servers]
        trials = []
        for n, asker in enumerate(askers):
            moved = n % 2 == 1 and asker["mover"] is not None
            ident = asker["mover"] if moved else f"prop-{run}-{n}"
            found = trial(clients[0], clients[1], asker, fitting(asker, ident), args.limit)
            if found is None:
                print(f"skipped: {ident} was a candidate of {asker['id']} already", flush=True)
                continue
            found["kind"] = "changed" if moved else "new"
            trials.append(found)
            print(json.dumps(found), flush=True)
        out["trials"] = trials
        out["rss_after_mib"] = [rss_mib(s.pid) for s in servers]
        for name in ("writer", "other"):
            took = [t["seconds"][name] for t in trials]
            done = [s for s in took if s is not None]
            out[f"{name}_seconds"] = {
                "median": round(statistics.median(done), 3) if done else None,
                "max": max(done) if done else None, "not_seen": len(took) - len(done)}  # fmt: skip
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)
    print(json.dumps({k: v for k, v in out.items() if k != "trials"}, indent=1))
    recorded = json.loads(args.out.read_text()) if args.out.exists() else {}
    recorded[f"{datetime.now(UTC):%Y_%m_%d_%H%M}_{args.label.replace(' ', '_')}"] = out
    args.out.write_text(json.dumps(recorded, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
