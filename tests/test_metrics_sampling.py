"""A full-ranking evaluation too big to run whole (a million people ranking a million
candidates) evaluates an evenly spaced sample of its users, says so, and gives the same
figures as ranking just those users; under the budget nothing changes."""

from __future__ import annotations

import numpy as np

from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet


def _split(n: int, seed: int) -> tuple[InteractionSet, InteractionSet]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i}" for i in range(n)])

    def part(size: int) -> InteractionSet:
        return InteractionSet(user_ids=ids, item_ids=ids, users=rng.integers(0, n, size),
                              items=rng.integers(0, n, size),
                              labels=np.ones(size, np.float32))  # fmt: skip

    return part(20 * n), part(3 * n)


def test_sampled_evaluation_says_so_and_matches_the_sampled_users_alone() -> None:
    train, test = _split(300, 1)

    def score(users: np.ndarray) -> np.ndarray:
        return np.sin(np.outer(users + 1, np.arange(300) + 1)).astype(np.float32)

    whole = evaluate_full_ranking(score, train, test)
    assert "users_sampled_from" not in whole
    sampled = evaluate_full_ranking(score, train, test, max_cells=50 * 300)
    assert sampled["users"] == 50 and sampled["users_sampled_from"] == whole["users"]
    # the same 50 users, ranked on their own, give the same figures
    relevant = np.flatnonzero(np.diff(test.to_csr(positive_only=True).indptr) > 0)
    chosen = relevant[np.unique(np.linspace(0, len(relevant) - 1, 50).round().astype(int))]
    keep = np.isin(test.users, chosen)
    alone = InteractionSet(user_ids=test.user_ids, item_ids=test.item_ids,
                           users=test.users[keep], items=test.items[keep],
                           labels=test.labels[keep])  # fmt: skip
    expected = evaluate_full_ranking(score, train, alone)
    for key in ("ndcg@10", "recall@10", "hit@10", "map@10"):
        assert np.isclose(sampled[key], expected[key]), key
    assert sampled == evaluate_full_ranking(score, train, test, max_cells=50 * 300)
