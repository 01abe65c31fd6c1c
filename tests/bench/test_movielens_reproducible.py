"""Reproducible to the bit: popularity's ties come out in id order on every run, the
benchmark's per-user figures repeat exactly, and its JSON says where it came from."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from matchwise.bench.movielens import main, run_movielens_benchmark
from matchwise.bench.provenance import data_sha256, package_versions, provenance
from matchwise.models.base import InteractionSet, top_k_indices
from matchwise.models.popularity import PopularityRecommender


def _tied_popularity() -> tuple[PopularityRecommender, np.ndarray]:
    """40 items whose counts repeat 0, 1, 2, 3: ten items share each count."""
    n_users, n_items = 6, 40
    counts = np.arange(n_items) % 4
    items = np.repeat(np.arange(n_items), counts)
    users = np.arange(len(items)) % n_users
    train = InteractionSet(
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
        users=users,
        items=items,
        labels=np.ones(len(items), dtype=np.float32),
    )
    return PopularityRecommender().fit(train), counts


def test_popularity_ties_come_out_in_id_order() -> None:
    model, counts = _tied_popularity()
    top, scores = model.recommend(np.arange(6), k=15)
    # the ten items counted 3 (ids 3, 7, ..., 39) by id, then the first five counted 2
    expected = [3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 2, 6, 10, 14, 18]
    assert top.tolist() == [expected] * 6
    np.testing.assert_array_equal(scores, counts[top])


def test_popularity_lists_are_identical_across_runs() -> None:
    first, _ = _tied_popularity()
    second, _ = _tied_popularity()
    for k in (1, 5, 10, 11, 25, 40, 60):
        a, _ = first.recommend(np.arange(6), k=k)
        b, _ = second.recommend(np.arange(6), k=k)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(
            a, np.tile(np.argsort(-first.item_scores_, kind="stable")[:k], (6, 1))
        )


def test_masked_ties_still_in_id_order() -> None:
    model, _ = _tied_popularity()
    seen = np.zeros((6, 40), dtype=np.float32)
    seen[0, [3, 7]] = 1  # user 0 already has two of the top items
    top, _ = model.recommend(np.array([0]), k=4, exclude=sp.csr_matrix(seen))
    assert top.tolist() == [[11, 15, 19, 23]]


def test_top_k_indices_is_a_stable_sort_of_the_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_rows, n_items = rng.integers(1, 6), rng.integers(1, 30)
        scores = rng.integers(0, 4, size=(n_rows, n_items)).astype(np.float32)
        scores[rng.random(scores.shape) < 0.1] = -np.inf
        scores[rng.random(scores.shape) < 0.05] = np.nan
        k = int(rng.integers(1, 35))
        expected = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, n_items)]
        np.testing.assert_array_equal(top_k_indices(scores, k), expected)


def test_benchmark_figures_repeat_exactly(tiny_100k: Path) -> None:
    grids = {"popularity": [{}], "ease": [{"l2": 5.0}, {"l2": 50.0}]}
    first = run_movielens_benchmark(tiny_100k, models=grids, seeds=[2020, 1])
    second = run_movielens_benchmark(tiny_100k, models=grids, seeds=[2020, 1])
    for name in grids:
        for a, b in zip(first["results"][name]["per_seed"], second["results"][name]["per_seed"],
                        strict=True):  # fmt: skip
            assert {key: a[key] for key in ("ndcg@10", "recall@10", "hit@10", "map@10")} == {
                key: b[key] for key in ("ndcg@10", "recall@10", "hit@10", "map@10")
            }
    assert (
        first["results"]["popularity"]["vs_reference"]
        == (second["results"]["popularity"]["vs_reference"])
    )


def test_benchmark_json_carries_provenance(tiny_100k: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    main([str(tiny_100k), "--models", "popularity,ease", "--seeds", "2020,1", "--out", str(out)])
    result = json.loads(out.read_text())
    prov = result["provenance"]
    assert prov["seed"] == [2020, 1] == result["seeds"]
    assert prov["data_sha256"] == data_sha256(tiny_100k)
    assert re.fullmatch(r"[0-9a-f]{64}", prov["data_sha256"])
    assert prov["data_path"] == str(tiny_100k)
    for name in ("numpy", "scipy", "pandas", "implicit", "matchwise"):
        assert prov["packages"][name] == package_versions([name])[name] is not None
    assert prov["python"].count(".") == 2
    # this test runs from a git checkout: the commit is a full hash
    assert prov["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
    assert isinstance(prov["git_dirty"], bool | None)
    assert prov["bootstrap_seed"] == result["bootstrap"]["seed"]


def test_data_sha256_covers_every_file_and_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("one")
    (folder / "b.txt").write_text("two")
    before = data_sha256(folder)
    assert data_sha256(folder) == before
    (folder / "b.txt").write_text("two!")
    edited = data_sha256(folder)
    assert edited != before
    (folder / "b.txt").rename(folder / "c.txt")
    assert data_sha256(folder) != edited
    (folder / ".hidden").write_text("ignored")
    assert data_sha256(folder) == data_sha256(folder)
    assert data_sha256(folder / "a.txt") != data_sha256(b"one")  # a file's size is hashed too
    assert data_sha256(b"one") == hashlib.sha256(b"one").hexdigest()
    with pytest.raises(FileNotFoundError):
        data_sha256(tmp_path / "missing")


def test_provenance_fields() -> None:
    block = provenance(7, data=b"rows", note="x")
    assert block["seed"] == 7 and block["data_path"] is None and block["note"] == "x"
    assert set(block) >= {"seed", "data_sha256", "packages", "python", "git_commit",
                          "git_dirty", "machine", "created_at"}  # fmt: skip
    assert provenance((1, 2))["seed"] == [1, 2]
