"""Each metric against values worked out by hand on tiny examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from matchwise.errors import InvalidInput
from matchwise.metrics import (
    auc,
    catalogue_coverage,
    evaluate_full_ranking,
    f1_at_k,
    grouped_ndcg,
    hit_matrix,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    top_k,
)
from matchwise.models.base import InteractionSet

# user 0: hits at ranks 1 and 3 of 3, 4 relevant items in all
# user 1: one hit at rank 2, 1 relevant item
# user 2: no hits, 2 relevant items
HITS = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
N_REL = np.array([4, 1, 2])


def test_precision() -> None:
    np.testing.assert_allclose(precision_at_k(HITS, 3), [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(precision_at_k(HITS, 1), [1, 0, 0])


def test_recall() -> None:
    np.testing.assert_allclose(recall_at_k(HITS, N_REL, 3), [2 / 4, 1, 0])
    np.testing.assert_allclose(recall_at_k(HITS, N_REL, 2), [1 / 4, 1, 0])


def test_recall_of_user_without_positives_is_zero() -> None:
    np.testing.assert_allclose(recall_at_k([[0, 0]], [0], 2), [0.0])


def test_f1() -> None:
    p, r = 2 / 3, 2 / 4
    np.testing.assert_allclose(f1_at_k(HITS, N_REL, 3), [2 * p * r / (p + r), 0.5, 0])


def test_ndcg() -> None:
    d = [1 / math.log2(i + 2) for i in range(3)]  # 1, 0.6309, 0.5
    expected = [(d[0] + d[2]) / (d[0] + d[1] + d[2]), d[1] / d[0], 0.0]
    np.testing.assert_allclose(ndcg_at_k(HITS, N_REL, 3), expected)


def test_ndcg_perfect_list_is_one() -> None:
    np.testing.assert_allclose(ndcg_at_k([[1, 1, 0]], [2], 3), [1.0])


def test_hit_rate() -> None:
    np.testing.assert_allclose(hit_rate_at_k(HITS, 3), [1, 1, 0])
    np.testing.assert_allclose(hit_rate_at_k(HITS, 1), [1, 0, 0])


def test_map_normalised_by_min_k_and_relevant() -> None:
    # user 0: (1/1 + 2/3) / min(3, 4); user 1: (1/2) / 1
    np.testing.assert_allclose(map_at_k(HITS, N_REL, 3), [(1 + 2 / 3) / 3, 0.5, 0])
    # few positives: normalise by n_relevant, not k
    np.testing.assert_allclose(map_at_k([[0, 1, 1, 0]], [2], 4), [(1 / 2 + 2 / 3) / 2])


def test_mrr() -> None:
    np.testing.assert_allclose(mrr_at_k(HITS, 3), [1, 0.5, 0])
    np.testing.assert_allclose(mrr_at_k([[0, 0, 0, 1]], 3), [0])


def test_one_dimensional_hits_mean_one_user() -> None:
    np.testing.assert_allclose(precision_at_k([1, 0], 2), [0.5])


def test_k_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        precision_at_k(HITS, 0)


def test_auc_perfect_random_and_ties() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # all tied: every pair counts one half
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # pairs (pos, neg): (0.8>0.3) (0.8>0.5) (0.5=0.5 -> 1/2) (0.5>0.3) -> 3.5 / 4
    assert auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.3]) == pytest.approx(3.5 / 4)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(InvalidInput):
        auc([1, 1], [0.1, 0.2])


def test_catalogue_coverage() -> None:
    assert catalogue_coverage([[0, 1], [1, 2]], 10) == pytest.approx(0.3)
    assert catalogue_coverage([[0, -1]], 4) == pytest.approx(0.25)


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[1, 3], [0, 1]])


def test_hit_matrix() -> None:
    relevant = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0]]))
    np.testing.assert_array_equal(
        hit_matrix(np.array([[1, 0], [2, 0]]), relevant), [[True, False], [False, True]]
    )


# --- NDCG within groups: one function for the benchmarks (binary relevance, a user's id per
# row, groups interleaved) and the ranker (graded labels, contiguous LightGBM groups)
def test_grouped_ndcg_binary_matches_ndcg_at_k_per_group_over_groups_with_a_positive() -> None:
    groups = np.array(["b", "a", "b", "c", "a", "b", "c"])  # interleaved, not contiguous
    scores = np.array([0.9, 0.2, 0.1, 0.5, 0.8, 0.5, 0.4])
    relevant = np.array([False, True, True, False, False, True, False])
    # a: ranked [4, 1] -> hit at rank 2 of 1 relevant; b: ranked [0, 5, 2] -> hits at 2, 3
    # of 2 relevant; c: nothing relevant -> left out
    a = ndcg_at_k([[False, True]], 1, 10)[0]
    b = ndcg_at_k([[False, True, True]], 2, 10)[0]
    result = grouped_ndcg(groups, scores, relevant, k=10)
    assert result.mean == pytest.approx((a + b) / 2)
    assert result.groups == 2
    mean, counted = result  # unpacks like the (mean, groups) pair the benchmarks used
    assert (mean, counted) == (result.mean, 2)
    assert grouped_ndcg(groups, scores, relevant.astype(int), k=10) == result


def test_grouped_ndcg_agrees_with_a_loop_over_groups() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 30, size=600)
    scores = rng.integers(0, 5, size=600).astype(float)  # many ties: row order breaks them
    relevant = rng.random(600) < 0.15
    values = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        rel = relevant[rows][np.argsort(-scores[rows], kind="stable")]
        if rel.any():
            values.append(ndcg_at_k(rel[None, :5], int(rel.sum()), 5)[0])
    result = grouped_ndcg(groups, scores, relevant, k=5)
    assert result.mean == pytest.approx(np.mean(values))
    assert result.groups == len(values)


def test_grouped_ndcg_graded_labels_gain_two_to_the_label_minus_one() -> None:
    # one group, labels 2, 0, 1 scored so the order is [1, 2, 0]: gains 0, 1, 3
    dcg = 0 + 1 / math.log2(3) + 3 / math.log2(4)
    ideal = 3 + 1 / math.log2(3)
    result = grouped_ndcg([7, 7, 7], [0.1, 0.9, 0.5], [2, 0, 1], k=3)
    assert result == (pytest.approx(dcg / ideal), 1)
    # k cuts both the list and the ideal
    cut = grouped_ndcg([7, 7, 7], [0.1, 0.9, 0.5], [2, 0, 1], k=2)
    assert cut.mean == pytest.approx((1 / math.log2(3)) / (3 + 1 / math.log2(3)))


def test_grouped_ndcg_ties_keep_row_order_and_edge_cases() -> None:
    assert grouped_ndcg([0, 0], [1.0, 1.0], [0, 1]).mean == pytest.approx(1 / math.log2(3))
    assert grouped_ndcg([0, 0], [1.0, 1.0], [1, 0]).mean == pytest.approx(1.0)
    assert grouped_ndcg([0, 1], [1.0, 2.0], [0, 0]) == (0.0, 0)
    assert grouped_ndcg([], [], []) == (0.0, 0)
    with pytest.raises(InvalidInput, match="differ in length"):
        grouped_ndcg([0, 0], [1.0], [1, 0])
    with pytest.raises(InvalidInput, match="k must be"):
        grouped_ndcg([0], [1.0], [1], k=0)


def _interactions(pairs: list[tuple[int, int, float]], n_users: int, n_items: int):
    users, items, labels = zip(*pairs, strict=True) if pairs else ((), (), ())
    return InteractionSet(
        user_ids=np.arange(n_users).astype(str),
        item_ids=np.arange(n_items).astype(str),
        users=np.array(users, dtype=np.int64),
        items=np.array(items, dtype=np.int64),
        labels=np.array(labels, dtype=np.float32),
    )


def test_full_ranking_masks_train_and_exclude_and_skips_users_without_positives() -> None:
    n_users, n_items = 3, 5
    # user 0 trained on item 0 (the best-scored item); user 1 on item 4 (a pass, label 0)
    train = _interactions([(0, 0, 1.0), (1, 4, 0.0)], n_users, n_items)
    valid = _interactions([(0, 1, 1.0)], n_users, n_items)
    # user 0's positive is item 2; user 1's is item 3; user 2 has only a negative
    test = _interactions([(0, 2, 1.0), (1, 3, 1.0), (2, 1, 0.0)], n_users, n_items)
    item_scores = np.array([5.0, 4.0, 3.0, 2.0, 10.0], dtype=np.float32)

    def score(users: np.ndarray) -> np.ndarray:
        return np.tile(item_scores, (len(users), 1))

    result = evaluate_full_ranking(score, train, test, k=2, exclude=valid, batch_size=1)
    # user 0 ranks [4, 2] (0 trained, 1 validation): hit at rank 2
    # user 1 ranks [0, 1] (4 seen, even as a pass): no hit
    assert result["users"] == 2
    assert result["hit@2"] == pytest.approx(0.5)
    assert result["precision@2"] == pytest.approx(0.25)
    assert result["recall@2"] == pytest.approx(0.5)
    assert result["mrr@2"] == pytest.approx(0.25)
    assert result["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)
    assert result["map@2"] == pytest.approx(0.25)
    assert result["f1@2"] == pytest.approx((2 * 0.5 * 1.0 / 1.5) / 2)
    assert result["coverage@2"] == pytest.approx(4 / 5)

    unmasked = evaluate_full_ranking(score, train, test, k=2)
    # user 0 now ranks [4, 1]: no hit
    assert unmasked["hit@2"] == 0.0


def test_full_ranking_rejects_mismatched_universes() -> None:
    train = _interactions([(0, 0, 1.0)], 1, 2)
    test = _interactions([(0, 1, 1.0)], 1, 3)
    with pytest.raises(InvalidInput):
        evaluate_full_ranking(lambda u: np.zeros((len(u), 2)), train, test)


# --- per-user full ranking and the paired bootstrap ----------------------------------------
from matchwise.metrics import paired_bootstrap, per_user_full_ranking  # noqa: E402


def test_per_user_full_ranking_is_evaluate_full_ranking_unaveraged() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 30, 25
    pairs = {(int(u), int(i)) for u, i in rng.integers(0, [n_users, n_items], (300, 2))}
    rows = sorted(pairs)
    train = _interactions([(u, i, 1.0) for u, i in rows[::3]], n_users, n_items)
    valid = _interactions([(u, i, 1.0) for u, i in rows[1::3]], n_users, n_items)
    test = _interactions([(u, i, 1.0) for u, i in rows[2::3]], n_users, n_items)
    table = rng.random((n_users, n_items)).astype(np.float32)  # no ties

    def score(users: np.ndarray) -> np.ndarray:
        return table[users]

    mean = evaluate_full_ranking(score, train, test, k=5, exclude=valid, batch_size=7)
    per_user = per_user_full_ranking(score, train, test, k=5, exclude=valid, batch_size=7)
    assert len(per_user["users"]) == mean["users"]
    assert list(per_user["users"]) == sorted(per_user["users"])
    for name in ("ndcg", "recall", "hit", "map", "precision", "mrr"):
        assert per_user[f"{name}@5"].mean() == pytest.approx(mean[f"{name}@5"])


def test_per_user_full_ranking_orders_ties_by_item_index() -> None:
    # every item scores the same: the list must be the unmasked items in index order
    train = _interactions([(0, 0, 1.0)], 1, 12)
    test = _interactions([(0, 3, 1.0), (0, 11, 1.0)], 1, 12)
    flat = per_user_full_ranking(lambda u: np.ones((len(u), 12)), train, test, k=3)
    # ranks items 1, 2, 3: the hit (item 3) sits at rank 3, item 11 is never reached
    assert flat["hit@3"].tolist() == [1.0]
    assert flat["mrr@3"].tolist() == pytest.approx([1 / 3])
    assert flat["ndcg@3"].tolist() == pytest.approx([(1 / 2) / (1 + 1 / math.log2(3))])


def test_paired_bootstrap_finds_a_real_difference() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(800)  # users differ a lot...
    a = b + 0.02 + rng.normal(0.0, 0.05, 800)  # ...but a beats b by 0.02 for each of them
    interval = paired_bootstrap(a, b, n=2000, seed=1)
    assert interval.difference == pytest.approx(float(np.mean(a - b)))
    assert 0.0 < interval.low < interval.difference < interval.high
    assert interval.excludes_zero()
    # the same arrays unpaired would not show it: the users' spread swamps 0.02
    assert np.std(b) / np.sqrt(800) > 0.009


def test_paired_bootstrap_includes_zero_when_there_is_no_difference() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(800)
    noise = rng.normal(0.0, 0.05, 800)
    a = b + (noise - noise.mean())  # differences that average exactly zero
    interval = paired_bootstrap(a, b, n=2000, seed=1)
    assert interval.difference == pytest.approx(0.0, abs=1e-12)
    assert interval.low < 0.0 < interval.high
    assert not interval.excludes_zero()
    same = paired_bootstrap(b, b)
    assert tuple(same) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_is_seeded_and_pure() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(300), rng.random(300)
    a_copy, b_copy = a.copy(), b.copy()
    first = paired_bootstrap(a, b, n=500, seed=7)
    assert paired_bootstrap(a, b, n=500, seed=7) == first  # same seed, same interval
    assert paired_bootstrap(a, b, n=500, seed=8) != first  # another seed, another draw
    assert paired_bootstrap(a, b, n=500, seed=8).difference == first.difference
    np.testing.assert_array_equal(a, a_copy)  # inputs untouched
    np.testing.assert_array_equal(b, b_copy)
    # a wider confidence gives a wider interval around the same difference
    wide = paired_bootstrap(a, b, n=500, seed=7, confidence=0.99)
    assert wide.low <= first.low and wide.high >= first.high


def test_paired_bootstrap_covers_the_true_difference_about_95_in_100() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(100):
        b = rng.random(200)
        a = b + rng.normal(0.01, 0.1, 200)  # true mean difference 0.01
        interval = paired_bootstrap(a, b, n=400, seed=trial)
        covered += interval.low <= 0.01 <= interval.high
    assert 88 <= covered <= 100


def test_paired_bootstrap_refuses_bad_input() -> None:
    with pytest.raises(InvalidInput, match="length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInput, match="at least one"):
        paired_bootstrap([], [])
    with pytest.raises(InvalidInput, match="n must"):
        paired_bootstrap([1.0], [1.0], n=0)
    with pytest.raises(InvalidInput, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=1.0)
    with pytest.raises(InvalidInput, match="finite"):
        paired_bootstrap([np.nan], [1.0])


# --- what mutation testing found untested (TESTING.md) -------------------------------------
from matchwise.metrics import BootstrapInterval  # noqa: E402

PER_USER_KEYS = {"ndcg", "recall", "hit", "map", "precision", "mrr"}


class _Scores:
    """A model: anything with a ``score(users)`` method is scored through it."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.table[users]


def test_top_k_is_the_exact_top_of_a_long_row_for_every_k() -> None:
    # argpartition must cut at k - 1: short rows hide a wrong cut (they are sorted in full)
    scores = np.random.default_rng(0).random((4, 2000))
    best = np.argsort(-scores, axis=1)
    for k in range(1, 301):
        np.testing.assert_array_equal(top_k(scores, k), best[:, :k], err_msg=f"k={k}")


def test_grouped_ndcg_takes_scores_as_flags_or_unsigned_counts() -> None:
    # a yes/no classifier's flags and uint8 counts rank by value (not negated in their dtype)
    assert grouped_ndcg([0, 0, 0], np.array([False, True, False]), [0, 1, 0]) == (1.0, 1)
    assert grouped_ndcg([0, 0, 0], np.array([1, 2, 0], dtype=np.uint8), [0, 1, 0]) == (1.0, 1)


def test_per_user_full_ranking_defaults_and_a_model_object() -> None:
    rng = np.random.default_rng(4)
    table = rng.random((5, 15)).astype(np.float32)
    train = _interactions([(u, u, 1.0) for u in range(5)], 5, 15)
    test = _interactions([(u, i, 1.0) for u in range(5) for i in (6, 9, 14)], 5, 15)
    by_fn = per_user_full_ranking(lambda u: table[u], train, test)
    # k defaults to 10, users are int64 row indices
    assert set(by_fn) == {"users"} | {f"{name}@10" for name in PER_USER_KEYS}
    assert by_fn["users"].dtype == np.int64 and by_fn["users"].tolist() == [0, 1, 2, 3, 4]
    # a model is scored through its score method; k = 1 and batch_size = 1 are allowed
    by_model = per_user_full_ranking(_Scores(table), train, test, k=10)
    one_by_one = per_user_full_ranking(_Scores(table), train, test, k=10, batch_size=1)
    for name in by_fn:
        np.testing.assert_array_equal(by_model[name], by_fn[name])
        np.testing.assert_array_equal(one_by_one[name], by_fn[name])
    top1 = per_user_full_ranking(_Scores(table), train, test, k=1)
    masked = table.copy()
    masked[np.arange(5), np.arange(5)] = -np.inf
    expected = [float(masked[u].argmax() in (6, 9, 14)) for u in range(5)]
    assert top1["hit@1"].tolist() == expected


def test_per_user_full_ranking_refuses_bad_input_with_its_reason() -> None:
    train = _interactions([(0, 0, 1.0)], 2, 3)
    test = _interactions([(0, 1, 1.0)], 2, 3)
    scores = np.array([[9.0, 5.0, 7.0], [1.0, 2.0, 3.0]])
    with pytest.raises(
        InvalidInput, match=r"^train and test must share one id universe \(same user/item ids\)$"
    ):
        per_user_full_ranking(lambda u: scores[u], train, _interactions([], 2, 4))
    with pytest.raises(InvalidInput, match="^k must be >= 1, got 0$"):
        per_user_full_ranking(lambda u: scores[u], train, test, k=0)
    with pytest.raises(InvalidInput, match="^batch_size must be >= 1$"):
        per_user_full_ranking(lambda u: scores[u], train, test, batch_size=0)
    with pytest.raises(InvalidInput, match=r"^score returned shape \(1, 2\), expected \(1, 3\)$"):
        per_user_full_ranking(lambda u: np.ones((len(u), 2)), train, test)


def test_per_user_full_ranking_masks_a_sparse_exclude_whatever_its_values() -> None:
    # exclude as a matrix: every nonzero is masked, a -1 (a pass) as much as a like, and an
    # item both trained on and excluded stays masked
    train = _interactions([(0, 0, 1.0)], 2, 3)
    test = _interactions([(0, 1, 1.0)], 2, 3)
    scores = np.array([[9.0, 5.0, 7.0], [1.0, 2.0, 3.0]])
    exclude = sp.csr_matrix(np.array([[-1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]))
    result = per_user_full_ranking(lambda u: scores[u], train, test, k=1, exclude=exclude)
    assert result["users"].tolist() == [0]
    assert result["hit@1"].tolist() == [1.0]


def test_per_user_and_mean_full_ranking_count_a_user_with_one_positive_among_passes() -> None:
    # user 0: one like of item 1 and also a pass (-1) of it; user 1: exactly one positive;
    # user 2: only a pass, so no positive: not evaluated
    train = _interactions([], 3, 4)
    test = _interactions([(0, 1, 1.0), (0, 1, -1.0), (1, 2, 1.0), (2, 3, -1.0)], 3, 4)
    table = np.tile(np.array([0.0, 3.0, 2.0, 1.0]), (3, 1))
    per_user = per_user_full_ranking(lambda u: table[u], train, test, k=1)
    assert per_user["users"].tolist() == [0, 1]
    assert per_user["hit@1"].tolist() == [1.0, 0.0]
    mean = evaluate_full_ranking(lambda u: table[u], train, test, k=1)
    assert mean["users"] == 2.0 and mean["hit@1"] == 0.5


def test_full_ranking_takes_integer_scores_and_never_writes_to_the_callers() -> None:
    # popularity-like counts come back as integers; the masking works on a float copy
    train = _interactions([(0, 0, 1.0), (1, 3, 1.0)], 2, 5)
    test = _interactions([(0, 2, 1.0), (1, 1, 1.0)], 2, 5)
    counts = np.array([[9, 1, 4, 3, 2], [9, 1, 4, 3, 2]], dtype=np.int64)
    as_float = counts.astype(np.float32)
    ints = per_user_full_ranking(lambda u: counts[u], train, test, k=2)
    floats = per_user_full_ranking(lambda u: as_float[u], train, test, k=2)
    for name in ints:
        np.testing.assert_array_equal(ints[name], floats[name])
    assert ints["hit@2"].tolist() == [1.0, 0.0]
    assert evaluate_full_ranking(lambda u: counts[u], train, test, k=2)["hit@2"] == 0.5
    batch = as_float.copy()
    per_user_full_ranking(lambda u: batch, train, test, k=2)
    np.testing.assert_array_equal(batch, as_float)


def test_per_user_full_ranking_ranks_masked_and_nan_items_last_in_index_order() -> None:
    # user 0: item 0 trained on (masked), item 1 scored NaN and relevant, item 2 scored 1
    # user 1: item 2 trained on (masked), item 0 scored NaN and relevant, item 1 scored 1
    # masked and NaN items tie at the bottom, in item-index order
    train = _interactions([(0, 0, 1.0), (1, 2, 1.0)], 2, 3)
    test = _interactions([(0, 1, 1.0), (1, 0, 1.0)], 2, 3)
    table = np.array([[5.0, np.nan, 1.0], [np.nan, 1.0, 5.0]])
    result = per_user_full_ranking(lambda u: table[u], train, test, k=3)
    assert result["mrr@3"].tolist() == pytest.approx([1 / 3, 1 / 2])
    # a NaN never makes the top: k = 1 misses both
    assert per_user_full_ranking(lambda u: table[u], train, test, k=1)["hit@1"].tolist() == [
        0.0,
        0.0,
    ]


def test_per_user_full_ranking_without_evaluated_users_gives_empty_float_arrays() -> None:
    train = _interactions([], 2, 3)
    test = _interactions([(0, 1, 0.0), (1, 2, -1.0)], 2, 3)
    result = per_user_full_ranking(lambda u: np.ones((len(u), 3)), train, test, k=2)
    assert set(result) == {"users"} | {f"{name}@2" for name in PER_USER_KEYS}
    for name, values in result.items():
        assert values.shape == (0,), name
        assert values.dtype == (np.int64 if name == "users" else np.float64), name


def test_bootstrap_interval_touching_zero_does_not_exclude_it() -> None:
    assert not BootstrapInterval(0.1, 0.0, 0.2).excludes_zero()
    assert not BootstrapInterval(-0.1, -0.2, 0.0).excludes_zero()
    assert BootstrapInterval(0.1, 1e-9, 0.2).excludes_zero()
    assert BootstrapInterval(-0.1, -0.2, -1e-9).excludes_zero()


def test_paired_bootstrap_defaults_edges_and_reasons() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.random(40), rng.random(40)
    # the documented defaults: 5,000 resamples, seed 0, 95%
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b, n=5000, seed=0, confidence=0.95)
    # one resample is allowed, and is a real resample (a constant difference gives itself)
    assert tuple(paired_bootstrap([0.625] * 3, [0.25] * 3, n=1)) == (0.375, 0.375, 0.375)
    # a missing figure (None) is refused like NaN, on either side
    with pytest.raises(InvalidInput, match="^paired figures must be finite$"):
        paired_bootstrap([0.5, None], [0.5, 0.5])
    with pytest.raises(InvalidInput, match="^paired figures must be finite$"):
        paired_bootstrap([0.5, 0.5], [0.5, None])
    with pytest.raises(InvalidInput, match="^paired_bootstrap needs at least one pair$"):
        paired_bootstrap([], [])
    with pytest.raises(InvalidInput, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=0.0)


def test_paired_bootstrap_resamples_every_user_and_cuts_the_central_share() -> None:
    # two users, differences 1 and 0: a resample's mean is 0, 0.5 or 1 with chances
    # 1/4, 1/2, 1/4, so the central 40% is exactly 0.5 and the central 99% spans 0 to 1
    assert paired_bootstrap([1.0, 0.0], [0.0, 0.0], confidence=0.4)[1:] == (0.5, 0.5)
    assert paired_bootstrap([1.0, 0.0], [0.0, 0.0], confidence=0.99)[1:] == (0.0, 1.0)


def test_paired_bootstrap_in_several_chunks() -> None:
    # 2,001 users: the resamples are drawn 999 at a time, the last chunk holds 2
    diff = np.full(2001, 0.25)
    interval = paired_bootstrap(diff, np.zeros(2001), n=1001)
    assert tuple(interval) == (0.25, 0.25, 0.25)
