"""The reciprocal model past EASE's reach (issue 21): ``base="auto"`` trains ALS above
``ease_max_people`` and keeps every array O(n x d); small populations keep EASE.

The planted pattern: each person has a type and a taste (a type); a likes b exactly when
b's type is a's taste. Among the candidates a likes, the mutual ones (whose taste is a's
type) must rank above the one-sided ones, which only the reverse direction can tell.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from matchwise.errors import InvalidInput
from matchwise.metrics import auc
from matchwise.models import reciprocal as reciprocal_module
from matchwise.models.base import InteractionSet
from matchwise.models.ease import EASERecommender
from matchwise.models.peers import ImplicitALSRecommender
from matchwise.models.reciprocal import EASE_MAX_PEOPLE, ReciprocalRecommender, choose_base

N, TYPES, SWIPES = 3_000, 6, 60


def _planted(n: int = N, seed: int = 0) -> tuple[InteractionSet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, TYPES, n)
    taste = rng.integers(0, TYPES, n)
    a = np.repeat(np.arange(n), SWIPES)
    b = rng.integers(0, n, len(a))
    keep = a != b
    a, b = a[keep], b[keep]
    liked = (kind[b] == taste[a]).astype(np.float32)
    ids = np.array([f"p{i}" for i in range(n)])
    train = InteractionSet(
        user_ids=ids, item_ids=ids, users=a, items=b, labels=liked, meta={"domain": "people"}
    )
    return train, kind, taste


@pytest.fixture(scope="module")
def planted() -> tuple[InteractionSet, np.ndarray, np.ndarray]:
    return _planted()


@pytest.fixture(scope="module")
def model(planted: tuple[InteractionSet, np.ndarray, np.ndarray]) -> ReciprocalRecommender:
    return ReciprocalRecommender(ease_max_people=1_000).fit(planted[0])


def test_above_the_threshold_the_base_is_factorised_and_o_n_d(
    model: ReciprocalRecommender,
) -> None:
    base = model.base_model_
    assert isinstance(base, ImplicitALSRecommender)
    assert model.training_metrics["base"] == "implicit_als"
    assert base.user_factors_ is not None and base.item_factors_ is not None
    assert base.user_factors_.shape == (N, base.factors)
    assert base.item_factors_.shape == (N, base.factors)
    arrays = [v for v in vars(model).values() if isinstance(v, np.ndarray)]
    arrays += [v for v in vars(base).values() if isinstance(v, np.ndarray)]
    assert all(v.size <= N * base.factors for v in arrays)  # nothing n x n
    assert model.decisions_ is not None and model.decisions_.nnz <= N * SWIPES  # sparse


def test_scoring_one_user_holds_o_n_d_memory(model: ReciprocalRecommender) -> None:
    model.score(np.array([0]))  # the cached vectors are part of the model, not the call
    tracemalloc.start()
    try:
        scores = model.score(np.array([7]))
        p_ab, p_ba, rec = model.score_candidates(7, np.arange(N))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scores.shape == (1, N)
    assert peak < N * N * 4 / 8  # an n x n float32 matrix would be 36 MB; this is < 5 MB
    np.testing.assert_allclose(rec, scores[0], rtol=1e-5, atol=1e-6)


def test_scores_are_probabilities_and_mutual_likes_rank_first(
    model: ReciprocalRecommender, planted: tuple[InteractionSet, np.ndarray, np.ndarray]
) -> None:
    _, kind, taste = planted
    users = np.arange(200)
    scores = model.score(users)
    one_sided = model.one_sided_proba(users)
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0
    aucs, one_aucs = [], []
    for row, a in enumerate(users):
        liked = np.flatnonzero(kind == taste[a])  # everyone a likes
        liked = liked[liked != a]
        mutual = taste[liked] == kind[a]
        if mutual.any() and not mutual.all():
            aucs.append(auc(mutual, scores[row, liked]))
            one_aucs.append(auc(mutual, one_sided[row, liked]))
    # a's own side cannot tell them apart (a likes all of them); b's side, read from
    # b's factors the other way round, does
    assert abs(np.mean(one_aucs) - 0.5) < 0.1
    assert np.mean(aucs) > 0.75


def test_small_populations_keep_ease_and_the_threshold_is_configurable() -> None:
    small, _, _ = _planted(n=300)
    assert isinstance(ReciprocalRecommender().fit(small).base_model_, EASERecommender)
    lowered = ReciprocalRecommender(ease_max_people=299).fit(small)
    assert isinstance(lowered.base_model_, ImplicitALSRecommender)
    assert choose_base(EASE_MAX_PEOPLE) == "ease"
    assert choose_base(EASE_MAX_PEOPLE + 1) == "implicit_als"
    assert choose_base(50, ease_max_people=10) == "implicit_als"
    with pytest.raises(InvalidInput, match="ease_max_people"):
        ReciprocalRecommender(ease_max_people=-1)


def test_an_auto_base_saves_and_loads_as_the_type_it_chose(
    model: ReciprocalRecommender, tmp_path: Path
) -> None:
    model.save(tmp_path / "m")
    loaded = ReciprocalRecommender.load(tmp_path / "m")
    assert loaded.base == "auto" and isinstance(loaded.base_model_, ImplicitALSRecommender)
    users = np.array([0, 11, 2999])
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-6)


def test_calibration_pairs_of_a_factor_base_are_its_scores(
    model: ReciprocalRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reciprocal_module, "_CELLS", 48)  # blocks of 3 pairs: one boundary
    rows, cols = np.array([0, 5, 5, 2999]), np.array([1, 2, 2999, 0])
    base = model.base_model_
    assert base is not None
    full = base.score(rows)[np.arange(len(rows)), cols]
    np.testing.assert_allclose(model._pair_raw(rows, cols), full, rtol=1e-5, atol=1e-6)
