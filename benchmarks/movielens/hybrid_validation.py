"""How the benchmarked hybrid was chosen: on validation only, by a 2-fold split of users.

    .venv/bin/python benchmarks/movielens/hybrid_validation.py [MOVIELENS_FOLDER]
        [--seed 2020] [--configs '[{...}, ...]'] [--out FILE]

The benchmark's hybrid (``HYBRID`` in ``src/matchwise/bench/movielens.py``) learns its
ranker from the validation positives, so the benchmark's validation figure cannot choose
between hybrids. Here the validation users are split in two halves (seeded): the hybrid
is fitted on train with one half's validation positives as ranker labels and scored on
the other half's validation positives (full ranking, training items masked), then the
other way round. Each configuration (``HYBRID`` overridden by one entry of
``--configs``) gets the users' mean validation NDCG@10 over both halves, next to EASE's
with the λ that validation picks from the benchmark's grid on the same users. Test
figures are never computed here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy: one BLAS thread
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from matchwise.bench.movielens import EASE_GRID, HYBRID, prepare_protocol  # noqa: E402
from matchwise.data.movielens import ratings_frame, read_movielens  # noqa: E402
from matchwise.metrics import per_user_full_ranking  # noqa: E402
from matchwise.models.ease import EASERecommender  # noqa: E402
from matchwise.models.hybrid import HybridRecommender  # noqa: E402

DEFAULT_DATA = "/work/shared/data/movielens-100k"
K = 10


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and key in out else value
    return out


def run(path: str, seed: int, configs: list[dict[str, Any]], side: bool = False) -> dict[str, Any]:
    bundle = read_movielens(path)
    train, valid, _ = prepare_protocol(ratings_frame(bundle), "recbole", seed)
    if side:  # genres as tags and category, user age, for the ranker's features
        train.item_features, train.user_features = bundle.items, bundle.users
    users = np.unique(valid.users)
    half = np.random.default_rng(seed).random(len(users)) < 0.5
    folds = [users[half], users[~half]]

    def part(keep: np.ndarray) -> Any:
        return valid.subset(np.isin(valid.users, keep))

    metric = f"ndcg@{K}"
    ease = {}
    for l2 in EASE_GRID:
        model = EASERecommender(l2=l2).fit(train)
        ease[l2] = float(np.mean(per_user_full_ranking(model, train, valid, k=K)[metric]))
    best_l2 = max(ease, key=ease.__getitem__)
    out: dict[str, Any] = {
        "seed": seed,
        "side_features": side,
        "ease": {"l2": best_l2, metric: ease[best_l2]},
        "configs": [],
    }
    for override in configs:
        params = _merge(HYBRID, override)
        started = time.perf_counter()
        values = []
        for labelled, scored in (folds, folds[::-1]):
            model = HybridRecommender(**params).fit(train, part(labelled))
            values.append(per_user_full_ranking(model, train, part(scored), k=K)[metric])
        score = float(np.mean(np.concatenate(values)))
        seconds = time.perf_counter() - started
        row = {"override": override, metric: score, "vs_ease": score / ease[best_l2] - 1,
               "seconds": seconds}  # fmt: skip
        print(json.dumps(row), flush=True)
        out["configs"].append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--configs", default="[{}]", help="JSON list of overrides of HYBRID")
    parser.add_argument("--side", action="store_true", help="attach genres and demographics")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = run(args.path, args.seed, json.loads(args.configs), args.side)
    print(f"EASE l2={result['ease']['l2']:g}: validation NDCG@{K} "
          f"{result['ease'][f'ndcg@{K}']:.4f}")  # fmt: skip
    for row in result["configs"]:
        print(f"{json.dumps(row['override'])}: {row[f'ndcg@{K}']:.4f} ({row['vs_ease']:+.1%})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
