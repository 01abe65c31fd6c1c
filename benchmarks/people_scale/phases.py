"""Where a person's people refresh goes (issue 21 item 2): client CPU and PostgreSQL's CPU
per step of :class:`~matchwise.serve.people_refresh.PeopleRefresher`, a person at a time.

One process opens the refresher on the store the environment names (as the Ray actors do),
refreshes a seeded sample of people (the first ``--warm`` as a warm-up, not counted) and
times each step by wrapping it: the block's reads (``profiles_and_histories``), the
hidden-candidate check, the cache write (delete + COPY), the ranking (``_candidates``: the
people index's candidates and the model's signals, a person at a time; ``_score``: the
block's other signals and blend at once) and the lists' finishing (reasons).
PostgreSQL's CPU is the sum over its processes (psutil) before and after each database
step, so run it on a store no one else is using. Prints one JSON object, ms a person.

    MATCHWISE_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:55446/people1m \\
    MATCHWISE_DOMAIN=people MATCHWISE_ARTIFACT_ROOT=/tmp/people21/var/artifacts \\
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/people_scale/phases.py --sample 3200

(the store and the trained people model of ``run.py --load-million`` / ``--million-train``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

import matchwise.serve.people_refresh as people_refresh
from matchwise.features.people_index import PeopleIndex
from matchwise.runtime import Runtime
from matchwise.serve.refresh import users_to_refresh
from matchwise.settings import load_settings

#: Steps that talk to the database: PostgreSQL's CPU is sampled around them.
DATABASE_STEPS = ("profiles_and_histories", "hidden_candidates", "write_caches")
#: Steps in Python only.
RANKING_STEPS = ("_person", "_model_signals", "_score", "_finish")


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on this machine so far."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        try:
            if (process.info["name"] or "").startswith("postgres"):
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def timed(step: str, function: Callable[..., Any], spent: dict[str, list[float]],
          database: bool) -> Callable[..., Any]:  # fmt: skip
    """``function``, adding its wall, client CPU and (``database``) PostgreSQL CPU to
    ``spent[step]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        pg = postgres_cpu() if database else 0.0
        try:
            return function(*args, **kwargs)
        finally:
            took = spent[step]
            took[0] += time.perf_counter() - wall
            took[1] += time.process_time() - cpu
            if database:
                took[2] += postgres_cpu() - pg

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=3200, help="people refreshed in all")
    parser.add_argument("--warm", type=int, default=200, help="of them, not counted")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--window", type=int, default=1000, help="consecutive people each")
    args = parser.parse_args()
    runtime = Runtime.open(load_settings(), migrate=False)
    try:
        started = time.process_time()
        refresher = people_refresh.PeopleRefresher.open(runtime)
        open_cpu = time.process_time() - started
        people = users_to_refresh(runtime, None)
        # windows of consecutive people in a full refresh's order (neighbourhood by
        # neighbourhood, as run.py's sampled refresh takes them), evenly spaced
        ordered = people_refresh.people_by_place(runtime, people)
        windows = max(1, args.sample // args.window)
        step = len(ordered) // windows
        shift = int(np.random.default_rng(args.seed).integers(0, max(step - args.window, 1)))
        chosen = [u for w in range(windows)
                  for u in ordered[w * step + shift : w * step + shift + args.window]]  # fmt: skip
        spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for step in DATABASE_STEPS:
            owner = people_refresh.queries if step == "hidden_candidates" else people_refresh
            setattr(owner, step, timed(step, getattr(owner, step), spent, True))
        for step in RANKING_STEPS:
            method = getattr(people_refresh.PeopleRefresher, step)
            setattr(people_refresh.PeopleRefresher, step, timed(step, method, spent, False))
        walk = timed("candidates_of", PeopleIndex.candidates_and_distances_of, spent, False)
        PeopleIndex.candidates_and_distances_of = walk  # type: ignore[method-assign]
        refresher.refresh(chosen[: args.warm])
        spent.clear()
        wall, cpu, pg = time.perf_counter(), time.process_time(), postgres_cpu()
        stats = refresher.refresh(chosen[args.warm :])
        counted = max(len(chosen) - args.warm, 1)
        per = 1000.0 / counted
        result = {
            "people": counted,
            "rows": stats["rows"],
            "open_cpu_seconds": round(open_cpu, 1),
            "wall_ms_per_person": round(per * (time.perf_counter() - wall), 3),
            "cpu_ms_per_person": round(per * (time.process_time() - cpu), 3),
            "postgresql_cpu_ms_per_person": round(per * (postgres_cpu() - pg), 3),
            "steps": {
                step: {
                    "wall_ms": round(per * w, 3),
                    "cpu_ms": round(per * c, 3),
                    "postgresql_cpu_ms": round(per * p, 3),
                }
                for step, (w, c, p) in spent.items()
            },  # fmt: skip
            "peak_rss_mib": stats["peak_rss_mib"],
            "note": "client CPU includes psutil's sampling around the database steps",
        }
    finally:
        runtime.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
