"""MovieLens quality benchmark: matchwise's models against implicit's ALS and BPR.

Protocol ``recbole`` reproduces RecBole's standard setting so numbers compare with papers:
ratings >= 3 become positives, an iterative 10-core filter, a seeded random 8:1:1 split of
each user's interactions, full ranking over every item (no sampled negatives) with the
user's training *and* validation items masked at test time, hyperparameters chosen by
validation NDCG@k. As in RecBole, the chosen model is trained on the training part only
(not retrained on train + validation) before it is scored on the test part. Protocol
``temporal`` keeps the same filtering but splits each user's interactions in time order,
closer to what production sees; that split has no seed, so it runs once.

What keeps the figures honest:

- **Equal tuning, on validation only.** Every model with hyperparameters gets the same
  budget, :data:`TUNING_BUDGET` configurations (its grid in :data:`MODELS`; popularity has
  nothing to tune), and the one with the best validation NDCG@k is scored on test. Test
  figures never choose anything.
- **One training path.** Each configuration is fitted as ``matchwise train`` fits it:
  ``model.fit(train, validation)``, so the two-tower early-stops on validation NDCG@10
  with its own defaults (20 epochs at most, patience 5) and the benchmark measures what
  users get.
- **Paired comparisons over several splits.** The protocol runs on each split seed in
  :data:`DEFAULT_SEEDS`; each model reports its mean and spread over them, and its
  difference in NDCG@k to the strongest baseline (the best of :data:`BASELINES` by mean
  test NDCG@k) with a paired bootstrap interval over users
  (:func:`~matchwise.metrics.paired_bootstrap` on each user's NDCG averaged over the
  seeds). A model is ``better`` or ``worse`` only when that interval excludes zero,
  otherwise ``on par``.
- **The same lists every run.** Rankings are cut with ties in item-id order
  (:func:`~matchwise.metrics.per_user_full_ranking`), and the result carries its
  provenance (seeds, data hash, package versions, git commit:
  :mod:`matchwise.bench.provenance`).

Models are looked up by name in :data:`MODELS`; :func:`register_model` adds one (a
factory taking a params dict, and its grid).

Run ``python -m matchwise.bench.movielens PATH --protocol recbole`` or ``matchwise
benchmark movielens PATH`` (see ``benchmarks/movielens/run.sh``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from matchwise.bench.provenance import provenance
from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.data.splits import recbole_split
from matchwise.errors import InvalidInput
from matchwise.metrics import paired_bootstrap, per_user_full_ranking
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.catalog import model_class
from matchwise.models.ease import EASERecommender
from matchwise.models.peers import ImplicitALSRecommender, ImplicitBPRRecommender
from matchwise.models.popularity import PopularityRecommender

__all__ = [
    "BASELINES",
    "DEFAULT_SEEDS",
    "MODELS",
    "PROTOCOLS",
    "TUNING_BUDGET",
    "BenchmarkModel",
    "Evaluation",
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
#: Split seeds: RecBole's default first, then two more for the spread.
DEFAULT_SEEDS = (2020, 1, 2)
#: Configurations each model with hyperparameters may try on validation, per split.
TUNING_BUDGET = 6
#: Published, well-known models: the strongest of them is what every row is compared with.
BASELINES = ("popularity", "implicit_bpr", "implicit_als", "ease")
BOOTSTRAP_SAMPLES = 5000
BOOTSTRAP_SEED = 0
METRICS = ("ndcg", "recall", "hit", "map")


def param_grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Every combination of the given axes, e.g. ``param_grid(l2=[1, 2], k=[3])``."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


@dataclass(frozen=True)
class BenchmarkModel:
    """How the benchmark builds one model: ``factory(params)`` for each params in ``grid``;
    ``side_features``: its data carries the catalogue's genres and the users' profiles."""

    factory: Callable[[dict[str, Any]], Recommender]
    grid: list[dict[str, Any]]
    side_features: bool = False


#: EASE's λ grid: 37 values from 50 to 3200, each 12% above the one before.
EASE_GRID = [50.0, 56.0, 63.0, 71.0, 79.0, 89.0, 100.0, 112.0, 126.0, 141.0, 159.0, 178.0,
             200.0, 224.0, 252.0, 283.0, 317.0, 356.0, 400.0, 449.0, 504.0, 566.0, 635.0,
             713.0, 800.0, 898.0, 1008.0, 1131.0, 1270.0, 1425.0, 1600.0, 1796.0, 2016.0,
             2263.0, 2540.0, 2851.0, 3200.0]  # fmt: skip
#: The hybrid as benchmarked: five generators (EASE, ALS, RP3beta, item-kNN, popularity;
#: each one's hyperparameters as validation chose them for the model alone) propose their
#: top 100; a pointwise LightGBM trained on the validation positives (generators fitted
#: on train only, so the features it learns from are the ones it scores test with) orders
#: the union by each generator's score, rank, gap and z-score, popularity, recency and
#: history length. Chosen on validation only (module docstring of
#: benchmarks/movielens/hybrid_validation.py).
HYBRID: dict[str, Any] = {
    "generators": ["ease", "als", "rp3beta", "item_knn", "popularity"],
    "n_candidates": 100,
    "ease_l2": 400.0,
    "als": {"factors": 128, "regularization": 50.0, "alpha": 10.0, "iterations": 20},
    "rp3beta": {"alpha": 0.8, "beta": 0.5, "k": 0},
    "item_knn": {"k": 200, "shrink": 0.0},
    "label_source": "validation",
    "refit": False,
    "blend": 0.0,
    "ranker": {"objective": "binary", "n_estimators": 150, "learning_rate": 0.03,
               "num_leaves": 7, "min_data_in_leaf": 200, "lambda_l2": 1.0,
               "feature_fraction": 0.8, "bagging_fraction": 0.8, "valid_share": 0.0,
               "early_stopping_rounds": 0},
}  # fmt: skip
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
    # the strongest baseline gets more than the budget: λ on a grid of 37 values 12%
    # apart (50 to 3200), so no margin over it comes from a coarse grid
    "ease": BenchmarkModel(lambda p: EASERecommender(**p), param_grid(l2=EASE_GRID)),
    # the two-tower early-stops on validation like `matchwise train two_tower`
    "two_tower": BenchmarkModel(
        lambda p: _two_tower(p), param_grid(lr=[1e-3, 3e-3], temperature=[0.05, 0.1, 0.2])
    ),
    # one configuration: its ranker learns from the validation positives, so validation
    # cannot choose among hybrids here; HYBRID was chosen on validation alone (a 2-fold
    # split of the validation users, seed 2020: benchmarks/movielens/hybrid_validation.py)
    "hybrid": BenchmarkModel(lambda p: _hybrid(p), [HYBRID], side_features=True),
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


@dataclass
class Evaluation:
    """One model tuned and scored on one split: the JSON row, and each test user's
    figures (``users``: row indices, then one array per metric) for paired comparisons."""

    row: dict[str, Any]
    per_user: dict[str, np.ndarray]


#: training_metrics worth keeping per split (the two-tower's early stopping).
_TRAINING_KEYS = ("epochs_run", "best_epoch")


def tune_and_evaluate(
    spec: BenchmarkModel,
    train: InteractionSet,
    valid: InteractionSet,
    test: InteractionSet,
    k: int = 10,
    on_step: Callable[[], None] | None = None,
) -> Evaluation:
    """Fit every configuration of ``spec.grid`` with validation, keep the best validation
    NDCG@k (the first in grid order on a tie), score it on test.

    The row holds the test metrics, the chosen configuration (``chosen``: the grid point;
    ``params``: every constructor argument), its validation NDCG@k, each configuration
    tried with its validation figure, and ``training`` (epochs run, best epoch) where
    the model early-stops. ``train_seconds`` and ``peak_memory_mb`` are those of the
    chosen configuration's fit. Peak memory comes from :mod:`tracemalloc`: allocations
    made through Python and NumPy (factor matrices, Gram matrices, sparse copies), not
    native buffers outside them (OpenBLAS workspaces, implicit's per-thread scratch,
    torch), so it is a lower bound.
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
    row: dict[str, Any] = {name: float(np.mean(per_user[f"{name}@{k}"])) for name in METRICS}
    row = {f"{name}@{k}": value for name, value in row.items()}
    row.update(
        {
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
            "users": len(per_user["users"]),
        }
    )
    return Evaluation(row, per_user)


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
            name: BenchmarkModel(
                MODELS[name].factory, [dict(p) for p in models[name]], MODELS[name].side_features
            )
            for name in names
        }
    return {name: MODELS[name] for name in names}


def run_movielens_benchmark(
    path: str | Path,
    protocol: str = "recbole",
    k: int = 10,
    models: Sequence[str] | Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    progress: bool = False,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    bootstrap: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """Benchmark ``models`` (registry names, or name -> grid) on a MovieLens folder, once
    per split seed (once in all for ``temporal``, whose split has no seed).

    Returns ``{"dataset", "protocol", "k", "seeds", "splits", "reference", "tuning",
    "bootstrap", "results", "provenance"}``. ``results[model]`` holds the mean over the
    seeds of ``ndcg@k``, ``recall@k``, ``hit@k``, ``map@k``, their standard deviation
    (``spread``), ``train_seconds`` (mean), ``peak_memory_mb`` (max), ``params`` (the
    first seed's chosen model), ``per_seed`` (each split's :func:`tune_and_evaluate` row)
    and ``vs_reference``: the NDCG@k difference to ``reference``, the strongest baseline,
    with its paired bootstrap interval over users and a ``verdict`` (``better``,
    ``worse`` or ``on par``: the interval includes zero); None for the reference itself.
    """
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if k < 1:
        raise InvalidInput(f"k must be >= 1, got {k}")
    seeds = [int(seed) for seed in dict.fromkeys(seeds)]
    if not seeds:
        raise InvalidInput("give at least one split seed")
    if protocol == "temporal" and len(seeds) > 1:
        log.info("the temporal split has no seed: running it once (seed %d)", seeds[0])
        seeds = seeds[:1]
    specs = _resolve(models)
    bundle = read_movielens(path)
    frame = ratings_frame(bundle)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
    per_user: dict[str, list[pd.Series]] = {name: [] for name in specs}
    splits: list[dict[str, Any]] = []
    steps = len(seeds) * sum(len(spec.grid) for spec in specs.values())
    with _progress(progress, steps, protocol) as advance:
        for seed in seeds:
            train, valid, test = prepare_protocol(frame, protocol, seed)
            splits.append({"seed": seed, "users": train.n_users, "items": train.n_items,
                           "train": len(train), "validation": len(valid),
                           "test": len(test)})  # fmt: skip
            log.info("%s / %s / seed %d: %s", bundle.name, protocol, seed, splits[-1])
            for name, spec in specs.items():
                advance(f"{protocol} seed {seed}: {name}", 0)
                parts = [train, valid, test]
                if spec.side_features:  # genres as tags and category, users' profiles
                    parts = [
                        replace(p, item_features=bundle.items, user_features=bundle.users)
                        for p in parts
                    ]
                evaluation = tune_and_evaluate(
                    spec, parts[0], parts[1], parts[2], k, on_step=lambda: advance(None, 1)
                )
                rows[name].append({"seed": seed, **evaluation.row})
                users = train.user_ids[evaluation.per_user["users"]]
                per_user[name].append(pd.Series(evaluation.per_user[f"ndcg@{k}"], index=users))
    results = {name: _summary(rows[name], k) for name in specs}
    reference = _reference(results, k)
    for name in specs:
        results[name]["vs_reference"] = (
            None
            if name == reference
            else _compare(per_user[name], per_user[reference], seeds, reference, k, bootstrap)
        )
    return {
        "dataset": bundle.name,
        "protocol": protocol,
        "k": k,
        "seeds": seeds,
        "splits": splits,
        "reference": reference,
        "tuning": {
            "selection": f"validation ndcg@{k}, the first configuration on a tie; test "
            "figures choose nothing",
            "budget": TUNING_BUDGET,
            "configurations": {name: len(spec.grid) for name, spec in specs.items()},
            "fit": "model.fit(train, validation), as matchwise train fits",
        },
        "bootstrap": {
            "samples": bootstrap,
            "seed": BOOTSTRAP_SEED,
            "confidence": 0.95,
            "unit": f"user (ndcg@{k} averaged over the split seeds)",
        },
        "results": results,
        "provenance": provenance(seeds, data=path, bootstrap_seed=BOOTSTRAP_SEED),
    }


@contextmanager
def _progress(show: bool, total: int, title: str) -> Iterator[Callable[[str | None, int], None]]:
    """``advance(description, steps)`` on a rich progress bar when asked for, else a no-op."""
    if not show:
        yield lambda description, steps: None
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(title, total=total)

        def advance(description: str | None, steps: int) -> None:
            if description is not None:
                bar.update(task, description=description)
            if steps:
                bar.advance(task, steps)

        yield advance


def _summary(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Mean and spread (sample standard deviation; 0 for one split) over the seeds."""
    names = [f"{name}@{k}" for name in METRICS]
    out: dict[str, Any] = {name: float(np.mean([row[name] for row in rows])) for name in names}
    out["spread"] = {
        name: float(np.std([row[name] for row in rows], ddof=1)) if len(rows) > 1 else 0.0
        for name in names
    }
    out["train_seconds"] = float(np.mean([row["train_seconds"] for row in rows]))
    out["peak_memory_mb"] = float(max(row["peak_memory_mb"] for row in rows))
    out["params"] = rows[0]["params"]
    out["per_seed"] = rows
    return out


def _reference(results: Mapping[str, Mapping[str, Any]], k: int) -> str:
    """The strongest baseline by mean test NDCG@k (the strongest model if none ran)."""
    pool = [name for name in BASELINES if name in results] or list(results)
    return max(pool, key=lambda name: results[name][f"ndcg@{k}"])


def _compare(
    model: list[pd.Series],
    reference: list[pd.Series],
    seeds: Sequence[int],
    reference_name: str,
    k: int,
    samples: int,
) -> dict[str, Any]:
    """NDCG@k difference to the reference: over the seeds (each user's mean over the
    splits, users in every split) and per seed, each with a paired bootstrap interval."""
    per_seed = []
    for seed, a, b in zip(seeds, model, reference, strict=True):
        users = a.index.intersection(b.index)
        interval = paired_bootstrap(a[users].to_numpy(), b[users].to_numpy(), n=samples,
                                    seed=BOOTSTRAP_SEED)  # fmt: skip
        per_seed.append({"seed": seed, **interval._asdict(), "users": len(users)})
    mine = pd.concat(model, axis=1, join="inner").mean(axis=1)
    theirs = pd.concat(reference, axis=1, join="inner").mean(axis=1)
    users = mine.index.intersection(theirs.index)
    overall = paired_bootstrap(mine[users].to_numpy(), theirs[users].to_numpy(), n=samples,
                               seed=BOOTSTRAP_SEED)  # fmt: skip
    verdict = "better" if overall.low > 0 else "worse" if overall.high < 0 else "on par"
    return {
        "reference": reference_name,
        "metric": f"ndcg@{k}",
        **overall._asdict(),
        "verdict": verdict,
        "users": len(users),
        "per_seed": per_seed,
    }


#: Constructor arguments the table leaves out (fixed plumbing, not tuned).
_HIDDEN_PARAMS = {"random_state", "num_threads", "max_items", "use_weights", "binary"}


def _describe(chosen: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for key, value in chosen.items():
        if isinstance(value, Mapping):
            parts.extend(f"{inner}={v}" for inner, v in value.items())
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "—"


def render_table(result: Mapping[str, Any]) -> Table:
    """A rich table of one benchmark result, best NDCG first: mean ± spread over the
    seeds, the NDCG difference to the reference with its 95% interval, the verdict."""
    rows = result["results"]
    k = result.get("k", 10)
    seeds = result.get("seeds", [])
    table = Table(
        title=f"{result['dataset']} — {result['protocol']} protocol, "
        f"split seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}",
        caption=f"Δ: NDCG@{k} minus {result.get('reference')}'s, paired bootstrap 95% "
        "interval over users; better/worse only when it excludes 0",
    )
    table.add_column("model")
    metric_names = [f"{name}@{k}" for name in METRICS]
    for name in metric_names:
        table.add_column(name, justify="right")
    table.add_column(f"Δ ndcg@{k} [95%]", justify="right")
    table.add_column("verdict")
    table.add_column("train s", justify="right")
    table.add_column("chosen on validation")
    ranked = sorted(rows.items(), key=lambda kv: -kv[1][metric_names[0]])
    for model, row in ranked:
        spread = row.get("spread", {})
        cells = [
            f"{row[name]:.4f}" + (f" ± {spread[name]:.4f}" if len(seeds) > 1 else "")
            for name in metric_names
        ]
        vs = row.get("vs_reference")
        delta = (
            f"{vs['difference']:+.4f} [{vs['low']:+.4f}, {vs['high']:+.4f}]" if vs else "reference"
        )
        chosen = [_describe(seed_row.get("chosen", {})) for seed_row in row.get("per_seed", [])]
        if not chosen:  # a row without per-seed detail
            chosen = [_describe({k_: v for k_, v in row["params"].items()
                                 if k_ not in _HIDDEN_PARAMS})]  # fmt: skip
        table.add_row(
            model,
            *cells,
            delta,
            vs["verdict"] if vs else "",
            f"{row['train_seconds']:.2f}",
            " / ".join(dict.fromkeys(chosen)),
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m matchwise.bench.movielens``: run, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", help="MovieLens folder (100K, 1M or latest layout)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="recbole")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--models", help="comma-separated names (default: all registered)")
    parser.add_argument(
        "--seeds",
        default=",".join(map(str, DEFAULT_SEEDS)),
        help="comma-separated split seeds (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="write the result JSON here")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    models = args.models.split(",") if args.models else None
    result = run_movielens_benchmark(
        args.path, args.protocol, args.k, models, progress=args.progress,
        seeds=parse_seeds(args.seeds),
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    result["wall_seconds"] = elapsed
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(render_table(result))
    console.print(f"total {elapsed:.1f}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def parse_seeds(text: str) -> list[int]:
    """``"2020,1,2"`` -> ``[2020, 1, 2]``; a clear error for anything else."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput(f"seeds must be comma-separated integers, got {text!r}") from exc
    if not seeds:
        raise InvalidInput("give at least one split seed")
    return seeds


if __name__ == "__main__":
    raise SystemExit(main())
