"""People-model scaling (issue 21 item 1): the reciprocal model at growing populations.

For each size a fresh process generates a people population (``generate_people``, 50
swipes a person as the ``large`` preset), trains ``ReciprocalRecommender`` with its
default ``base="auto"`` (EASE up to ``EASE_MAX_PEOPLE``, ALS above; ``--force-factor``
trains ALS at every size so the curve is one model's) and records train seconds, peak
memory (the process's peak RSS, and tracemalloc's peak of the fit's numpy allocations),
the artifact's size on disk and the latency of scoring one user against everyone
(``score``) and of ``score_candidates`` on everyone. At the smallest size it also trains
the EASE base on the same data and compares match AUC / decision AUC / NDCG@10 on a held-
out time split (the last 20% of swipes). A million people is *extrapolated* from the
measured sizes by a power-law fit (labelled so in the output), not run.

    .venv/bin/python benchmarks/people_scale/run.py --sizes 5000 20000 50000

A million, for real (issue 21): ``--load-million URL`` streams ``--people`` generated
people and ``--swipes`` swipes into an empty PostgreSQL store (``stream_people``, a block
at a time, COPY; secondary indexes rebuilt at the end), and ``--million-train URL`` runs
``matchwise train reciprocal --domain people`` on it while sampling the RSS of every
process of its tree and of PostgreSQL, with wall and CPU seconds and the load average.
What those runs gave is under ``million`` in ``results.json``.

    .venv/bin/python benchmarks/people_scale/run.py --load-million URL
    .venv/bin/python benchmarks/people_scale/run.py --million-train URL --save out.json

``--million-refresh URL`` then refreshes every person's top 50 (``--refresh-sample N``:
a seeded sample of N people, the rest extrapolated per person) with Ray, one actor per
core (``scale.refresh_people_with_ray``, what ``matchwise refresh --ray --kind user``
runs), measured the same way (each Ray process's peak RSS included: they are the
driver's descendants).

    .venv/bin/python benchmarks/people_scale/run.py --million-refresh URL --refresh-sample 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
from rich.progress import Progress

from matchwise.data.synthetic import generate_people, stream_people
from matchwise.metrics import auc
from matchwise.models.base import InteractionSet
from matchwise.models.elo import ratings_from_swipes
from matchwise.models.reciprocal import EASE_MAX_PEOPLE, ReciprocalRecommender
from matchwise.runtime import Runtime
from matchwise.scale import refresh_people_with_ray
from matchwise.serve.people_refresh import people_by_place
from matchwise.serve.refresh import users_to_refresh
from matchwise.settings import Settings, load_settings

HERE = Path(__file__).resolve().parent
SWIPES_PER_PERSON = 50
LIKES = ("like", "superlike")
TEST_SHARE = 0.2
K = 10
SAMPLE_SECONDS = 0.5  # how often ``measure`` samples each process's RSS and CPU


def _swipes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(swiper, candidate, liked, time order)`` of a generated population, as indexes."""
    bundle = generate_people(n_users=n, n_swipes=n * SWIPES_PER_PERSON, seed=seed)
    frame = bundle.interactions
    index = {v: i for i, v in enumerate(bundle.users["id"].tolist())}
    a = frame["user_id"].map(index).to_numpy(np.int64)
    b = frame["target_user_id"].map(index).to_numpy(np.int64)
    liked = frame["action"].isin(LIKES).to_numpy()
    order = np.argsort(frame["occurred_at"].to_numpy(), kind="stable")
    return a[order], b[order], liked[order], order


def _interactions(n: int, a: np.ndarray, b: np.ndarray, liked: np.ndarray) -> InteractionSet:
    ids = np.array([f"p{i}" for i in range(n)])
    return InteractionSet(user_ids=ids, item_ids=ids, users=a, items=b,
                          labels=liked.astype(np.float32), meta={"domain": "people"})  # fmt: skip


def _ndcg(groups: np.ndarray, relevant: np.ndarray, scores: np.ndarray) -> float:
    """Mean NDCG@K over swipers: their held-out candidates ranked, matches relevant."""
    values = []
    for g in np.unique(groups):
        sel = groups == g
        rel = relevant[sel]
        if not rel.any():
            continue
        ranked = rel[np.argsort(-scores[sel], kind="stable")][:K]
        gains = 1.0 / np.log2(np.arange(2, len(ranked) + 2))
        ideal = gains[: min(int(rel.sum()), K)].sum()
        values.append(float((ranked * gains).sum() / ideal))
    return float(np.mean(values)) if values else float("nan")


def pair_scores(model: ReciprocalRecommender, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reciprocal score of each (a, b) pair, scoring the swipers' rows in blocks."""
    out = np.empty(len(a))
    unique, inverse = np.unique(a, return_inverse=True)
    for start in range(0, len(unique), 256):
        block = model.score(unique[start : start + 256])
        sel = (inverse >= start) & (inverse < start + 256)
        out[sel] = block[inverse[sel] - start, b[sel]]
    return out


def quality(n: int, seed: int, bases: list[str]) -> dict[str, Any]:
    """Match AUC, decision AUC and match NDCG@10 on the last 20% of swipes, per base."""
    a, b, liked, _ = _swipes(n, seed)
    cut = int(round(len(a) * (1 - TEST_SHARE)))
    key = set((a[liked] * n + b[liked]).tolist())
    match = liked & np.isin(b * n + a, np.fromiter(key, np.int64, len(key)))
    train = _interactions(n, a[:cut], b[:cut], liked[:cut])
    ta, tb = a[cut:], b[cut:]
    out: dict[str, Any] = {"people": n, "train_swipes": cut, "test_swipes": len(ta),
                           "test_matches": int(match[cut:].sum())}  # fmt: skip
    for base in bases:
        start = time.perf_counter()
        limit = 0 if base == "implicit_als" else n  # auto's own ALS settings at any size
        model = ReciprocalRecommender(ease_max_people=limit, seed=seed).fit(train)
        fitted = time.perf_counter() - start
        scores = pair_scores(model, ta, tb)
        out[base] = {
            "train_seconds": round(fitted, 2),
            "match_auc": round(auc(match[cut:], scores), 4),
            "decision_auc": round(auc(liked[cut:], scores), 4),
            "match_ndcg@10": round(_ndcg(ta, match[cut:], scores), 4),
        }
    return out


def one_size(n: int, seed: int, force_factor: bool) -> dict[str, Any]:
    """Train and measure at ``n`` people (run in its own process: peak RSS is per size)."""
    start = time.perf_counter()
    a, b, liked, _ = _swipes(n, seed)
    generated = time.perf_counter() - start
    train = _interactions(n, a, b, liked)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    params: dict[str, Any] = {"seed": seed}
    if force_factor:
        params["ease_max_people"] = 0
    tracemalloc.start()
    start = time.perf_counter()
    model = ReciprocalRecommender(**params).fit(train)
    train_seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model")
        artifact = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    rng = np.random.default_rng(seed)
    users = rng.choice(n, 30, replace=False)
    everyone = np.arange(n)
    model.score(users[:1])  # first call builds the cached reverse-direction vectors
    timings: dict[str, list[float]] = {"score": [], "score_candidates": []}
    for u in users:
        t0 = time.perf_counter()
        model.score(np.array([u]))
        timings["score"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.score_candidates(int(u), everyone)
        timings["score_candidates"].append(time.perf_counter() - t0)
    base = model.base_model_
    assert base is not None
    return {
        "people": n,
        "swipes": len(a),
        "base": base.model_type,
        "generate_seconds": round(generated, 1),
        "train_seconds": round(train_seconds, 2),
        "peak_rss_mib": round(rss_peak / 1024, 1),
        "rss_before_fit_mib": round(rss_before / 1024, 1),
        "fit_traced_peak_mib": round(traced_peak / 2**20, 1),
        "artifact_mib": round(artifact / 2**20, 2),
        "score_one_user_ms_median": round(1000 * float(np.median(timings["score"])), 2),
        "score_candidates_all_ms_median": round(
            1000 * float(np.median(timings["score_candidates"])), 2
        ),
    }


def extrapolate(rows: list[dict[str, Any]], target: int) -> dict[str, Any]:
    """Power-law fit ``y = c * n^k`` through the measured factorised sizes, read at target."""
    rows = [r for r in rows if r["base"] != "ease"]
    out: dict[str, Any] = {"people": target, "label": "EXTRAPOLATED, not measured",
                           "from_sizes": [r["people"] for r in rows]}  # fmt: skip
    if len(rows) < 2:
        out["note"] = "needs two measured factorised sizes"
        return out
    n = np.array([r["people"] for r in rows], dtype=float)
    y = np.log([max(float(r["train_seconds"]), 1e-6) for r in rows])
    k, c = np.polyfit(np.log(n), y, 1)
    # ALS costs O(swipes x d^2 + n x d^3) an iteration: linear. Two loaded-machine points fit
    # a flatter curve (fixed costs, noise), so the figure scales linearly from the largest
    largest = max(rows, key=lambda r: r["people"])
    out["train_seconds"] = {
        "value": round(float(largest["train_seconds"]) * target / largest["people"], 1),
        "assumed": "linear in n from the largest size",
        "fitted_power_law": round(float(np.exp(c) * target**k), 1),
        "fitted_exponent": round(float(k), 2),
    }
    # memory: a fixed part (the calibration's pair blocks) plus a part per person and swipe,
    # so a straight line, not a power law (which would read the fixed part as slow growth)
    for key in ("fit_traced_peak_mib", "artifact_mib"):
        slope, intercept = np.polyfit(n, [float(r[key]) for r in rows], 1)
        out[key] = {"value": round(float(intercept + slope * target), 1), "fit": "linear"}
    # one user's scores are O(n x d) by construction; timings this small are load noise, so
    # they scale linearly from the largest size rather than by a fitted exponent
    for key in ("score_one_user_ms_median", "score_candidates_all_ms_median"):
        value = float(largest[key]) * target / largest["people"]
        out[key] = {"value": round(value, 2), "exponent": 1.0, "assumed": "linear in n"}
    return out


# --- the million: a generated population streamed into PostgreSQL ------------------------

USER_COPY = ["id", "age", "gender", "seeking", "age_min", "age_max", "max_distance_km",
             "latitude", "longitude", "city", "bio", "tags", "attributes", "elo", "active",
             "moderation_status", "created_at", "updated_at"]  # fmt: skip
SWIPE_COPY = ["event_id", "user_id", "target_user_id", "action", "sample_weight",
              "occurred_at", "received_at"]  # fmt: skip


def _deferred(session: Any) -> tuple[list[str], list[str]]:
    """The interactions table's secondary indexes and constraints, dropped for the load and
    created again after it (as pg_restore does): ``(drop statements, create statements)``,
    read from the catalogue so the rebuilt table is exactly the migrated one."""
    con = session.connection()
    constraints = con.exec_driver_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'interactions'::regclass AND contype IN ('u', 'f')"
    ).all()
    indexes = con.exec_driver_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'interactions' "
        "AND indexname <> 'interactions_pkey' AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint)").all()  # fmt: skip
    drop = [f"ALTER TABLE interactions DROP CONSTRAINT {n}" for n, _ in constraints]
    drop += [f"DROP INDEX {n}" for n, _ in indexes]
    create = [d for _, d in indexes]
    create += [f"ALTER TABLE interactions ADD CONSTRAINT {n} {d}" for n, d in constraints]
    return drop, create


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(header=False, index=False).encode()


def load_million(url: str, n: int, swipes: int, seed: int, block: int) -> dict[str, Any]:
    """Stream ``n`` generated people and ``swipes`` swipes into an empty store at ``url`` a
    block at a time (``stream_people``: memory is one block's, whatever ``n``), each block
    one transaction of two COPYs (profiles with Elo replayed from the block's swipes, then
    its swipes). The interactions table's secondary indexes and constraints are dropped
    first and built once at the end, as a bulk restore does (incremental upkeep of seven
    indexes ran ~4,500 rows/s on the loaded sandbox). Matches are not written."""
    runtime = Runtime.open(Settings(database_url=url), migrate=True)
    started = time.perf_counter()
    people = written = 0
    seconds: dict[str, float] = {}
    try:
        with runtime.session() as session:
            if session.connection().exec_driver_sql("SELECT count(*) FROM users").scalar():
                raise SystemExit("--load-million needs an empty store")
            drop, create = _deferred(session)
            for statement in drop:
                session.connection().exec_driver_sql(statement)
        with Progress() as bar:
            task = bar.add_task("people", total=n)
            for part in stream_people(n, swipes, seed=seed, block=block):
                now = pd.Timestamp(datetime.now(UTC)).tz_localize(None)
                elo = ratings_from_swipes(part.interactions)
                users = part.users.assign(
                    seeking=[json.dumps(list(v)) for v in part.users["seeking"]],
                    tags=[json.dumps(list(v)) for v in part.users["tags"]],
                    attributes=[json.dumps(v) for v in part.users["attributes"]],
                    elo=part.users["id"].map(elo).fillna(1500.0),
                    active=True, moderation_status="ok", created_at=now, updated_at=now,
                )[USER_COPY]  # fmt: skip
                swiped = part.interactions.assign(
                    sample_weight=1.0, received_at=now,
                    occurred_at=pd.to_datetime(part.interactions["occurred_at"], utc=True)
                    .dt.tz_localize(None),
                )[SWIPE_COPY]  # fmt: skip
                with runtime.session() as session:
                    raw = session.connection().connection.driver_connection
                    assert raw is not None
                    with raw.cursor() as cursor:
                        for table, frame, columns in (
                            ("users", users, USER_COPY),
                            ("interactions", swiped, SWIPE_COPY),
                        ):
                            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
                            with cursor.copy(sql) as copy:
                                copy.write(_csv(frame))
                people += len(users)
                written += len(swiped)
                bar.update(task, advance=len(users))
        seconds["copy"] = round(time.perf_counter() - started, 1)
        t0 = time.perf_counter()
        with runtime.session() as session:
            for statement in create:
                session.connection().exec_driver_sql(statement)
        seconds["indexes_and_constraints"] = round(time.perf_counter() - t0, 1)
        with runtime.session() as session:
            session.connection().exec_driver_sql("ANALYZE users")
            session.connection().exec_driver_sql("ANALYZE interactions")
    finally:
        runtime.close()
    return {
        "people": people,
        "swipes_written": written,
        "block": block,
        "seed": seed,
        "load_seconds": round(time.perf_counter() - started, 1),
        "seconds": seconds,
        "loader_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# --- measuring a command: wall, CPU, peak RSS of each process and of PostgreSQL ----------


def _rss_tree(root: psutil.Process, cpu: dict[int, float] | None = None
              ) -> dict[int, tuple[str, int]]:  # fmt: skip
    """RSS of ``root`` and its descendants; each one's CPU seconds so far into ``cpu``."""
    out = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            out[proc.pid] = (" ".join(proc.cmdline()[:3])[:80], proc.memory_info().rss)
            if cpu is not None:
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
        except psutil.Error:
            continue
    return out


def _postgres_rss(port: int, cpu: dict[int, float] | None = None
                  ) -> dict[int, tuple[str, int]]:  # fmt: skip
    """RSS of the PostgreSQL server on ``port`` and its backends (shared buffers count in
    each backend that touched them: the sum overstates, the largest understates); each
    one's CPU seconds so far into ``cpu``."""
    out: dict[int, tuple[str, int]] = {}
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres":
                found.append((proc, " ".join(proc.info["cmdline"] or [])))
        except psutil.Error:
            continue
    servers = {proc.pid for proc, cmd in found if f"-p {port}" in cmd}
    for proc, cmd in found:  # the server, then its children (pids wrap: any order)
        try:
            if proc.pid in servers or proc.ppid() in servers:
                out[proc.pid] = (cmd[:80], proc.memory_info().rss)
                if cpu is not None:
                    times = proc.cpu_times()
                    cpu[proc.pid] = times.user + times.system
        except psutil.Error:
            continue
    return out


def measure(command: list[str], env: dict[str, str], pg_port: int) -> dict[str, Any]:
    """Run ``command``, sampling every process's RSS (the command's tree, PostgreSQL's)
    each half second: wall seconds, the tree's CPU seconds (its processes' own, summed
    at their last sample, where Ray's workers are not the command's waited-for children),
    PostgreSQL's CPU seconds over the run, each process's peak RSS."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    child = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    root = psutil.Process(child.pid)
    peaks: dict[int, tuple[str, int]] = {}
    pg_peaks: dict[int, tuple[str, int]] = {}
    loads = []
    cpu = 0.0
    tree_cpu: dict[int, float] = {}  # each process's CPU seconds at its last sample
    pg_cpu: dict[int, float] = {}
    pg_cpu_before: dict[int, float] = {}
    _postgres_rss(pg_port, pg_cpu_before)
    while child.poll() is None:
        for store, found in ((peaks, _rss_tree(root, tree_cpu)),
                             (pg_peaks, _postgres_rss(pg_port, pg_cpu))):  # fmt: skip
            for pid, (cmd, rss) in found.items():
                if rss > store.get(pid, ("", 0))[1]:
                    store[pid] = (cmd, rss)
        try:
            times = root.cpu_times()
            cpu = max(cpu, times.user + times.system + times.children_user
                      + times.children_system)  # fmt: skip
        except psutil.Error:
            pass
        loads.append(os.getloadavg()[0])
        time.sleep(SAMPLE_SECONDS)
    out, _ = child.communicate()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)

    def mib(found: dict[int, tuple[str, int]]) -> list[dict[str, Any]]:
        return sorted(({"pid": pid, "process": cmd, "peak_rss_mib": round(rss / 2**20, 1)}
                       for pid, (cmd, rss) in found.items()),
                      key=lambda r: -r["peak_rss_mib"])  # fmt: skip

    return {
        "command": " ".join(command),
        "returncode": child.returncode,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(
            max(cpu, usage.ru_utime + usage.ru_stime, sum(tree_cpu.values())), 1
        ),  # fmt: skip
        "cpu_seconds_each_process_sampled": round(sum(tree_cpu.values()), 1),
        "postgresql_cpu_seconds": round(
            sum(v - pg_cpu_before.get(pid, 0.0) for pid, v in pg_cpu.items()), 1
        ),  # fmt: skip
        "sample_seconds": SAMPLE_SECONDS,
        "peak_rss_mib_largest_process": round(usage.ru_maxrss / 1024, 1),
        "processes": mib(peaks)[:12],
        "postgresql": mib(pg_peaks)[:6],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_1min_mean_during": round(float(np.mean(loads)), 2) if loads else None,
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "output_tail": out[-3000:],
    }


#: People in each window of a sampled refresh (see ``refresh_child``).
WINDOW = 5000


def refresh_child(sample: int, seed: int, num_cpus: int | None) -> dict[str, Any]:
    """In the measured process: refresh ``sample`` people's lists (0: everyone) with Ray,
    as ``matchwise refresh --ray --kind user`` does for everyone.

    A full refresh takes people neighbourhood by neighbourhood (``people_by_place``), and
    the people of one cell and segment share the index's walk; a random sample would
    share almost none and overstate the cost, so the sample is ``sample / WINDOW``
    windows of ``WINDOW`` consecutive people in that order, evenly spaced over it (the
    seed shifts them)."""
    runtime = Runtime.open(load_settings(), migrate=False)
    try:
        people = users_to_refresh(runtime, None)
        chosen = None
        if 0 < sample < len(people):
            ordered = people_by_place(runtime, people)
            windows = max(1, sample // WINDOW)
            step = len(ordered) // windows
            shift = int(np.random.default_rng(seed).integers(0, max(step - WINDOW, 1)))
            chosen = [u for w in range(windows)
                      for u in ordered[w * step + shift : w * step + shift + WINDOW]]  # fmt: skip
        started = time.perf_counter()
        marks: list[tuple[float, int]] = []  # (seconds, people done) at each chunk's end

        def note(n: int) -> None:
            marks.append((time.perf_counter() - started, (marks[-1][1] if marks else 0) + n))

        stats = refresh_people_with_ray(runtime, chosen, top_n=50, num_cpus=num_cpus,
                                        progress=note)  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        runtime.close()
    return {**stats, "population": len(people), "refresh_seconds": round(seconds, 1),
            "chunks_done_at": [(round(t, 1), n) for t, n in marks],
            **steady_rate(marks, stats["cpus"], len(people))}  # fmt: skip


def steady_rate(marks: list[tuple[float, int]], cpus: int, population: int) -> dict[str, Any]:
    """People a second once every actor has loaded (a line through the chunk ends after
    the first round of ``cpus`` chunks), and the whole population's time extrapolated
    from it: the first round's end (start-up, loading, one chunk each) plus the rest at
    the steady rate."""
    if len(marks) <= cpus + 1:
        return {"steady_people_per_second": None}
    t = np.array([m[0] for m in marks[cpus - 1 :]])
    n = np.array([m[1] for m in marks[cpus - 1 :]])
    rate = float(np.polyfit(t, n, 1)[0])
    first_t, first_n = marks[cpus - 1]
    whole = first_t + (population - first_n) / rate
    return {"steady_people_per_second": round(rate, 2),
            "population_extrapolated_seconds": round(whole)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--quality-size", type=int, default=None, help="default: smallest")
    parser.add_argument("--seed", type=int, default=11)  # 7 chose FACTOR_PARAMS
    parser.add_argument("--force-factor", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--quality", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--load-million",
        metavar="URL",
        help="stream --people/--swipes generated people into this PostgreSQL",
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--swipes", type=int, default=10_000_000)
    parser.add_argument("--block", type=int, default=50_000)
    parser.add_argument(
        "--million-train",
        metavar="URL",
        help="time `matchwise train reciprocal --domain people` on this store",
    )
    parser.add_argument(
        "--million-refresh",
        metavar="URL",
        help="time the Ray people refresh (top 50 each) on this store",
    )
    parser.add_argument("--refresh-sample", type=int, default=0, help="0: every person")
    parser.add_argument("--num-cpus", type=int, default=None, help="Ray CPUs (default: all)")
    parser.add_argument("--refresh-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", default="/tmp/people21/var/artifacts")
    parser.add_argument("--save", type=Path, help="write the measurement (JSON) here")
    args = parser.parse_args()
    if args.refresh_child:
        print(json.dumps(refresh_child(args.refresh_sample, args.seed, args.num_cpus)))
        return
    if args.million_refresh:
        command = [sys.executable, __file__, "--refresh-child", "--refresh-sample",
                   str(args.refresh_sample), "--seed", str(args.seed)]  # fmt: skip
        if args.num_cpus:
            command += ["--num-cpus", str(args.num_cpus)]
        env = {"MATCHWISE_DATABASE_URL": args.million_refresh, "MATCHWISE_DOMAIN": "people",
               "MATCHWISE_ARTIFACT_ROOT": args.artifacts, "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
        port = int(args.million_refresh.rsplit(":", 1)[1].split("/")[0])
        found = measure(command, env, port)
        tail = found["output_tail"].strip().splitlines()
        found["refresh"] = json.loads(tail[-1]) if tail and tail[-1].startswith("{") else None
        if found["refresh"] is not None:  # CPU of every process, start-up and loading included
            found["cpu_ms_per_person"] = round(1000 * found["cpu_seconds"]
                                               / max(found["refresh"]["users"], 1), 2)  # fmt: skip
        print(json.dumps(found))
        if args.save:
            args.save.write_text(json.dumps(found, indent=2) + "\n")
        return
    if args.million_train:
        command = [str(Path(sys.executable).parent / "matchwise"), "train", "reciprocal",
                   "--domain", "people", "--activate", "always", "--json"]  # fmt: skip
        env = {"MATCHWISE_DATABASE_URL": args.million_train,
               "MATCHWISE_ARTIFACT_ROOT": args.artifacts, "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
        port = int(args.million_train.rsplit(":", 1)[1].split("/")[0])
        found = measure(command, env, port)
        print(json.dumps(found))
        if args.save:
            args.save.write_text(json.dumps(found, indent=2) + "\n")
        return
    if args.load_million:
        print(json.dumps(load_million(args.load_million, args.people, args.swipes, args.seed,
                                      args.block)))  # fmt: skip
        return
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.seed, args.force_factor)))
        return
    if args.quality is not None:
        print(json.dumps(quality(args.quality, args.seed, ["ease", "implicit_als"])))
        return
    started = time.time()
    child = [sys.executable, __file__, "--seed", str(args.seed)]
    if args.force_factor:
        child.append("--force-factor")
    rows = []
    for n in args.sizes:
        done = subprocess.run([*child, "--one", str(n)], check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    q_size = args.quality_size or min(args.sizes)
    done = subprocess.run(
        [*child, "--quality", str(q_size)], check=True, capture_output=True, text=True
    )
    held_out = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(held_out), flush=True)
    result = {
        "command": "python benchmarks/people_scale/run.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },  # fmt: skip
        "ease_max_people": EASE_MAX_PEOPLE,
        "swipes_per_person": SWIPES_PER_PERSON,
        "sizes": rows,
        "held_out_quality": held_out,
        "million_people": extrapolate(rows, 1_000_000),
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
