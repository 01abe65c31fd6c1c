"""The people benchmark: both directions of a test pair are held out together, only the
``+ reverse`` rows read the other side's earlier decision, and every row comes back."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from matchwise.bench import people as bench
from matchwise.bench.people import PeopleSplit, people_split, run_people_benchmark
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_people
from matchwise.errors import InvalidInput
from matchwise.metrics import grouped_ndcg
from matchwise.models.reciprocal import ReciprocalRecommender

USERS, SWIPES, SEED = 150, 2_500, 5
ROWS = [
    "random",
    "popularity",
    "one_sided",
    "reciprocal",
    "random + reverse",
    "popularity + reverse",
    "one_sided + reverse",
    "reciprocal + reverse",
    "reciprocal_product",
    "reciprocal_min",
]


@pytest.fixture(scope="module")
def split() -> PeopleSplit:
    return people_split(generate_people(USERS, SWIPES, SEED), 0.2, text_features=False)


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> set[int]:
    return set((np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)).tolist())


def test_no_test_pair_has_a_decision_in_training(split: PeopleSplit) -> None:
    n = len(split.ids)
    a, b = split.test_user, split.test_cand
    assert len(split.train) + len(a) == SWIPES  # every swipe on one side, none lost
    assert len(a) >= 0.2 * SWIPES
    train_directed = set((split.train.users.astype(np.int64) * n + split.train.items).tolist())
    reverse_in_train = [i for i in range(len(a)) if int(b[i]) * n + int(a[i]) in train_directed]
    assert reverse_in_train == [], f"{len(reverse_in_train)} test swipes' reverse is in training"
    assert not _pair_keys(a, b, n) & _pair_keys(split.train.users, split.train.items, n)
    # hence nothing a scorer learns from training holds a test pair's decision
    model = ReciprocalRecommender(base="ease", base_params={"l2": 100.0}).fit(split.train)
    assert model.decisions_ is not None
    assert np.all(np.asarray(model.decisions_[b, a]).ravel() == 0)
    assert np.all(np.asarray(model.decisions_[a, b]).ravel() == 0)


def test_reverse_is_the_other_sides_earlier_decision(split: PeopleSplit) -> None:
    a, b, liked = split.test_user, split.test_cand, split.test_liked
    expected = np.zeros(len(a), dtype=np.int8)
    latest: dict[tuple[int, int], int] = {}
    for i in range(len(a)):  # test swipes are in time order
        expected[i] = latest.get((int(b[i]), int(a[i])), 0)
        latest[(int(a[i]), int(b[i]))] = 1 if liked[i] else -1
    np.testing.assert_array_equal(split.test_reverse, expected)
    assert (expected != 0).any() and (expected == 0).any()
    # the second like of every test match finds the first one
    assert (split.test_match & (split.test_reverse > 0)).sum() * 2 == split.test_match.sum()


def test_only_the_rows_labelled_reverse_read_the_lookup(split: PeopleSplit) -> None:
    model = ReciprocalRecommender(base="ease", base_params={"l2": 100.0}, known_decisions=False)
    model.fit(split.train)
    given = bench.pair_scores(split, model, SEED)
    blind = bench.pair_scores(
        dataclasses.replace(split, test_reverse=np.zeros_like(split.test_reverse)), model, SEED
    )
    assert list(given) == ROWS
    labelled = {name for name in given if name.endswith(bench.REVERSE)}
    assert labelled == {name + bench.REVERSE for name in bench.HEADLINE}
    for name in given:
        if name in labelled:
            assert not np.allclose(given[name], blind[name]), name
            # with no recorded decision the row is its scorer
            np.testing.assert_allclose(blind[name], given[name.removesuffix(bench.REVERSE)])
        else:
            np.testing.assert_array_equal(given[name], blind[name], err_msg=name)
    for name in ("one_sided", "reciprocal + reverse"):  # per user, the same NDCG@10
        per_user = bench.per_user_ndcg(split, given[name])
        _, users = grouped_ndcg(split.test_user, given[name], split.test_match, 10)
        assert len(per_user) == users
        assert per_user.mean() == pytest.approx(
            grouped_ndcg(split.test_user, given[name], split.test_match, 10).mean
        )
    seen = split.test_reverse != 0
    for name in labelled:  # a recorded like ranks above, a pass below, every other pair
        liked_you = given[name][split.test_reverse > 0]
        assert (
            liked_you.min() > given[name][~seen].max() > given[name][split.test_reverse < 0].max()
        )
    # a model applying recorded decisions itself would be a lookup under another label
    model.known_decisions = True
    with pytest.raises(InvalidInput, match="known_decisions"):
        bench.pair_scores(split, model, SEED)


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_benchmark_runs_and_returns_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_people_benchmark(USERS, SWIPES, SEED, base="ease", text_features=False)
    assert list(result["results"]) == ROWS == list(result["scorers"])
    for name, row in result["results"].items():
        assert set(row) == {"ndcg@10", "match_auc", "decision_auc", "users"}
        assert all(0.0 <= row[m] <= 1.0 for m in ("ndcg@10", "match_auc", "decision_auc"))
        assert row["users"] > 0
        assert ("recorded before" in result["scorers"][name]) == name.endswith(bench.REVERSE)
    assert list(result["full_ranking"]) == list(bench.HEADLINE)
    sizes = result["sizes"]
    assert sizes["train_swipes"] + sizes["test_swipes"] == sizes["swipes"] == SWIPES
    assert 0 < sizes["test_swipes_with_reverse"] < sizes["test_swipes"]
    assert sizes["test_pairs"] < sizes["test_swipes"]

    assert list(result["paired"]) == [f"{a} vs {b}" for a, b in bench.PAIRED]
    for diff in result["paired"].values():
        assert diff["low"] <= diff["ndcg@10_difference"] <= diff["high"]

    argv = ["benchmark", "people", "--users", str(USERS), "--swipes", str(SWIPES)]
    argv += ["--seed", str(SEED), "--base", "ease"]
    assert _run([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["results"]) == ROWS
    # provenance: the seed, and the same generated swipes hash the same on a rerun
    prov = result["provenance"]
    assert prov["seed"] == SEED and len(prov["data_sha256"]) == 64
    assert {"git_commit", "git_dirty", "packages", "python"} <= set(prov)
    assert printed["provenance"]["data_sha256"] == prov["data_sha256"]
    assert _run(argv) == 0
    table = capsys.readouterr().out
    for name in ROWS:
        assert name in table
    assert "reciprocal vs one_sided: NDCG@10" in table
