"""Mutual-match benchmark on the synthetic people data: popularity, one-sided, reciprocal.

Protocol:

- ``generate_people(n_users, n_swipes, seed)``; like, superlike and pass swipes only.
- A time split by *pair*: both directions of a pair (a on b, b on a) fall on the same
  side. A pair belongs to the period of its latest swipe; the pairs whose latest swipe is
  latest make up the test set (about ``test_share`` of the swipes, every swipe of those
  pairs, the earlier direction included). Every training swipe precedes the test period,
  and no scorer, model or popularity count sees a decision of a test pair: the old global
  split often kept b's swipe on a in training while a's swipe on b was test, and a scorer
  that read it was scored on a decision it had been given.
- Each user's *test candidates* are the people they swiped on in test pairs. A candidate
  is *relevant* when the pair is a mutual like with the user's own like in it.
  **Mutual-match NDCG@10** ranks each user's test candidates, averaged over users with at
  least one such match; **match AUC** is over all test swipes; **decision AUC** (did the
  user like the candidate) is reported too, where a one-sided model should win.
- ``full_ranking`` adds NDCG@10 over every preference-compatible person the user had not
  swiped on in training (hard filters on both sides), the relevant ones again the user's
  test matches: the serving view, where exposure noise lowers every number. No scorer
  gets a recorded decision there.

Scorers, none of which sees the other side's recorded decision: ``random``;
``popularity`` (smoothed share of likes each person received in training,
(likes + 1) / (swipes + 3)); ``one_sided`` = the wrapped base model's calibrated
P(a likes b); ``reciprocal`` = harmonic mean of P(a likes b) and P(b likes a) from the
same model (its ``known_decisions`` override off); ablations ``reciprocal_product`` and
``reciprocal_min``. Models see the profiles the store keeps (age, gender, city, bio,
tags) and each person's Elo rating replayed from training swipes.

"Already likes you" is a real serving signal, so each headline scorer also has a
``<scorer> + reverse`` row (:data:`REVERSE`): the same scores with the other side's
decision on the user, where it was recorded *before* the user's own swipe, put first
(b liked a: above every pair without one; b passed on a: below every pair), the
scorer's own order within each group; ``reciprocal + reverse`` also puts the recorded
decision in place of its P(b likes a), so where b already liked a it orders by
P(a likes b), as ``one_sided + reverse`` does. Every ``+ reverse`` row gets the same
lookup, so they compare on equal information, as do the rows without it.
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

from matchwise.bench.provenance import provenance
from matchwise.data.bundle import DataBundle
from matchwise.data.synthetic import generate_people
from matchwise.errors import InvalidInput
from matchwise.features.compatibility import ProfileArrays, mutual_preference_mask
from matchwise.features.people import reciprocal_score
from matchwise.metrics import auc, grouped_ndcg, ndcg_at_k, paired_bootstrap
from matchwise.models.base import InteractionSet
from matchwise.models.elo import ratings_from_swipes
from matchwise.models.reciprocal import ReciprocalRecommender

__all__ = [
    "HEADLINE",
    "PAIRED",
    "REVERSE",
    "PeopleSplit",
    "pair_scores",
    "people_split",
    "per_user_ndcg",
    "run_people_benchmark",
    "with_reverse",
]

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
    """A split of a people bundle by pair, in dense indices over ``ids``.

    ``test_reverse[i]`` is the other side's decision on the user that was recorded before
    the user's own test swipe ``i``: +1 a like, -1 a pass, 0 none yet. Only the
    ``+ reverse`` scorers read it.
    """

    ids: np.ndarray
    train: InteractionSet
    test_user: np.ndarray
    test_cand: np.ndarray
    test_liked: np.ndarray
    test_match: np.ndarray
    test_reverse: np.ndarray
    profiles: pd.DataFrame


def people_split(
    bundle: DataBundle, test_share: float = 0.2, text_features: bool = True
) -> PeopleSplit:
    """Split swipes by pair in time; label each test swipe's decision and mutual match.

    Both directions of a pair are held out together: a pair belongs to the period of its
    latest swipe, and the pairs with the latest ones, about ``test_share`` of all swipes,
    are the test set. Training holds only swipes of other pairs, all of them earlier.
    """
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
    test = _held_out_pairs(actor, target, test_share)
    train_mask = ~test
    if not train_mask.any() or not test.any():
        raise InvalidInput(
            f"{len(frame)} swipes are too few to hold out {test_share:.0%} of them by pair"
        )

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
    return PeopleSplit(
        ids=ids,
        train=train,
        test_user=actor[test],
        test_cand=target[test],
        test_liked=liked[test],
        test_match=liked[test] & reverse_liked[test],
        test_reverse=_reverse_before(actor[test], target[test], liked[test], n),
        profiles=profiles,
    )


def _held_out_pairs(actor: np.ndarray, target: np.ndarray, share: float) -> np.ndarray:
    """True for time-ordered swipes whose unordered pair is held out (both directions).

    A pair's time is its latest swipe; the latest pairs are held out until they hold
    ``share`` of the swipes (one pair's swipes more at most).
    """
    n = int(max(actor.max(), target.max())) + 1
    pair = np.minimum(actor, target).astype(np.int64) * n + np.maximum(actor, target)
    _, which = np.unique(pair, return_inverse=True)
    latest = np.zeros(int(which.max()) + 1, dtype=np.int64)
    np.maximum.at(latest, which, np.arange(len(pair)))
    row_latest = latest[which]
    n_test = int(round(len(pair) * share))
    if n_test == 0:
        return np.zeros(len(pair), dtype=bool)
    cut = np.sort(row_latest)[len(pair) - n_test]
    return np.asarray(row_latest >= cut)


def _reverse_before(users: np.ndarray, cands: np.ndarray, liked: np.ndarray, n: int) -> np.ndarray:
    """For time-ordered swipes: the candidate's latest earlier decision on the user.

    +1 like, -1 pass, 0 none recorded before the user's swipe (the "already likes you"
    that serving knows at that moment).
    """
    order = np.arange(len(users))
    asked = pd.DataFrame({"pos": order, "key": cands.astype(np.int64) * n + users})
    made = pd.DataFrame(
        {"pos": order, "key": users.astype(np.int64) * n + cands, "dec": np.where(liked, 1, -1)}
    )
    found = pd.merge_asof(
        asked, made, on="pos", by="key", allow_exact_matches=False, direction="backward"
    )
    return found["dec"].fillna(0).to_numpy(dtype=np.int8)


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


#: Suffix of a scorer given the other side's earlier recorded decision.
REVERSE = " + reverse"
#: Scorers that get a ``+ reverse`` row, in the order they print.
HEADLINE = ("random", "popularity", "one_sided", "reciprocal")
#: Pairs of rows compared user by user with a paired bootstrap interval: (a, b) for a - b.
PAIRED = (("reciprocal", "one_sided"), ("reciprocal" + REVERSE, "one_sided" + REVERSE))


def with_reverse(scores: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] with the recorded reverse decision first: liked above, passed below."""
    return 2.0 * np.asarray(reverse, dtype=np.float64) + np.clip(scores, 0.0, 1.0)


def _popularity(split: PeopleSplit) -> np.ndarray:
    """Each person's smoothed share of likes received in training: (likes + 1) / (swipes + 3)."""
    n, train = len(split.ids), split.train
    received = np.bincount(train.items[train.labels > 0.5], minlength=n)
    shown = np.bincount(train.items, minlength=n)
    return np.asarray((received + 1.0) / (shown + 3.0))


def pair_scores(
    split: PeopleSplit, model: ReciprocalRecommender, seed: int = 42
) -> dict[str, np.ndarray]:
    """Every scorer's score of each test swipe; only ``+ reverse`` rows read the lookup.

    ``model`` must not apply recorded decisions itself (``known_decisions=False``): the
    reverse decision reaches a scorer only through :func:`with_reverse`.
    """
    if model.known_decisions:
        raise InvalidInput("score the benchmark with known_decisions=False; see REVERSE")
    a, b = split.test_user, split.test_cand
    p_ab = _pairs(model.one_sided_proba, a, b)
    p_ba = _pairs(model.reverse_proba, a, b)
    plain = {
        "random": np.random.default_rng(seed).random(len(a)),
        "popularity": _popularity(split)[b],
        "one_sided": p_ab,
        "reciprocal": reciprocal_score(p_ab, p_ba, "harmonic"),
    }
    reverse = split.test_reverse
    # the reciprocal also puts the recorded decision in place of its own P(b likes a)
    p_ba_seen = np.where(reverse > 0, 1.0, np.where(reverse < 0, 0.0, p_ba))
    given = {**plain, "reciprocal": reciprocal_score(p_ab, p_ba_seen, "harmonic")}
    lookup = {name + REVERSE: with_reverse(given[name], reverse) for name in HEADLINE}
    ablations = {
        "reciprocal_product": reciprocal_score(p_ab, p_ba, "product"),
        "reciprocal_min": reciprocal_score(p_ab, p_ba, "min"),
    }
    return {**plain, **lookup, **ablations}


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

    The default two-tower base (bios embedded, 15 CPU epochs) takes 35-45 s on two shared
    CPU cores (1,000 people, 20,000 swipes); ``base="ease"`` runs in about a second.

    Returns ``{"dataset", "protocol", "base", "base_params", "sizes", "scorers": {scorer:
    what it sees}, "results": {scorer: {"ndcg@10", "match_auc", "decision_auc", "users"}},
    "paired": {"a vs b": {"ndcg@10_difference", "low", "high"}}, "full_ranking": {scorer:
    ndcg@10}, "seconds"}``; ``results`` holds the headline scorers, their ``+ reverse``
    rows and the ablations; ``paired`` is the mean per-user NDCG difference of each
    :data:`PAIRED` comparison with its 95% paired bootstrap interval over users.
    """
    started = time.perf_counter()
    bundle = generate_people(n_users=n_users, n_swipes=n_swipes, seed=seed)
    split = people_split(bundle, test_share, text_features=text_features)
    params = dict(base_params or {})
    if base == "two_tower":
        params = {**TWO_TOWER_DEFAULTS, "seed": seed, **params}
    model = ReciprocalRecommender(
        base=base, base_params=params, known_decisions=False, seed=seed
    ).fit(split.train)
    fitted = time.perf_counter()

    scores = pair_scores(split, model, seed)
    results = {name: _metrics(split, s, k) for name, s in scores.items()}
    paired = {}
    for first, second in PAIRED:
        diff = paired_bootstrap(
            per_user_ndcg(split, scores[first], k), per_user_ndcg(split, scores[second], k)
        )
        paired[f"{first} vs {second}"] = {
            f"ndcg@{k}_difference": round(diff.difference, 4),
            "low": round(diff.low, 4),
            "high": round(diff.high, 4),
        }
    n = len(split.ids)
    test_pairs = np.unique(
        np.minimum(split.test_user, split.test_cand).astype(np.int64) * n
        + np.maximum(split.test_user, split.test_cand)
    )
    out: dict[str, Any] = {
        "dataset": bundle.name,
        "protocol": (
            f"time split by pair, both directions together: the latest pairs, {test_share:.0%} "
            "of swipes, are test; candidates = each user's swipes in test pairs; relevant = "
            "mutual like; '+ reverse' rows also get the other side's earlier decision"
        ),
        "base": base,
        "base_params": params,
        "sizes": {
            "users": n,
            "swipes": len(split.train) + len(split.test_user),
            "train_swipes": len(split.train),
            "test_swipes": len(split.test_user),
            "test_pairs": len(test_pairs),
            "test_matches": int(split.test_match.sum()),
            "test_swipes_with_reverse": int((split.test_reverse != 0).sum()),
            "test_matches_with_reverse": int((split.test_match & (split.test_reverse > 0)).sum()),
        },
        "scorers": {name: _describe(name) for name in scores},
        "results": results,
        "paired": paired,
    }
    if full_ranking:
        rng = np.random.default_rng(seed)
        popularity = _popularity(split)
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
    # Generated data: its hash is that of the swipes the seed produced, so a rerun that
    # hashes differently generated different people.
    out["provenance"] = provenance(
        seed, data=pd.util.hash_pandas_object(bundle.interactions, index=False).values.tobytes()
    )
    log.info("people benchmark: %s", json.dumps(out["results"]))
    return out


def per_user_ndcg(split: PeopleSplit, scores: np.ndarray, k: int = 10) -> np.ndarray:
    """Each user's NDCG@k over their test candidates, for the users with a test match
    (in index order); their mean is the ``ndcg@k`` of :func:`grouped_ndcg`."""
    users = np.unique(split.test_user[split.test_match])
    order = np.argsort(split.test_user, kind="stable")  # row order kept within a user
    starts = np.searchsorted(split.test_user[order], users, side="left")
    ends = np.searchsorted(split.test_user[order], users, side="right")
    out = np.empty(len(users))
    for i, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        rows = order[lo:hi]
        out[i] = grouped_ndcg(np.zeros(len(rows)), scores[rows], split.test_match[rows], k).mean
    return out


def _describe(name: str) -> str:
    head = name.removesuffix(REVERSE)
    what = {
        "random": "uniform noise",
        "popularity": "share of likes the candidate received in training",
        "one_sided": "model P(user likes candidate)",
        "reciprocal": "harmonic mean of model P(user likes candidate) and P(candidate likes user)",
        "reciprocal_product": "product of the two model probabilities",
        "reciprocal_min": "minimum of the two model probabilities",
    }[head]
    if name.endswith(REVERSE):
        return f"{what}; the candidate's decision on the user recorded before, first"
    return f"{what}; no recorded decision of the candidate"


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
