"""The pairwise people model: person effects plus pair features, both directions combined."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.features.pairwise import PAIR_FEATURES, PairProfiles, pair_feature_matrix
from matchwise.features.people import reciprocal_score
from matchwise.metrics import auc
from matchwise.models.base import InteractionSet
from matchwise.models.catalog import make_model, serving_traits
from matchwise.models.pairwise import (
    FEATURE_L2_GRID,
    PERSON_L2_GRID,
    TREE_WEIGHT_GRID,
    PairwiseRecommender,
)


def _population(seed: int = 0, n: int = 120) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Profiles (half men, half women; race, how much race matters, a survey) and each
    person's planted choosiness and desirability."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "age": rng.integers(21, 35, n).astype(float),
            "gender": np.where(np.arange(n) % 2 == 0, "woman", "man"),
            "tags": [list(rng.choice(["a", "b", "c", "d"], 2, replace=False)) for _ in range(n)],
            "attributes": [
                {"race": int(rng.integers(1, 3)), "imprace": 8, "attr1_1": 30, "sinc1_1": 20,
                 "intel1_1": 20, "fun1_1": 20, "amb1_1": 10, "attr3_1": int(rng.integers(4, 10))}
                for _ in range(n)
            ],
        }
    )  # fmt: skip
    return users, rng.normal(0, 1.0, n), rng.normal(0, 1.0, n)


def _swipes(
    users: pd.DataFrame, alpha: np.ndarray, beta: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every woman meets every man (both directions): likes from the planted effects plus
    a strong same-race preference."""
    rng = np.random.default_rng(seed + 1)
    n = len(users)
    women, men = np.arange(0, n, 2), np.arange(1, n, 2)
    a = np.concatenate([np.repeat(women, len(men)), np.repeat(men, len(women))])
    b = np.concatenate([np.tile(men, len(women)), np.tile(women, len(men))])
    race = np.array([r["race"] for r in users["attributes"]])
    z = -0.5 + alpha[a] + beta[b] + 1.5 * (race[a] == race[b])
    liked = rng.random(len(a)) < 1 / (1 + np.exp(-z))
    return a, b, liked.astype(np.float32)


def _split(a: np.ndarray, b: np.ndarray, seed: int = 0) -> np.ndarray:
    """True for held-out rows: 20% of pairs, both directions together."""
    key = np.minimum(a, b) * 10_000 + np.maximum(a, b)
    pairs = np.unique(key)
    held = np.random.default_rng(seed).choice(pairs, len(pairs) // 5, replace=False)
    return np.isin(key, held)


def _set(users: pd.DataFrame, a: np.ndarray, b: np.ndarray, y: np.ndarray) -> InteractionSet:
    ids = users["id"].to_numpy()
    return InteractionSet(user_ids=ids, item_ids=ids, users=a, items=b, labels=y,
                          user_features=users)  # fmt: skip


@pytest.fixture(scope="module")
def planted() -> dict[str, object]:
    users, alpha, beta = _population()
    a, b, y = _swipes(users, alpha, beta)
    held = _split(a, b)
    model = PairwiseRecommender(person_l2=1.0, feature_l2=10.0, mode="harmonic")
    model.fit(_set(users, a[~held], b[~held], y[~held]))
    return {"users": users, "alpha": alpha, "beta": beta, "a": a, "b": b, "y": y,
            "held": held, "model": model}  # fmt: skip


def test_it_learns_choosiness_desirability_and_the_pair_feature(planted: dict) -> None:
    m: PairwiseRecommender = planted["model"]  # type: ignore[assignment]
    assert np.corrcoef(m.alpha_, planted["alpha"])[0, 1] > 0.8
    assert np.corrcoef(m.beta_, planted["beta"])[0, 1] > 0.8
    assert m.w_[PAIR_FEATURES.index("samerace")] > 0.2
    # held-out pairs: the mutual score ranks the matches far above chance, and above the
    # one-sided P(a likes b)
    a, b, y, held = planted["a"], planted["b"], planted["y"], planted["held"]
    rows = np.flatnonzero(held)
    key = pd.Series(y, index=a * 10_000 + b)
    match = (y[rows] > 0) & (key.reindex(b[rows] * 10_000 + a[rows]).to_numpy() > 0)
    p_ab, p_ba = m.pair_proba(a[rows], b[rows]), m.pair_proba(b[rows], a[rows])
    mutual = auc(match, reciprocal_score(p_ab, p_ba, "harmonic"))
    assert mutual > 0.8
    assert mutual > auc(match, p_ab) + 0.03


def test_scores_candidates_save_load_and_known_decisions(planted: dict, tmp_path: Path) -> None:
    m: PairwiseRecommender = planted["model"]  # type: ignore[assignment]
    everyone = np.arange(m.n_users_ or 0)
    p_ab, p_ba, mutual = m.score_candidates(0, everyone)
    np.testing.assert_allclose(m.score(np.array([0]))[0], mutual, rtol=1e-6)
    np.testing.assert_allclose(p_ab, m.pair_proba(np.zeros_like(everyone), everyone))
    # a recorded decision of the candidate on the user replaces the guess
    a, b, y, held = planted["a"], planted["b"], planted["y"], planted["held"]
    seen = np.flatnonzero(~held & (b == 0))
    assert len(seen)
    np.testing.assert_array_equal(p_ba[a[seen]], y[seen])
    loaded = PairwiseRecommender.load(m.save(tmp_path / "pw"))
    again = loaded.score_candidates(0, everyone)
    for before, after in zip((p_ab, p_ba, mutual), again, strict=True):
        np.testing.assert_allclose(after, before)
    assert loaded.combine == m.combine and loaded.chosen_ == m.chosen_
    (tmp_path / "pw" / "pairwise.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError):
        PairwiseRecommender.load(tmp_path / "pw")


def test_auto_chooses_on_its_own_held_out_pairs() -> None:
    """``auto`` cross-validates over folds of the training pairs: every pair (both
    directions) is held out once, not one share of them (a few hundred pairs on the Speed
    Dating waves, too few to tell the grid's settings apart)."""
    users, alpha, beta = _population(seed=2, n=80)
    a, b, y = _swipes(users, alpha, beta, seed=2)
    model = PairwiseRecommender().fit(_set(users, a, b, y))
    chosen = model.training_metrics["chosen"]
    assert chosen["person_l2"] in PERSON_L2_GRID and chosen["feature_l2"] in FEATURE_L2_GRID
    assert chosen["tree_weight"] in TREE_WEIGHT_GRID
    assert chosen["mode"] == "harmonic" == model.combine  # serving's way by default
    assert chosen["validation_folds"] == 3
    assert chosen["validation_pairs"] == len(np.unique(np.minimum(a, b) * 1000 + np.maximum(a, b)))
    assert 0.5 < chosen["validation_match_auc"] <= 1.0
    both = PairwiseRecommender(mode="auto", tree_weight=0.0).fit(_set(users, a, b, y))
    assert both.chosen_["mode"] in ("harmonic", "min") and both.chosen_["tree_weight"] == 0.0


def test_profiles_from_parquet_text_and_missing_answers() -> None:
    users, _, _ = _population(n=6)
    as_text = users.assign(attributes=[json.dumps(a) for a in users["attributes"]])
    one, other = PairProfiles.from_frame(users), PairProfiles.from_frame(as_text)
    c, p = np.array([0, 1, 2]), np.array([1, 2, 3])
    np.testing.assert_array_equal(pair_feature_matrix(one, c, p), pair_feature_matrix(other, c, p))
    bare = PairProfiles.from_frame(pd.DataFrame({"id": ["x", "y"], "age": [30, 25]}))
    row = pair_feature_matrix(bare, np.array([0]), np.array([1]))[0]
    assert row[PAIR_FEATURES.index("age_gap")] == -5
    assert np.isnan(row[PAIR_FEATURES.index("pref_fit")])  # no survey: missing, imputed later


def test_the_catalogue_serves_it_to_people_and_it_refuses_items() -> None:
    assert serving_traits("pairwise") == (frozenset({"people"}), False)
    assert isinstance(make_model("pairwise", {"mode": "min"}), PairwiseRecommender)
    with pytest.raises(InvalidInput, match="unknown mode"):
        make_model("pairwise", {"mode": "mean"})
    users, alpha, beta = _population(n=10)
    a, b, y = _swipes(users, alpha, beta)
    items = InteractionSet(user_ids=users["id"].to_numpy(), item_ids=np.array(["e1", "e2"]),
                           users=np.array([0, 1]), items=np.array([0, 1]),
                           labels=np.array([1.0, 0.0]))  # fmt: skip
    with pytest.raises(InvalidInput, match="people domain"):
        PairwiseRecommender().fit(items)
    with pytest.raises(InvalidInput, match="likes and passes"):
        PairwiseRecommender().fit(_set(users, a, b, np.ones_like(y)))


def test_a_block_of_users_scores_each_pair_as_alone(planted: dict) -> None:
    """block_pair_probabilities (a batched refresh) gives every pair what
    pair_probabilities (one live request) gives it, bit for bit; groups must fit."""
    m: PairwiseRecommender = planted["model"]  # type: ignore[assignment]
    n = m.n_users_ or 0
    users = np.array([0, 3, 3, 50])
    sizes = [n, 2, 0, 17]
    groups = np.concatenate([[0], np.cumsum(sizes)])
    cands = np.concatenate([np.arange(n), [1, 1], np.arange(17)[::-1]])
    p_ab, p_ba = m.block_pair_probabilities(users, groups, cands)
    for i, user in enumerate(users.tolist()):
        part = slice(int(groups[i]), int(groups[i + 1]))
        alone = m.pair_probabilities(user, cands[part])
        assert p_ab[part].tobytes() == alone[0].tobytes()
        assert p_ba[part].tobytes() == alone[1].tobytes()
    with pytest.raises(InvalidInput, match="groups"):
        m.block_pair_probabilities(users, groups[1:], cands)
