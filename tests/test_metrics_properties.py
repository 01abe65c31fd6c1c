"""Metrics by definition (hypothesis: bounds, ideal orderings, each metric against its
textbook formula one user at a time), and the edges mutation testing found unchecked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matchwise import metrics as metrics_module
from matchwise.errors import InvalidInput
from matchwise.metrics import (
    auc,
    catalogue_coverage,
    evaluate_full_ranking,
    f1_at_k,
    grouped_ndcg,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    top_k,
)
from matchwise.models.base import InteractionSet

PROPERTY = settings(max_examples=50, deadline=None, derandomize=True, database=None)


@st.composite
def ranked_lists(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Hit matrices with a consistent number of relevant items per user (>= hits shown)."""
    users = draw(st.integers(1, 5))
    length = draw(st.integers(1, 8))
    hits = draw(arrays(np.bool_, (users, length)))
    extra = draw(arrays(np.int64, users, elements=st.integers(0, 4)))
    k = draw(st.integers(1, length + 2))
    return hits, hits.sum(axis=1) + extra, k


@PROPERTY
@given(case=ranked_lists())
def test_ranking_metrics_match_their_definitions_user_by_user(
    case: tuple[np.ndarray, np.ndarray, int],
) -> None:
    hits, n_rel, k = case
    results = {
        "precision": precision_at_k(hits, k),
        "recall": recall_at_k(hits, n_rel, k),
        "f1": f1_at_k(hits, n_rel, k),
        "ndcg": ndcg_at_k(hits, n_rel, k),
        "hit": hit_rate_at_k(hits, k),
        "map": map_at_k(hits, n_rel, k),
        "mrr": mrr_at_k(hits, k),
    }
    for name, values in results.items():
        assert values.dtype == np.float64 and values.shape == (len(hits),), name
        assert ((values >= 0) & (values <= 1 + 1e-12)).all(), name
    for u, (row, n) in enumerate(zip(hits, n_rel, strict=True)):
        top = [bool(h) for h in row[:k]]
        found = sum(top)
        ranks = [i + 1 for i, h in enumerate(top) if h]
        precision = found / k
        recall = found / n if n else 0.0
        dcg = sum(1 / math.log2(r + 1) for r in ranks)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, n)))
        ap = sum((i + 1) / r for i, r in enumerate(ranks))
        expected = {
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if found else 0.0,
            "ndcg": dcg / ideal if ideal else 0.0,
            "hit": 1.0 if found else 0.0,
            "map": ap / min(k, n) if n else 0.0,
            "mrr": 1 / ranks[0] if ranks else 0.0,
        }
        for name, value in expected.items():
            assert results[name][u] == pytest.approx(value, rel=1e-12, abs=1e-15), name


@PROPERTY
@given(n_rel=st.integers(0, 12), k=st.integers(1, 10), length=st.integers(1, 12))
def test_ndcg_is_one_for_the_ideal_list_and_zero_without_hits(
    n_rel: int, k: int, length: int
) -> None:
    ideal = np.zeros(length, dtype=bool)
    ideal[: min(n_rel, length)] = True
    value = ndcg_at_k(ideal, n_rel, k)[0]
    if n_rel == 0:
        assert value == 0.0
    elif length >= min(n_rel, k):
        assert value == pytest.approx(1.0, rel=1e-12)
    else:
        assert 0.0 < value < 1.0  # the list is too short to hold what an ideal one would
    assert ndcg_at_k(np.zeros(length, dtype=bool), n_rel, k)[0] == 0.0
    # moving a hit down never raises NDCG
    if 0 < n_rel < length:
        worse = ideal.copy()
        worse[n_rel - 1], worse[n_rel] = False, True
        assert ndcg_at_k(worse, n_rel, k)[0] <= value


@PROPERTY
@given(
    labels=arrays(np.bool_, st.integers(2, 30)),
    data=st.data(),
)
def test_auc_is_the_share_of_correctly_ordered_pairs(
    labels: np.ndarray, data: st.DataObject
) -> None:
    if labels.all() or not labels.any():
        labels[0] = not labels[0]
    scores = data.draw(arrays(np.float64, len(labels), elements=st.integers(-3, 3).map(float)))
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    value = auc(labels, scores)
    assert value == pytest.approx(pairs / (len(pos) * len(neg)), rel=1e-12)
    assert 0.0 <= value <= 1.0
    assert auc(labels, -scores) == pytest.approx(1.0 - value, abs=1e-12)
    assert auc(labels.astype(int), scores) == value  # labels > 0 are positives
    # scoring every positive above every negative is perfect, the reverse is 0
    ideal = labels.astype(float)
    assert auc(labels, ideal) == 1.0 and auc(labels, -ideal) == 0.0


def test_auc_with_one_positive_or_one_negative() -> None:
    assert auc([0, 0, 1, 0], [0.1, 0.4, 0.3, 0.2]) == pytest.approx(2 / 3)
    assert auc([1, 0], [0.2, 0.1]) == 1.0
    assert auc([1, 1, 0, 1], [0.1, 0.4, 0.3, 0.2]) == pytest.approx(1 / 3)
    assert auc([1, 0], [1, 1]) == 0.5  # integer scores
    with pytest.raises(
        InvalidInput, match="^auc needs at least one positive and one negative label$"
    ):
        auc([0, 0], [0.1, 0.2])
    with pytest.raises(InvalidInput, match=r"^labels \(2\) and scores \(3\) differ in length$"):
        auc([0, 1], [0.1, 0.2, 0.3])


@PROPERTY
@given(
    groups=arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 5)),
    data=st.data(),
    k=st.integers(1, 12),
)
def test_grouped_ndcg_bounds_and_ideal_order(
    groups: np.ndarray, data: st.DataObject, k: int
) -> None:
    relevance = data.draw(arrays(np.int64, len(groups), elements=st.integers(0, 3)))
    scores = data.draw(arrays(np.float64, len(groups), elements=st.floats(-5, 5)))
    result = grouped_ndcg(groups, scores, relevance, k)
    with_relevant = {int(g) for g, r in zip(groups, relevance, strict=True) if r > 0}
    assert result.groups == len(with_relevant)
    assert 0.0 <= result.mean <= 1.0 + 1e-12
    best = grouped_ndcg(groups, relevance.astype(float), relevance, k)
    assert best.groups == len(with_relevant)
    if with_relevant:
        assert best.mean == pytest.approx(1.0, rel=1e-12)


def test_grouped_ndcg_default_k_is_ten_and_k_one_is_allowed() -> None:
    rel = np.zeros(12)
    rel[10] = 1  # the one relevant row ranked 11th
    scores = -np.arange(12.0)
    assert grouped_ndcg(np.zeros(12), scores, rel) == (0.0, 1)
    assert grouped_ndcg(np.zeros(12), scores, rel, k=11).mean == pytest.approx(1 / math.log2(12))
    assert grouped_ndcg([0, 0], [2.0, 1.0], [1, 0], k=1) == (1.0, 1)
    assert grouped_ndcg([0, 0], [1.0, 2.0], [1, 0], k=1) == (0.0, 1)


@PROPERTY
@given(data=st.data(), k=st.integers(1, 9))
def test_top_k_is_the_k_best_best_first(data: st.DataObject, k: int) -> None:
    rows, cols = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 9))
    scores = data.draw(arrays(np.float64, (rows, cols), elements=st.floats(-1e6, 1e6), unique=True))
    expected = np.argsort(-scores, axis=1)[:, :k]
    np.testing.assert_array_equal(top_k(scores, k), expected)


@PROPERTY
@given(recommended=arrays(np.int64, (3, 4), elements=st.integers(-1, 9)), extra=st.integers(0, 5))
def test_catalogue_coverage_is_the_share_of_distinct_items(
    recommended: np.ndarray, extra: int
) -> None:
    n_items = 10 + extra
    distinct = {int(i) for i in recommended.ravel() if i >= 0}
    assert catalogue_coverage(recommended, n_items) == pytest.approx(len(distinct) / n_items)


# --- edges -------------------------------------------------------------------------------------
def test_edges_of_the_per_user_metrics() -> None:
    assert catalogue_coverage([0], 1) == 1.0  # a one-item catalogue
    assert catalogue_coverage([], 1) == 0.0
    with pytest.raises(InvalidInput, match="^n_items must be >= 1$"):
        catalogue_coverage([0], 0)
    # hits given as counts or flags: anything non-zero is a hit
    np.testing.assert_array_equal(precision_at_k([[2, 0]], 2), [0.5])
    np.testing.assert_array_equal(ndcg_at_k([[3, 0]], [1], 2), [1.0])
    # more hits shown than the user has relevant items (inconsistent input) never exceeds 0
    np.testing.assert_array_equal(ndcg_at_k([[1, 0]], [0], 2), [0.0])
    with pytest.raises(InvalidInput, match="^k must be >= 1, got 0$"):
        ndcg_at_k([[1]], [1], 0)
    with pytest.raises(InvalidInput, match=r"^hits must be 1-D or 2-D, got shape \(1, 1, 1\)$"):
        precision_at_k(np.ones((1, 1, 1)), 1)
    with pytest.raises(InvalidInput, match="^n_relevant must be non-negative$"):
        recall_at_k([[1]], [-1], 1)


def _set(pairs: list[tuple[int, int, float]], n_users: int, n_items: int) -> InteractionSet:
    users, items, labels = (list(v) for v in zip(*pairs, strict=True)) if pairs else ([], [], [])
    return InteractionSet(
        user_ids=np.arange(n_users).astype(str),
        item_ids=np.arange(n_items).astype(str),
        users=np.array(users, dtype=np.int64),
        items=np.array(items, dtype=np.int64),
        labels=np.array(labels, dtype=np.float32),
    )


class _Model:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users]


def test_full_ranking_edges() -> None:
    n_users, n_items = 4, 12
    rng = np.random.default_rng(3)
    scores = rng.random((n_users, n_items)).astype(np.float32)
    train = _set([(0, 0, 1.0), (1, 1, 1.0), (2, 2, 0.0)], n_users, n_items)
    test = _set(
        [(u, i, 1.0) for u in range(3) for i in (3, 5, 7, 11)] + [(3, 4, 0.0)], n_users, n_items
    )
    by_fn = evaluate_full_ranking(lambda u: scores[u], train, test)
    # k defaults to 10; a model is scored through its score method; batching changes nothing
    assert set(by_fn) == {f"{m}@10" for m in ("precision", "recall", "f1", "ndcg", "hit")} | {
        "map@10",
        "mrr@10",
        "coverage@10",
        "users",
    }
    assert evaluate_full_ranking(_Model(scores), train, test, k=10) == by_fn
    assert evaluate_full_ranking(_Model(scores), train, test, k=10, batch_size=2) == by_fn
    # the caller's scores are never written to (seen items and NaN are masked on a copy)
    batch = scores[:3].copy()
    before = batch.copy()
    evaluate_full_ranking(lambda u: batch, train, test)
    np.testing.assert_array_equal(batch, before)
    # NaN scores rank last, like masked items
    nan_scores = scores.copy()
    nan_scores[:, 3] = np.nan
    best_other = evaluate_full_ranking(lambda u: nan_scores[u], train, test, k=1)
    top1 = np.where(np.isnan(nan_scores), -np.inf, nan_scores)
    top1[[0, 1, 2], [0, 1, 2]] = -np.inf
    assert best_other["hit@1"] == pytest.approx(
        np.mean([top1[u].argmax() in (5, 7, 11) for u in range(3)])
    )


def test_full_ranking_exclude_as_a_matrix_one_user_and_one_item() -> None:
    train = _set([(0, 0, 1.0)], 2, 3)
    test = _set([(0, 1, 1.0)], 2, 3)
    scores = np.array([[9.0, 5.0, 7.0], [1.0, 2.0, 3.0]])
    # exclude given as a sparse matrix, overlapping train, and with a negative entry
    exclude = sp.csr_matrix(np.array([[-1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]))
    result = evaluate_full_ranking(lambda u: scores[u], train, test, k=1, exclude=exclude)
    assert result["users"] == 1.0 and result["hit@1"] == 1.0 and result["ndcg@1"] == 1.0
    assert result["coverage@1"] == pytest.approx(1 / 3)
    with pytest.raises(InvalidInput, match=r"^exclude has shape \(1, 3\), expected \(2, 3\)$"):
        evaluate_full_ranking(lambda u: scores[u], train, test, exclude=sp.csr_matrix((1, 3)))
    one = _set([(0, 0, 1.0)], 1, 1)
    single = evaluate_full_ranking(lambda u: np.ones((len(u), 1)), _set([], 1, 1), one, k=1)
    assert single["coverage@1"] == 1.0 and single["hit@1"] == 1.0
    with pytest.raises(InvalidInput, match=r"^score returned shape \(1, 2\), expected \(1, 3\)$"):
        evaluate_full_ranking(lambda u: np.ones((len(u), 2)), train, test)
    with pytest.raises(
        InvalidInput, match=r"^train and test must share one id universe \(same user/item ids\)$"
    ):
        evaluate_full_ranking(lambda u: scores[u], train, _set([], 2, 4))
    with pytest.raises(InvalidInput, match="^batch_size must be >= 1$"):
        evaluate_full_ranking(lambda u: scores[u], train, test, batch_size=0)


@pytest.mark.parametrize("cells", [1, 7, 1 << 20])
def test_top_k_in_row_blocks_picks_the_tied_items_argpartition_picks(
    monkeypatch: pytest.MonkeyPatch, cells: int
) -> None:
    """top_k partitions a block of rows at a time (issue 21: the whole batch's negated
    copy and index array cost more than the selection): with many ties at the cut the
    lists are those of one whole-array argpartition, so evaluations do not move."""
    monkeypatch.setattr(metrics_module, "TOP_K_CELLS", cells)
    rng = np.random.default_rng(5)
    scores = np.round(rng.random((9, 400)) * 20).astype(np.float32) / 20  # 21 values
    scores[:, ::5] = -np.inf
    whole = np.argpartition(-scores, 9, axis=1)[:, :10]
    order = np.argsort(-np.take_along_axis(scores, whole, axis=1), axis=1, kind="stable")
    np.testing.assert_array_equal(top_k(scores, 10), np.take_along_axis(whole, order, axis=1))
