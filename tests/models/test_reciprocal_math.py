"""The reciprocal model's scoring maths, exactly, on small stub bases whose raw scores are
known (EASE-like, two-tower-like, and a plain score matrix), and the two-sided score
:func:`~matchwise.features.people.reciprocal_score` by definition (hypothesis)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matchwise.errors import InvalidInput
from matchwise.features.people import reciprocal_score
from matchwise.models import reciprocal as reciprocal_module
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.reciprocal import ReciprocalRecommender, fit_logistic

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)
N = 6
RNG = np.random.default_rng(7)
# float32 like the real bases, so a float32 shortcut in the maths shows
SCORES = RNG.normal(size=(N, N)).astype(np.float32)
SCORES[4] = 0.25  # one constant row: its standard deviation is 0
# factors whose float32 products are exact, so every path gives the same raw scores
X_EASE = (RNG.random((N, N)) < 0.5).astype(np.float32)
B_EASE = (RNG.integers(-8, 9, size=(N, N)) / 4).astype(np.float32)
U_EMB = (RNG.integers(-8, 9, size=(N, 3)) / 4).astype(np.float32)
V_EMB = (RNG.integers(-8, 9, size=(N, 3)) / 4).astype(np.float32)


class _Matrix(Recommender):
    """A base that only scores rows (the generic path)."""

    model_type = "stub"

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.S = scores
        self.n_users_ = self.n_items_ = len(scores)

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> _Matrix:
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.S[np.asarray(users)]

    def _save_state(self, folder: Path) -> None:  # pragma: no cover - never saved
        pass

    def _load_state(self, folder: Path) -> None:  # pragma: no cover
        pass


class _Ease(_Matrix):
    def __init__(self) -> None:
        super().__init__(X_EASE @ B_EASE)
        self.X_, self.B_ = X_EASE, B_EASE


class _Tower(_Matrix):
    def __init__(self) -> None:
        super().__init__(U_EMB @ V_EMB.T)

    def user_embeddings(self, users: np.ndarray) -> np.ndarray:
        return U_EMB[np.asarray(users)]

    def item_embeddings(self) -> np.ndarray:
        return V_EMB


def _raw64(base: _Matrix) -> np.ndarray:
    """The raw score matrix, in float64 (the maths must not stay in float32)."""
    return base.S.astype(np.float64)


def _people(pairs: list[tuple[int, int, float]], times: list[int] | None = None) -> InteractionSet:
    ids = np.array([f"p{i}" for i in range(N)])
    users, items, labels = (list(v) for v in zip(*pairs, strict=True)) if pairs else ([], [], [])
    return InteractionSet(
        user_ids=ids,
        item_ids=ids,
        users=np.array(users, dtype=np.int64),
        items=np.array(items, dtype=np.int64),
        labels=np.array(labels, dtype=np.float32),
        timestamps=None if times is None else np.array(times, dtype=np.int64),
    )


# a like and a pass per person, and b's decisions changing over time
TRAIN = _people(
    [(0, 1, 1.0), (0, 2, 0.0), (1, 0, 0.5), (1, 3, 0.0), (2, 0, 1.0), (2, 3, 0.2)]
    + [(3, 4, 1.0), (3, 5, 0.0), (4, 5, 1.0), (4, 0, 0.0), (5, 0, 1.0), (5, 2, 0.0)]
    + [(3, 0, 1.0), (3, 0, 0.0)],  # 3 liked 0, then passed: the pass is the latest
    times=[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 20],
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _platt_reference(raw: np.ndarray, train: InteractionSet) -> tuple[float, float]:
    pair = raw[train.users, train.items]
    labels = (train.labels >= 0.5).astype(np.int64)
    scale = float(np.std(pair))
    coef, intercept = fit_logistic(pair / scale, labels, l2=1e-2)
    return float(coef[0] / scale), intercept


def _zscore(raw: np.ndarray) -> np.ndarray:
    std = raw.std(axis=1)
    std = np.where(std > 1e-12, std, 1.0)
    return (raw - raw.mean(axis=1, keepdims=True)) / std[:, None]


BASES = [_Matrix(SCORES), _Ease(), _Tower()]


@pytest.mark.parametrize("calibration", ["platt", "zscore"])
@pytest.mark.parametrize("base", BASES, ids=["rows", "ease", "tower"])
def test_both_directions_and_the_online_path_exactly(
    base: _Matrix, calibration: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reciprocal_module, "_CHUNK", 4)  # chunked loops cross a boundary
    model = ReciprocalRecommender.wrap(
        base, TRAIN, calibration=calibration, mode="min", known_decisions=False
    )
    raw = _raw64(base)
    if calibration == "zscore":
        raw = _zscore(raw)
        np.testing.assert_allclose(model.row_mean_, _raw64(base).mean(axis=1), rtol=1e-12)
    alpha, beta = _platt_reference(raw, TRAIN)
    assert (model.alpha_, model.beta_) == pytest.approx((alpha, beta), rel=1e-9)
    assert model.alpha_ != 0.0
    forward = _sigmoid(alpha * raw + beta)  # forward[a, b] = P(a likes b)
    users = np.array([5, 0, 3, 0, 4])
    np.testing.assert_allclose(model.one_sided_proba(users), forward[users], rtol=1e-9)
    np.testing.assert_allclose(model.reverse_proba(users), forward[:, users].T, rtol=1e-9)
    score = model.score(users)
    assert score.dtype == np.float32
    np.testing.assert_allclose(
        score, np.minimum(forward[users], forward[:, users].T), rtol=1e-6, atol=1e-7
    )
    candidates = np.array([5, 1, 4, 1, 0])
    p_ab, p_ba, rec = model.score_candidates(3, candidates)
    np.testing.assert_allclose(p_ab, forward[3, candidates], rtol=1e-9)
    np.testing.assert_allclose(p_ba, forward[candidates, 3], rtol=1e-9)
    np.testing.assert_allclose(rec, np.minimum(p_ab, p_ba), rtol=1e-12)
    # the calibration's pairs, scored row by row in chunks, are the matrix's entries
    pairs = model._pair_raw(np.array([5, 0, 4, 0, 2, 1, 5]), np.array([0, 1, 2, 3, 4, 5, 5]))
    np.testing.assert_allclose(
        pairs, raw[[5, 0, 4, 0, 2, 1, 5], [0, 1, 2, 3, 4, 5, 5]], rtol=1e-9, atol=1e-12
    )


def test_row_statistics_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reciprocal_module, "_CHUNK", 4)
    base = _Matrix((SCORES * 0.1).astype(np.float32))  # standard deviations below 1
    model = ReciprocalRecommender.wrap(base, TRAIN, calibration="zscore")
    raw = base.S.astype(np.float64)
    np.testing.assert_allclose(model.row_mean_, raw.mean(axis=1), rtol=1e-12)
    expected_std = raw.std(axis=1)
    expected_std[4] = 1.0  # the constant row: no spread, divide by 1
    np.testing.assert_allclose(model.row_std_, expected_std, rtol=1e-12)
    assert (model.row_std_[[0, 1, 2, 3, 5]] < 1).all()


def test_recorded_decisions_override_the_reverse_direction() -> None:
    model = ReciprocalRecommender.wrap(_Matrix(SCORES), TRAIN, known_decisions=True)
    decisions = model.decisions_
    assert decisions is not None
    # latest decision per (a, b) in time order; 0.5 is a like, 0.2 a pass
    expected = {(0, 1): 1, (0, 2): -1, (1, 0): 1, (1, 3): -1, (2, 0): 1, (2, 3): -1}
    expected |= {(3, 4): 1, (3, 5): -1, (4, 5): 1, (4, 0): -1, (5, 0): 1, (5, 2): -1}
    expected[(3, 0)] = -1
    dense = decisions.toarray()
    assert {
        (int(a), int(b)): int(dense[a, b]) for a, b in zip(*np.nonzero(dense), strict=True)
    } == (expected)
    free = ReciprocalRecommender.wrap(_Matrix(SCORES), TRAIN, known_decisions=False)
    users = np.arange(N)
    reverse, model_only = model.reverse_proba(users), free.reverse_proba(users)
    for b in range(N):
        for a in range(N):
            recorded = expected.get((b, a))  # b's decision on a: how b sees a
            want = model_only[a, b] if recorded is None else (1.0 if recorded > 0 else 0.0)
            assert reverse[a, b] == want
            assert model.score_candidates(a, np.array([b]))[1][0] == want
    # the forward direction is never overridden
    np.testing.assert_array_equal(model.one_sided_proba(users), free.one_sided_proba(users))


def test_decisions_without_timestamps_follow_the_input_order() -> None:
    train = _people([(0, 1, 0.0), (0, 1, 1.0), (2, 3, 1.0), (2, 3, 0.0)])
    model = ReciprocalRecommender.wrap(_Matrix(SCORES), train)
    assert model.decisions_ is not None
    assert model.decisions_[0, 1] == 1.0 and model.decisions_[2, 3] == -1.0
    assert model.decisions_.nnz == 2 and model.decisions_.shape == (N, N)


def test_decisions_one_swipe_a_changed_mind_and_ties_in_time() -> None:
    # a single swipe is a decision
    one = ReciprocalRecommender.wrap(_Matrix(SCORES), _people([(0, 1, 1.0)]))
    assert one.decisions_ is not None
    assert one.decisions_.nnz == 1 and one.decisions_[0, 1] == 1.0
    # a pass then a like of the same person, then another swipe: the like is the latest
    changed = _people([(0, 1, 0.0), (0, 1, 1.0), (2, 3, 1.0)])
    model = ReciprocalRecommender.wrap(_Matrix(SCORES), changed)
    assert model.decisions_ is not None
    assert model.decisions_[0, 1] == 1.0 and model.decisions_[2, 3] == 1.0
    # swipes at the same instant keep their input order: the later row wins
    rows = [(0, 1, 1.0, 2), (2, 3, 0.0, 1), (0, 1, 0.0, 2), (4, 5, 1.0, 2), (2, 3, 1.0, 1)]
    rows += [(0, 1, 1.0, 1), (4, 5, 0.0, 2), (2, 3, 0.0, 2), (4, 5, 1.0, 2), (0, 1, 0.0, 1)]
    rows += [(2, 3, 1.0, 2), (4, 5, 0.0, 1)]
    tied = _people([r[:3] for r in rows], times=[r[3] for r in rows])
    latest: dict[tuple[int, int], float] = {}
    for a, b, label, _ in sorted(rows, key=lambda r: r[3]):  # sorted() is stable
        latest[(a, b)] = 1.0 if label >= 0.5 else -1.0
    assert latest[(0, 1)] == -1.0  # the pass at time 2 comes after the like at time 2
    model = ReciprocalRecommender.wrap(_Matrix(SCORES), tied)
    assert model.decisions_ is not None
    assert {pair: float(model.decisions_[pair]) for pair in latest} == latest


def test_the_weighted_mode_uses_the_models_weight() -> None:
    model = ReciprocalRecommender.wrap(
        _Matrix(SCORES), TRAIN, mode="weighted", weight=0.8, known_decisions=False
    )
    users = np.array([0, 3, 5])
    forward, reverse = model.one_sided_proba(users), model.reverse_proba(users)
    want = reciprocal_score(forward, reverse, "weighted", weight=0.8)
    assert not np.allclose(want, reciprocal_score(forward, reverse, "weighted", weight=0.5))
    np.testing.assert_allclose(model.score(users), want, rtol=1e-6)
    p_ab, p_ba, rec = model.score_candidates(3, np.array([0, 1, 4]))
    np.testing.assert_allclose(rec, reciprocal_score(p_ab, p_ba, "weighted", weight=0.8))


def test_calibration_with_likes_only_draws_unseen_pairs_as_negatives() -> None:
    train = _people([(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0), (3, 4, 1.0), (5, 3, 1.0)])
    base = _Matrix(SCORES)
    model = ReciprocalRecommender.wrap(base, train, seed=3)
    # the negatives: as many draws as swipes, unseen and not oneself
    rng = np.random.default_rng(3)
    neg_u, neg_i = rng.integers(0, N, 5), rng.integers(0, N, 5)
    seen = train.to_csr(values="weights").toarray()
    keep = (seen[neg_u, neg_i] == 0) & (neg_u != neg_i)
    assert keep.any() and not keep.all()
    users = np.concatenate([train.users, neg_u[keep]])
    items = np.concatenate([train.items, neg_i[keep]])
    labels = np.concatenate([np.ones(5), np.zeros(int(keep.sum()))])
    raw = SCORES.astype(np.float64)[users, items]
    scale = float(np.std(raw))
    coef, intercept = fit_logistic(raw / scale, labels, l2=1e-2)
    assert (model.alpha_, model.beta_) == pytest.approx((coef[0] / scale, intercept), rel=1e-9)
    other_seed = ReciprocalRecommender.wrap(base, train, seed=4)
    assert other_seed.alpha_ != model.alpha_


@pytest.mark.parametrize(
    "train",
    [
        _people([(0, 1, 0.0), (2, 3, 0.0)]),  # passes only: no contrast
        _people([]),  # nothing at all
        InteractionSet(  # one person: the only unswiped pair is oneself
            user_ids=np.array(["solo"]),
            item_ids=np.array(["solo"]),
            users=np.array([0]),
            items=np.array([0]),
            labels=np.array([1.0]),
        ),
        InteractionSet(  # one person, no swipes: the one negative drawn is oneself, dropped
            user_ids=np.array(["solo"]),
            item_ids=np.array(["solo"]),
            users=np.array([], dtype=np.int64),
            items=np.array([], dtype=np.int64),
            labels=np.array([], dtype=np.float32),
        ),
    ],
    ids=["passes", "empty", "one-person", "one-person-no-swipes"],
)
def test_calibration_without_contrast_is_the_plain_sigmoid(
    train: InteractionSet, caplog: pytest.LogCaptureFixture
) -> None:
    base = _Matrix(SCORES[: train.n_users, : train.n_users])
    with caplog.at_level(logging.WARNING, logger="matchwise.models.reciprocal"):
        model = ReciprocalRecommender.wrap(base, train)
    assert (model.alpha_, model.beta_) == (1.0, 0.0)
    assert "reciprocal calibration: no like/pass contrast; using sigmoid(score)" in caplog.messages
    users = np.arange(train.n_users)
    np.testing.assert_allclose(
        model.one_sided_proba(users), _sigmoid(base.S.astype(np.float64)), rtol=1e-12
    )


def test_a_like_at_the_threshold_counts_and_constant_scores_fit() -> None:
    train = _people([(0, 1, 0.5), (1, 2, 0.49), (2, 3, 0.5), (3, 4, 0.1)])
    model = ReciprocalRecommender.wrap(_Matrix(SCORES), train)
    alpha, beta = _platt_reference(SCORES.astype(np.float64), train)
    assert (model.alpha_, model.beta_) == pytest.approx((alpha, beta), rel=1e-9)
    # every raw score equal: scale 1, and the slope has nothing to explain
    flat = ReciprocalRecommender.wrap(_Matrix(np.ones((N, N), np.float32)), train)
    assert flat.alpha_ == pytest.approx(0.0, abs=1e-6)
    assert _sigmoid(np.array(flat.beta_)) == pytest.approx(0.5, abs=1e-3)


def test_index_checks() -> None:
    model = ReciprocalRecommender.wrap(_Matrix(SCORES), TRAIN)
    with pytest.raises(InvalidInput, match=r"^candidate index out of range \[0, 6\)$"):
        model.score_candidates(0, np.array([1, 6]))
    with pytest.raises(InvalidInput, match=r"^candidate index out of range"):
        model.score_candidates(0, np.array([-1, 2]))
    with pytest.raises(InvalidInput, match=r"^user index out of range \[0, 6\)$"):
        model.score(np.array([6]))
    with pytest.raises(InvalidInput, match=r"^user index out of range"):
        model.one_sided_proba(np.array([-1]))
    empty = model.score_candidates(0, np.array([], dtype=np.int64))
    assert [len(v) for v in empty] == [0, 0, 0]
    assert model.score_candidates(2, [1.0, 3.0])[0].shape == (2,)  # type: ignore[arg-type]


# --- fit_logistic: the optimum of its objective ------------------------------------------------
@PROPERTY
@given(
    X=arrays(np.float64, (30, 2), elements=st.integers(-30, 30).map(lambda v: v / 10)),
    flips=arrays(np.bool_, 30),
    l2=st.sampled_from([1e-2, 0.5, 3.0]),
)
def test_fit_logistic_reaches_the_regularised_optimum(
    X: np.ndarray, flips: np.ndarray, l2: float
) -> None:
    y = ((X[:, 0] - 0.5 * X[:, 1] > 0) ^ flips).astype(np.float64)
    # a calibration-like fit: both classes well represented (undamped Newton can stall on
    # a lone example of one class; see TESTING.md)
    assume(5 <= y.sum() <= 25)
    coef, intercept = fit_logistic(X, y, l2=l2)
    assert coef.shape == (2,)
    p = _sigmoid(X @ coef + intercept)
    # the gradient of the penalised log-loss vanishes: the intercept is not penalised
    np.testing.assert_allclose(X.T @ (p - y) + l2 * coef, 0.0, atol=1e-6)
    assert abs(float(np.sum(p - y))) < 1e-6


def test_fit_logistic_defaults_shapes_and_messages() -> None:
    x = np.linspace(-2, 2, 40)
    y = (x + np.sin(7 * x) > 0).astype(int)
    coef, intercept = fit_logistic(x, y)  # 1-D features: one column
    assert coef.shape == (1,)
    same = fit_logistic(x[:, None], y, l2=1e-2)
    assert (coef[0], intercept) == pytest.approx((same[0][0], same[1]), rel=1e-12)
    p = _sigmoid(coef[0] * x + intercept)
    assert float(x @ (p - y) + 1e-2 * coef[0]) == pytest.approx(0.0, abs=1e-7)
    one = fit_logistic(np.array([[1.0]]), np.array([1.0]))
    assert one[0].shape == (1,)
    for X, y_ in ((np.ones((3, 1)), np.ones(2)), (np.ones((0, 1)), np.ones(0))):
        with pytest.raises(
            InvalidInput, match="^logistic fit needs as many labels as rows, and at least one$"
        ):
            fit_logistic(X, y_)


# --- reciprocal_score ----------------------------------------------------------------------------
probabilities = arrays(np.float64, 12, elements=st.floats(0.0, 1.0))


@PROPERTY
@given(a=probabilities, b=probabilities, w=st.floats(0.0, 1.0))
def test_reciprocal_score_by_definition(a: np.ndarray, b: np.ndarray, w: float) -> None:
    harmonic = reciprocal_score(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(a + b > 1e-12, 2 * a * b / (a + b), 0.0)
    np.testing.assert_allclose(harmonic, expected, rtol=1e-12, atol=1e-15)
    low, high = np.minimum(a, b), np.maximum(a, b)
    product = reciprocal_score(a, b, "product")
    np.testing.assert_allclose(product, a * b, rtol=1e-12)
    np.testing.assert_array_equal(reciprocal_score(a, b, "min"), low)
    weighted = reciprocal_score(a, b, "weighted", weight=w)
    np.testing.assert_allclose(weighted, a**w * b ** (1.0 - w), rtol=1e-12)
    # the means' order: product <= min <= harmonic <= geometric-ish <= max, all in [0, 1]
    assert (product <= low + 1e-12).all() and (low <= harmonic + 1e-12).all()
    assert (harmonic <= high + 1e-12).all()
    for values in (harmonic, product, weighted):
        assert ((values >= 0) & (values <= 1)).all()


def test_reciprocal_score_clips_cleans_and_checks() -> None:
    a = np.array([-0.5, 1.5, np.nan, 0.5, 2.0])
    b = np.array([0.5, 1.5, 0.5, np.nan, -1.0])
    np.testing.assert_array_equal(reciprocal_score(a, b, "min"), [0.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(reciprocal_score(b, a, "min"), [0.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(reciprocal_score(a, b, "product"), [0.0, 1.0, 0.0, 0.0, 0.0])
    # integer and boolean inputs are probabilities too
    np.testing.assert_array_equal(reciprocal_score([0, 1, 1], [0, 1, 0]), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(reciprocal_score([True, True], [False, True]), [0.0, 1.0])
    # where both are zero the harmonic mean is 0, however much memory was lying around
    zeros = np.zeros(4096)
    mixed = np.tile([0.0, 0.8], 2048)
    assert (reciprocal_score(zeros, zeros) == 0.0).all()
    np.testing.assert_allclose(reciprocal_score(mixed, mixed), mixed)
    # weight 0 ignores the user's own side, 1 the other's
    np.testing.assert_allclose(reciprocal_score([0.2], [0.7], "weighted", weight=0.0), [0.7])
    np.testing.assert_allclose(reciprocal_score([0.2], [0.7], "weighted", weight=1.0), [0.2])
    with pytest.raises(InvalidInput, match=r"^reciprocal weight must be in \[0, 1\], got 1.5$"):
        reciprocal_score([0.2], [0.7], "weighted", weight=1.5)
    with pytest.raises(
        InvalidInput,
        match="^unknown reciprocal mode 'mean'; use one of harmonic, product, min, weighted$",
    ):
        reciprocal_score([0.2], [0.7], "mean")
    with pytest.raises(InvalidInput, match=r"^p_ab and p_ba differ in shape: \(2,\) and \(1,\)$"):
        reciprocal_score([0.2, 0.1], [0.7])


@pytest.mark.parametrize("calibration", ["platt", "zscore"])
@pytest.mark.parametrize("mode", ["harmonic", "product", "min", "weighted"])
@pytest.mark.parametrize("base", ["rows", "factors"])
def test_scores_in_steps_equal_the_whole_array_maths(
    monkeypatch: pytest.MonkeyPatch, mode: str, base: str, calibration: str
) -> None:
    """``score`` calibrates and combines a few cells at a time, in place (issue 21: whole-
    block temporaries were most of a people training's evaluation): the float32 scores
    must be exactly those of the whole-array expressions, steps crossing rows and blocks."""
    monkeypatch.setattr(reciprocal_module, "_STEP", 7)  # steps end mid-row
    monkeypatch.setattr(reciprocal_module, "_CELLS", 3 * 23)  # blocks of 3 rows
    rng = np.random.default_rng(3)
    n = 23
    ids = np.array([f"p{i}" for i in range(n)])
    a, b = rng.integers(0, n, 120), rng.integers(0, n, 120)
    train = InteractionSet(user_ids=ids, item_ids=ids, users=a, items=b,
                           labels=(rng.random(120) < 0.4).astype(np.float32),
                           timestamps=np.arange(120))  # fmt: skip
    if base == "rows":
        model = ReciprocalRecommender.wrap(_Matrix(rng.normal(size=(n, n)).astype(np.float32)),
                                           train, mode=mode, weight=0.7,
                                           calibration=calibration)  # fmt: skip
    else:
        model = ReciprocalRecommender(base="implicit_als", mode=mode, weight=0.7,
                                      calibration=calibration,
                                      base_params={"factors": 4, "iterations": 2})  # fmt: skip
        model.fit(train)
    users = np.array([0, 5, 22, 7, 7, 13, 1])

    def whole(raw: np.ndarray) -> np.ndarray:  # the whole-array maths, raw in float64
        assert raw.dtype == np.float64
        return reciprocal_module._sigmoid(model.alpha_ * raw + model.beta_)

    wants = []
    for start in (0, 3, 6):  # the blocks score takes (a BLAS product's rounding depends on
        rows = users[start : start + 3]  # its shape, so the reference takes the same ones)
        forward = whole(model._rows_raw(rows))
        backward = model._override(whole(model._columns_raw(rows)), rows)
        wants.append(reciprocal_score(forward, backward, mode, 0.7).astype(np.float32))
        np.testing.assert_array_equal(model.one_sided_proba(rows), forward)
        np.testing.assert_array_equal(model.reverse_proba(rows), backward)
    np.testing.assert_array_equal(model.score(users), np.concatenate(wants))
    assert (model.decisions_ is not None) and model.decisions_.nnz > 0
