"""Serving benchmark: wrk on loopback against `matchwise serve`, cached and live paths.

10,000 users and 10,000 candidate events; the live path is the two-tower model with the
HNSW index and business filters; the cached path reads the per-user ranking cache. A bare
FastAPI endpoint returning pre-serialised JSON runs in the same session as the ceiling,
with the same uvicorn settings (matchwise's HTTP protocol and options, the same event
loop, the access log off on both sides unless ``--access-log``).

    .venv/bin/python benchmarks/serving/run.py [--users 10000] [--items 10000] [--seconds 20]

Ingestion (``benchmarks/serving/ingest.py``): ``--paths ingest_sqlite,ingest_postgresql``
with ``--postgres-url`` naming a server whose database the run may create and drop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ingest import fresh_postgres_database, run_ingest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _wait(url: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback only)
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its direct children (uvicorn's workers),
    from /proc: what a request costs the server whatever else the machine runs."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _ready(port: int, timeout: float = 900.0) -> None:
    """Wait for ``/readyz`` to say ready (models, catalogues and vectors loaded in the
    background), so no measurement overlaps the warm-up; a server without it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the server on port {port} did not become ready")


def _port_free(port: int) -> None:
    """Refuse to measure a server left over from an earlier run on the same port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(
                f"port {port} is in use: is an earlier run's server still up?"
            ) from None


def _wrk(
    port: int, seconds: int, connections: int, env: dict[str, str], pid: int | None = None
) -> dict[str, float]:
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
           "-s", str(HERE / "latency.lua"), f"http://127.0.0.1:{port}"]  # fmt: skip
    cpu = _cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env},
                         check=True).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    result: dict[str, float] = json.loads(line[5:])
    if pid is not None and result["requests"]:
        used = _cpu_seconds(pid) - cpu
        result["server_cpu_us_per_request"] = round(1e6 * used / result["requests"], 1)
    return result


def _serve_cmd(port: int, args: argparse.Namespace) -> list[str]:
    """``matchwise serve`` as the benchmark runs it (the access log as on the bare side)."""
    log = "--access-log" if args.access_log else "--no-access-log"
    return [sys.executable, "-m", "matchwise", "serve", "--port", str(port),
            "--workers", str(args.workers), log]  # fmt: skip


def _prepare(work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Generate, load, train the two-tower and fill the cache; returns key and timings."""
    from matchwise.data.synthetic import generate_items
    from matchwise.ingest.bulk import write_bundle
    from matchwise.ops.auth import create_key
    from matchwise.runtime import Runtime
    from matchwise.serve.refresh import refresh_users
    from matchwise.settings import Settings
    from matchwise.train.pipeline import train_model

    settings = Settings(database_url=env["MATCHWISE_DATABASE_URL"],
                        artifact_root=env["MATCHWISE_ARTIFACT_ROOT"])  # fmt: skip
    runtime = Runtime.open(settings)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=args.users, n_items=args.items,
                            n_interactions=args.interactions, seed=7, start=start)  # fmt: skip
    write_bundle(runtime, bundle, settings.action_table)
    timings["load_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    trained = train_model(runtime, "two_tower", domain="items", activate="always",
                          config_overrides={"epochs": 3, "patience": 1})  # fmt: skip
    timings["train_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    refresh_users(runtime, None, top_n=10, kind="item")
    timings["refresh_seconds"] = time.perf_counter() - t
    with runtime.session() as s:
        key, _ = create_key(s, "read", name="bench")
    if runtime.is_sqlite:
        autocommit = runtime.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as conn:  # fold the refresh's WAL into the database file
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    runtime.close()
    return {"key": key, "model": trained.version, "timings": timings}


def _redis_cached(
    work: Path, env: dict[str, str], key: str, port: int, args: argparse.Namespace
) -> dict[str, float]:
    """The cached path with Redis as the online cache: a Redis from the project's script
    (own port, no persistence), filled from the database cache, read by the API."""
    from matchwise.runtime import Runtime
    from matchwise.serve.online import mirror_database_cache
    from matchwise.settings import Settings

    script = ROOT / "scripts" / "redis-test-server.sh"
    redis_env = {**os.environ, "MATCHWISE_TEST_REDIS_PORT": str(port + 10_000),
                 "MATCHWISE_TEST_REDIS_DIR": str(work / "redis")}  # fmt: skip
    url = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True,
                         env=redis_env, check=True).stdout.strip().splitlines()[-1]  # fmt: skip
    try:
        runtime = Runtime.open(
            Settings(
                database_url=env["MATCHWISE_DATABASE_URL"],
                artifact_root=env["MATCHWISE_ARTIFACT_ROOT"],
                redis_url=url,
                cache_max_age_seconds=7 * 24 * 3600,
            )
        )
        mirror_database_cache(runtime)
        runtime.close()
        server = subprocess.Popen(
            _serve_cmd(port, args),
            env={**os.environ, **env, "MATCHWISE_REDIS_URL": url}, cwd=work,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait(f"http://127.0.0.1:{port}/healthz")
            _ready(port)  # the warm-up's loads must not overlap the measurement
            probe = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/recommendations?user_id=u1&limit=10",
                headers={"X-API-Key": key},
            )
            with urllib.request.urlopen(probe, timeout=60) as r:  # noqa: S310 (loopback)
                route = json.loads(r.read())["route"]
            if route != "cache":
                raise RuntimeError(f"the Redis path answered with route {route!r}, not cache")
            wenv = {"BENCH_USERS": str(args.users), "BENCH_KEY": key}
            _wrk(port, 3, args.connections, wenv)
            return _wrk(port, args.seconds, args.connections, wenv)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        subprocess.run(["bash", str(script), "stop"], env=redis_env, check=False)


def _check_cached_route(port: int, key: str, users: int, sample: int = 50) -> None:
    """The cached path must be what it says: wrk only counts statuses, so a sample of the
    users it asks for is asked here first, and every answer must come from the cache."""
    routes: dict[str, int] = {}
    for n in range(0, users, max(1, users // sample)):
        ask = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/recommendations?limit=10&user_id=u{n}",
            headers={"X-API-Key": key},
        )
        with urllib.request.urlopen(ask, timeout=60) as r:  # noqa: S310 (loopback)
            route = json.loads(r.read())["route"]
        routes[route] = routes.get(route, 0) + 1
    if set(routes) != {"cache"}:
        raise RuntimeError(f"the cached path answered from {routes}, not only the cache")


def _measure(
    port: int, key: str, paths: set[str], args: argparse.Namespace, pids: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Warm up, then ``--rounds`` rounds of the cached path, the live path and the bare
    ceiling taken turn about (both servers up throughout), so a shift of the machine's
    load hits every side alike. A path's figures are its rounds' medians."""
    wenv = {"BENCH_USERS": str(args.users), "BENCH_KEY": key}
    live_env = {**wenv, "BENCH_QUERY": "&fresh=true"}
    bare_env = {"BENCH_USERS": str(args.users)}
    if paths & {"cached", "live"}:
        _wait(f"http://127.0.0.1:{port}/healthz")
        _ready(port)
        # the first live request loads the model and builds its index: wait for it,
        # then warm up, so no measurement overlaps the load
        first = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/recommendations?user_id=u1&fresh=true",
            headers={"X-API-Key": key},
        )
        with urllib.request.urlopen(first, timeout=300) as r:  # noqa: S310 (loopback)
            r.read()
        if "cached" in paths:
            _check_cached_route(port, key, args.users)
        _wrk(port, 5, args.connections, live_env)
        _wrk(port, 3, args.connections, wenv)
    if "bare_fastapi" in paths:
        _wait(f"http://127.0.0.1:{port + 1}/v1/recommendations?user_id=u1")
        _wrk(port + 1, 3, args.connections, bare_env)
    rounds: dict[str, list[dict[str, float]]] = {"cached": [], "live": [], "bare_fastapi": []}
    for _ in range(args.rounds):
        if "cached" in paths:
            taken = _wrk(port, args.seconds, args.connections, wenv, pids.get("serve"))
            rounds["cached"].append(taken)
        if "live" in paths:
            taken = _wrk(port, args.seconds, args.connections, live_env, pids.get("serve"))
            rounds["live"].append(taken)
        if "bare_fastapi" in paths:
            taken = _wrk(port + 1, args.seconds, args.connections, bare_env, pids.get("bare"))
            rounds["bare_fastapi"].append(taken)
    return {name: _median_of(taken) for name, taken in rounds.items() if taken}


def _median_of(rounds: list[dict[str, float]]) -> dict[str, Any]:
    if len(rounds) == 1:
        return rounds[0]
    keys = ("rps", "p50_ms", "p95_ms", "p99_ms", "server_cpu_us_per_request")
    merged: dict[str, Any] = {
        k: statistics.median(r[k] for r in rounds) for k in keys if k in rounds[0]
    }
    merged |= {k: sum(int(r[k]) for r in rounds) for k in ("requests", "errors", "non_2xx")}
    return merged | {"rounds": rounds}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of cached, live and bare taken turn about (--seconds each); medians reported",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="uvicorn's access log on, on both sides (off on both by default)",
    )
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument(
        "--workdir",
        help="prepare the store here and reuse it on later runs "
        "(a refresh is younger than the cache age, so cached rows stay fresh)",
    )
    parser.add_argument(
        "--paths",
        default="cached,live,redis_cached,bare_fastapi",
        help="comma-separated subset of cached, live, redis_cached, bare_fastapi, "
        "ingest_sqlite, ingest_postgresql",
    )
    parser.add_argument("--port", type=int, default=18765, help="first loopback port used")
    parser.add_argument(
        "--serve-on-postgres",
        action="store_true",
        help="the cached/live/redis paths on PostgreSQL (--postgres-url; a database "
        "matchwise_bench_serving is created there on the first run of a workdir)",
    )
    parser.add_argument("--ingest-batches", type=int, default=40, help="batches per store")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MATCHWISE_BENCH_DATABASE_URL"),
        help="PostgreSQL for ingest_postgresql (a database matchwise_bench_ingest is "
        "created there, and dropped first if it exists)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="matchwise-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    marker = work / "prepared.json"
    serving_url = f"sqlite:///{work}/bench.db"
    if args.serve_on_postgres:
        if not args.postgres_url:
            print("--serve-on-postgres needs --postgres-url", file=sys.stderr)
            return 2
        serving_url = args.postgres_url.rsplit("/", 1)[0] + "/matchwise_bench_serving"
        if not marker.exists():
            serving_url = fresh_postgres_database(args.postgres_url, "matchwise_bench_serving")
    env = {
        "MATCHWISE_DATABASE_URL": serving_url,
        "MATCHWISE_ARTIFACT_ROOT": str(work / "artifacts"),
        "MATCHWISE_REALTIME_REFRESH_ENABLED": "false",
        # the prepared cache must stay fresh across reruns of a kept workdir
        "MATCHWISE_CACHE_MAX_AGE_SECONDS": str(7 * 24 * 3600),
    }
    paths = set(args.paths.split(","))
    if marker.exists():
        prepared = json.loads(marker.read_text())
    elif paths & {"cached", "live", "redis_cached"}:
        prepared = _prepare(work, env, args)
        marker.write_text(json.dumps(prepared))
    else:
        prepared = {"key": "", "model": None, "timings": {}}
    key = prepared["key"]

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, dict[str, Any]] = {}
    port = args.port
    servers: dict[str, subprocess.Popen[bytes]] = {}
    for used in (port, port + 1):
        _port_free(used)
    try:
        if paths & {"cached", "live"}:
            servers["serve"] = (subprocess.Popen(
                _serve_cmd(port, args),
                env={**os.environ, **env}, cwd=work, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        if "bare_fastapi" in paths:
            servers["bare"] = (subprocess.Popen(
                [sys.executable, str(HERE / "bare_app.py"), "--port", str(port + 1),
                 "--workers", str(args.workers),
                 *(["--access-log"] if args.access_log else [])],
                cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        pids = {name: server.pid for name, server in servers.items()}
        results.update(_measure(port, key, paths, args, pids))
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=30)
    if "redis_cached" in paths:
        results["redis_cached"] = _redis_cached(work, env, key, port + 2, args)
    if "ingest_sqlite" in paths:
        db = work / "ingest.db"
        for leftover in work.glob("ingest.db*"):
            leftover.unlink()
        results["ingest_sqlite"] = run_ingest(f"sqlite:///{db}", work, port, args)
    if "ingest_postgresql" in paths:
        if not args.postgres_url:
            print("ingest_postgresql needs --postgres-url", file=sys.stderr)
            return 2
        url = fresh_postgres_database(args.postgres_url, "matchwise_bench_ingest")
        results["ingest_postgresql"] = run_ingest(url, work, port + 1, args)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_at_start": load_at_start,
        "command": "python benchmarks/serving/run.py " + " ".join(sys.argv[1:]),
        "users": args.users,
        "items": args.items,
        "interactions": args.interactions,
        "connections": args.connections,
        "workers": args.workers,
        "access_log": args.access_log,
        "uvicorn": "matchwise's options on both sides (api.server.uvicorn_options)",
        "serving_store": "postgresql" if args.serve_on_postgres else "sqlite",
        "model": prepared["model"],
        **prepared["timings"],
        "results": results,
    }
    if "cached" in results and "bare_fastapi" in results:
        cached, bare = results["cached"], results["bare_fastapi"]
        report["cached_vs_bare_rps"] = cached["rps"] / bare["rps"]
        if "server_cpu_us_per_request" in cached:  # the ratio a quiet machine would show
            report["bare_vs_cached_server_cpu"] = (
                bare["server_cpu_us_per_request"] / cached["server_cpu_us_per_request"]
            )
        if "rounds" in cached:  # each round's ratio, taken minutes apart at most
            report["cached_vs_bare_rps_per_round"] = [
                c["rps"] / b["rps"] for c, b in zip(cached["rounds"], bare["rounds"], strict=True)
            ]
    if "live" in results and "bare_fastapi" in results:
        live, bare = results["live"], results["bare_fastapi"]
        report["live_vs_bare_rps"] = live["rps"] / bare["rps"]
        if "server_cpu_us_per_request" in live:
            report["bare_vs_live_server_cpu"] = (
                bare["server_cpu_us_per_request"] / live["server_cpu_us_per_request"]
            )
    out = Path(args.out)
    if not paths & {"cached", "live", "redis_cached", "bare_fastapi"}:
        # an ingestion-only run goes beside the serving figures already recorded there
        kept = json.loads(out.read_text()) if out.exists() else {}
        named = ("date", "machine", "load_average_at_start", "command", "users", "items")
        ingestion = {k: report[k] for k in named}
        report = {**kept, "ingestion": {**ingestion, "results": results}}  # fmt: skip
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
