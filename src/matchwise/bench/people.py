"""Mutual-match benchmark on the synthetic people data: popularity, one-sided, reciprocal.

Protocol (the issue's Done-when):

- ``generate_people(n_users, n_swipes, seed)``; like, superlike and pass swipes only.
- A global time split: the earliest ``1 - test_share`` of swipes train, the rest test.
- Each user's *test-period candidates* are the people they swiped on in the test period.
  A candidate is *relevant* when the pair is a mutual like by the end of the test period
  with the user's own like in it (the match formed in the test period; the other side's
  like may be older). **Mutual-match NDCG@10** ranks each user's test-period candidates,
  averaged over users with at least one such match; **match AUC** is over all test pairs;
  **decision AUC** (did the user like the candidate) is reported too, where a one-sided
  model should win.
- ``full_ranking`` adds NDCG@10 over every preference-compatible person the user had not
  swiped on in training (hard filters on both sides), the relevant ones again the user's
  test-period matches: the serving view, where exposure noise lowers every number.

Scorers: ``random``; ``popularity`` (smoothed share of likes each person received in
training, (likes + 1) / (swipes + 3)); ``one_sided`` = the wrapped base model's calibrated
P(a likes b); ``reciprocal`` = harmonic mean of P(a likes b) and P(b likes a) from the
same model, with recorded decisions overriding P(b likes a); plus ablations
(``reciprocal_model_only`` without the override, ``reciprocal_product``,
``reciprocal_min``). Models see the profiles the store keeps (age, gender, city, bio,
tags) and each person's Elo rating replayed from training swipes.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from matchwise.data.bundle import DataBundle
from matchwise.data.synthetic import generate_people
from matchwise.errors import InvalidInput
from matchwise.features.compatibility import ProfileArrays, mutual_preference_mask
from matchwise.features.people import reciprocal_score
from matchwise.metrics import auc, grouped_ndcg, ndcg_at_k
from matchwise.models.base import InteractionSet
from matchwise.models.elo import ratings_from_swipes
from matchwise.models.reciprocal import ReciprocalRecommender

__all__ = ["PeopleSplit", "people_split", "run_people_benchmark"]

log = logging.getLogger(__name__)

SWIPES = ("like", "superlike", "pass", "reject")
LIKES = ("like", "superlike")
PROFILE_COLUMNS = ("id", "age", "gender", "city", "bio", "tags")
#: Fast, deterministic defaults for the wrapped two-tower (a small CPU run).
TWO_TOWER_DEFAULTS: dict[str, Any] = {
    "loss": "bce",
    "epochs": 15,
    "patience": 100,
    "hidden": [128],
    "batch_size": 512,
    "device": "cpu",
}


@dataclass
class PeopleSplit:
    """A time-ordered split of a people bundle, in dense indices over ``ids``."""

    ids: np.ndarray
    train: InteractionSet
    test_user: np.ndarray
    test_cand: np.ndarray
    test_liked: np.ndarray
    test_match: np.ndarray
    profiles: pd.DataFrame


def people_split(
    bundle: DataBundle, test_share: float = 0.2, text_features: bool = True
) -> PeopleSplit:
    """Split swipes in time; label each test pair's decision and mutual match."""
    if not 0.0 < test_share < 1.0:
        raise InvalidInput(f"test_share must be in (0, 1), got {test_share}")
    frame = bundle.interactions
    frame = frame[frame["action"].isin(SWIPES) & frame["target_user_id"].notna()]
    frame = frame.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    if frame.empty:
        raise InvalidInput("the bundle has no swipes (like, superlike, pass)")
    ids = bundle.users["id"].astype(str).to_numpy()
    index = pd.Index(ids)
    actor = index.get_indexer(frame["user_id"].astype(str))
    target = index.get_indexer(frame["target_user_id"].astype(str))
    if (actor < 0).any() or (target < 0).any():
        raise InvalidInput("a swipe names a person missing from the users frame")
    liked = frame["action"].isin(LIKES).to_numpy()
    cut = int(round(len(frame) * (1.0 - test_share)))
    train_mask = np.arange(len(frame)) < cut

    # a person's like of another, at any time up to the end of the test period
    n = len(ids)
    like_keys = np.unique(actor[liked].astype(np.int64) * n + target[liked])
    reverse_liked = np.isin(target.astype(np.int64) * n + actor, like_keys)

    train_frame = frame[train_mask]
    ratings = ratings_from_swipes(train_frame)
    profiles = _profiles(bundle.users, ratings, text_features)
    train = InteractionSet(
        user_ids=ids,
        item_ids=ids,
        users=actor[train_mask],
        items=target[train_mask],
        labels=liked[train_mask].astype(np.float32),
        weights=np.where(train_frame["action"].to_numpy() == "superlike", 1.5, 1.0),
        timestamps=train_frame["occurred_at"].to_numpy(),
        user_features=profiles,
        meta={"domain": "people"},
    )
    test = ~train_mask
    return PeopleSplit(
        ids=ids,
        train=train,
        test_user=actor[test],
        test_cand=target[test],
        test_liked=liked[test],
        test_match=liked[test] & reverse_liked[test],
        profiles=profiles,
    )


def _profiles(users: pd.DataFrame, ratings: dict[str, float], text: bool) -> pd.DataFrame:
    columns = [c for c in PROFILE_COLUMNS if c in users.columns and (text or c != "bio")]
    profiles = users[columns].copy()
    profiles["id"] = profiles["id"].astype(str)
    profiles["elo"] = profiles["id"].map(ratings).fillna(1500.0).astype(float)
    return profiles.reset_index(drop=True)


def _metrics(split: PeopleSplit, pair_scores: np.ndarray, k: int) -> dict[str, float]:
    ndcg, users = grouped_ndcg(split.test_user, pair_scores, split.test_match, k)
    return {
        f"ndcg@{k}": round(ndcg, 4),
        "match_auc": round(auc(split.test_match, pair_scores), 4),
        "decision_auc": round(auc(split.test_liked, pair_scores), 4),
        "users": users,
    }


def _full_ranking_ndcg(
    split: PeopleSplit,
    users_frame: pd.DataFrame,
    scorers: dict[str, Any],
    k: int,
) -> dict[str, float]:
    """NDCG@k over all mutually compatible people not swiped in training."""
    n = len(split.ids)
    arrays = ProfileArrays.from_frame(users_frame)
    seen = np.zeros((n, n), dtype=bool)
    seen[split.train.users, split.train.items] = True
    matches = np.zeros((n, n), dtype=bool)
    matches[split.test_user[split.test_match], split.test_cand[split.test_match]] = True
    users = np.flatnonzero(matches.any(axis=1))
    out: dict[str, float] = {}
    everyone = np.arange(n)
    candidates = {}
    for u in users:
        cand = everyone[~seen[u] & (everyone != u)]
        candidates[u] = cand[mutual_preference_mask(arrays, int(u), cand)]
    for name, row_fn in scorers.items():
        values = []
        for start in range(0, len(users), 256):
            block = users[start : start + 256]
            rows = row_fn(block)
            for i, u in enumerate(block):
                cand = candidates[u]
                rel = matches[u, cand]
                if not rel.any():
                    continue
                top = np.argsort(-rows[i, cand], kind="stable")[:k]
                values.append(float(ndcg_at_k(rel[top][None, :], int(rel.sum()), k)[0]))
        out[name] = round(float(np.mean(values)) if values else 0.0, 4)
    return out


def run_people_benchmark(
    n_users: int = 1000,
    n_swipes: int = 20_000,
    seed: int = 42,
    *,
    base: str = "two_tower",
    base_params: dict[str, Any] | None = None,
    test_share: float = 0.2,
    k: int = 10,
    full_ranking: bool = True,
    text_features: bool = True,
) -> dict[str, Any]:
    """Train the wrapped one-sided model once and score every scorer on the same split.

    The default two-tower base (bios embedded, 15 CPU epochs) takes about 5 minutes on two
    busy CPU cores; ``base="ease"`` runs in seconds but, alone, does not beat popularity.

    Returns ``{"dataset", "protocol", "base", "sizes", "results": {scorer: {"ndcg@10",
    "match_auc", "decision_auc", "users"}}, "full_ranking": {scorer: ndcg@10}, "seconds"}``.
    """
    started = time.perf_counter()
    bundle = generate_people(n_users=n_users, n_swipes=n_swipes, seed=seed)
    split = people_split(bundle, test_share, text_features=text_features)
    params = dict(base_params or {})
    if base == "two_tower":
        params = {**TWO_TOWER_DEFAULTS, "seed": seed, **params}
    model = ReciprocalRecommender(base=base, base_params=params, seed=seed).fit(split.train)
    fitted = time.perf_counter()

    a, b = split.test_user, split.test_cand
    n = len(split.ids)
    rng = np.random.default_rng(seed)
    train = split.train
    liked = train.labels > 0.5
    received = np.bincount(train.items[liked], minlength=n)
    shown = np.bincount(train.items, minlength=n)
    popularity = (received + 1.0) / (shown + 3.0)

    p_ab = _pairs(model.one_sided_proba, a, b)
    p_ba_known = _pairs(model.reverse_proba, a, b)
    model.known_decisions = False
    p_ba_model = _pairs(model.reverse_proba, a, b)
    model.known_decisions = True
    pair_scores = {
        "random": rng.random(len(a)),
        "popularity": popularity[b],
        "one_sided": p_ab,
        "reciprocal": reciprocal_score(p_ab, p_ba_known, "harmonic"),
        "reciprocal_model_only": reciprocal_score(p_ab, p_ba_model, "harmonic"),
        "reciprocal_product": reciprocal_score(p_ab, p_ba_known, "product"),
        "reciprocal_min": reciprocal_score(p_ab, p_ba_known, "min"),
    }
    results = {name: _metrics(split, s, k) for name, s in pair_scores.items()}
    out: dict[str, Any] = {
        "dataset": bundle.name,
        "protocol": (
            f"global time split, last {test_share:.0%} of swipes as test; candidates = each "
            "user's test-period swipes; relevant = mutual like formed in the test period"
        ),
        "base": base,
        "base_params": params,
        "sizes": {
            "users": n,
            "swipes": len(train) + len(a),
            "train_swipes": len(train),
            "test_swipes": len(a),
            "test_matches": int(split.test_match.sum()),
        },
        "results": results,
    }
    if full_ranking:
        out["full_ranking"] = _full_ranking_ndcg(
            split,
            bundle.users,
            {
                "random": lambda users: rng.random((len(users), n)),
                "popularity": lambda users: np.broadcast_to(popularity, (len(users), n)),
                "one_sided": model.one_sided_proba,
                "reciprocal": model.score,
            },
            k,
        )
    out["seconds"] = {
        "fit": round(fitted - started, 1),
        "total": round(time.perf_counter() - started, 1),
    }
    log.info("people benchmark: %s", json.dumps(out["results"]))
    return out


def _pairs(row_fn: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``row_fn(distinct rows)[row, col]`` for each pair, one batch of rows at a time."""
    out = np.empty(len(rows))
    unique, inverse = np.unique(rows, return_inverse=True)
    for start in range(0, len(unique), 512):
        block = unique[start : start + 512]
        matrix = row_fn(block)
        sel = (inverse >= start) & (inverse < start + len(block))
        out[sel] = matrix[inverse[sel] - start, cols[sel]]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m matchwise.people_benchmark [--users N --swipes N --base ease]`` → JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--swipes", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--base", default="two_tower")
    parser.add_argument("--no-text", action="store_true", help="leave bios out of the features")
    parser.add_argument("--no-full-ranking", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    result = run_people_benchmark(
        args.users,
        args.swipes,
        args.seed,
        base=args.base,
        full_ranking=not args.no_full_ranking,
        text_features=not args.no_text,
    )
    print(json.dumps(result, indent=2, default=str))  # noqa: T201 - the CLI's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
