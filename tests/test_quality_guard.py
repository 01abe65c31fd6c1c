"""Quality regressions fail the default suite: each model trained on a fixed sample of real
data must land within a recorded tolerance of its recorded figure, and the orderings the
project publishes must hold (about 20 s in all).

The published figures (``benchmarks/RESULTS.md``) come from full benchmark runs that only
``pytest -m slow`` or the benchmark scripts execute. This is their fast stand-in, built on
the pieces every benchmark stands on (the data loaders, the models, the metrics), not on
the benchmark functions themselves:

- **MovieLens 100K**, a seeded subset of :data:`ML_USERS` users read through
  :mod:`matchwise.data.movielens`, split by :func:`~matchwise.data.splits.recbole_split`
  (ratings >= 3, 10-core, seeded 8:1:1 per user); each of :data:`ML_MODELS` (fixed
  hyperparameters, no tuning) is trained on the training part and scored by full-ranking
  NDCG@10 and Recall@10 on the test part (training and validation items masked). Ordering:
  EASE > implicit ALS > implicit BPR > popularity, and the two-tower > popularity.
- **Speed Dating waves 1-10**, read through :func:`~matchwise.data.speed_dating.read_speed_dating`:
  20% of *pairs* (both directions) held out, for each of :data:`SD_SEEDS`; a reciprocal
  model around a one-sided EASE (:data:`SD_BASE`) learns from the rest. Scorers:
  ``popularity`` (the partner's smoothed share of likes in training), ``one_sided``
  (P(a likes b)) and ``reciprocal`` (the model's two-sided score). Decision AUC, match AUC
  and NDCG@5 (a chooser's held-out partners ranked, mutual likes relevant), averaged over
  the splits. Ordering: reciprocal > one-sided > popularity on match AUC; one-sided >
  popularity on decision AUC; reciprocal above both on NDCG@5.

The recorded figures and tolerances are in ``tests/quality_guard.json``. The check is
two-sided: a figure that jumps *up* by more than its tolerance fails too (a leak into the
test part looks exactly like that), and then the JSON is re-recorded on purpose.
Regenerate it, after a change that moves a figure for a reason you can name, with::

    .venv/bin/python -m tests.test_quality_guard --record

which rewrites the figures (the tolerances stay) and says what moved. The data are read
from ``SHARED_DATA`` (``../shared/data``); without it these tests skip (CI has it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.data.speed_dating import read_speed_dating
from matchwise.data.splits import recbole_split
from matchwise.metrics import auc, evaluate_full_ranking, grouped_ndcg
from matchwise.models.base import InteractionSet
from matchwise.models.catalog import make_model
from matchwise.models.reciprocal import ReciprocalRecommender
from tests.conftest import MOVIELENS_100K, SHARED_DATA

FIGURES = Path(__file__).with_name("quality_guard.json")
SPEED_DATING = SHARED_DATA / "speed-dating-waves-1-10" / "speed-dating-waves-1-10.csv"

ML_USERS, ML_SEED = 400, 2020
ML_MODELS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "ease": {"l2": 200.0},
    "implicit_als": {},
    "implicit_bpr": {},
    "two_tower": {"epochs": 4, "hidden": [128], "batch_size": 512, "device": "cpu"},
}
SD_SEEDS = tuple(range(10))
SD_BASE: tuple[str, dict[str, Any]] = ("ease", {"l2": 20.0})
SD_TEST_SHARE = 0.2


def movielens_figures(folder: Path) -> dict[str, dict[str, float]]:
    """NDCG@10 and Recall@10 of each of :data:`ML_MODELS` on the fixed sample."""
    frame = ratings_frame(read_movielens(folder))
    users = np.sort(frame["user_id"].unique())
    chosen = np.random.default_rng(ML_SEED).choice(users, size=ML_USERS, replace=False)
    parts = recbole_split(frame[frame["user_id"].isin(chosen)], seed=ML_SEED)
    every = pd.concat(parts)
    user_ids = np.asarray(pd.unique(every["user_id"]))
    item_ids = np.asarray(pd.unique(every["item_id"]))
    train, valid, test = (InteractionSet.from_frame(p, user_ids, item_ids) for p in parts)
    out = {}
    for name, params in ML_MODELS.items():
        model = make_model(name, dict(params)).fit(train, valid)
        result = evaluate_full_ranking(model, train, test, k=10, exclude=valid)
        out[name] = {m: round(result[m], 4) for m in ("ndcg@10", "recall@10")}
    return out


def speed_dating_figures(path: Path) -> dict[str, dict[str, float]]:
    """Decision AUC, match AUC and NDCG@5 of each scorer, averaged over :data:`SD_SEEDS`."""
    bundle = read_speed_dating(path)
    ids = bundle.users["id"].astype(str).to_numpy()
    index = pd.Index(ids)
    swipes = bundle.interactions
    a = index.get_indexer(swipes["user_id"].astype(str))
    b = index.get_indexer(swipes["target_user_id"].astype(str))
    liked = swipes["action"].to_numpy() == "like"
    n = len(ids)
    liked_back = np.isin(b.astype(np.int64) * n + a, a[liked].astype(np.int64) * n + b[liked])
    match = liked & liked_back
    pair = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)
    pairs = np.unique(pair)
    rows: dict[str, list[dict[str, float]]] = {"popularity": [], "one_sided": [], "reciprocal": []}
    for seed in SD_SEEDS:
        rng = np.random.default_rng(seed)
        held = np.isin(pair, rng.choice(pairs, int(round(SD_TEST_SHARE * len(pairs))), False))
        tr, te = ~held, held
        train = InteractionSet(user_ids=ids, item_ids=ids, users=a[tr], items=b[tr],
                               labels=liked[tr].astype(np.float32),
                               meta={"domain": "people"})  # fmt: skip
        base, params = SD_BASE
        model = ReciprocalRecommender(base=base, base_params=dict(params), seed=seed).fit(train)
        received = np.bincount(b[tr][liked[tr]], minlength=n)
        shown = np.bincount(b[tr], minlength=n)
        scores = {
            "popularity": ((received + 1.0) / (shown + 3.0))[b[te]],
            "one_sided": _pairs(model.one_sided_proba, a[te], b[te]),
            "reciprocal": _pairs(model.score, a[te], b[te]),
        }
        for name, s in scores.items():
            rows[name].append({
                "decision_auc": auc(liked[te], s),
                "match_auc": auc(match[te], s),
                "ndcg@5": grouped_ndcg(a[te], s, match[te], 5).mean,
            })  # fmt: skip
    return {
        name: {m: round(float(np.mean([r[m] for r in runs])), 4) for m in runs[0]}
        for name, runs in rows.items()
    }


def _pairs(row_fn: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``row_fn(distinct rows)[row, col]`` for each (row, col) pair."""
    unique, inverse = np.unique(rows, return_inverse=True)
    return np.asarray(row_fn(unique), dtype=np.float64)[inverse, cols]


def _recorded(section: str) -> dict[str, Any]:
    data = json.loads(FIGURES.read_text())
    return data[section]  # type: ignore[no-any-return]


def _within(got: dict[str, dict[str, float]], recorded: dict[str, Any]) -> list[str]:
    """What strayed further than its tolerance from its recorded figure (both ways)."""
    off = []
    for model, figures in recorded["figures"].items():
        for metric, want in figures.items():
            tolerance = recorded["tolerance"].get(f"{model}.{metric}", recorded["tolerance"]["*"])
            value = got[model][metric]
            if abs(value - want) > tolerance:
                off.append(f"{model} {metric}: {value} (recorded {want} ± {tolerance})")
    return off


@pytest.mark.skipif(not MOVIELENS_100K.is_dir(), reason="MovieLens 100K is not in SHARED_DATA")
def test_movielens_models_hold_their_recorded_quality() -> None:
    got = movielens_figures(MOVIELENS_100K)
    assert _within(got, _recorded("movielens")) == []
    ndcg = {name: row["ndcg@10"] for name, row in got.items()}
    assert ndcg["ease"] > ndcg["implicit_als"] > ndcg["implicit_bpr"] > ndcg["popularity"]
    assert ndcg["two_tower"] > ndcg["popularity"]


@pytest.mark.skipif(not SPEED_DATING.is_file(), reason="Speed Dating is not in SHARED_DATA")
def test_speed_dating_scorers_hold_their_recorded_quality_and_order() -> None:
    got = speed_dating_figures(SPEED_DATING)
    assert _within(got, _recorded("speed_dating")) == []
    pop, one, rec = got["popularity"], got["one_sided"], got["reciprocal"]
    assert rec["match_auc"] > one["match_auc"] > pop["match_auc"]
    assert one["decision_auc"] > pop["decision_auc"]
    assert rec["ndcg@5"] > max(one["ndcg@5"], pop["ndcg@5"])


def test_the_recorded_figures_say_how_they_were_made() -> None:
    """The JSON names its protocol and keeps a tolerance for every figure it records."""
    data = json.loads(FIGURES.read_text())
    assert set(data) >= {"regenerate", "movielens", "speed_dating"}
    assert set(data["movielens"]["figures"]) == set(ML_MODELS)
    assert set(data["speed_dating"]["figures"]) == {"popularity", "one_sided", "reciprocal"}
    for section in ("movielens", "speed_dating"):
        assert "*" in data[section]["tolerance"] and data[section]["protocol"]


def record() -> int:
    """Recompute every figure and rewrite the JSON (tolerances and texts kept)."""
    data = json.loads(FIGURES.read_text())
    fresh = {
        "movielens": movielens_figures(MOVIELENS_100K),
        "speed_dating": speed_dating_figures(SPEED_DATING),
    }
    for section, figures in fresh.items():
        before = data[section]["figures"]
        for model, row in figures.items():
            for metric, value in row.items():
                old = before.get(model, {}).get(metric)
                if old != value:
                    print(f"{section} {model} {metric}: {old} -> {value}")  # noqa: T201
        data[section]["figures"] = figures
    FIGURES.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Re-record the quality guard's figures.")
    parser.add_argument("--record", action="store_true", help="rewrite tests/quality_guard.json")
    if not parser.parse_args().record:
        parser.print_help()
        sys.exit(2)
    sys.exit(record())
