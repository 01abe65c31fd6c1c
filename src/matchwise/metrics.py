"""Ranking and classification metrics, vectorised over users, plus a full-ranking evaluator.

Ranking metrics take a ``hits`` matrix: ``hits[u, j]`` is true when the item a model put
at rank ``j`` (0-based) for user ``u`` is relevant. Each returns one value per user, so
callers choose how to average; :func:`evaluate_full_ranking` averages over test users
with at least one positive, the protocol RecBole and most papers report.

>>> import numpy as np
>>> hits = np.array([[True, False, True]])
>>> float(precision_at_k(hits, 3)[0])
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from matchwise.errors import InvalidInput
from matchwise.models.base import InteractionSet, top_k_indices

__all__ = [
    "auc",
    "catalogue_coverage",
    "evaluate_full_ranking",
    "f1_at_k",
    "GroupedScore",
    "grouped_ndcg",
    "hit_matrix",
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "top_k",
]


class _Scorer(Protocol):
    def score(self, users: np.ndarray) -> np.ndarray: ...


ScoreFn = Callable[[np.ndarray], np.ndarray]


# --- helpers -----------------------------------------------------------------------------
def _hits(hits: ArrayLike, k: int) -> np.ndarray:
    """``hits`` as a 2-D boolean array cut to its first ``k`` columns."""
    if k < 1:
        raise InvalidInput(f"k must be >= 1, got {k}")
    array = np.asarray(hits)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise InvalidInput(f"hits must be 1-D or 2-D, got shape {array.shape}")
    return array[:, :k].astype(bool, copy=False)


def _n_relevant(n_relevant: ArrayLike, n_users: int) -> np.ndarray:
    counts = np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), (n_users,))
    if (counts < 0).any():
        raise InvalidInput("n_relevant must be non-negative")
    return counts


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise division that gives 0 where the denominator is 0 (a user with no positives)."""
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


# --- per-user ranking metrics ------------------------------------------------------------
def precision_at_k(hits: ArrayLike, k: int) -> np.ndarray:
    """Share of the top ``k`` that is relevant (the denominator is always ``k``)."""
    h = _hits(hits, k)
    return h.sum(axis=1) / float(k)


def recall_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> np.ndarray:
    """Share of the user's relevant items found in the top ``k``."""
    h = _hits(hits, k)
    return _safe_divide(h.sum(axis=1).astype(np.float64), _n_relevant(n_relevant, len(h)))


def f1_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> np.ndarray:
    """Per-user harmonic mean of precision@k and recall@k (0 when both are 0)."""
    p = precision_at_k(hits, k)
    r = recall_at_k(hits, n_relevant, k)
    return _safe_divide(2.0 * p * r, p + r)


def ndcg_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> np.ndarray:
    """Binary-relevance NDCG: DCG of the hits over the DCG of ``min(k, n_relevant)`` hits."""
    h = _hits(hits, k)
    discounts = _discounts(k)
    dcg = h @ discounts[: h.shape[1]]
    ideal_len = np.minimum(_n_relevant(n_relevant, len(h)), k).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_len]
    return _safe_divide(dcg, ideal)


def hit_rate_at_k(hits: ArrayLike, k: int) -> np.ndarray:
    """1 when at least one relevant item is in the top ``k``, else 0."""
    return np.asarray(_hits(hits, k).any(axis=1), dtype=np.float64)


def map_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> np.ndarray:
    """Average precision at k, normalised by ``min(k, n_relevant)`` (RecBole's definition).

    The sum of precision@i over the ranks i where a hit occurs, divided by the most hits
    the top k could hold, so a perfect list scores 1 whatever the number of positives.
    """
    h = _hits(hits, k)
    ranks = np.arange(1, h.shape[1] + 1, dtype=np.float64)
    precision_at_rank = np.cumsum(h, axis=1) / ranks
    total = (precision_at_rank * h).sum(axis=1)
    return _safe_divide(total, np.minimum(_n_relevant(n_relevant, len(h)), k))


def mrr_at_k(hits: ArrayLike, k: int) -> np.ndarray:
    """Reciprocal rank of the first hit within the top ``k`` (0 when there is none)."""
    h = _hits(hits, k)
    first = np.argmax(h, axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0).astype(np.float64)


# --- ranking within groups ----------------------------------------------------------------
class GroupedScore(NamedTuple):
    """A metric averaged over groups, and how many groups counted (a group with nothing
    relevant has no NDCG: it is left out, not scored 0)."""

    mean: float
    groups: int


def grouped_ndcg(
    groups: ArrayLike, scores: ArrayLike, relevance: ArrayLike, k: int = 10
) -> GroupedScore:
    """Mean NDCG@k of the rows ranked by ``scores`` within each group (a user's candidate
    pairs, say), over the groups with a relevant row.

    ``groups`` holds each row's group key; a group's rows need not be contiguous (LightGBM's
    group *sizes* are ``np.repeat(np.arange(len(sizes)), sizes)`` as keys). ``relevance`` is
    graded: a row's gain is ``2**relevance - 1``, so 0/1 or boolean labels give the binary
    NDCG of :func:`ndcg_at_k`. Ties in ``scores`` keep row order; the ideal ranking puts
    the group's own labels best first.
    """
    if k < 1:
        raise InvalidInput(f"k must be >= 1, got {k}")
    keys = np.asarray(groups).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    rel = np.asarray(relevance, dtype=np.float64).ravel()
    if not len(keys) == len(s) == len(rel):
        raise InvalidInput(
            f"groups ({len(keys)}), scores ({len(s)}) and relevance ({len(rel)}) differ in length"
        )
    if len(keys) == 0:
        return GroupedScore(0.0, 0)
    _, group = np.unique(keys, return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1
    sizes = np.bincount(group, minlength=n_groups)
    # rank within the group once rows are sorted by group: 0, 1, ... from each group's start
    position = np.arange(len(s)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    discount = np.where(position < k, 1.0 / np.log2(position + 2.0), 0.0)

    def dcg(order: np.ndarray) -> np.ndarray:
        gain = 2.0 ** rel[order] - 1.0
        return np.bincount(group[order], weights=gain * discount, minlength=n_groups)

    actual = dcg(np.lexsort((-s, group)))
    ideal = dcg(np.lexsort((-rel, group)))
    counted = ideal > 0
    if not counted.any():
        return GroupedScore(0.0, 0)
    return GroupedScore(float((actual[counted] / ideal[counted]).mean()), int(counted.sum()))


# --- classification and catalogue metrics ------------------------------------------------
def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (scipy's ``rankdata``, in NumPy)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.concatenate([first[1:], [len(values)]]) - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC of binary ``labels`` (> 0 = positive) against ``scores``; ties count one half.

    Computed from the Mann-Whitney U statistic, so it is exact and O(n log n).
    """
    y = np.asarray(labels).ravel() > 0
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise InvalidInput(f"labels ({len(y)}) and scores ({len(s)}) differ in length")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InvalidInput("auc needs at least one positive and one negative label")
    ranks = _average_ranks(s)
    u_statistic = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def catalogue_coverage(recommended: ArrayLike, n_items: int) -> float:
    """Share of the catalogue that appears in at least one recommendation list.

    ``recommended`` holds item indices (any shape); negative entries (padding) are ignored.
    """
    if n_items < 1:
        raise InvalidInput("n_items must be >= 1")
    items = np.asarray(recommended).ravel()
    items = items[items >= 0]
    return float(len(np.unique(items)) / n_items)


# --- full-ranking evaluation -------------------------------------------------------------
#: Most cells one ``argpartition`` call of :func:`top_k` takes: its negated copy and its
#: full-width index array stay a few MB, reused call after call, instead of 64 MB
#: and 128 MB first-touched per batch (issue 21: up to 15 ns a cell; a row at a time at a
#: million candidates, 2-3 ns, and the same indices: each row is partitioned alike).
TOP_K_CELLS = 1 << 20


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first (argpartition, then sort)."""
    k = min(k, scores.shape[1])
    rows = max(1, TOP_K_CELLS // max(scores.shape[1], 1))
    top = np.empty((scores.shape[0], k), dtype=np.intp)
    for start in range(0, scores.shape[0], rows):
        part = slice(start, start + rows)
        top[part] = np.argpartition(-scores[part], k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def hit_matrix(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """``hits[u, j]``: is ``top[u, j]`` a nonzero of row ``u`` of ``relevant``."""
    dense = relevant.toarray() > 0
    return np.take_along_axis(dense, top, axis=1)


def _seen_matrix(interactions: InteractionSet) -> sp.csr_matrix:
    """1 wherever a user interacted with an item, whatever the label (a pass is seen too)."""
    ones = np.ones(len(interactions), dtype=np.float32)
    matrix = sp.csr_matrix(
        (ones, (interactions.users, interactions.items)),
        shape=(interactions.n_users, interactions.n_items),
    )
    matrix.sum_duplicates()
    return matrix


#: Most score cells (evaluated users x catalogue) a full-ranking evaluation computes:
#: above it the users are sampled (about 540 users at a million candidates).
EVAL_MAX_CELLS = 1 << 29
#: Most score cells in one batch (64 MB of float32).
EVAL_BATCH_CELLS = 1 << 24


def _as_csr(matrix: sp.spmatrix, shape: tuple[int, int]) -> sp.csr_matrix:
    csr = sp.csr_matrix(matrix)
    if csr.shape != shape:
        raise InvalidInput(f"exclude has shape {csr.shape}, expected {shape}")
    return csr


def _full_ranking_inputs(
    model_or_score_fn: _Scorer | ScoreFn,
    train: InteractionSet,
    test: InteractionSet,
    exclude: InteractionSet | sp.spmatrix | None,
    batch_size: int,
) -> tuple[ScoreFn, sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    """What both full-ranking evaluations start from: the score function, the masked
    (seen) items, the binary relevant matrix, each user's relevant count and the users
    with at least one relevant item."""
    if batch_size < 1:
        raise InvalidInput("batch_size must be >= 1")
    score_fn: ScoreFn = (
        model_or_score_fn.score  # type: ignore[union-attr]
        if hasattr(model_or_score_fn, "score")
        else model_or_score_fn  # type: ignore[assignment]
    )
    shape = (train.n_users, train.n_items)
    seen = _seen_matrix(train)
    if exclude is not None:
        extra = _seen_matrix(exclude) if isinstance(exclude, InteractionSet) else exclude
        seen = sp.csr_matrix(seen + _as_csr(extra, shape).astype(bool).astype(np.float32))
    relevant = test.to_csr(positive_only=True)
    relevant.data = (relevant.data > 0).astype(np.float32)
    relevant.eliminate_zeros()
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant > 0)
    return score_fn, seen, relevant, n_relevant, users


def evaluate_full_ranking(
    model_or_score_fn: _Scorer | ScoreFn,
    train: InteractionSet,
    test: InteractionSet,
    k: int = 10,
    exclude: InteractionSet | sp.spmatrix | None = None,
    batch_size: int = 1024,
    max_cells: int = EVAL_MAX_CELLS,
) -> dict[str, float]:
    """Rank every item for every test user and average the metrics @k over those users.

    No sampled negatives: each user's training items (and ``exclude``'s, e.g. validation
    items when scoring the test set) are masked, everything else competes. Users count
    when they have at least one test interaction with ``label > 0``. Users are scored in
    batches of ``batch_size`` so memory stays at ``batch_size x n_items`` floats.

    Returns ``{"precision@k", "recall@k", "f1@k", "ndcg@k", "hit@k", "map@k", "mrr@k",
    "coverage@k", "users"}``; ``coverage@k`` is the share of the catalogue recommended to
    at least one evaluated user.

    Bounded work: when the users times the catalogue exceed ``max_cells`` score cells, an
    evenly spaced sample of ``max_cells // n_items`` of the users is evaluated (the same
    users on every call with the same split) and ``users_sampled_from`` says of how many:
    a million people ranking a million candidates is 10^12 scores. A batch holds at most
    ``EVAL_BATCH_CELLS`` scores, so memory does not grow with the catalogue either.
    """
    if (train.n_users, train.n_items) != (test.n_users, test.n_items):
        raise InvalidInput("train and test must share one id universe (same user/item ids)")
    score_fn, seen, relevant, n_relevant, users = _full_ranking_inputs(
        model_or_score_fn, train, test, exclude, batch_size
    )
    sampled_from = len(users)
    users = _evenly_spaced(users, max(1, max_cells // max(train.n_items, 1)))
    batch_size = max(1, min(batch_size, EVAL_BATCH_CELLS // max(train.n_items, 1)))

    names = ("precision", "recall", "f1", "ndcg", "hit", "map", "mrr")
    totals = dict.fromkeys(names, 0.0)
    recommended = np.zeros(train.n_items, dtype=bool)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(score_fn(batch), dtype=np.float32, copy=True)
        if scores.shape != (len(batch), train.n_items):
            raise InvalidInput(
                f"score returned shape {scores.shape}, expected {(len(batch), train.n_items)}"
            )
        scores[np.isnan(scores)] = -np.inf
        rows, cols = seen[batch].nonzero()
        scores[rows, cols] = -np.inf
        top = top_k(scores, k)
        recommended[top.ravel()] = True
        hits = hit_matrix(top, relevant[batch])
        n_rel = n_relevant[batch]
        per_user = {
            "precision": precision_at_k(hits, k),
            "recall": recall_at_k(hits, n_rel, k),
            "f1": f1_at_k(hits, n_rel, k),
            "ndcg": ndcg_at_k(hits, n_rel, k),
            "hit": hit_rate_at_k(hits, k),
            "map": map_at_k(hits, n_rel, k),
            "mrr": mrr_at_k(hits, k),
        }
        for name in names:
            totals[name] += float(per_user[name].sum())
    n = max(len(users), 1)
    result = {f"{name}@{k}": totals[name] / n for name in names}
    result[f"coverage@{k}"] = float(recommended.sum() / max(train.n_items, 1))
    result["users"] = float(len(users))
    if len(users) < sampled_from:
        result["users_sampled_from"] = float(sampled_from)
    return result


def _evenly_spaced(users: np.ndarray, most: int) -> np.ndarray:
    """``users`` when there are at most ``most``, else ``most`` of them evenly spaced."""
    if len(users) <= most:
        return users
    return users[np.unique(np.linspace(0, len(users) - 1, most).round().astype(np.int64))]


# --- per-user full ranking and paired comparisons -----------------------------------------
__all__ += ["BootstrapInterval", "paired_bootstrap", "per_user_full_ranking"]


def per_user_full_ranking(
    model_or_score_fn: _Scorer | ScoreFn,
    train: InteractionSet,
    test: InteractionSet,
    k: int = 10,
    exclude: InteractionSet | sp.spmatrix | None = None,
    batch_size: int = 1024,
) -> dict[str, np.ndarray]:
    """:func:`evaluate_full_ranking` per user: each evaluated user's metrics, unaveraged.

    Returns ``{"users": row indices, "ndcg@k", "recall@k", "hit@k", "map@k",
    "precision@k", "mrr@k"}``, one entry per user with a positive test interaction, in
    index order, so two models scored on one split pair up user by user
    (:func:`paired_bootstrap`). Lists are cut with
    :func:`~matchwise.models.base.top_k_indices`: equal scores rank in item-index order,
    so the figures are the same on every run.
    """
    if (train.n_users, train.n_items) != (test.n_users, test.n_items):
        raise InvalidInput("train and test must share one id universe (same user/item ids)")
    if k < 1:
        raise InvalidInput(f"k must be >= 1, got {k}")
    score_fn, seen, relevant, n_relevant, users = _full_ranking_inputs(
        model_or_score_fn, train, test, exclude, batch_size
    )
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("ndcg", "recall", "hit", "map", "precision", "mrr")
    }
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(score_fn(batch), dtype=np.float32, copy=True)
        if scores.shape != (len(batch), train.n_items):
            raise InvalidInput(
                f"score returned shape {scores.shape}, expected {(len(batch), train.n_items)}"
            )
        scores[np.isnan(scores)] = -np.inf
        rows, cols = seen[batch].nonzero()
        scores[rows, cols] = -np.inf
        hits = hit_matrix(top_k_indices(scores, k), relevant[batch])
        n_rel = n_relevant[batch]
        parts["ndcg"].append(ndcg_at_k(hits, n_rel, k))
        parts["recall"].append(recall_at_k(hits, n_rel, k))
        parts["hit"].append(hit_rate_at_k(hits, k))
        parts["map"].append(map_at_k(hits, n_rel, k))
        parts["precision"].append(precision_at_k(hits, k))
        parts["mrr"].append(mrr_at_k(hits, k))
    out = {"users": users.astype(np.int64)}
    for name, chunks in parts.items():
        out[f"{name}@{k}"] = np.concatenate(chunks) if chunks else np.zeros(0, np.float64)
    return out


class BootstrapInterval(NamedTuple):
    """Mean of ``a - b`` over paired units and its percentile bootstrap interval."""

    difference: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or wholly below 0: a real difference."""
        return self.low > 0.0 or self.high < 0.0


def paired_bootstrap(
    per_user_a: ArrayLike,
    per_user_b: ArrayLike,
    n: int = 5000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """How much ``a`` beats ``b`` on average, with a paired bootstrap interval.

    ``per_user_a[i]`` and ``per_user_b[i]`` are one unit's (a user's) figures under two
    models; the users are resampled with replacement ``n`` times (seeded: the same inputs
    give the same interval) and the interval is the central ``confidence`` share of the
    resampled mean differences. Pairing removes the spread between users, which is most of
    the spread, so the interval is far narrower than comparing two unpaired means.

    >>> paired_bootstrap([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]).difference
    0.0
    """
    a = np.asarray(per_user_a, dtype=np.float64).ravel()
    b = np.asarray(per_user_b, dtype=np.float64).ravel()
    if len(a) != len(b):
        raise InvalidInput(f"paired figures differ in length: {len(a)} and {len(b)}")
    if len(a) == 0:
        raise InvalidInput("paired_bootstrap needs at least one pair")
    if n < 1:
        raise InvalidInput(f"n must be >= 1, got {n}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(f"confidence must be in (0, 1), got {confidence}")
    diff = a - b
    if not np.isfinite(diff).all():
        raise InvalidInput("paired figures must be finite")
    rng = np.random.default_rng(seed)
    means = np.empty(n, dtype=np.float64)
    chunk = max(1, 2_000_000 // len(diff))  # bound the index matrix to ~16 MB
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        means[start : start + size] = diff[rng.integers(0, len(diff), (size, len(diff)))].mean(1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return BootstrapInterval(float(diff.mean()), float(low), float(high))
