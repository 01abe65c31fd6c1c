"""EASE alone vs the hybrid (generators + LightGBM re-ranker) on MovieLens, RecBole protocol.

    .venv/bin/python benchmarks/movielens/hybrid_experiment.py [/path/to/movielens-100k]
        [--seed 2020] [--json]

One split (ratings >= 3, 10-core, seeded random 8:1:1 per user, full ranking; train and
validation items masked at test), two ways to use it, each compared on equal data:

- ``train``: models fit on train only; validation picks EASE's λ and measures both.
  The hybrid learns its ranker from positives hidden inside train (``label_source=
  "holdout"``), so validation stays unseen.
- ``train+valid``: the final models see train + validation. EASE refits with the λ chosen
  above; the hybrid learns its ranker with validation positives as labels and refits its
  generators on train + validation (``label_source="validation"``). Only test can judge.

The data folder is read in place, never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy: one BLAS thread
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from matchwise.bench.movielens import prepare_protocol
from matchwise.data.movielens import ratings_frame, read_movielens  # noqa: E402
from matchwise.metrics import evaluate_full_ranking  # noqa: E402
from matchwise.models.base import InteractionSet  # noqa: E402
from matchwise.models.ease import EASERecommender  # noqa: E402
from matchwise.models.hybrid import HybridRecommender, concat_interactions  # noqa: E402

DEFAULT_DATA = "/work/shared/data/movielens-100k"
EASE_GRID = (100.0, 200.0, 300.0, 400.0, 600.0)
K = 10


def _ndcg(model, train: InteractionSet, test: InteractionSet, exclude=None) -> float:
    return evaluate_full_ranking(model, train, test, k=K, exclude=exclude)[f"ndcg@{K}"]


def run(path: str, seed: int = 2020, hybrid_params: dict | None = None) -> dict:
    """Every number of the comparison, as one JSON-able dict."""
    bundle = read_movielens(path)
    train, valid, test = prepare_protocol(ratings_frame(bundle), "recbole", seed=seed)
    for part in (train, valid, test):  # genres as tags/category, demographics for users
        part.item_features, part.user_features = bundle.items, bundle.users
    full = concat_interactions(train, valid)
    out: dict = {"dataset": bundle.name, "users": train.n_users, "items": train.n_items,
                 "seed": seed, "k": K}  # fmt: skip

    # EASE: λ tuned on validation
    grid = {}
    for l2 in EASE_GRID:
        grid[l2] = _ndcg(EASERecommender(l2=l2).fit(train), train, valid)
    l2 = max(grid, key=grid.get)
    started = time.perf_counter()
    ease = EASERecommender(l2=l2).fit(train)
    ease_seconds = time.perf_counter() - started
    out["ease"] = {
        "l2": l2,
        "valid_ndcg": grid[l2],
        "test_ndcg": _ndcg(ease, train, test, exclude=valid),
        "fit_seconds": ease_seconds,
    }
    ease_full = EASERecommender(l2=l2).fit(full)
    out["ease_train+valid"] = {"l2": l2, "test_ndcg": _ndcg(ease_full, full, test)}

    params = {"ease_l2": l2, "seed": 0, **(hybrid_params or {})}
    for name, extra, data in (
        ("hybrid", {"label_source": "holdout"}, None),
        ("hybrid_train+valid", {"label_source": "validation"}, valid),
    ):
        started = time.perf_counter()
        model = HybridRecommender(**{**params, **extra}).fit(train, data)
        seconds = time.perf_counter() - started
        result = {"fit_seconds": seconds, "params": model.get_params()}
        if data is None:
            result["valid_ndcg"] = _ndcg(model, train, valid)
            result["test_ndcg"] = _ndcg(model, train, test, exclude=valid)
        else:
            result["test_ndcg"] = _ndcg(model, full, test)
        metrics = model.training_metrics
        result["ranker"] = metrics.get("ranker", {})
        result["candidate_recall"] = metrics.get("candidate_recall")
        importance = metrics.get("feature_importance", {})
        result["top_features"] = sorted(importance, key=importance.get, reverse=True)[:8]
        out[name] = result
    return out


def _table(result: dict) -> str:
    rows = [
        ("train only", "EASE", result["ease"]),
        ("train only", "hybrid", result["hybrid"]),
        ("train+valid", "EASE", result["ease_train+valid"]),
        ("train+valid", "hybrid", result["hybrid_train+valid"]),
    ]
    lines = [
        f"{result['dataset']}: {result['users']} users, {result['items']} items, seed "
        f"{result['seed']}, EASE l2={result['ease']['l2']:g}",
        f"{'data':<12} {'model':<8} {'valid NDCG@10':>14} {'test NDCG@10':>13} {'fit s':>7}",
    ]
    for data, model, r in rows:
        valid = f"{r['valid_ndcg']:.4f}" if "valid_ndcg" in r else "-"
        seconds = f"{r['fit_seconds']:.1f}" if "fit_seconds" in r else "-"
        lines.append(f"{data:<12} {model:<8} {valid:>14} {r['test_ndcg']:>13.4f} {seconds:>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--params", default="{}", help="HybridRecommender overrides as JSON")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.path, args.seed, json.loads(args.params))
    print(json.dumps(result, indent=2, default=str) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
