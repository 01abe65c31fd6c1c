"""The MovieLens benchmark: result shape on a tiny synthetic folder; the real ML-100K run (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from matchwise.bench import movielens as benchmark
from matchwise.bench.movielens import (
    MODELS,
    BenchmarkModel,
    param_grid,
    prepare_protocol,
    register_model,
    render_table,
    run_movielens_benchmark,
)
from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.errors import InvalidInput
from matchwise.models.popularity import PopularityRecommender

ML_100K = Path("/work/shared/data/movielens-100k")

TINY_GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "ease": [{"l2": 5.0}, {"l2": 50.0}],
    "implicit_als": [{"factors": 4, "iterations": 3}],
    "implicit_bpr": [{"factors": 4, "iterations": 5}],
}


@pytest.mark.parametrize("protocol", ["recbole", "temporal"])
def test_result_shape(tiny_100k: Path, protocol: str) -> None:
    result = run_movielens_benchmark(
        tiny_100k, protocol=protocol, k=10, models=TINY_GRIDS, seeds=[2020, 1]
    )
    assert set(result) == {
        "dataset", "protocol", "k", "seeds", "splits", "reference", "tuning", "bootstrap",
        "results", "provenance",
    }  # fmt: skip
    assert result["dataset"] == "ml-tiny" and result["protocol"] == protocol
    # the temporal split has no seed: it runs once
    assert result["seeds"] == ([2020, 1] if protocol == "recbole" else [2020])
    assert list(result["results"]) == list(TINY_GRIDS)
    for row in result["results"].values():
        assert {
            "ndcg@10", "recall@10", "hit@10", "map@10", "spread", "train_seconds",
            "peak_memory_mb", "params", "per_seed", "vs_reference",
        } == set(row)  # fmt: skip
        for key in ("ndcg@10", "recall@10", "hit@10", "map@10"):
            assert 0.0 <= row[key] <= 1.0
            assert row[key] == pytest.approx(np.mean([s[key] for s in row["per_seed"]]))
        assert row["train_seconds"] >= 0 and row["peak_memory_mb"] >= 0
        assert [s["seed"] for s in row["per_seed"]] == result["seeds"]
    assert result["results"]["ease"]["params"]["l2"] in (5.0, 50.0)
    json.dumps(result)  # plain JSON all the way down
    Console(file=None, width=200, record=True).print(render_table(result))


def test_registered_model_joins_by_name(tiny_100k: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmark, "MODELS", dict(MODELS))
    register_model(
        "weighted_popularity", lambda p: PopularityRecommender(**p), [{"use_weights": True}]
    )
    result = run_movielens_benchmark(tiny_100k, models=["weighted_popularity"])
    assert result["results"]["weighted_popularity"]["params"] == {"use_weights": True}
    assert isinstance(benchmark.MODELS["weighted_popularity"], BenchmarkModel)


def test_protocol_splits_share_one_universe(tiny_100k: Path) -> None:
    train, valid, test = prepare_protocol(ratings_frame(read_movielens(tiny_100k)), "recbole")
    assert train.n_items == valid.n_items == test.n_items
    pairs = [set(zip(p.users, p.items, strict=True)) for p in (train, valid, test)]
    assert not pairs[0] & pairs[1] and not pairs[0] & pairs[2] and not pairs[1] & pairs[2]


def test_bad_arguments(tiny_100k: Path) -> None:
    with pytest.raises(InvalidInput, match="protocol"):
        run_movielens_benchmark(tiny_100k, protocol="leave-one-out")
    with pytest.raises(InvalidInput, match="unknown benchmark model"):
        run_movielens_benchmark(tiny_100k, models=["nope"])


def test_param_grid() -> None:
    assert param_grid(a=[1, 2], b=["x"]) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


@pytest.mark.slow
@pytest.mark.skipif(not ML_100K.is_dir(), reason="MovieLens 100K is not on this machine")
def test_movielens_100k_recbole_ordering() -> None:
    result = run_movielens_benchmark(
        ML_100K, protocol="recbole", models=["popularity", "implicit_bpr", "implicit_als", "ease"]
    )
    ndcg = {name: row["ndcg@10"] for name, row in result["results"].items()}
    assert ndcg["ease"] > ndcg["implicit_bpr"] > ndcg["popularity"]
    assert ndcg["implicit_als"] > ndcg["implicit_bpr"]
    assert ndcg["ease"] > 0.27 and ndcg["implicit_als"] > 0.27
