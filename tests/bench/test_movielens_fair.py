"""The MovieLens benchmark cannot flatter: every model gets the same tuning budget and is
chosen on validation only, and trains as `matchwise train` does (every model is fitted
with its validation part, so the two-tower early-stops on validation NDCG@10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from matchwise.bench import movielens as benchmark
from matchwise.bench.movielens import (
    MODELS,
    TUNING_BUDGET,
    register_model,
    run_movielens_benchmark,
)
from matchwise.models.base import InteractionSet
from matchwise.models.popularity import PopularityRecommender

TINY_TWO_TOWER = {"hidden": [16], "embedding_dim": 8, "id_dim": 8, "batch_size": 64,
                  "epochs": 40, "patience": 0, "device": "cpu"}  # fmt: skip


def test_every_tunable_model_gets_the_same_budget() -> None:
    for name, spec in MODELS.items():
        expected = 1 if name == "popularity" else TUNING_BUDGET  # popularity has no knobs
        assert len(spec.grid) == expected, name
        assert len({json.dumps(p, sort_keys=True) for p in spec.grid}) == len(spec.grid), name
    # the hybrid's once test-picked knobs are tuned now, its defaults among the choices
    hybrid = MODELS["hybrid"].grid
    assert {"ranker": {"objective": "binary"}, "blend": 1.0} in hybrid
    assert {p["ranker"]["objective"] for p in hybrid} == {"binary", "lambdarank"}


class _Spy(PopularityRecommender):
    """Popularity that records what fit saw, and scores worse the larger ``shift`` is."""

    calls: list[dict[str, Any]] = []  # noqa: RUF012 - shared on purpose

    def __init__(self, shift: int = 0, use_weights: bool = False) -> None:
        super().__init__(use_weights)
        self.shift = shift

    def get_params(self) -> dict[str, Any]:
        return {"shift": self.shift}

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        _Spy.calls.append({"train": len(train), "validation": validation})
        super().fit(train, validation)
        assert self.item_scores_ is not None
        self.item_scores_ = np.roll(self.item_scores_, self.shift)
        return self


def test_models_fit_with_validation_and_are_chosen_on_it(
    tiny_100k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benchmark, "MODELS", dict(MODELS))
    _Spy.calls = []
    register_model("spy", lambda p: _Spy(**p), [{"shift": 7}, {"shift": 0}, {"shift": 13}])
    result = run_movielens_benchmark(tiny_100k, models=["spy"])
    # every fit got the validation part of its split, as train.pipeline's fit does
    assert len(_Spy.calls) == 3
    assert all(call["validation"] is not None and len(call["validation"]) for call in _Spy.calls)
    row = result["results"]["spy"]
    tried = row["configurations"]
    assert [t["params"] for t in tried] == [{"shift": 7}, {"shift": 0}, {"shift": 13}]
    best = max(tried, key=lambda t: t["validation_ndcg@10"])
    assert row["chosen"] == best["params"]  # the validation figure decides
    assert row["validation_ndcg@10"] == best["validation_ndcg@10"]
    assert result["tuning"]["configurations"] == {"spy": 3}


def test_no_grid_fixes_the_two_towers_epochs() -> None:
    assert all("epochs" not in params for params in MODELS["two_tower"].grid)


def test_benchmark_two_tower_is_the_validation_early_stopped_fit(tiny_100k: Path) -> None:
    result = run_movielens_benchmark(tiny_100k, models={"two_tower": [TINY_TWO_TOWER]})
    training = result["results"]["two_tower"]["training"]
    # validation NDCG stopped it well before the 40 epochs it was allowed
    assert 1 <= training["best_epoch"] <= training["epochs_run"] < 40
    assert training["epochs_run"] == training["best_epoch"] + 1  # patience 0
