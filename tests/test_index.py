"""The HNSW index against brute force: recall@10 >= 0.98, with and without filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matchwise.errors import ArtifactError, NotFitted
from matchwise.index import ExactIndex, HNSWIndex, VectorIndex


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Embedding-like data: clusters on the unit sphere, not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    points = centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approx, exact, strict=True))
    return hits / max(sum(int((e >= 0).sum()) for e in exact), 1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, HNSWIndex, ExactIndex]:
    items = _clustered(10_000, 64, seed=1)
    queries = _clustered(200, 64, seed=2)
    # exact_work=0: the graph itself, not the brute force a catalogue this small gets
    return items, queries, HNSWIndex(exact_work=0).build(items), ExactIndex().build(items)


def test_recall_at_10_against_exact_search(data: tuple) -> None:
    _, queries, hnsw, exact = data
    approx, _ = hnsw.query(queries, 10)
    truth, _ = exact.query(queries, 10)
    assert _recall(approx, truth) >= 0.98


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01])
def test_filtered_queries_keep_recall_and_obey_the_filter(data: tuple, share: float) -> None:
    items, queries, hnsw, exact = data
    allowed = np.random.default_rng(3).random(len(items)) < share
    approx, scores = hnsw.query(queries, 10, allowed=allowed)
    truth, _ = exact.query(queries, 10, allowed=allowed)
    assert allowed[approx[approx >= 0]].all()
    assert _recall(approx, truth) >= 0.98
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_fewer_allowed_than_k_pads_with_minus_one(data: tuple) -> None:
    items, queries, hnsw, _ = data
    allowed = np.zeros(len(items), dtype=bool)
    allowed[[5, 9]] = True
    idx, scores = hnsw.query(queries[:3], 10, allowed=allowed)
    assert idx.shape == (3, 10)
    assert set(idx[0, :2]) == {5, 9} and (idx[:, 2:] == -1).all()
    assert np.isneginf(scores[:, 2:]).all()


def test_save_load_round_trip_and_corruption(data: tuple, tmp_path: Path) -> None:
    _, queries, hnsw, _ = data
    folder = hnsw.save(tmp_path / "idx")
    loaded = VectorIndex.load(folder)
    assert isinstance(loaded, HNSWIndex) and loaded.exact_work == hnsw.exact_work == 0
    a, _ = hnsw.query(queries[:20], 10)
    b, _ = loaded.query(queries[:20], 10)
    assert (a == b).all()
    (folder / "index.json").write_text("{not json")
    with pytest.raises(ArtifactError):
        VectorIndex.load(folder)
    with pytest.raises(NotFitted):
        HNSWIndex().query(queries, 5)


def test_filter_that_removes_the_nearest_neighbours_stays_exact(data: tuple) -> None:
    """The hard case for oversampling: what the user is most drawn to is filtered out
    (e.g. events already past), so the unfiltered top hits are all disallowed."""
    items, queries, hnsw, exact = data
    allowed = np.ones(len(items), dtype=bool)
    nearest, _ = exact.query(queries[:5], 400)
    allowed[nearest.ravel()] = False  # still ~80% allowed: the broad-filter path
    approx, scores = hnsw.query(queries[:5], 10, allowed=allowed)
    truth, truth_scores = exact.query(queries[:5], 10, allowed=allowed)
    assert allowed[approx].all()
    assert _recall(approx, truth) == 1.0
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5)


class _NoGraph:
    """Stands where hnswlib's index was: a search of the graph fails the test."""

    def knn_query(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a catalogue this small must not search the graph")


def test_a_small_catalogue_is_answered_by_brute_force_without_the_graph() -> None:
    items = _clustered(2000, 32, seed=5)  # 64,000 numbers: under exact_work
    queries = _clustered(30, 32, seed=6)
    hnsw, exact = HNSWIndex().build(items), ExactIndex().build(items)
    hnsw.index_ = _NoGraph()
    rng = np.random.default_rng(7)
    for allowed in (None, rng.random(2000) < 0.6, rng.random(2000) < 0.02):
        got, got_scores = hnsw.query(queries, 10, allowed=allowed)
        truth, truth_scores = exact.query(queries, 10, allowed=allowed)
        assert (got == truth).all()
        np.testing.assert_allclose(got_scores, truth_scores)
    assert hnsw.searches_exactly(2000, 10)
    assert not HNSWIndex(exact_work=0).build(items).searches_exactly(2000, 10)


@pytest.mark.parametrize("share", [0.9, 0.3, 0.05])
def test_exact_search_under_a_filter_is_the_best_allowed(share: float) -> None:
    """Broad filters are scored over every row and masked, narrow ones over the allowed
    rows alone: either way the best allowed items, best first, padded when too few."""
    items = _clustered(400, 16, seed=8)
    queries = _clustered(12, 16, seed=9)
    allowed = np.random.default_rng(10).random(400) < share
    for k in (5, int(allowed.sum()) + 3):
        idx, scores = ExactIndex().build(items).query(queries, k, allowed=allowed)
        full = queries @ items.T
        for q in range(len(queries)):
            ranked = np.flatnonzero(allowed)[np.argsort(-full[q, allowed], kind="stable")]
            n = min(k, len(ranked))
            np.testing.assert_allclose(scores[q, :n], full[q, ranked[:n]], rtol=1e-5)
            assert set(idx[q, :n]) <= set(np.flatnonzero(allowed))
            assert (idx[q, n:] == -1).all() and np.isneginf(scores[q, n:]).all()


def test_brute_force_where_the_graph_would_compare_as_many_vectors() -> None:
    """The breadth rule: a query whose search breadth times m reaches the catalogue's size
    (a narrow-ish filter's oversampling) is answered by brute force, exactly."""
    items = _clustered(1000, 8, seed=12)
    queries = _clustered(20, 8, seed=13)
    index = HNSWIndex(m=4, ef=50, exact_work=1).build(items)  # exact_work=1: no size rule
    assert not index.searches_exactly(1000, 10)  # breadth 50 x m 4: 200 of 1,000
    allowed = np.zeros(1000, dtype=bool)
    allowed[::16] = True  # 63 allowed: above the narrow-filter cut (5%: 50)
    assert index.searches_exactly(63, 10)  # oversampling 318 x m 4 >= 1,000
    index.index_ = _NoGraph()
    got, got_scores = index.query(queries, 10, allowed=allowed)
    truth, truth_scores = ExactIndex().build(items).query(queries, 10, allowed=allowed)
    assert (got == truth).all()
    np.testing.assert_allclose(got_scores, truth_scores)
