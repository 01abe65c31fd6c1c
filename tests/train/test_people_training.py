"""``matchwise train reciprocal --domain people`` learns from people only (issue 21).

A store with both domains: item-domain users (event-goers, no dating profile, no swipes)
must not become rows or candidates of the people model; before, every user in the store
was counted, and 20,000 item users turned 20,000 people into a 40,000-wide EASE inverse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise import registry
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items, generate_people
from matchwise.hashing import hash_ids
from matchwise.ingest.bulk import write_bundle
from matchwise.models.artifacts import load_trained
from matchwise.models.peers import ImplicitALSRecommender
from matchwise.models.reciprocal import ReciprocalRecommender
from matchwise.runtime import Runtime

N_PEOPLE, N_ITEM_USERS = 3_000, 2_000


@pytest.fixture
def store(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """3,000 people with their swipes and 2,000 item-domain users with their events."""
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", runtime.settings.artifact_root)
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    table = runtime.settings.action_table
    items = generate_items(
        n_users=N_ITEM_USERS, n_items=100, n_interactions=3_000, seed=3, start=start
    )
    write_bundle(runtime, items, table)
    people = generate_people(n_users=N_PEOPLE, n_swipes=15_000, seed=3, start=start)
    write_bundle(runtime, people, table, elo=runtime.settings.elo)
    return runtime


def _train(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return dict(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))


def test_people_model_trains_on_people_only_with_the_factorised_base(
    store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "reciprocal.json"
    config.write_text(json.dumps({"ease_max_people": 1_000}))  # 3,000 people: ALS
    out = _train(
        ["train", "reciprocal", "--domain", "people", "--config", str(config), "--json"], capsys
    )
    with store.session() as session:
        uri = registry.get_version(session, str(out["registry_id"])).uri
    trained = load_trained(registry.ArtifactStore(store.settings.artifact_root).fetch(uri))
    people = [f"p{i}" for i in range(N_PEOPLE)]
    expected = sorted(hash_ids(store.settings.hash_secret, pd.Series(people)).tolist())
    # the candidate universe (and the swipers) are exactly the people, no item-domain user
    assert sorted(trained.item_ids.tolist()) == expected
    assert sorted(trained.user_ids.tolist()) == expected
    model = trained.model
    assert isinstance(model, ReciprocalRecommender)
    base = model.base_model_
    assert isinstance(base, ImplicitALSRecommender)  # chosen above ease_max_people
    assert base.user_factors_ is not None and base.item_factors_ is not None
    # O(n x d) state: two n x d factor arrays, nothing n x n
    assert base.user_factors_.shape == (N_PEOPLE, base.factors)
    assert base.item_factors_.shape == (N_PEOPLE, base.factors)
    assert not hasattr(base, "B_")
    scores = model.score(np.arange(5))
    assert scores.shape == (5, N_PEOPLE)
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0


@pytest.mark.slow  # a 3,000-wide EASE inverse and its evaluation: 15-25 s here
def test_small_people_populations_keep_ease(
    store: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _train(["train", "reciprocal", "--domain", "people", "--json"], capsys)
    with store.session() as session:
        uri = registry.get_version(session, str(out["registry_id"])).uri
    trained = load_trained(registry.ArtifactStore(store.settings.artifact_root).fetch(uri))
    assert trained.model.base_model_.model_type == "ease"  # type: ignore[attr-defined]
    assert len(trained.item_ids) == N_PEOPLE  # 3,000 wide, not 5,000
