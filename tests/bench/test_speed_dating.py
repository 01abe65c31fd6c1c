"""The Speed Dating benchmark: three protocols, what each lets a prediction see, and
matchwise scored by serving's own function.

The fixture (54 people, 3 waves) runs everywhere; the real waves 1-10 are read where they
lie (``SHARED_DATA``) and those tests skip cleanly without them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchwise.bench import speed_dating as sd
from matchwise.bench.provenance import data_sha256
from matchwise.bench.speed_dating import (
    PROTOCOLS,
    SpeedDatingData,
    new_event_scores,
    replay_scores,
    run_speed_dating_benchmark,
    running_counts,
    wave_splits,
)
from matchwise.cli.app import main
from matchwise.data.speed_dating import ALLOWED_COLUMNS, read_speed_dating_frame
from matchwise.errors import InvalidInput
from matchwise.serve import people as serve_people
from matchwise.settings import Settings
from tests.conftest import FIXTURES, SHARED_DATA

FIXTURE = FIXTURES / "speed_dating_sample.csv"
REAL = SHARED_DATA / "speed-dating-waves-1-10" / "speed-dating-waves-1-10.csv"
METRICS = {"decision_auc", "match_auc", "ndcg@5"}
PEERS = {"random", "popularity", "one_sided", "reciprocal", "matchwise"}

needs_real = pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL} is not here")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()  # the blend serving uses by default


@pytest.fixture(scope="module")
def fixture_data() -> SpeedDatingData:
    return SpeedDatingData.read(FIXTURE)


@pytest.fixture(scope="module")
def real_data() -> SpeedDatingData:
    if not REAL.is_file():
        pytest.skip(f"{REAL} is not here")
    return SpeedDatingData.read(REAL)


def _rows() -> tuple[list[str], list[list[str]]]:
    records = list(csv.reader(io.StringIO(FIXTURE.read_bytes().decode("latin-1"))))
    return records[0], records[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    return path


def _people(data: SpeedDatingData, rows: np.ndarray) -> set[int]:
    view = data.view.iloc[rows]
    return set(view["iid"].tolist()) | set(view["pid"].astype(int).tolist())


# --- every protocol -------------------------------------------------------------------------
def test_the_benchmark_returns_all_protocols() -> None:
    result = run_speed_dating_benchmark(FIXTURE, seed=42, details=True)
    json.dumps(result)  # plain JSON
    assert set(result["protocols"]) == set(PROTOCOLS)
    assert [len(p["splits"]) for p in result["protocols"].values()] == [1, 2, 2]
    for name, protocol in result["protocols"].items():
        for split in protocol["splits"]:
            scorers = PEERS | ({"reference"} if name == "replay" else set())
            scorers |= {"lgbm_harmonic", "pairwise"} if name == "pair" else set()
            assert set(split["results"]) == scorers, name
            for figures in split["results"].values():
                assert set(figures) == METRICS
                assert all(0.0 <= v <= 1.0 for v in figures.values())
            peers = scorers - {"matchwise", "random"}
            assert set(split["paired"]) == {f"matchwise - {s}" for s in peers}
            for d in split["paired"].values():
                assert d["low"] <= d["match_auc_difference"] <= d["high"]
    for split in result["protocols"]["replay"]["splits"]:
        assert set(split["match_auc_by_third"]) == PEERS | {"reference"}
        assert all(len(v) == 3 for v in split["match_auc_by_third"].values())
    # the pair protocol's table stays at the top level, as before the other two existed
    assert result["results"] == result["protocols"]["pair"]["splits"][0]["results"]
    assert result["details"]["test_rows"] + result["details"]["train_rows"] == 490
    assert set(result["settings"]["blend"]) >= {"swipe_rates", "model", "reciprocal"}
    prov = result["provenance"]
    assert prov["seed"] == 42 and prov["data_sha256"] == data_sha256(FIXTURE)
    assert {"git_commit", "git_dirty", "packages", "python"} <= set(prov)
    only = run_speed_dating_benchmark(FIXTURE, seed=42, protocols=("replay",))
    assert set(only["protocols"]) == {"replay"} and "results" not in only
    assert only["protocols"]["replay"] == result["protocols"]["replay"]  # deterministic
    with pytest.raises(InvalidInput, match="unknown protocol"):
        run_speed_dating_benchmark(FIXTURE, protocols=("leave-one-out",))


def test_pair_protocol_figures_as_before() -> None:
    """The first protocol's four scorers give what they gave before matchwise joined."""
    r = run_speed_dating_benchmark(FIXTURE, seed=42, protocols=("pair",))["results"]
    # (to the third decimal: after torch has loaded, BLAS may round the logistic fit apart)
    before = {
        "one_sided": {"decision_auc": 0.7866, "match_auc": 0.6085, "ndcg@5": 0.8813},
        "reciprocal": {"decision_auc": 0.6284, "match_auc": 0.7171, "ndcg@5": 0.9508},
    }
    for scorer, figures in before.items():
        assert r[scorer] == pytest.approx(figures, abs=2e-3), scorer
    assert r["one_sided"]["decision_auc"] > r["random"]["decision_auc"]
    assert r["reciprocal"]["match_auc"] > r["one_sided"]["match_auc"]


def test_pairs_are_held_out_with_both_directions() -> None:
    frame = read_speed_dating_frame(FIXTURE)
    held = sd._holdout_pairs(frame, 0.2, seed=42)
    pairs = set(zip(frame["iid"], frame["pid"], strict=True))
    held_pairs = set(zip(frame["iid"][held], frame["pid"][held], strict=True))
    assert all((b, a) in held_pairs for a, b in held_pairs if (b, a) in pairs)
    assert 0.15 < held.mean() < 0.25


def test_forbidden_columns_never_change_the_benchmark(tmp_path: Path) -> None:
    """Scramble every column outside the allow-list, or make it leak the answer outright:
    if any protocol read one, its figures would move."""
    header, rows = _rows()
    baseline = run_speed_dating_benchmark(FIXTURE, seed=42)
    rng = np.random.default_rng(0)
    dec = header.index("dec")
    for variant in ("scrambled", "leaking"):
        changed = [list(r) for r in rows]
        for j, column in enumerate(header):
            if column in ALLOWED_COLUMNS:
                continue
            for r in changed:
                if variant == "leaking" and column in ("like", "attr", "dec_o", "match_es"):
                    r[j] = str(10 * int(r[dec]))  # a perfect predictor of the decision
                else:
                    r[j] = str(int(rng.integers(0, 10)))
        result = run_speed_dating_benchmark(_write(tmp_path / f"{variant}.csv", header, changed))
        assert result["protocols"] == baseline["protocols"]


def test_the_command_prints_the_protocols_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    def run(argv: list[str]) -> int:
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert (
        run(["benchmark", "speed-dating", str(FIXTURE), "--protocol", "new-event", "--json"]) == 0
    )
    assert set(json.loads(capsys.readouterr().out)["protocols"]) == {"new-event"}
    assert run(["benchmark", "speed-dating", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("pair", "new event", "replay", "reference", "third"))
    assert "pair protocol over seeds 42, 7, 1" in out and "pairwise" in out
    assert run(["benchmark", "speed-dating", str(FIXTURE), "--protocol", "later"]) == 2
    assert "--protocol must be" in capsys.readouterr().err
    assert run(["benchmark", "speed-dating", str(FIXTURE), "--pair-seeds", "4,x"]) == 2
    assert "--pair-seeds must be" in capsys.readouterr().err


def test_the_pair_protocol_over_seeds_gives_mean_and_spread() -> None:
    result = run_speed_dating_benchmark(FIXTURE, protocols=("pair",), pair_seeds=(42, 7))
    pair = result["protocols"]["pair"]
    assert [s["seed"] for s in pair["splits"]] == [42, 7]
    assert result["results"] == pair["splits"][0]["results"]
    for scorer, metrics in pair["summary"].items():
        for metric, summary in metrics.items():
            values = [s["results"][scorer][metric] for s in pair["splits"]]
            assert summary["mean"] == pytest.approx(np.mean(values), abs=1e-4)
            assert summary["std"] == pytest.approx(np.std(values), abs=1e-4)
            assert (summary["min"], summary["max"]) == (min(values), max(values))
    # each split says what the pairwise model chose on its own validation pairs
    assert {"person_l2", "feature_l2", "tree_weight", "mode"} <= set(
        pair["splits"][0]["pairwise_chosen"]
    )


@needs_real
@pytest.mark.slow
def test_the_pairwise_model_leads_on_the_real_waves(
    real_data: SpeedDatingData, settings: Settings
) -> None:
    """Issue 17 (people): on held-out pairs of waves 1-10 the pairwise model's mutual score
    is ahead of one-sided, popularity and the survey's reciprocal score, and so is
    serving's blend reading it."""
    rows, scores, _ = sd.pair_scores(real_data, settings=settings, seed=42)
    figures = sd._figures(real_data, rows, scores, 5)
    pairwise = figures["pairwise"]["match_auc"]
    for peer in ("popularity", "one_sided", "reciprocal"):
        assert pairwise > figures[peer]["match_auc"] + 0.02, peer
    assert figures["matchwise"]["match_auc"] > figures["reciprocal"]["match_auc"]


# --- new event: nobody seen before ----------------------------------------------------------
def test_wave_splits_hold_whole_evenings_out() -> None:
    assert wave_splits(range(1, 11)) == [
        ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]),
        ([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]),
    ]
    assert wave_splits([3, 1, 2]) == [([1, 2], [3]), ([3], [1, 2])]
    with pytest.raises(InvalidInput, match="at least two waves"):
        wave_splits([4])


@pytest.mark.parametrize("which", ["fixture", "real"])
def test_new_event_split_shares_no_person(
    which: str, request: pytest.FixtureRequest, settings: Settings
) -> None:
    data: SpeedDatingData = request.getfixturevalue(f"{which}_data")
    for train_waves, test_waves in wave_splits(data.waves()):
        train, test = data.rows_of(train_waves), data.rows_of(test_waves)
        assert len(train) + len(test) == len(data.view)
        assert _people(data, train).isdisjoint(_people(data, test))
    if which == "real":
        assert data.waves() == list(range(1, 11))
        assert len(_people(data, data.rows_of(range(1, 6)))) == 130


def test_new_event_scores_ignore_every_test_decision(
    fixture_data: SpeedDatingData, settings: Settings
) -> None:
    """Whole evenings held out: flipping every decision of the test evenings changes no
    prediction (the test people are new; only the survey speaks for them)."""
    (train_waves, test_waves), _ = wave_splits(fixture_data.waves())
    rows, before = new_event_scores(fixture_data, train_waves, test_waves, settings=settings)
    flipped = _with_decisions_flipped(fixture_data, rows)
    _, after = new_event_scores(flipped, train_waves, test_waves, settings=settings)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


# --- replay: earlier rounds only ------------------------------------------------------------
def _with_decisions_flipped(data: SpeedDatingData, rows: np.ndarray) -> SpeedDatingData:
    """The same file with the decisions (and match flags) of ``rows`` turned around."""
    view = data.view.copy()
    view.loc[rows, "dec"] = 1 - view.loc[rows, "dec"]
    other = view.set_index(["iid", "pid"])["dec"]
    reverse = other.reindex(list(zip(view["pid"], view["iid"], strict=True))).to_numpy()
    view["match"] = ((view["dec"] == 1) & (reverse == 1)).astype(float)
    return SpeedDatingData.from_frame(view, data.name)


@pytest.mark.parametrize("which", ["fixture", "real"])
def test_running_counts_see_earlier_rounds_only(which: str, request: pytest.FixtureRequest) -> None:
    """What the reference and popularity read, checked against a plain count."""
    data: SpeedDatingData = request.getfixturevalue(f"{which}_data")
    assert data.rounds is not None
    iid, pid = data.view["iid"].to_numpy(), data.view["pid"].to_numpy()
    yes = data.dec == 1
    rows = np.arange(len(data.view))
    counts = running_counts(data, rows)
    rng = np.random.default_rng(0)
    for i in rng.choice(rows, size=min(200, len(rows)), replace=False):
        earlier = (data.wave == data.wave[i]) & (data.rounds < data.rounds[i])
        expected = []
        for person in (iid[i], pid[i]):
            gave, got = earlier & (iid == person), earlier & (pid == person)
            expected += [(yes & gave).sum(), gave.sum(), (yes & got).sum(), got.sum()]
        np.testing.assert_array_equal(counts[i], expected)
    # a date's round is never before either person's own count of it
    assert (data.rounds >= data.view["order"].to_numpy()).all()


def _replay_is_blind_to_later_rounds(data: SpeedDatingData, settings: Settings) -> None:
    train_waves, test_waves = wave_splits(data.waves())[0]
    rows, before = replay_scores(data, train_waves, test_waves, settings=settings)
    assert data.rounds is not None
    rounds = data.rounds[rows]
    cut = float(np.median(np.unique(rounds)))
    later = rows[rounds >= cut]
    flipped = _with_decisions_flipped(data, later)
    _, after = replay_scores(flipped, train_waves, test_waves, settings=settings)
    seen = rounds <= cut  # the cut round itself: its own decisions are never visible either
    for name in before:
        np.testing.assert_array_equal(before[name][seen], after[name][seen], err_msg=name)
    for name in ("popularity", "reference", "matchwise"):  # they do learn from the rounds
        assert not np.array_equal(before[name][~seen], after[name][~seen]), name


def test_replay_never_sees_its_own_or_a_later_round(
    fixture_data: SpeedDatingData, settings: Settings
) -> None:
    """Turn around every decision from round r on: no prediction for rounds up to r moves,
    whichever scorer made it; later ones do (the running rates saw the new decisions)."""
    _replay_is_blind_to_later_rounds(fixture_data, settings)


@needs_real
def test_replay_never_sees_its_own_or_a_later_round_on_the_real_waves(
    real_data: SpeedDatingData, settings: Settings
) -> None:
    _replay_is_blind_to_later_rounds(real_data, settings)


def test_matchwise_is_what_serving_does(
    fixture_data: SpeedDatingData, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark's matchwise scores come from serving's ranking function on a real
    people catalogue: no benchmark-only model."""
    assert sd.score_people is serve_people.score_people
    calls: list[Any] = []

    def spy(cat: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(cat)
        return serve_people.score_people(cat, *args, **kwargs)

    train_waves, test_waves = wave_splits(fixture_data.waves())[0]
    _, plain = replay_scores(fixture_data, train_waves, test_waves, settings=settings)
    monkeypatch.setattr(sd, "score_people", spy)
    _, spied = replay_scores(fixture_data, train_waves, test_waves, settings=settings)
    np.testing.assert_array_equal(plain["matchwise"], spied["matchwise"])
    assert calls and all(isinstance(c, serve_people.PeopleCatalogue) for c in calls)
    # and the blend weight is serving's: without the swipe rates the replay scores differ
    off = settings.model_copy(
        update={"blend": settings.blend.model_copy(update={"swipe_rates": 0.0})}
    )
    _, without = replay_scores(fixture_data, train_waves, test_waves, settings=off)
    assert not np.array_equal(plain["matchwise"], without["matchwise"])


@needs_real
def test_replay_on_the_real_waves_beats_the_reference(
    real_data: SpeedDatingData, settings: Settings
) -> None:
    """On waves 1-10, matchwise's replay figure beats the reference in both directions,
    rises through the evening, and beats what it knows of new people."""
    for train_waves, test_waves in wave_splits(real_data.waves()):
        rows, scores = replay_scores(real_data, train_waves, test_waves, settings=settings)
        figures = sd._figures(real_data, rows, scores, 5)
        thirds = sd._by_third(real_data, rows, scores)
        assert figures["matchwise"]["match_auc"] > figures["reference"]["match_auc"]
        assert figures["matchwise"]["match_auc"] > 0.68
        assert thirds["matchwise"][2] > thirds["matchwise"][0]
        _, cold = new_event_scores(real_data, train_waves, test_waves, settings=settings)
        assert figures["matchwise"]["match_auc"] > sd._auc(real_data.match[rows], cold["matchwise"])


def test_auc_shares_average_to_the_auc() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.3
    scores = rng.random(300) + labels * 0.3
    scores[:20] = 0.5  # ties count half
    units = rng.integers(0, 40, 300)
    shares = sd.auc_shares(labels, scores, units)
    assert len(shares) == len(np.unique(units))
    assert shares.mean() == pytest.approx(sd.auc(labels, scores), abs=1e-12)
    assert pd.Series(shares).ge(0).all()
