"""Every name ``matchwise train`` accepts trains, or is refused with what to do: the whole
catalogue (``MODEL_TYPES``) trains and registers on a small generated store, each in the
domain it learns from; the parts (``PARTS``) and unknown names exit 2 with a message.

``matchwise train safety`` is the safety classifier's own path: tests/test_safety_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from matchwise import registry
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items, generate_people
from matchwise.errors import InvalidInput
from matchwise.ingest.bulk import write_bundle
from matchwise.models.artifacts import load_trained
from matchwise.models.catalog import FLAG_ALIASES, MODEL_TYPES, PARTS, make_model, model_class
from matchwise.runtime import Runtime
from matchwise.settings import Settings

#: Tiny configs for the models that take minutes at their defaults (a second or two here).
TINY: dict[str, dict[str, Any]] = {
    "two_tower": {"hidden": [16], "embedding_dim": 8, "id_dim": 8, "batch_size": 256,
                  "epochs": 2, "patience": 2, "text_columns": [], "device": "cpu"},
    "hybrid": {"generators": ["ease", "popularity"], "n_candidates": 20, "folds": 1,
               "ranker": {"n_estimators": 10, "min_data_in_leaf": 5}},
}  # fmt: skip


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """Both domains in one store, as the demo has them: events with a funnel, and people
    with their swipes."""
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    table = runtime.settings.action_table
    items = generate_items(n_users=120, n_items=80, n_interactions=4000, seed=5, start=start)
    write_bundle(runtime, items, table)
    people = generate_people(n_users=150, n_swipes=3000, seed=5, start=start)
    write_bundle(runtime, people, table, elo=runtime.settings.elo)
    return runtime


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize("name", sorted(MODEL_TYPES))
def test_every_catalogue_model_trains_and_registers(
    name: str, store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", name, "--json"]
    if name in TINY:
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps(TINY[name]))
        args += ["--config", str(config)]
    elif "epochs" in FLAG_ALIASES.get(name, {}):
        args += ["--epochs", "2"]
    assert run(args) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == name and out["registry_id"] is not None and out["activated"]
    assert out["dataset"].startswith("ds-") and out["test"][name]
    with store.session() as session:
        row = registry.get_version(session, out["registry_id"])
        assert row.is_active and row.version == out["version"]
        uri = row.uri
    trained = load_trained(registry.ArtifactStore(store.settings.artifact_root).fetch(uri))
    # no --domain: a model that scores people for people learns from the people domain
    assert trained.domain == ("people" if model_class(name).serves == {"people"} else "items")


def test_a_people_model_asked_for_items_is_refused_with_what_to_do(
    store: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["train", "reciprocal", "--domain", "items"]) == 2
    assert "train it with --domain people" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(PARTS))
def test_parts_are_refused_by_the_catalogue_with_what_to_train_instead(name: str) -> None:
    """What every path through the catalogue (train, retrain jobs) says for a part."""
    with pytest.raises(InvalidInput, match="is not a recommendation model") as err:
        make_model(name)
    assert "`matchwise train " in str(err.value)


def test_the_ranker_and_unknown_names_exit_2_with_what_to_do(
    store: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["train", "ranker"]) == 2
    err = capsys.readouterr().err
    assert "not a recommendation model" in err and "`matchwise train hybrid`" in err
    assert run(["train", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no_such_model'" in err
    assert all(name in err for name in MODEL_TYPES)  # the names to choose from
    with store.session() as session:
        assert registry.list_versions(session) == []
