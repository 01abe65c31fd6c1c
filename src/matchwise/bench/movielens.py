"""MovieLens quality benchmark: matchwise's models against implicit's ALS and BPR.

Protocol ``recbole`` reproduces RecBole's standard setting so numbers compare with papers:
ratings >= 3 become positives, an iterative 10-core filter, a seeded random 8:1:1 split of
each user's interactions, full ranking over every item (no sampled negatives) with the
user's training *and* validation items masked at test time, hyperparameters chosen by
validation NDCG@k. As in RecBole, the chosen model is trained on the training part only
(not retrained on train + validation) before it is scored on the test part. Every model
is fitted as ``matchwise train`` fits it, with the validation part (the two-tower
early-stops on it), so the benchmark measures what users get. Protocol
``temporal`` keeps the same filtering but splits each user's interactions in time order,
closer to what production sees.

Tuning is equal and on validation only: every model with hyperparameters gets the same
budget, :data:`TUNING_BUDGET` configurations (its grid in :data:`MODELS`, which holds
its defaults; popularity has nothing to tune), and the configuration with the best
validation NDCG@k is the one scored on test. The result records every configuration's
validation figure and the choice.

Models are looked up by name in :data:`MODELS`; :func:`register_model` adds one (a
factory taking a params dict, and its grid), which is how two_tower or the ranker
pipeline join later.

Rankings are cut with ties in item-id order
(:func:`~matchwise.metrics.per_user_full_ranking`), so two runs give the same lists and
the same figures, and the result carries its provenance (seed, data hash, package
versions, git commit: :mod:`matchwise.bench.provenance`).

Run ``python -m matchwise.bench.movielens PATH --protocol recbole`` (see
``benchmarks/movielens/run.sh``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from matchwise.bench.provenance import provenance
from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.data.splits import recbole_split
from matchwise.errors import InvalidInput
from matchwise.metrics import per_user_full_ranking
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.catalog import model_class
from matchwise.models.ease import EASERecommender
from matchwise.models.peers import ImplicitALSRecommender, ImplicitBPRRecommender
from matchwise.models.popularity import PopularityRecommender

__all__ = [
    "MODELS",
    "PROTOCOLS",
    "TUNING_BUDGET",
    "BenchmarkModel",
    "param_grid",
    "prepare_protocol",
    "register_model",
    "render_table",
    "run_movielens_benchmark",
    "tune_and_evaluate",
]

log = logging.getLogger(__name__)

PROTOCOLS = ("recbole", "temporal")
DEFAULT_SEED = 2020  # RecBole's default seed
#: Configurations each model with hyperparameters may try on validation.
TUNING_BUDGET = 6


def param_grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Every combination of the given axes, e.g. ``param_grid(l2=[1, 2], k=[3])``."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


@dataclass(frozen=True)
class BenchmarkModel:
    """How the benchmark builds one model: ``factory(params)`` for each params in ``grid``."""

    factory: Callable[[dict[str, Any]], Recommender]
    grid: list[dict[str, Any]]


#: name -> model and grid. Every grid with hyperparameters holds :data:`TUNING_BUDGET`
#: configurations and includes the model's defaults (or the choice the earlier, larger
#: peer grids made on validation). Anything not in a grid is the model's default, as
#: ``matchwise train`` would use it. implicit runs single-threaded so timings compare.
MODELS: dict[str, BenchmarkModel] = {
    "popularity": BenchmarkModel(lambda p: PopularityRecommender(**p), [{}]),
    "implicit_bpr": BenchmarkModel(
        lambda p: ImplicitBPRRecommender(num_threads=1, random_state=DEFAULT_SEED, **p),
        param_grid(
            factors=[64],
            learning_rate=[0.005, 0.01, 0.05],
            regularization=[0.001, 0.01],
            iterations=[50],
        ),
    ),
    "implicit_als": BenchmarkModel(
        lambda p: ImplicitALSRecommender(num_threads=1, random_state=DEFAULT_SEED, **p),
        param_grid(
            factors=[128],
            regularization=[10.0, 50.0, 100.0],
            alpha=[3.0, 10.0],
            iterations=[20],
        ),
    ),
    "ease": BenchmarkModel(
        lambda p: EASERecommender(**p),
        param_grid(l2=[50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]),
    ),
    # the two-tower early-stops on validation like `matchwise train two_tower`
    "two_tower": BenchmarkModel(
        lambda p: _two_tower(p), param_grid(lr=[1e-3, 3e-3], temperature=[0.05, 0.1, 0.2])
    ),
    # what the hybrid's defaults were once picked by looking at test figures: chosen here
    # on validation, with the same budget as everyone else
    "hybrid": BenchmarkModel(
        lambda p: _hybrid(p),
        [
            {"ranker": {"objective": objective}, "blend": blend}
            for objective in ("binary", "lambdarank")
            for blend in (0.0, 1.0, 2.0)
        ],
    ),
}


def _two_tower(params: Mapping[str, Any]) -> Recommender:
    """From the catalogue, so torch loads only when the two-tower runs."""
    return model_class("two_tower")(**params)


def _hybrid(params: Mapping[str, Any]) -> Recommender:
    return model_class("hybrid")(**params)


def register_model(
    name: str,
    factory: Callable[[dict[str, Any]], Recommender],
    grid: Sequence[Mapping[str, Any]] = ({},),
) -> None:
    """Make ``name`` available to :func:`run_movielens_benchmark` (replacing any earlier one)."""
    if not grid:
        raise InvalidInput(f"the grid of {name!r} is empty: give at least one params dict")
    MODELS[name] = BenchmarkModel(factory, [dict(params) for params in grid])


# --- data -----------------------------------------------------------------------------------
def prepare_protocol(
    frame: pd.DataFrame, protocol: str = "recbole", seed: int = DEFAULT_SEED
) -> tuple[InteractionSet, InteractionSet, InteractionSet]:
    """Split a ratings frame by ``protocol`` into train/validation/test on one id universe."""
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    order = "random" if protocol == "recbole" else "temporal"
    parts = recbole_split(frame, seed=seed, order=order)
    kept = pd.concat(parts)
    if kept.empty:
        raise InvalidInput("no interactions survive the protocol's filters (ratings >= 3, 10-core)")
    user_ids = np.sort(kept["user_id"].unique())
    item_ids = np.sort(kept["item_id"].unique())
    train, valid, test = (InteractionSet.from_frame(p, user_ids, item_ids) for p in parts)
    return train, valid, test


# --- running ----------------------------------------------------------------------------------
def _fit_measured(
    model: Recommender, train: InteractionSet, valid: InteractionSet | None = None
) -> tuple[float, float]:
    """``model.fit(train, valid)`` as ``matchwise train`` calls it (validation drives early
    stopping where the model has it), returning (seconds, peak MB of Python/NumPy
    allocations during the fit)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    try:
        model.fit(train, valid)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return seconds, max(peak - baseline, 0) / 2**20


#: training_metrics worth keeping (the two-tower's early stopping).
_TRAINING_KEYS = ("epochs_run", "best_epoch")


def tune_and_evaluate(
    spec: BenchmarkModel,
    train: InteractionSet,
    valid: InteractionSet,
    test: InteractionSet,
    k: int = 10,
    on_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Fit every configuration of ``spec.grid``, keep the best validation NDCG@k (the first
    in grid order on a tie), score it on the test part (ties between items ranked by item
    id: :func:`~matchwise.metrics.per_user_full_ranking`). Test figures choose nothing.

    The row records the chosen grid point (``chosen``; ``params``: every constructor
    argument), its validation NDCG@k, and each configuration tried with its validation
    figure and fit time (``configurations``).

    Each configuration is fitted as ``matchwise train`` fits it, ``model.fit(train,
    valid)``: the two-tower early-stops on validation NDCG@10 (``training`` records its
    epochs run and best epoch). ``train_seconds`` and ``peak_memory_mb`` are those of the
    chosen configuration's fit.
    Peak memory comes from :mod:`tracemalloc`: allocations made through Python and NumPy
    (factor matrices, Gram matrices, sparse copies), not native buffers outside them
    (OpenBLAS workspaces, implicit's per-thread scratch), so it is a lower bound.
    """
    metric = f"ndcg@{k}"
    best: tuple[float, Recommender, dict[str, Any], float, float] | None = None
    tried: list[dict[str, Any]] = []
    for params in spec.grid:
        model = spec.factory(dict(params))
        seconds, peak_mb = _fit_measured(model, train, valid)
        score = float(np.mean(per_user_full_ranking(model, train, valid, k=k)[metric]))
        log.info("%s %s: validation %s %.4f (%.2fs)", model.model_type, params, metric, score,
                 seconds)  # fmt: skip
        tried.append(
            {"params": dict(params), f"validation_{metric}": score, "train_seconds": seconds}
        )
        if best is None or score > best[0]:
            best = (score, model, dict(params), seconds, peak_mb)
        if on_step is not None:
            on_step()
    if best is None:
        raise InvalidInput("a benchmark model needs at least one configuration")
    score, model, chosen, seconds, peak_mb = best
    per_user = per_user_full_ranking(model, train, test, k=k, exclude=valid)
    return {
        f"ndcg@{k}": float(np.mean(per_user[f"ndcg@{k}"])),
        f"recall@{k}": float(np.mean(per_user[f"recall@{k}"])),
        f"hit@{k}": float(np.mean(per_user[f"hit@{k}"])),
        f"map@{k}": float(np.mean(per_user[f"map@{k}"])),
        "train_seconds": seconds,
        "peak_memory_mb": peak_mb,
        "params": model.get_params(),
        "chosen": chosen,
        f"validation_{metric}": score,
        "configurations": tried,
        "training": {
            key: model.training_metrics[key]
            for key in _TRAINING_KEYS
            if key in model.training_metrics
        },
    }


def _resolve(
    models: Sequence[str] | Mapping[str, Sequence[Mapping[str, Any]]] | None,
) -> dict[str, BenchmarkModel]:
    """Names (registry grids) or name -> grid overrides, in the caller's order."""
    if models is None:
        return dict(MODELS)
    names = list(models)
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise InvalidInput(f"unknown benchmark model(s) {unknown}; known: {sorted(MODELS)}")
    if isinstance(models, Mapping):
        return {
            name: BenchmarkModel(MODELS[name].factory, [dict(p) for p in models[name]])
            for name in names
        }
    return {name: MODELS[name] for name in names}


def run_movielens_benchmark(
    path: str | Path,
    protocol: str = "recbole",
    k: int = 10,
    models: Sequence[str] | Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    progress: bool = False,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Benchmark ``models`` (registry names, or name -> grid) on a MovieLens folder.

    Returns ``{"dataset", "protocol", "results": {model: {"ndcg@k", "recall@k", "hit@k",
    "map@k", "train_seconds", "peak_memory_mb", "params", "chosen", "validation_ndcg@k",
    "configurations", "training"}}, "tuning", "provenance"}``; the
    provenance (:func:`~matchwise.bench.provenance.provenance`) names the seed, the data's
    hash, package versions and the git commit.
    """
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    specs = _resolve(models)
    bundle = read_movielens(path)
    train, valid, test = prepare_protocol(ratings_frame(bundle), protocol, seed)
    log.info(
        "%s / %s: %d users, %d items, %d/%d/%d interactions",
        bundle.name,
        protocol,
        train.n_users,
        train.n_items,
        len(train),
        len(valid),
        len(test),
    )
    results: dict[str, Any] = {}
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(protocol, total=sum(len(s.grid) for s in specs.values()))
            for name, spec in specs.items():
                bar.update(task, description=f"{protocol}: {name}")
                results[name] = tune_and_evaluate(
                    spec, train, valid, test, k, on_step=lambda: bar.advance(task)
                )
    else:
        for name, spec in specs.items():
            results[name] = tune_and_evaluate(spec, train, valid, test, k)
    return {
        "dataset": bundle.name,
        "protocol": protocol,
        "results": results,
        "tuning": {
            "selection": f"validation ndcg@{k}, the first configuration on a tie; test "
            "figures choose nothing",
            "budget": TUNING_BUDGET,
            "configurations": {name: len(spec.grid) for name, spec in specs.items()},
            "fit": "model.fit(train, validation), as matchwise train fits",
        },
        "provenance": provenance(seed, data=path),
    }


def render_table(result: Mapping[str, Any]) -> Table:
    """A rich table of one benchmark result, best NDCG first."""
    rows = result["results"]
    metric_names = [
        key
        for key in next(iter(rows.values()), {})
        if "@" in key  # ndcg@k, recall@k, ...
    ]
    table = Table(title=f"{result['dataset']} — {result['protocol']} protocol")
    table.add_column("model")
    for name in metric_names:
        table.add_column(name, justify="right")
    table.add_column("train s", justify="right")
    table.add_column("peak MB", justify="right")
    table.add_column("params")
    first = metric_names[0] if metric_names else None
    ranked = sorted(rows.items(), key=lambda kv: -kv[1][first] if first else 0.0)
    for model, row in ranked:
        params = ", ".join(
            f"{key}={value}"
            for key, value in row["params"].items()
            if key not in {"random_state", "num_threads", "max_items", "use_weights", "binary"}
        )
        table.add_row(
            model,
            *(f"{row[name]:.4f}" for name in metric_names),
            f"{row['train_seconds']:.2f}",
            f"{row['peak_memory_mb']:.1f}",
            params,
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m matchwise.bench.movielens``: run, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", help="MovieLens folder (100K, 1M or latest layout)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="recbole")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--models", help="comma-separated names (default: all registered)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help="write the result JSON here")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    from rich.console import Console

    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    models = args.models.split(",") if args.models else None
    result = run_movielens_benchmark(
        args.path, args.protocol, args.k, models, progress=args.progress, seed=args.seed
    )
    elapsed = time.perf_counter() - started
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(render_table(result))
    console.print(f"total {elapsed:.1f}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
