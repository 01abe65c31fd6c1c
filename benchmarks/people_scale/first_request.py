"""No cold request, memory that stays flat (issue 21 items 3 and 5).

For each size (the issue's three: people preset + items preset, so ``small`` is 600 users
/ 150 items / 10,000 interactions, ``medium`` 4,000 / 1,000 / 100,000, ``large`` 40,000 /
5,000 / 2,000,000) a fresh PostgreSQL database is filled with generated data
(``write_bundle``), a reciprocal people model is trained and activated, and the worker
runs the bio-embedding jobs the profile writes queued (timed: that is where embedding
now costs). Then ``matchwise serve`` is started and measured from outside, as a load
balancer sees it:

- seconds from the start until ``/healthz`` answers (alive) and until ``/readyz`` says
  200 (warm: models, catalogues, stored bio vectors loaded);
- the first people request (1 s after ready), and requests 2..100 (each for another
  person, ``fresh=true`` so each is computed live): first vs median vs the 100th; and
  three later requests each after the same 1 s pause as the first (the fair comparison:
  any request after a pause costs more than one sent right after another);
- the server's RSS when ready (idle) and after 500 requests; with ``--soak-seconds`` at
  the last size, RSS every 10 s over a run of requests that long (item 5).

    .venv/bin/python benchmarks/people_scale/first_request.py \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:55444/postgres \
        --sizes small medium large --soak-seconds 600

Results go to ``first_request.json`` next to this file (``--out`` to change).
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
from rich.progress import Progress

from matchwise.data.synthetic import SIZE_PRESETS, generate_items, generate_people
from matchwise.db.tables import Job
from matchwise.ingest.bulk import write_bundle
from matchwise.jobs.worker import Worker
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

HERE = Path(__file__).resolve().parent
#: The first request comes this long after ready; so do :data:`PAUSED_REQUESTS` later
#: ones (other people), whose median is what the first is compared with besides the
#: median of requests sent back to back: any request after an idle spell costs more on
#: this machine (a bare ASGI app: ~1 ms more after 0.2-3 s idle).
PAUSE_SECONDS = 1.0
PAUSED_REQUESTS = 3


def fresh_database(admin_url: str, name: str) -> str:
    """An empty database ``name`` on the server of ``admin_url`` (dropped if it was there)."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return str(sa.engine.make_url(admin_url).set(database=name).render_as_string(False))


def prepare(url: str, artifacts: Path, size: str, scale: float) -> dict[str, Any]:
    """Generate and load one size, train the people model, run the embedding jobs."""
    people = dict(SIZE_PRESETS["people"][size])
    items = dict(SIZE_PRESETS["items"][size])
    if scale != 1.0:
        people = {k: int(v * scale) for k, v in people.items()}
        items = {k: int(v * scale) for k, v in items.items()}
    settings = Settings(database_url=url, artifact_root=str(artifacts), domain="people")
    runtime = Runtime.open(settings)
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        write_bundle(runtime, generate_people(**people, seed=5), settings.action_table)
        write_bundle(runtime, generate_items(**items, seed=6), settings.action_table)
        timings["load_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        train_model(runtime, "reciprocal", domain="people", activate="always")
        timings["train_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        jobs = run_jobs(runtime)
        timings["embed_seconds"] = round(time.perf_counter() - t, 1)
        with runtime.session() as s:
            embedded = s.scalar(sa.text("SELECT count(*) FROM profile_embeddings"))
            key, _ = create_key(s, "read", name="first-request-bench")
            record = {"people": people["n_users"], "users": people["n_users"] + items["n_users"],
                      "items": items["n_items"], "bio_vectors": embedded,
                      "interactions": people["n_swipes"] + items["n_interactions"],
                      "embed_jobs": jobs, **timings}  # fmt: skip
            s.add(Job(job_type="first_request_prepared", payload={}, status="done",
                      result=record, max_attempts=1))  # fmt: skip
    finally:
        runtime.close()
    return {"key": key, **record}


def run_jobs(runtime: Runtime) -> int:
    """The worker until the queue is empty, one job at a time under a progress bar (the
    bio embedding of the large size takes many minutes on a CPU)."""
    worker = Worker(runtime, lease_seconds=600)
    with runtime.session() as s:
        queued = s.scalar(sa.select(sa.func.count()).select_from(Job)
                          .where(Job.status == "queued")) or 0  # fmt: skip
    done = 0
    with Progress() as bar:
        task = bar.add_task("worker jobs (bio embedding)", total=queued)
        while worker.run_once() is not None:
            done += 1
            bar.update(task, completed=done)
    return done


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def wait_for(client: httpx.Client, path: str, deadline: float) -> float | None:
    """Seconds until ``path`` answers 200 (None: not before ``deadline``)."""
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        try:
            if client.get(path, timeout=5).status_code == 200:
                return time.perf_counter() - began
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return None


def measure(url: str, artifacts: Path, prepared: dict[str, Any], port: int, seed: int,
            long_run: bool, soak_seconds: float) -> dict[str, Any]:  # fmt: skip
    """Start a server on the prepared store and measure it from outside: the first
    request, requests 2..100, the first person's list asked again (the 101st request:
    the same work as the first, warm) and three requests after a pause each; with
    ``long_run``, 400 more requests and the soak."""
    env = {**os.environ, "MATCHWISE_DATABASE_URL": url, "MATCHWISE_ARTIFACT_ROOT": str(artifacts),
           "MATCHWISE_DOMAIN": "people"}  # fmt: skip
    rng = np.random.default_rng(seed)
    people = [f"p{i}" for i in rng.permutation(prepared["people"])]
    headers = {"X-API-Key": prepared["key"]}
    out: dict[str, Any] = {}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "matchwise", "serve", "--port", str(port),
                               "--no-access-log"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            live = wait_for(client, "/healthz", started + 900)
            out["live_seconds"] = None if live is None else round(time.perf_counter() - started, 2)
            ready = wait_for(client, "/readyz", started + 900)
            if ready is None:
                raise RuntimeError("the server did not report ready within 900 s")
            out["ready_seconds"] = round(time.perf_counter() - started, 2)
            out["readyz"] = client.get("/readyz").json()
            time.sleep(PAUSE_SECONDS)
            out["rss_idle_mib"] = rss_mib(server.pid)  # after a pause of PAUSE_SECONDS

            def ask(user: str) -> float:
                t = time.perf_counter()
                answer = client.get("/v1/recommendations", timeout=600, params={
                    "user_id": user, "kind": "user", "fresh": "true", "limit": 10})  # fmt: skip
                answer.raise_for_status()
                return (time.perf_counter() - t) * 1000

            times = [ask(people[i % len(people)]) for i in range(100)]
            out["first_ms"] = round(times[0], 1)
            out["median_2_100_ms"] = round(statistics.median(times[1:]), 1)
            out["hundredth_ms"] = round(times[99], 1)
            out["first_again_ms"] = round(ask(people[0]), 1)
            out["first_over_median"] = round(times[0] / statistics.median(times[1:]), 2)
            paused = []  # the first request came after a pause: so do these, later on
            for n in range(PAUSED_REQUESTS):
                time.sleep(PAUSE_SECONDS)
                paused.append(ask(people[(100 + n) % len(people)]))
            out["after_pause_ms"] = round(statistics.median(paused), 1)
            out["first_over_after_pause"] = round(times[0] / statistics.median(paused), 2)
            if long_run:
                times += [ask(people[i % len(people)]) for i in range(100, 500)]
                out["median_500_ms"] = round(statistics.median(times), 1)
                out["rss_after_500_mib"] = rss_mib(server.pid)
                if soak_seconds > 0:
                    out["soak"] = soak(client, ask, people, server.pid, soak_seconds)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return out


def summary(starts: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the starts (one start's first request is one sample; the load of the
    shared machine moves single samples a lot)."""
    med = {k: round(statistics.median(s[k] for s in starts), 1)
           for k in ("ready_seconds", "first_ms", "median_2_100_ms", "hundredth_ms",
                     "first_again_ms", "after_pause_ms")}  # fmt: skip
    med["first_over_median"] = round(med["first_ms"] / med["median_2_100_ms"], 2)
    med["first_over_after_pause"] = round(med["first_ms"] / med["after_pause_ms"], 2)
    return {"starts": len(starts), **med}


def reuse(url: str) -> dict[str, Any] | None:
    """What ``prepare`` recorded for a store filled by an earlier run (None: there is none),
    with a new key."""
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            found = "SELECT result FROM jobs WHERE job_type = 'first_request_prepared'"
            record = conn.execute(sa.text(found)).scalar()
    except sa.exc.OperationalError:
        return None
    finally:
        engine.dispose()
    if record is None:
        return None
    runtime = Runtime.open(Settings(database_url=url), migrate=False)
    try:
        with runtime.session() as s:
            key, _ = create_key(s, "read", name="first-request-bench")
    finally:
        runtime.close()
    return {**record, "key": key, "reused": True}


def soak(client: httpx.Client, ask: Any, people: list[str], pid: int,
         seconds: float) -> dict[str, Any]:  # fmt: skip
    """Requests one after another for ``seconds``; RSS every 10 s."""
    samples: list[tuple[float, float]] = [(0.0, rss_mib(pid))]
    began = time.perf_counter()
    next_sample, n = 10.0, 0
    with Progress() as bar:
        task = bar.add_task("soak", total=seconds)
        while (elapsed := time.perf_counter() - began) < seconds:
            ask(people[n % len(people)])
            n += 1
            if elapsed >= next_sample:
                samples.append((round(elapsed, 1), rss_mib(pid)))
                next_sample += 10.0
                bar.update(task, completed=elapsed)
    samples.append((round(time.perf_counter() - began, 1), rss_mib(pid)))
    rss = [r for _, r in samples]
    later = [r for t, r in samples if t >= 60]
    spread = round(max(later) - min(later), 1) if later else None
    minutes = np.array([t for t, _ in samples]) / 60
    slope = float(np.polyfit(minutes, rss, 1)[0]) if len(samples) > 2 else None
    return {"seconds": round(seconds), "requests": n, "rss_start_mib": rss[0],
            "rss_end_mib": rss[-1], "rss_max_mib": max(rss),
            "rss_range_after_first_minute_mib": spread,
            "slope_mib_per_minute": None if slope is None else round(slope, 2),
            "samples": samples}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", required=True, help="admin URL of a PostgreSQL server")
    parser.add_argument("--sizes", nargs="+", default=["small", "medium", "large"],
                        choices=["small", "medium", "large"])  # fmt: skip
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the largest size's counts by this (a loaded machine)",
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=0.0,
        help="at the last size, a run this long with RSS sampled",
    )
    parser.add_argument("--starts", type=int, default=3, help="server starts per size")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure stores an earlier run filled (same sizes) again",
    )
    parser.add_argument("--port", type=int, default=8761)
    parser.add_argument("--work", type=Path, default=None, help="artifacts folder (temp)")
    parser.add_argument("--out", type=Path, default=HERE / "first_request.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="first-request-"))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "command": "python benchmarks/people_scale/first_request.py " + " ".join(sys.argv[1:]),
        "sizes": {},
    }
    if args.out.exists() and args.reuse:
        report["sizes"] = json.loads(args.out.read_text()).get("sizes", {})
    for n, size in enumerate(args.sizes):
        last = n == len(args.sizes) - 1
        scale = args.scale if last else 1.0
        name = f"matchwise_first_request_{size}"
        url = str(sa.engine.make_url(args.postgres_url).set(database=name)
                  .render_as_string(False))  # fmt: skip
        artifacts = work / size
        prepared = reuse(url) if args.reuse else None
        if prepared is None:
            url = fresh_database(args.postgres_url, name)
            print(f"[{size}] preparing (scale {scale})", flush=True)
            prepared = prepare(url, artifacts, size, scale)
        print(f"[{size}] {json.dumps({k: v for k, v in prepared.items() if k != 'key'})}",
              flush=True)  # fmt: skip
        starts = []
        for start in range(args.starts):
            long_run = start == args.starts - 1
            measured = measure(url, artifacts, prepared, args.port, 11 + start, long_run,
                               args.soak_seconds if last and long_run else 0.0)  # fmt: skip
            starts.append(measured)
            shown = {k: v for k, v in measured.items() if k not in ("soak", "readyz")}
            print(f"[{size}] start {start + 1}: {json.dumps(shown)}", flush=True)
        prepared.pop("key")
        report["sizes"][size] = {"scale": scale, **prepared, **summary(starts),
                                 "per_start": starts}  # fmt: skip
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
