"""Training at scale (issue 16 target 5): what the pipeline reports about its own stages,
and the text vectors a two-tower training leaves for the next one.

Speed itself is measured by ``benchmarks/training_scale/run.py``, not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items
from matchwise.db import queries
from matchwise.features.text import TextEmbedder, text_cache_dir
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

#: Small enough to train in seconds; texts left to inference (bios and item texts embed).
TINY_TWO_TOWER: dict[str, Any] = {"hidden": [16], "embedding_dim": 8, "id_dim": 8,
                                  "batch_size": 256, "epochs": 2, "patience": 1,
                                  "device": "cpu"}  # fmt: skip
STAGES = ["dataset", "fit", "validation", "test", "baselines", "report", "save"]


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path) -> Runtime:
    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "artifacts"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=60, n_items=40, n_interactions=1500, seed=3, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    return runtime


def test_a_training_reports_wall_and_cpu_seconds_of_each_stage(
    store: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train_model(store, "popularity", activate="always")
    assert list(result.stages) == STAGES
    assert list(result.stage_cpu) == STAGES
    assert all(v >= 0 for v in [*result.stages.values(), *result.stage_cpu.values()])
    assert result.train_seconds == result.stages["fit"]
    assert capsys.readouterr() == ("", "")  # no bars unless asked for


def test_the_cli_draws_bars_for_fitting_and_evaluating_on_stderr(
    store: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", store.settings.database_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", store.settings.artifact_root)
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "popularity", "--dry-run"])
    assert not exit_.value.code
    err = capsys.readouterr().err
    assert "fit popularity" in err and "validate popularity" in err and "test popularity" in err
    with pytest.raises(SystemExit):
        main(["train", "popularity", "--dry-run", "--json"])
    out, err = capsys.readouterr()
    assert "validate" not in err and json.loads(out.strip().splitlines()[-1])["model"]


@pytest.mark.slow  # loads the sentence model and embeds the store's texts
def test_a_two_tower_training_leaves_its_text_vectors_in_the_stores_cache(
    store: Runtime, tmp_path: Path
) -> None:
    """Without a ``text_cache_dir`` of its own the two-tower embeds into the store's text
    cache (the one serving reads and erasure purges), so the next training embeds only
    new texts. Before, the vectors lived in memory and every training embedded all."""
    config = tmp_path / "two_tower.json"
    config.write_text(pd.Series(TINY_TWO_TOWER).to_json())
    train_model(store, "two_tower", config_path=config, dry_run=True)
    folder = text_cache_dir(store.settings.artifact_root)
    assert folder is not None
    with store.session() as session:
        bios = queries.training_users(session)["bio"].dropna().tolist()
    assert bios
    embedder = TextEmbedder(folder)
    embedder.embed(bios)
    assert embedder.texts_encoded == 0  # every bio came from the cache
    embedder.close()
