"""Two-tower training time and quality on MovieLens 100K (RecBole protocol), per device.

    python benchmarks/movielens/two_tower_timing.py PATH [--device cpu|cuda|auto] [--epochs N]

Used to time training on a GPU against this machine's CPU; prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import time

from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.data.splits import recbole_split
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet
from matchwise.models.two_tower import TwoTowerRecommender


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    frame = ratings_frame(read_movielens(args.path))
    train_f, valid_f, test_f = recbole_split(frame, seed=2020)
    users = frame["user_id"].unique()
    items = frame["item_id"].unique()
    train, valid, test = (InteractionSet.from_frame(f, users, items)
                          for f in (train_f, valid_f, test_f))  # fmt: skip
    overrides = {"device": args.device}
    if args.epochs:
        overrides["epochs"] = args.epochs
    model = TwoTowerRecommender(**overrides)
    started = time.perf_counter()
    model.fit(train, valid)
    seconds = time.perf_counter() - started
    metrics = evaluate_full_ranking(model, train, test, exclude=valid)
    print(json.dumps({"device": str(model.device_), "train_seconds": round(seconds, 1),
                      "epochs_run": len(model.history_), "ndcg@10": round(metrics["ndcg@10"], 4),
                      "recall@10": round(metrics["recall@10"], 4)}))  # fmt: skip


if __name__ == "__main__":
    main()
