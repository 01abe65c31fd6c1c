"""When the pairwise model serves the people list, its ranking leads the blend (issue 17):
the weights the blend gives it (``BlendWeights.pairwise``, through
:func:`~matchwise.features.people.blend_weights`) let the other signals break near-ties
only. Before, the running swipe rates (weight 2) outweighed its two-sided score (0.25)
and the served list ranked held-out Speed Dating pairs worse than the model alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from matchwise.data.synthetic import generate_people
from matchwise.features.compatibility import ProfileArrays
from matchwise.features.people import (
    SIGNAL_RANGES,
    SwipeCounts,
    blend_weights,
    reciprocal_score,
    swipe_rate_score,
)
from matchwise.hashing import hash_id
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve.people import catalogue_rates, people_signals, score_people, swipe_signal
from matchwise.serve.people_catalogue import PeopleCatalogue
from matchwise.serve.recommend import recommend
from matchwise.serve.state import serving_state
from matchwise.settings import BlendWeights, Settings
from matchwise.train.pipeline import train_model


def _catalogue(n: int) -> PeopleCatalogue:
    """One woman and ``n`` men alike in every profile field, Elo and swipes received."""
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(n + 1)], "age": 30.0,
                          "gender": ["woman"] + ["man"] * n})  # fmt: skip
    profiles = ProfileArrays.from_frame(frame)
    return PeopleCatalogue(
        profiles=profiles, visible=np.ones(n + 1, dtype=bool), elo=np.full(n + 1, 1500.0),
        likes_received=np.full(n + 1, 5.0), swipes_received=np.full(n + 1, 10.0),
        bios=[""] * (n + 1), city_lc=np.full(n + 1, "", dtype=object), loaded_at=0.0,
        position={f"u{i}": i for i in range(n + 1)},
        likes_given=np.full(n + 1, 5.0), swipes_given=np.full(n + 1, 10.0),
    )  # fmt: skip


def test_blend_weights_give_the_pairwise_model_its_own_weight() -> None:
    weights = BlendWeights()
    for model_type in (None, "reciprocal", "ease"):
        assert blend_weights(weights, model_type) == weights.model_dump()
    chosen = blend_weights(weights, "pairwise")
    assert chosen["reciprocal"] == weights.pairwise == 100.0
    assert {k: v for k, v in chosen.items() if k != "reciprocal"} == {
        k: v for k, v in weights.model_dump().items() if k != "reciprocal"
    }
    assert blend_weights({"reciprocal": 0.25, "pairwise": 7.0}, "pairwise")["reciprocal"] == 7.0


def test_the_order_follows_the_pairwise_model_where_other_signals_are_equal() -> None:
    """Candidates alike in everything but how readily each says yes to others (the swipe
    rates' P(c likes user)) and the pairwise model's scores, which disagree: the model's
    mutual score decides the order when it serves, as it did not before."""
    n = 5
    cat = _catalogue(n)
    cat.likes_given[1:] = [9.0, 7.0, 5.0, 3.0, 1.0]  # candidate 1 says yes most readily
    settings = Settings()
    candidates = np.arange(1, n + 1)
    p_ab = np.array([0.30, 0.35, 0.40, 0.45, 0.50])  # the model: candidate 5 first
    p_ba = np.array([0.30, 0.35, 0.40, 0.45, 0.50])
    model = (p_ab, reciprocal_score(p_ab, p_ba, settings.reciprocal_mode))
    liked_me = np.zeros(n, dtype=bool)
    signals, _ = people_signals(cat, 0, candidates, [], liked_me, settings, model)
    others = set(signals) - {"model", "reciprocal", "swipe_rates"}
    assert all(np.ptp(signals[s]) == 0 for s in others)  # equal but for the two
    assert np.all(np.diff(signals["swipe_rates"]) < 0)  # the rates disagree with the model
    served, _, _ = score_people(cat, 0, candidates, [], liked_me, settings, model, "pairwise")
    assert np.argsort(-served).tolist() == [4, 3, 2, 1, 0]  # the model's order
    # the reciprocal model's weights (those before): the swipe rates win
    before, _, _ = score_people(cat, 0, candidates, [], liked_me, settings, model, "reciprocal")
    assert np.argsort(-before).tolist() != [4, 3, 2, 1, 0]
    # no model signal (a cold user): the weights are the usual ones whatever the type
    cold, _, _ = score_people(cat, 0, candidates, [], liked_me, settings, None, "pairwise")
    plain, _, _ = score_people(cat, 0, candidates, [], liked_me, settings, None)
    np.testing.assert_array_equal(cold, plain)


def test_the_live_list_follows_the_pairwise_model_up_to_near_ties(
    db_url: str, tmp_path: Path
) -> None:
    """The live route with the pairwise model active: each candidate's reciprocal part is
    ``pairwise`` times the model's mutual score, and the list is in the model's order but
    where the other signals together (at most their summed weights) could swap two."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    bundle = generate_people(n_users=200, n_swipes=5000, seed=8)
    write_bundle(runtime, bundle, settings.action_table, elo=settings.elo)
    pairwise = train_model(runtime, "pairwise", domain="people", activate="always")
    counts = bundle.interactions["user_id"].value_counts()
    with runtime.session() as s:
        for user in map(str, counts.index[::-1]):  # the least active first: more left to see
            served = recommend(runtime, s, user, limit=30, kind="user", use_cache=False,
                               explain=True)  # fmt: skip
            if served.model_version == pairwise.version and len(served.recommendations) > 9:
                break
        models = serving_state(runtime).serving(s, "people")
    assert served.model_version == pairwise.version and len(served.recommendations) > 9
    loaded = next(m for m in models if m.model_type == "pairwise")
    row = loaded.user_row(settings.hash_secret, user)
    ids = [r.candidate_id for r in served.recommendations]
    cols = np.array([loaded.trained.item_index[hash_id(settings.hash_secret, c)] for c in ids])
    _, _, mutual = loaded.trained.model.score_candidates(row, cols)
    weights = settings.blend
    parts = [r.explanation.contributions for r in served.recommendations if r.explanation]
    assert len(parts) == len(ids)
    np.testing.assert_allclose([p["reciprocal"] for p in parts], weights.pairwise * mutual,
                               atol=1e-5)  # fmt: skip
    others = sum(
        w * (SIGNAL_RANGES.get(name, (0.0, 1.0))[1] - SIGNAL_RANGES.get(name, (0.0, 1.0))[0])
        for name, w in weights.model_dump().items()
        if name in parts[0] and name != "reciprocal"
    )
    slack = others / weights.pairwise  # what the other signals can move, in mutual score
    assert slack < 0.05
    assert all(np.diff(mutual) <= slack + 1e-9)  # each next one is not clearly better
    runtime.close()


def test_swipe_rates_taken_once_a_person_are_the_rates_of_each_pair() -> None:
    """The swipe signal takes each person's and each candidate's rates once (a refresh
    keeps every row's) and pairs them: to the bit what the rates of each pair, computed
    pair by pair, give, whether the candidates' rates are precomputed or not."""
    rng = np.random.default_rng(3)
    n = 40
    cat = _catalogue(n)
    cat.likes_received[:] = rng.integers(0, 6, n + 1)
    cat.swipes_received[:] = cat.likes_received + rng.integers(0, 6, n + 1)
    cat.likes_given[:] = rng.integers(0, 6, n + 1)
    cat.swipes_given[:] = cat.likes_given + rng.integers(0, 6, n + 1)
    cat.like_rate = 0.37
    people = np.array([0, 3, 7])
    owner = np.repeat(np.arange(3), [10, 0, 25])
    candidates = rng.integers(0, n + 1, len(owner))
    given = np.array([[1.0, 0.0, 4.0], [3.0, 0.0, 9.0]])
    mine = people[owner]
    pairwise = swipe_rate_score(
        SwipeCounts(given[0][owner], given[1][owner], cat.likes_received[mine],
                    cat.swipes_received[mine]),
        SwipeCounts(cat.likes_given[candidates], cat.swipes_given[candidates],
                    cat.likes_received[candidates], cat.swipes_received[candidates]),
        cat.like_rate, "harmonic",
    )  # fmt: skip
    alone = swipe_signal(cat, people, owner, candidates, given, "harmonic")
    kept = swipe_signal(cat, people, owner, candidates, given, "harmonic", catalogue_rates(cat))
    assert np.array_equal(alone, pairwise)
    assert np.array_equal(kept, pairwise)
    assert len(set(np.round(pairwise, 6))) > 5  # the rates differ: the test can tell
