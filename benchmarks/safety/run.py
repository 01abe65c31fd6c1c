"""Safety classifier benchmark: per-label held-out scores and the TF-IDF + LR spam baseline.

Run from the repository root::

    .venv/bin/python benchmarks/safety/run.py [--no-cache] [--save DIR] [--synthetic-n 3000]

Trains every head with :func:`matchwise.models.safety.train_safety` and writes
``benchmarks/safety/results.json``. Sentence embeddings are cached in ``var/text-cache``
(content-hashed) so a rerun measures the heads, not the embedding model; ``--no-cache``
embeds from scratch. Held-out splits and what each figure means are in the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from matchwise.features.text import TextEmbedder  # noqa: E402
from matchwise.models.safety import LABELS, train_safety  # noqa: E402


def _row(name: str, m: dict) -> str:
    return (
        f"{name:<44} {m['precision']:>9.4f} {m['recall']:>7.4f} {m['f1']:>7.4f} "
        f"{m['auc']:>7.4f} {m['threshold']:>6.3f} {m['n']:>6d} {m['n_positive']:>5d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="embed without the disk cache")
    parser.add_argument("--save", type=Path, help="also save the trained classifier here")
    parser.add_argument("--synthetic-n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    embedder = TextEmbedder(None if args.no_cache else ROOT / "var" / "text-cache")
    started = time.perf_counter()
    classifier, metrics = train_safety(
        embed=embedder.embed, synthetic_n=args.synthetic_n, seed=args.seed
    )
    wall = time.perf_counter() - started
    if args.save:
        classifier.save(args.save)

    header = (
        f"{'label / data':<44} {'precision':>9} {'recall':>7} {'f1':>7} {'auc':>7} "
        f"{'thr':>6} {'n':>6} {'pos':>5}"
    )
    print(header)
    print("-" * len(header))
    for label in LABELS:
        print(_row(label, metrics["labels"][label]))
    for name, m in metrics["baseline"].items():
        print(_row(f"baseline: {name}", m))
    for name, m in metrics["extra"].items():
        print(_row(f"extra: {name}", m))
    print(f"spam F1 minus baseline F1: {metrics['spam_f1_minus_baseline_f1']:+.4f}")
    print("training seconds:", {k: round(v, 1) for k, v in metrics["training_seconds"].items()})

    result = {
        "benchmark": "safety classifier",
        "command": "python benchmarks/safety/run.py" + (" --no-cache" if args.no_cache else ""),
        "embedding_cache": not args.no_cache,
        "texts_embedded_by_model": embedder.texts_encoded,
        "wall_seconds": wall,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        **metrics,
    }
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
