"""The HNSW search breadth (``ef``) against recall: what a live list's search costs and
what it finds, next to brute force over the same allowed items (issue 16 item 2).

A served list asks the index for its top ``k`` among the items that pass the request's
filters (``HNSWIndex.query`` with ``allowed``): the search breadth is ``max(ef, what the
oversampling asks for)``, so ``ef`` sets the cost of every live list and of every batch
refresh. For each breadth this records recall@k against the exact top ``k`` over the same
allowed items and the CPU µs a query (one thread, one query at a time, as served):

- ``model``: the two-tower of the serving benchmark's store (``--workdir``, made by
  ``benchmarks/serving/run.py``; 10,000 events), each sampled user's own vector and what
  the live path allows them (events not yet started, minus those they decided on);
- ``clustered``: embedding-like synthetic vectors (clusters on the unit sphere, as
  ``tests/test_index.py``), 2,000 to 100,000 items of 128 dimensions (and 10,000 of 64),
  with no filter and with half the items allowed at random.

Recall counts a found item as right when it scores at least the exact k-th score (items
with one vector tie; either is right). The brute-force row (``ef``: "exact") is what a
catalogue under ``HNSWIndex.exact_work`` numbers gets instead of the graph.

    .venv/bin/python benchmarks/index/run.py --workdir /tmp/serving-bench --out results.json

On your own store's active two-tower (random users, the not-yet-started filter):

    .venv/bin/python benchmarks/index/run.py --database-url URL --artifact-root DIR \
        --no-synthetic
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from matchwise.actions import DECIDED_ACTIONS
from matchwise.db import queries
from matchwise.index import ExactIndex, HNSWIndex
from matchwise.runtime import Runtime
from matchwise.serve.state import serving_state
from matchwise.serve.tiers import held_reads
from matchwise.settings import Settings

BREADTHS = (40, 64, 100, 150, 200, 300)
SYNTHETIC_SETS = ((2_000, 128), (5_000, 128), (10_000, 64), (10_000, 128), (100_000, 128))


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    points = centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _recall(
    found: np.ndarray, truth: np.ndarray, vectors: np.ndarray, query: np.ndarray
) -> tuple[int, int]:
    """Found items scoring at least the exact k-th score, of k: items with the same vector
    (the same features, no id of their own) tie, and either of them is a right answer."""
    expected = truth[truth >= 0]
    if not len(expected):
        return 0, 0
    cut = float(vectors[expected[-1]] @ query[0]) - 1e-6
    found = found[found >= 0]
    return int((vectors[found] @ query[0] >= cut).sum()), len(expected)


def measure(
    vectors: np.ndarray,
    cases: list[tuple[np.ndarray, np.ndarray | None]],
    k: int,
    breadths: tuple[int, ...],
) -> list[dict[str, Any]]:
    """Recall@k and µs a query for each breadth of the graph search, over ``cases``
    (query, allowed mask), and brute force's µs a query (recall 1) as the first row."""
    index = HNSWIndex(exact_work=0).build(vectors)  # the graph, whatever the size
    exact = ExactIndex().build(vectors)
    exact.query(cases[0][0], k, cases[0][1])  # warm
    began = time.process_time()
    truths = [exact.query(q, k, allowed)[0][0] for q, allowed in cases]
    spent = time.process_time() - began
    out = [{"ef": "exact", "k": k, f"recall_at_{k}": 1.0, "worst_query_recall": 1.0,
            "cpu_us_per_query": round(1e6 * spent / len(cases), 1)}]  # fmt: skip
    for ef in breadths:
        index.ef = ef
        index.index_.set_ef(ef)
        index.query(cases[0][0], k, allowed=cases[0][1])  # warm
        began = time.process_time()
        found = [index.query(q, k, allowed=allowed)[0][0] for q, allowed in cases]
        spent = time.process_time() - began
        hits = [_recall(f, t, vectors, q)
                for f, t, (q, _) in zip(found, truths, cases, strict=True)]  # fmt: skip
        recall = sum(h for h, _ in hits) / max(sum(n for _, n in hits), 1)
        worst = min((h / n for h, n in hits if n), default=1.0)
        out.append({"ef": ef, "k": k, f"recall_at_{k}": round(recall, 5),
                    "worst_query_recall": round(worst, 3),
                    "cpu_us_per_query": round(1e6 * spent / len(cases), 1)})  # fmt: skip
    return out


def model_cases(
    settings: Settings, n: int, seed: int, benchmark_users: bool
) -> tuple[np.ndarray, list, dict[str, Any]]:
    """The store's active two-tower: item vectors, and (user vector, allowed mask) for
    ``n`` random users the model knows (drawn with repeats). With ``benchmark_users`` (the
    serving benchmark's store, users u0..u9999) each mask is the live path's own (events
    not yet started, minus the user's decided ones); otherwise events not yet started."""
    runtime = Runtime.open(settings, migrate=False)
    try:
        state = serving_state(runtime)
        with runtime.read_session() as session:
            models = state.serving(session, "warm")
            catalogue = state.catalogue(session)
        loaded = next((m for m in models if m.index is not None), None)
        if loaded is None or loaded.user_vectors is None or not len(loaded.user_vectors):
            raise SystemExit("no active two-tower model with users in this store")
        rows = loaded.catalogue_rows(catalogue)
        passes = catalogue.filter_mask(datetime.now(UTC))
        base = (rows >= 0) & passes[np.maximum(rows, 0)]
        about = {"model": loaded.version, "items": int(len(rows)),
                 "allowed_share": round(float(base.mean()), 3),
                 "dim": int(loaded.item_vectors.shape[1])}  # fmt: skip
        rng = random.Random(seed)
        if not benchmark_users:
            users = [rng.randrange(len(loaded.user_vectors)) for _ in range(n)]
            return (
                loaded.item_vectors,
                [(loaded.user_vectors[u : u + 1], base) for u in users],
                about,
            )
        cases = []
        while len(cases) < n:
            user_id = f"u{rng.randrange(10_000)}"
            u = loaded.user_row(settings.hash_secret, user_id)
            if u is None:
                continue
            _, history = queries.serving_inputs(held_reads(runtime), user_id)
            allowed = base.copy()
            for item in history.items_with(DECIDED_ACTIONS):
                j = loaded.trained.item_index.get(item)
                if j is not None:
                    allowed[j] = False
            cases.append((loaded.user_vectors[u : u + 1], allowed))
        return loaded.item_vectors, cases, about
    finally:
        runtime.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="the serving benchmark's workdir")
    parser.add_argument("--database-url", help="instead: your own store (its active two-tower)")
    parser.add_argument("--artifact-root", help="with --database-url: its artifact root")
    parser.add_argument("--no-synthetic", action="store_true", help="the model's vectors only")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "command": "python " + " ".join(sys.argv),
        "default_ef": HNSWIndex().ef,
        "sets": [],
    }
    rng = np.random.default_rng(args.seed)
    settings = None
    if args.workdir is not None:
        settings = Settings(database_url=f"sqlite:///{args.workdir / 'bench.db'}",
                            artifact_root=str(args.workdir / "artifacts"))  # fmt: skip
    elif args.database_url is not None:
        given = {"artifact_root": args.artifact_root} if args.artifact_root else {}
        settings = Settings(database_url=args.database_url, **given)
    if settings is not None:
        vectors, cases, about = model_cases(settings, args.queries, args.seed,
                                            benchmark_users=args.workdir is not None)  # fmt: skip
        for k in (10, 50):
            report["sets"].append({"set": "model", **about,
                                   "rows": measure(vectors, cases, k, BREADTHS)})  # fmt: skip
            print(json.dumps(report["sets"][-1]), flush=True)
    synthetic = () if args.no_synthetic else SYNTHETIC_SETS
    for n, dim in synthetic:
        vectors = _clustered(n, dim, seed=1)
        users = _clustered(args.queries, dim, seed=2)
        for share in (1.0, 0.5):
            cases = [(users[i : i + 1], None if share == 1.0 else rng.random(n) < share)
                     for i in range(len(users))]  # fmt: skip
            report["sets"].append(
                {
                    "set": "clustered",
                    "items": n,
                    "allowed_share": share,
                    "dim": dim,
                    "rows": measure(vectors, cases, 10, BREADTHS),
                }
            )
            print(json.dumps(report["sets"][-1]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
