"""Issue 16 target 4: a million users on this machine, stage by stage.

    python benchmarks/scale/run.py load     # 1M users, 10k items, 10M interactions (COPY)
    python benchmarks/scale/run.py train    # two-tower on the last --window-days of events
    python benchmarks/scale/run.py refresh  # every user's top 50 with Ray; peak memory
    python benchmarks/scale/run.py serial   # the serial refresh on a sample, extrapolated
    python benchmarks/scale/run.py redis    # Redis bytes per cached list (a sample)
    python benchmarks/scale/run.py serve    # the API for --minutes under load, RSS sampled

Each stage merges its figures into ``results.json`` beside this file. The store is a
PostgreSQL database given by ``--database-url`` (a server of its own: this writes ~10 GB).
The generator streams: users and interactions are drawn a chunk at a time from one seeded
generator and written with COPY, so memory holds one chunk, never the data set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import psycopg
from rich.progress import Progress

from matchwise.data.synthetic import CITIES, generate_items

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:55442/scale"
SEED = 16
DAYS = 180  # events spread over the last 180 days
ACTIONS = np.array(["view", "click", "like", "favorite", "dislike"])
ACTION_SHARES = np.array([0.55, 0.25, 0.12, 0.04, 0.04])

# the interactions table's secondary indexes and foreign keys: dropped for the bulk load,
# built again once after it (one sort per index instead of 10M random insertions each)
DEFERRED = [
    ("ix_interactions_user_time", "user_id, occurred_at"),
    ("ix_interactions_item", "item_id"),
    ("ix_interactions_target_actor", "target_user_id, user_id"),
    ("ix_interactions_user_target", "user_id, target_user_id"),
    ("ix_interactions_user_item", "user_id, item_id"),
    ("ix_interactions_occurred_at", "occurred_at"),
]


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "note": "how busy the machine was: load_average and uptime (2-core sandbox)",
    }


def record(stage: str, figures: dict[str, Any]) -> None:
    """Merge one stage's figures into results.json (each stage keeps its latest run)."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    figures = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "command": " ".join(["python", "benchmarks/scale/run.py", *sys.argv[1:]]),
               "machine": machine(), **figures}  # fmt: skip
    data[stage] = figures
    RESULTS.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(json.dumps(figures, indent=2, default=str))


# --- memory sampling -------------------------------------------------------------------


class MemorySampler:
    """Samples, every ``every`` seconds, the RSS and PSS of this process, its descendants
    (Ray's GCS, raylet and workers) and the PostgreSQL server's processes; keeps each
    process's peak and the peak of the summed PSS (RSS counts shared pages, such as
    PostgreSQL's shared buffers, once per process that touched them)."""

    def __init__(self, pg_data: Path | None, every: float = 2.0, pids: list[int] | None = None,
                 label: str = "serving"):  # fmt: skip
        self.pg_data, self.every, self.pids, self.label = pg_data, every, pids, label
        self.peaks: dict[str, dict[str, Any]] = {}
        self.peak_total_pss = self.peak_total_rss = 0
        self.series: list[tuple[float, int, int]] = []
        #: CPU seconds each process used while sampled (from its first sample on)
        self._cpu: dict[str, tuple[str, float]] = {}
        self._cpu_start: dict[str, float] = {}
        self._wall0 = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def processes(self) -> list[tuple[str, psutil.Process]]:
        found: list[tuple[str, psutil.Process]] = []
        if self.pids is not None:
            for pid in self.pids:
                if psutil.pid_exists(pid):
                    proc = psutil.Process(pid)
                    found += [(self.label, proc)]
                    found += [(self.label, c) for c in proc.children(recursive=True)]
        else:
            me = psutil.Process()
            found.append(("driver", me))
            found += [("ray", p) for p in me.children(recursive=True)]
        if self.pg_data is not None and (self.pg_data / "postmaster.pid").exists():
            pid = int((self.pg_data / "postmaster.pid").read_text().split()[0])
            if psutil.pid_exists(pid):
                master = psutil.Process(pid)
                found += [("postgresql", master)]
                found += [("postgresql", p) for p in master.children(recursive=True)]
        return found

    def sample(self) -> None:
        total_pss = total_rss = 0
        for group, proc in self.processes():
            try:
                info = proc.memory_full_info()
                name = " ".join(proc.cmdline()[:3])[:90] or proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            try:
                cpu = proc.cpu_times()
                used = cpu.user + cpu.system
                key = f"{group}:{proc.pid}"
                # a process started while sampling counts from 0, one already running
                # from its first sample
                born_here = proc.create_time() >= self._wall0
                start = self._cpu_start.setdefault(key, 0.0 if born_here else used)
                self._cpu[key] = (group, used - start)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
            rss, pss = info.rss, getattr(info, "pss", info.rss)
            total_pss += pss
            total_rss += rss
            fresh = {"group": group, "pid": proc.pid, "name": name, "peak_rss_mib": 0.0,
                     "peak_pss_mib": 0.0}  # fmt: skip
            peak = self.peaks.setdefault(key, fresh)
            peak["peak_rss_mib"] = max(peak["peak_rss_mib"], round(rss / 2**20, 1))
            peak["peak_pss_mib"] = max(peak["peak_pss_mib"], round(pss / 2**20, 1))
        self.peak_total_pss = max(self.peak_total_pss, total_pss)
        self.peak_total_rss = max(self.peak_total_rss, total_rss)
        self.series.append((round(time.monotonic() - self._t0, 1), total_rss, total_pss))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def summary(self) -> dict[str, Any]:
        groups: dict[str, dict[str, float]] = {}
        for peak in self.peaks.values():
            g = groups.setdefault(peak["group"], {"processes": 0, "sum_of_peak_rss_mib": 0.0,
                                                  "sum_of_peak_pss_mib": 0.0,
                                                  "largest_peak_rss_mib": 0.0})  # fmt: skip
            g["processes"] += 1
            g["sum_of_peak_rss_mib"] = round(g["sum_of_peak_rss_mib"] + peak["peak_rss_mib"], 1)
            g["sum_of_peak_pss_mib"] = round(g["sum_of_peak_pss_mib"] + peak["peak_pss_mib"], 1)
            g["largest_peak_rss_mib"] = max(g["largest_peak_rss_mib"], peak["peak_rss_mib"])
        cpu: dict[str, float] = {}
        for group, seconds in self._cpu.values():
            cpu[group] = round(cpu.get(group, 0.0) + seconds, 1)
        return {
            "cpu_seconds_by_group": cpu,
            "cpu_seconds_total": round(sum(cpu.values()), 1),
            "peak_total_pss_mib": round(self.peak_total_pss / 2**20, 1),
            "peak_total_rss_mib": round(self.peak_total_rss / 2**20, 1),
            "by_group": groups,
            "processes": sorted(self.peaks.values(), key=lambda p: -p["peak_rss_mib"]),
        }


# --- generation and load ---------------------------------------------------------------


def tsv(frame: pd.DataFrame) -> bytes:
    """A chunk as COPY's CSV format (NULL as \\N)."""
    return frame.to_csv(header=False, index=False, na_rep="\\N").encode()


def items_frame(now: datetime) -> pd.DataFrame:
    bundle = generate_items(n_users=10, n_items=10_000, n_interactions=0, seed=SEED,
                            start=now - timedelta(days=60), days=120)  # fmt: skip
    items = bundle.items.copy()
    items["id"] = [f"i{n:05d}" for n in range(len(items))]
    items["tags"] = items["tags"].map(json.dumps)
    items["attributes"] = items["attributes"].map(json.dumps)
    items["starts_at"] = items["starts_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    items["active"] = "t"
    items["created_at"] = items["updated_at"] = now.replace(tzinfo=None)
    return items


def user_chunks(
    n_users: int, tag_vocab: list[str], chunk: int, now: datetime
) -> Iterator[pd.DataFrame]:
    """Users a chunk at a time: age, gender, city and 2-4 stated interests."""
    rng = np.random.default_rng(SEED)
    cities = np.array([c[0] for c in CITIES])
    city_p = np.array([c[3] for c in CITIES]) / sum(c[3] for c in CITIES)
    vocab = np.array(tag_vocab)
    stamp = now.replace(tzinfo=None)
    for start in range(0, n_users, chunk):
        n = min(chunk, n_users - start)
        k = rng.integers(2, 5, size=n)
        picks = rng.integers(0, len(vocab), size=(n, 4))
        tags = [
            json.dumps(list(dict.fromkeys(vocab[row[:m]]))) for row, m in zip(picks, k, strict=True)
        ]
        yield pd.DataFrame({
            "id": [f"u{i:07d}" for i in range(start, start + n)],
            "age": rng.integers(18, 66, size=n),
            "gender": rng.choice(["woman", "man", "nonbinary"], size=n, p=[0.4, 0.57, 0.03]),
            "seeking": "[]",
            "city": rng.choice(cities, size=n, p=city_p),
            "tags": tags,
            "attributes": "{}",
            "elo": 1500.0,
            "active": "t",
            "moderation_status": "ok",
            "created_at": stamp,
            "updated_at": stamp,
        })  # fmt: skip


def interaction_chunks(
    n_users: int, items: pd.DataFrame, n_events: int, chunk: int, now: datetime
) -> Iterator[pd.DataFrame]:
    """Events a chunk at a time. Each user has a hidden favourite category (70% of their
    events land in it) and an activity level (log-normal, so some users are heavy and
    some cold); items have Zipf popularity. Times are uniform over the last DAYS days."""
    rng = np.random.default_rng(SEED + 1)
    cats = items["category"].astype("category")
    n_cats = len(cats.cat.categories)
    codes = cats.cat.codes.to_numpy()
    popularity = 1.0 / np.arange(1, len(items) + 1) ** 0.8
    rng.shuffle(popularity)
    by_cat = [np.flatnonzero(codes == c) for c in range(n_cats)]
    cat_p = [popularity[ix] / popularity[ix].sum() for ix in by_cat]
    glob_p = popularity / popularity.sum()
    favourite = np.random.default_rng(SEED + 2).integers(0, n_cats, size=n_users)
    activity = np.random.default_rng(SEED + 3).lognormal(0.0, 1.0, size=n_users)
    activity_p = activity / activity.sum()
    item_ids = items["id"].to_numpy()
    end = np.datetime64(now.replace(tzinfo=None), "us")
    span_us = DAYS * 86_400 * 1_000_000
    for start in range(0, n_events, chunk):
        n = min(chunk, n_events - start)
        users = rng.choice(n_users, size=n, p=activity_p)
        in_fav = rng.random(n) < 0.7
        picked = rng.choice(len(items), size=n, p=glob_p)
        fav = favourite[users]
        for c in range(n_cats):
            rows = np.flatnonzero(in_fav & (fav == c))
            picked[rows] = by_cat[c][rng.choice(len(by_cat[c]), size=len(rows), p=cat_p[c])]
        action = rng.choice(ACTIONS, size=n, p=ACTION_SHARES)
        action = np.where(~in_fav & (action == "like") & (rng.random(n) < 0.5), "dislike", action)
        when = end - rng.integers(0, span_us, size=n).astype("timedelta64[us]")
        yield pd.DataFrame({
            "event_id": [f"s{i}" for i in range(start, start + n)],
            "user_id": np.char.add("u", np.char.zfill(users.astype(str), 7)),
            "item_id": item_ids[picked],
            "action": action,
            "sample_weight": 1.0,
            "occurred_at": when,
            "received_at": when,
        })  # fmt: skip


def copy_frame(conn: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    columns = ", ".join(frame.columns)
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, NULL '\\N')") as copy,
    ):
        copy.write(tsv(frame))


def stage_load(args: argparse.Namespace) -> None:
    from matchwise.runtime import Runtime
    from matchwise.settings import Settings

    url = args.database_url
    Runtime.open(Settings(database_url=url), migrate=True).close()
    now = datetime.now(UTC)
    figures: dict[str, Any] = {"users": args.users, "items": 10_000, "interactions": args.events,
                               "days": DAYS, "chunk_rows": args.chunk}  # fmt: skip
    proc = psutil.Process()
    peak_rss = 0
    with psycopg.connect(libpq(url), autocommit=True) as conn, Progress() as bar:
        conn.execute("TRUNCATE interactions, recommendations, users, items CASCADE")
        t0 = time.perf_counter()
        items = items_frame(now)
        copy_frame(conn, "items", items)
        vocab = sorted({t for ts in items["tags"] for t in json.loads(ts)})
        figures["items_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        task = bar.add_task("users", total=args.users)
        for frame in user_chunks(args.users, vocab, args.chunk, now):
            copy_frame(conn, "users", frame)
            bar.advance(task, len(frame))
            peak_rss = max(peak_rss, proc.memory_info().rss)
        figures["users_seconds"] = round(time.perf_counter() - t0, 1)
        fks = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'interactions'::regclass AND contype = 'f'"
        ).fetchall()
        for name, _ in fks:
            conn.execute(f"ALTER TABLE interactions DROP CONSTRAINT {name}")
        for name, _ in DEFERRED:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        t0 = time.perf_counter()
        task = bar.add_task("interactions", total=args.events)
        for frame in interaction_chunks(args.users, items, args.events, args.chunk, now):
            copy_frame(conn, "interactions", frame)
            bar.advance(task, len(frame))
            peak_rss = max(peak_rss, proc.memory_info().rss)
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name, columns in DEFERRED:
            conn.execute(f"CREATE INDEX {name} ON interactions ({columns})")
        for name, definition in fks:
            conn.execute(f"ALTER TABLE interactions ADD CONSTRAINT {name} {definition}")
        conn.execute("ANALYZE")
        index_s = time.perf_counter() - t0
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('interactions')), "
            "pg_total_relation_size('interactions'), "
            "pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()
    assert sizes is not None
    figures |= {
        "interactions_copy_seconds": round(copy_s, 1),
        "interactions_copy_rows_per_second": round(args.events / copy_s),
        "indexes_and_foreign_keys_seconds": round(index_s, 1),
        "interactions_events_per_second_including_indexes": round(args.events / (copy_s + index_s)),
        "interactions_table_size": sizes[0],
        "interactions_bytes_per_event": round(sizes[1] / args.events, 1),
        "database_size": sizes[2],
        "loader_peak_rss_mib": round(peak_rss / 2**20, 1),
        "generated_at": now.isoformat(),
    }
    record("load", figures)


# --- training on a recent window --------------------------------------------------------


def open_runtime(args: argparse.Namespace, **extra: Any) -> Any:
    from matchwise.runtime import Runtime
    from matchwise.settings import Settings

    settings = Settings(database_url=args.database_url,
                        artifact_root=str(args.workdir / "artifacts"), **extra)  # fmt: skip
    return Runtime.open(settings, migrate=False)


def stage_train(args: argparse.Namespace) -> None:
    """The two-tower on the last ``--window-days`` of events (the generator spreads events
    over DAYS days ending at load time): a snapshot built from the store's rows in the
    window, then ``matchwise train two_tower --dataset`` on it (the CLI's own pipeline)."""
    from sqlalchemy import func, select

    from matchwise.data.dataset import make_dataset, save_dataset
    from matchwise.db import queries
    from matchwise.db.tables import Interaction

    folder = args.workdir / "dataset"
    if args.reuse_snapshot and (folder / "manifest.json").exists():
        train_only(args, folder, json.loads((folder / "window.json").read_text()), None)
        return
    runtime = open_runtime(args)
    t0 = time.perf_counter()
    with runtime.read_session() as session:
        newest = session.scalar(select(func.max(Interaction.occurred_at)))
        cutoff = newest - timedelta(days=args.window_days)
        rows = session.execute(
            select(Interaction.user_id, Interaction.item_id, Interaction.action,
                   Interaction.value, Interaction.occurred_at)
            .where(Interaction.occurred_at >= cutoff, Interaction.item_id.is_not(None))
            .order_by(Interaction.occurred_at, Interaction.id)
        ).all()  # fmt: skip
        raw = pd.DataFrame(rows, columns=["user_id", "item_id", "action", "value", "occurred_at"])
        del rows
        users = queries.training_users(session)
        users = users[users["id"].isin(raw["user_id"].unique())].reset_index(drop=True)
        items = queries.training_items(session)
    dataset = make_dataset(raw, users, items, runtime.settings.action_table,
                           runtime.settings.hash_secret)  # fmt: skip
    save_dataset(dataset, folder)
    build_s = time.perf_counter() - t0
    window = {"window_days": args.window_days, "from": cutoff, "to": newest,
              "interactions": len(raw), "users": len(users), "items": len(items)}  # fmt: skip
    (folder / "window.json").write_text(json.dumps(window, default=str))
    del dataset, raw, users
    runtime.close()
    train_only(args, folder, window, build_s)


def train_only(
    args: argparse.Namespace, folder: Path, window: dict[str, Any], build_s: float | None
) -> None:
    """``matchwise train two_tower --dataset`` on the snapshot, its peak memory sampled."""
    env = {**os.environ, "MATCHWISE_DATABASE_URL": args.database_url,
           "MATCHWISE_ARTIFACT_ROOT": str(args.workdir / "artifacts")}  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "matchwise"), "train", "two_tower", "--dataset",
           str(folder), "--epochs", str(args.epochs), "--activate", "always", "--json"]  # fmt: skip
    if args.config is not None:
        cmd[3:3] = ["--config", str(args.config)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    with MemorySampler(None, every=2.0, pids=[proc.pid], label="train") as mem:
        out, _ = proc.communicate()
    train_s = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"matchwise train failed ({proc.returncode}): {out[-2000:]}")
    summary = json.loads(out[out.index("{") :])
    peak = mem.summary()["by_group"]["train"]["sum_of_peak_rss_mib"]
    snapshot_s = None if build_s is None else round(build_s, 1)
    record("train", {"window": window, "snapshot_seconds": snapshot_s,
                     "train_command": " ".join(cmd[1:]), "train_seconds": round(train_s, 1),
                     "train_peak_rss_mib": peak,
                     "epochs": args.epochs, "summary": summary,
                     "config": None if args.config is None else json.loads(args.config.read_text()),
                     })  # fmt: skip


# --- the refresh ------------------------------------------------------------------------


def cache_census(url: str) -> dict[str, Any]:
    with psycopg.connect(libpq(url)) as conn:
        routes = conn.execute(
            "SELECT route, count(*) / 50.0, count(*) FROM recommendations GROUP BY route"
        ).fetchall()
        size = conn.execute(
            "SELECT pg_total_relation_size('recommendations'), "
            "pg_size_pretty(pg_total_relation_size('recommendations')), "
            "count(DISTINCT user_id) FROM recommendations"
        ).fetchone()
    assert size is not None
    rows = sum(r[2] for r in routes)
    return {"users_with_a_list": size[2], "rows": rows,
            "rows_by_route": {r[0]: r[2] for r in routes},
            "table_size": size[1], "bytes_per_user": round(size[0] / max(size[2], 1)),
            "bytes_per_row": round(size[0] / max(rows, 1), 1)}  # fmt: skip


def stage_refresh(args: argparse.Namespace) -> None:
    """Every user's top 50 with Ray (``--num-cpus`` workers), peak memory of every
    process sampled every 2 s."""
    from matchwise.scale import refresh_with_ray

    # one catalogue for the run: its popularity is a GROUP BY over every event, which
    # each Ray worker would otherwise repeat every 30 s (the serving default)
    runtime = open_runtime(args, catalogue_max_age_seconds=3600)
    with psycopg.connect(libpq(args.database_url), autocommit=True) as conn:
        conn.execute("TRUNCATE recommendations")
        conn.execute("CHECKPOINT")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with MemorySampler(args.pg_data) as mem, Progress() as bar:
        # every active user, or (--refresh-users N) the first N, u0000000 on
        users = None if args.refresh_users is None else [
            f"u{n:07d}" for n in range(args.refresh_users)]  # fmt: skip
        task = bar.add_task("refresh", total=args.refresh_users or args.users)
        done = [0]

        def advance(n: int) -> None:  # the bar, and a line a chunk for a log file
            bar.advance(task, n)
            done[0] += n
            try:  # the sampler's thread may be adding a process meanwhile
                cpu = mem.summary()["cpu_seconds_total"]
            except RuntimeError:
                cpu = None
            print(json.dumps({"users": done[0], "seconds": round(time.perf_counter() - t0, 1),
                              "cpu_seconds": cpu}), file=sys.stderr, flush=True)  # fmt: skip

        stats = refresh_with_ray(runtime, users, top_n=50, kind="item", num_cpus=args.num_cpus,
                                 chunk_size=args.chunk_users, progress=advance)  # fmt: skip
    seconds = time.perf_counter() - t0
    runtime.close()
    memory = mem.summary()
    record("refresh", {
        "users": stats["users"], "rows": stats["rows"], "chunks": stats["tasks"],
        "ray_cpus": stats["cpus"], "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2), "target_minutes": 15,
        "users_per_second": round(stats["users"] / seconds, 1),
        "all_users": args.users,
        "extrapolated_minutes_for_all_users": round(seconds * args.users / stats["users"] / 60, 1),
        "cpu_ms_per_user": round(1000 * memory["cpu_seconds_total"] / stats["users"], 2),
        "dedicated_2_core_minutes_for_all_users_from_cpu": round(
            memory["cpu_seconds_total"] / stats["users"] * args.users / 2 / 60, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "memory": memory,
        "memory_target_mib": 8192,
        "cache": cache_census(args.database_url),
        "memory_series_s_rss_pss": mem.series[:: max(1, len(mem.series) // 200)],
    })  # fmt: skip


def live_path_block_refresh(runtime: Any, user_ids: list[str], now: datetime) -> int:
    """The block refresh as it was before the block scorer (issue 16 item 4, second step):
    two reads and one bulk write a block, but each list computed by ``compute_for`` (the
    live request's function) per user; kept here to measure against."""
    from matchwise.serve.recommend import compute_for
    from matchwise.serve.refresh import BLOCK, profiles_and_histories, write_caches
    from matchwise.serve.types import RecommendFilters

    written = 0
    for start in range(0, len(user_ids), BLOCK):
        part = user_ids[start : start + BLOCK]
        with runtime.session() as session:
            read = profiles_and_histories(session, part)
            results = [compute_for(runtime, session, *read[u], 50, "item", RecommendFilters(),
                                   now) for u in part if u in read]  # fmt: skip
            written += write_caches(session, results, "item")
    return written


def stage_serial(args: argparse.Namespace) -> None:
    """One process, no Ray: the block scorer's refresh on ``--sample`` random users, and the
    previous block refresh (``compute_for`` per user) on a fifth of them; CPU seconds of
    this process and PostgreSQL's, both extrapolated to every user (labelled so)."""
    from matchwise.serve.refresh import refresh_users

    rng = random.Random(SEED)
    sample = [f"u{n:07d}" for n in sorted(rng.sample(range(args.users), args.sample))]
    runtime = open_runtime(args, catalogue_max_age_seconds=3600)
    refresh_users(runtime, sample[:200], top_n=50, kind="item")  # load the models first
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with MemorySampler(args.pg_data) as block_mem:
        stats = refresh_users(runtime, sample, top_n=50, kind="item")
    block_s = time.perf_counter() - t0
    small = sample[: max(1, args.sample // 5)]
    t0 = time.perf_counter()
    with MemorySampler(args.pg_data) as old_mem:
        live_path_block_refresh(runtime, small, datetime.now(UTC))
    old_s = time.perf_counter() - t0
    block_cpu = block_mem.summary()["cpu_seconds_total"]
    old_cpu = old_mem.summary()["cpu_seconds_total"]
    runtime.close()
    per_user_ms = 1000 * block_s / stats["users"]
    old_ms = 1000 * old_s / len(small)
    block_cpu_ms = 1000 * block_cpu / stats["users"]
    old_cpu_ms = 1000 * old_cpu / len(small)
    record("serial", {
        "sample_users": stats["users"], "block_scorer_seconds": round(block_s, 1),
        "block_scorer_ms_per_user": round(per_user_ms, 2),
        "live_path_block_users": len(small), "live_path_block_seconds": round(old_s, 1),
        "live_path_block_ms_per_user": round(old_ms, 2),
        "block_scorer_cpu_ms_per_user": round(block_cpu_ms, 2),
        "live_path_block_cpu_ms_per_user": round(old_cpu_ms, 2),
        "cpu_ratio_live_path_over_block_scorer": round(old_cpu_ms / block_cpu_ms, 2),
        "extrapolated_serial_minutes_for_all_users": round(per_user_ms * args.users / 60_000, 1),
        "extrapolated_dedicated_2_core_minutes_from_cpu": round(
            block_cpu_ms * args.users / 2 / 60_000, 1),
        "cpu_seconds_by_group_block": block_mem.summary()["cpu_seconds_by_group"],
        "cpu_seconds_by_group_live_path": old_mem.summary()["cpu_seconds_by_group"],
        "note": "extrapolated from the sample (not a full serial run); CPU ms are this "
        "process's and PostgreSQL's together",
        "load_average_before": [round(x, 2) for x in load_before],
    })  # fmt: skip


# --- Redis bytes per list ---------------------------------------------------------------


def stage_redis(args: argparse.Namespace) -> None:
    """Mirror ``--sample`` users' cached lists into an empty Redis; bytes per list from
    INFO's used_memory before and after (with the key overheads) and MEMORY USAGE."""
    import redis

    from matchwise.serve.cache import read_cache_from
    from matchwise.serve.online import put_lists

    runtime = open_runtime(args, redis_url=args.redis_url)
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    before = int(client.info("memory")["used_memory"])
    rng = random.Random(SEED + 9)
    refreshed = args.refresh_users or args.users  # the users that have a list
    sample = [f"u{n:07d}" for n in rng.sample(range(refreshed), min(args.sample, refreshed))]
    lists = [r for u in sample if (r := read_cache_from(runtime.engine, u, 50, "item", 10**9))]
    put_lists(runtime.online, lists, 7 * 86_400, "item")
    after = int(client.info("memory")["used_memory"])
    keys = [k for k in client.scan_iter(count=1000)][:200]
    usage = [client.memory_usage(k) or 0 for k in keys]
    runtime.close()
    client.flushdb()
    record("redis", {
        "lists": len(lists), "used_memory_delta_bytes": after - before,
        "bytes_per_list": round((after - before) / max(len(lists), 1)),
        "memory_usage_mean_bytes": round(sum(usage) / max(len(usage), 1)),
        "list_length": 50,
    })  # fmt: skip


# --- serving under load -------------------------------------------------------------------

WRK_SCRIPT = """
local users = tonumber(os.getenv("SCALE_USERS") or "1000000")
local cached = tonumber(os.getenv("SCALE_CACHED_USERS") or tostring(users))
local live = tonumber(os.getenv("SCALE_LIVE_SHARE") or "0.2")
math.randomseed(16)
request = function()
  local path
  if math.random() < live then
    path = string.format("/v1/recommendations?limit=10&fresh=true&user_id=u%07d",
                         math.random(0, users - 1))
  else
    path = string.format("/v1/recommendations?limit=10&user_id=u%07d", math.random(0, cached - 1))
  end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  io.write(string.format('JSON {"requests": %d, "rps": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, ' ..
    '"errors": %d, "non_2xx": %d}\\n', summary.requests,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def stage_serve(args: argparse.Namespace) -> None:
    """``matchwise serve`` for ``--minutes`` under wrk (4 connections, random users of the
    million: 80% cached lists, 20% computed live with fresh=true), its RSS sampled every
    5 s: flat means no cache grows with the users seen."""
    script = args.workdir / "scale.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "MATCHWISE_DATABASE_URL": args.database_url,
           "MATCHWISE_ARTIFACT_ROOT": str(args.workdir / "artifacts"),
           "MATCHWISE_AUTH_ENABLED": "false", "MATCHWISE_CACHE_MAX_AGE_SECONDS": str(7 * 86_400),
           "SCALE_USERS": str(args.users),
           "SCALE_CACHED_USERS": str(args.refresh_users or args.users)}  # fmt: skip
    env.pop("MATCHWISE_REDIS_URL", None)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "matchwise"), "serve", "--port", str(args.port),
         "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        routes = {}
        for n in (1, 2, 3):  # warm up: load the model, then check both paths answer
            for fresh in ("", "&fresh=true"):
                r = httpx.get(f"http://127.0.0.1:{args.port}/v1/recommendations?limit=10"
                              f"&user_id=u{n:07d}{fresh}", timeout=120)  # fmt: skip
                r.raise_for_status()
                routes[f"u{n:07d}{fresh}"] = r.json()["route"]
        seconds = int(args.minutes * 60)
        wrk = subprocess.Popen(["wrk", "-t2", "-c4", f"-d{seconds}s", "-s", str(script),
                                f"http://127.0.0.1:{args.port}"], env=env,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        proc = psutil.Process(server.pid)
        samples = []
        t0 = time.monotonic()
        while wrk.poll() is None:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True))
            samples.append((round(time.monotonic() - t0, 1), round(rss / 2**20, 1)))
            time.sleep(5)
        out = wrk.stdout.read() if wrk.stdout else ""
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = json.loads(out[out.index("JSON ") + 5 :].splitlines()[0])
    rss = [m for _, m in samples]
    first_min = [m for t, m in samples if t <= 60]
    last_min = [m for t, m in samples if t >= samples[-1][0] - 60]
    record("serve", {
        "minutes": args.minutes, "connections": 4, "live_share": 0.2, "wrk": summary,
        "warm_up_routes": routes,
        "rss_mib_first": rss[0], "rss_mib_max": max(rss), "rss_mib_last": rss[-1],
        "rss_mib_mean_first_minute": round(sum(first_min) / len(first_min), 1),
        "rss_mib_mean_last_minute": round(sum(last_min) / len(last_min), 1),
        "rss_samples_s_mib": samples,
    })  # fmt: skip


# --- the capacity plan ------------------------------------------------------------------

#: Measured elsewhere (benchmarks/RESULTS.md), per 2-core host with one API worker:
#: ingestion over HTTP into PostgreSQL in batches of 1,000 (issue 16 item 3, 3 Dec); the
#: cached-from-Redis path with the lists kept in memory off (a user asking a few times a
#: day seldom finds a copy younger than 30 s) and the live path on PostgreSQL (5 Dec,
#: `benchmarks/serving/run.py --serve-on-postgres --paths redis_cached,live,...`; live
#: items in a worker thread: 812 req/s alone. On the event loop with the reads awaited,
#: the default since, 1.21-1.28x the worker thread in three paired runs on a slower
#: machine and not starved beside cached traffic: the plan keeps the lower figure).
INGEST_EVENTS_PER_S_PER_HOST = 15_099
CACHED_REDIS_RPS_PER_HOST = 3_402
LIVE_RPS_PER_HOST = 812
#: The plan's inputs: the traffic shape is a choice, not a measurement; change these.
PLAN_INPUTS = {
    "users": 10_000_000, "events": 1_000_000_000, "retention_months": 12,
    "peak_to_mean": 10, "daily_active_share": 0.2, "requests_per_active_user_per_day": 20,
    "live_share": 0.1, "target_utilisation": 0.6, "refresh_window_hours": 2,
    "list_length": 50, "training_window_days": 14,
}  # fmt: skip


def stage_plan(args: argparse.Namespace) -> None:
    """10M users / 1B events from the costs measured by the stages above (results.json)
    and the serving and ingestion figures in RESULTS.md; each line keeps its arithmetic."""
    data = json.loads(RESULTS.read_text())
    load, refresh, redis_ = data["load"], data["refresh"], data["redis"]
    train, serial = data["train"], data["serial"]
    p = PLAN_INPUTS
    lines: list[tuple[str, str, float]] = []

    def line(what: str, formula: str, value: float) -> float:
        lines.append((what, formula, value))
        return value

    b_event = load["interactions_bytes_per_event"]
    line(
        "interactions on disk, all (GB)",
        f"{p['events']:,} x {b_event} B",
        p["events"] * b_event / 1e9,
    )
    per_month = line(
        "events per monthly partition",
        f"{p['events']:,} / {p['retention_months']}",
        p["events"] / p["retention_months"],
    )
    line("one monthly partition (GB)", f"{per_month:,.0f} x {b_event} B", per_month * b_event / 1e9)
    mean_eps = line(
        "events/s, mean", f"{per_month:,.0f} / (30 x 86,400)", per_month / (30 * 86_400)
    )
    peak_eps = line(
        "events/s, peak", f"{mean_eps:,.1f} x {p['peak_to_mean']}", mean_eps * p["peak_to_mean"]
    )
    line(
        "API hosts for ingestion at peak",
        f"{peak_eps:,.0f} / {INGEST_EVENTS_PER_S_PER_HOST:,}",
        peak_eps / INGEST_EVENTS_PER_S_PER_HOST,
    )
    copy_rps = load["interactions_copy_rows_per_second"]
    line(
        "hours to bulk-load one month (COPY, one stream)",
        f"{per_month:,.0f} / {copy_rps:,} / 3,600",
        per_month / copy_rps / 3600,
    )
    window = train["window"]
    train_events = line(
        "training-window events",
        f"{p['events']:,} x {p['training_window_days']} / ({p['retention_months']} x 30)",
        p["events"] * p["training_window_days"] / (p["retention_months"] * 30),
    )
    line(
        "training minutes (one process, linear in events)",
        f"{train['train_seconds']} s x {train_events:,.0f} / {window['interactions']:,} / 60",
        train["train_seconds"] * train_events / window["interactions"] / 60,
    )
    cpu_ms = refresh["cpu_ms_per_user"]
    cpu_h = line(
        "refresh CPU-hours (workers + PostgreSQL)",
        f"{p['users']:,} x {cpu_ms} ms / 3.6e6",
        p["users"] * cpu_ms / 3.6e6,
    )
    line(
        "Ray + PostgreSQL cores for the nightly refresh",
        f"{cpu_h:,.1f} h / {p['refresh_window_hours']} h / {p['target_utilisation']}",
        cpu_h / p["refresh_window_hours"] / p["target_utilisation"],
    )
    groups = refresh["memory"]["cpu_seconds_by_group"]
    pg_share = groups.get("postgresql", 0.0) / max(refresh["memory"]["cpu_seconds_total"], 1e-9)
    line(
        "of which PostgreSQL's share",
        f"{groups.get('postgresql', 0)} / {refresh['memory']['cpu_seconds_total']} CPU-s",
        pg_share,
    )
    b_cache = refresh["cache"]["bytes_per_user"]
    line(
        "database ranking cache (GB)", f"{p['users']:,} x {b_cache:,} B", p["users"] * b_cache / 1e9
    )
    b_redis = redis_["bytes_per_list"]
    line(
        "Redis, every user's list (GB)",
        f"{p['users']:,} x {b_redis:,} B",
        p["users"] * b_redis / 1e9,
    )
    active = p["users"] * p["daily_active_share"]
    line(
        "Redis, daily-active users' lists only (GB)",
        f"{active:,.0f} x {b_redis:,} B",
        active * b_redis / 1e9,
    )
    rps = line(
        "recommendation requests/s, peak",
        f"{active:,.0f} x {p['requests_per_active_user_per_day']} / 86,400 x {p['peak_to_mean']}",
        active * p["requests_per_active_user_per_day"] / 86_400 * p["peak_to_mean"],
    )
    live = p["live_share"]
    host = line(
        "requests/s one 2-core API host serves (mix)",
        f"1 / ({1 - live} / {CACHED_REDIS_RPS_PER_HOST:,} + {live} / {LIVE_RPS_PER_HOST})",
        1 / ((1 - live) / CACHED_REDIS_RPS_PER_HOST + live / LIVE_RPS_PER_HOST),
    )
    line(
        "API hosts behind the load balancer (+1 spare)",
        f"ceil({rps:,.0f} / ({host:,.0f} x {p['target_utilisation']})) + 1",
        math.ceil(rps / (host * p["target_utilisation"])) + 1,
    )
    line(
        "serial refresh of 10M users, one process (hours)",
        f"{p['users']:,} x {serial['block_scorer_ms_per_user']} ms / 3.6e6",
        p["users"] * serial["block_scorer_ms_per_user"] / 3.6e6,
    )
    record(
        "plan",
        {
            "inputs": p,
            "lines": [{"what": w, "arithmetic": f, "value": round(v, 3)} for w, f, v in lines],
        },
    )
    for what, formula, value in lines:
        print(f"| {what} | {formula} | {value:,.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--pg-data", type=Path, default=Path("/tmp/scale16/pg"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scale16"))
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reuse-snapshot", action="store_true")
    parser.add_argument("--config", type=Path, default=None, help="two-tower hyperparameters")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--chunk-users", type=int, default=None, help="users per Ray call")
    parser.add_argument("--refresh-users", type=int, default=None, help="only the first N")
    parser.add_argument("--sample", type=int, default=5000, help="serial refresh sample")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8751)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:56382/0")
    args = parser.parse_args()
    STAGES[args.stage](args)


STAGES: dict[str, Callable[[argparse.Namespace], None]] = {
    "load": stage_load, "train": stage_train, "refresh": stage_refresh,
    "serial": stage_serial, "redis": stage_redis, "serve": stage_serve, "plan": stage_plan,
}  # fmt: skip

if __name__ == "__main__":
    main()
