"""The MovieLens benchmark cannot flatter: every model gets the same tuning budget and is
chosen on validation only, trains as `matchwise train` trains it (the two-tower
early-stops on validation), and every row carries a paired interval to the strongest
baseline with a verdict that follows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from matchwise.bench import movielens as benchmark
from matchwise.bench.movielens import (
    BASELINES,
    MODELS,
    TUNING_BUDGET,
    BenchmarkModel,
    register_model,
    run_movielens_benchmark,
)
from matchwise.cli.app import main as cli_main
from matchwise.models.base import InteractionSet
from matchwise.models.popularity import PopularityRecommender

TINY_TWO_TOWER = {"hidden": [16], "embedding_dim": 8, "id_dim": 8, "batch_size": 64,
                  "epochs": 40, "patience": 0, "device": "cpu"}  # fmt: skip


def test_every_tunable_model_gets_the_same_budget() -> None:
    for name, spec in MODELS.items():
        assert len({json.dumps(p, sort_keys=True) for p in spec.grid}) == len(spec.grid), name
        if name in ("popularity", "hybrid", "ease"):
            continue
        assert len(spec.grid) == TUNING_BUDGET, name
    assert len(MODELS["popularity"].grid) == 1  # popularity has no knobs
    # the strongest baseline is tuned finely: λ steps of about 12% (rounded) over 50..3200
    l2 = sorted(p["l2"] for p in MODELS["ease"].grid)
    assert l2[0] <= 50 and l2[-1] >= 3200
    assert len(l2) >= 37 and max(b / a for a, b in zip(l2, l2[1:], strict=False)) < 1.13
    # the hybrid learns its ranker from validation labels, so validation cannot choose
    # among hybrids in the benchmark: one configuration, chosen beforehand on validation
    (hybrid,) = MODELS["hybrid"].grid
    assert hybrid["label_source"] == "validation" and hybrid["refit"] is False
    # no grid fixes the two-tower's epochs: it stops where validation says, as train does
    assert all("epochs" not in p for p in MODELS["two_tower"].grid)


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
    result = run_movielens_benchmark(tiny_100k, models=["spy"], seeds=[2020, 1])
    # every fit got the validation part of its split, as train.pipeline's fit does
    assert len(_Spy.calls) == 6
    assert all(call["validation"] is not None and len(call["validation"]) for call in _Spy.calls)
    for row in result["results"]["spy"]["per_seed"]:
        tried = row["configurations"]
        assert [t["params"] for t in tried] == [{"shift": 7}, {"shift": 0}, {"shift": 13}]
        best = max(tried, key=lambda t: t["validation_ndcg@10"])
        assert row["chosen"] == best["params"]  # the validation figure decides
        assert row["validation_ndcg@10"] == best["validation_ndcg@10"]
    assert result["tuning"]["configurations"] == {"spy": 3}


class _SideSpy(_Spy):
    """Records whether fit's data carried the catalogue's and the users' side columns."""

    seen: list[tuple[bool, bool]] = []  # noqa: RUF012 - shared on purpose

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        _SideSpy.seen.append((train.item_features is not None, train.user_features is not None))
        return super().fit(train, validation)


def test_side_features_reach_only_the_models_that_ask_for_them(
    tiny_100k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benchmark, "MODELS", dict(MODELS))
    _SideSpy.seen = []
    benchmark.MODELS["with_side"] = BenchmarkModel(lambda p: _SideSpy(**p), [{}], True)
    benchmark.MODELS["plain"] = BenchmarkModel(lambda p: _SideSpy(**p), [{}])
    run_movielens_benchmark(tiny_100k, models=["with_side", "plain"], seeds=[2020])
    assert _SideSpy.seen == [(True, True), (False, False)]
    # a grid override keeps the model's side features
    _SideSpy.seen = []
    run_movielens_benchmark(tiny_100k, models={"with_side": [{"shift": 1}]}, seeds=[2020])
    assert _SideSpy.seen == [(True, True)]


def test_benchmark_two_tower_is_the_validation_early_stopped_fit(tiny_100k: Path) -> None:
    result = run_movielens_benchmark(
        tiny_100k, models={"two_tower": [TINY_TWO_TOWER]}, seeds=[2020]
    )
    (row,) = result["results"]["two_tower"]["per_seed"]
    training = row["training"]
    # validation NDCG stopped it well before the 40 epochs it was allowed
    assert 1 <= training["best_epoch"] <= training["epochs_run"] < 40
    assert training["epochs_run"] == training["best_epoch"] + 1  # patience 0


def test_rows_carry_a_paired_interval_to_the_strongest_baseline(tiny_100k: Path) -> None:
    grids = {"popularity": [{}], "ease": [{"l2": 5.0}, {"l2": 50.0}],
             "implicit_bpr": [{"factors": 4, "iterations": 3}]}  # fmt: skip
    result = run_movielens_benchmark(tiny_100k, models=grids, seeds=[2020, 1, 2], bootstrap=500)
    rows = result["results"]
    reference = result["reference"]
    assert reference in BASELINES
    assert rows[reference]["ndcg@10"] == max(rows[name]["ndcg@10"] for name in grids)
    assert rows[reference]["vs_reference"] is None
    for name, row in rows.items():
        if name == reference:
            continue
        vs = row["vs_reference"]
        assert vs["reference"] == reference and vs["metric"] == "ndcg@10"
        assert vs["low"] <= vs["difference"] <= vs["high"]
        # the difference is that of the seed-averaged means (every user in every split)
        assert vs["difference"] == pytest.approx(row["ndcg@10"] - rows[reference]["ndcg@10"])
        expected = "better" if vs["low"] > 0 else "worse" if vs["high"] < 0 else "on par"
        assert vs["verdict"] == expected
        assert [s["seed"] for s in vs["per_seed"]] == [2020, 1, 2]
        spread = np.std([s["ndcg@10"] for s in row["per_seed"]], ddof=1)
        assert row["spread"]["ndcg@10"] == pytest.approx(spread)
    assert rows["popularity"]["vs_reference"]["verdict"] == "worse"


def _cli(argv: list[str]) -> int:
    try:
        cli_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_json_has_seeds_intervals_and_provenance(
    tiny_100k: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["benchmark", "movielens", str(tiny_100k), "--models", "popularity,ease"]
    assert _cli([*argv, "--seeds", "3,4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeds"] == [3, 4] and result["provenance"]["seed"] == [3, 4]
    assert result["results"]["popularity"]["vs_reference"]["reference"] == "ease"
    assert _cli([*argv, "--seeds", "one"]) == 2
    assert "seeds must be comma-separated integers" in capsys.readouterr().err
