"""``matchwise train MODEL --dataset DIR``: train on a ``dataset build`` snapshot, and refuse
one that does not fit this deployment (another hash secret, another domain, not a snapshot)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from matchwise import registry
from matchwise.cli.app import main
from matchwise.data.synthetic import generate_items
from matchwise.ingest.bulk import write_bundle
from matchwise.models.artifacts import load_trained
from matchwise.runtime import Runtime
from matchwise.settings import Settings


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.delenv("MATCHWISE_HASH_SECRET", raising=False)
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=120, n_items=80, n_interactions=4000, seed=5, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    return runtime


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def last_json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def build(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Build a snapshot with the CLI; its version, as the manifest records it."""
    args = ["dataset", "build", "--output", str(folder), "--split-kind", "random", *extra]
    assert run(args) == 0
    capsys.readouterr()
    return str(json.loads((folder / "manifest.json").read_text())["version"])


def test_train_on_a_snapshot_reports_and_registers_its_version(
    store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = build(tmp_path / "snap", capsys, "--seed", "3")
    assert run(["train", "ease", "--dataset", str(tmp_path / "snap"), "--json"]) == 0
    out = last_json(capsys)
    assert out["dataset"] == version
    assert out["registry_id"] is not None and out["activated"] is True
    # the registered model holds the snapshot's manifest and its (hashed) id universe
    snapshot_users = set(pd.read_parquet(tmp_path / "snap" / "users.parquet")["id"])
    with store.session() as session:
        row = registry.get_version(session, out["registry_id"])
        uri = row.uri
    trained = load_trained(registry.ArtifactStore(store.settings.artifact_root).fetch(uri))
    assert trained.info["dataset"]["version"] == version
    assert set(trained.user_index) == snapshot_users
    # without --dataset, train builds its own dataset from the store: another version
    assert run(["train", "ease", "--dry-run", "--json"]) == 0
    assert last_json(capsys)["dataset"] != version
    # the table output names the dataset too
    assert run(["train", "popularity", "--dataset", str(tmp_path / "snap")]) == 0
    assert f"dataset {version}" in capsys.readouterr().out


def test_a_snapshot_that_does_not_fit_is_refused_with_what_to_do(
    store: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    snap = tmp_path / "snap"
    build(snap, capsys)

    (tmp_path / "empty").mkdir()
    assert run(["train", "ease", "--dataset", str(tmp_path / "empty")]) == 2
    assert "not a dataset snapshot" in capsys.readouterr().err

    assert run(["train", "ease", "--dataset", str(snap), "--domain", "people"]) == 2
    err = capsys.readouterr().err
    assert "snapshot of the items domain" in err and "--domain" in err

    assert run(["train", "safety", "--dataset", str(snap)]) == 2
    assert "--dataset" in capsys.readouterr().err

    # the same snapshot in a deployment that hashes ids under another secret
    monkeypatch.setenv("MATCHWISE_HASH_SECRET", "another deployment's secret, long enough")
    assert run(["train", "ease", "--dataset", str(snap)]) == 2
    err = capsys.readouterr().err
    assert "another hash secret" in err and "matchwise dataset build" in err
    monkeypatch.delenv("MATCHWISE_HASH_SECRET")

    # a snapshot that does not say which secret its ids are under
    manifest = json.loads((snap / "manifest.json").read_text())
    del manifest["id_key"]
    (snap / "manifest.json").write_text(json.dumps(manifest))
    assert run(["train", "ease", "--dataset", str(snap)]) == 2
    assert "rebuild it" in capsys.readouterr().err

    (snap / "manifest.json").write_text("{not json")
    assert run(["train", "ease", "--dataset", str(snap)]) == 2
    assert "cannot read manifest.json" in capsys.readouterr().err

    build(snap, capsys)
    pd.read_parquet(snap / "train.parquet").drop(columns=["positive"]).to_parquet(
        snap / "train.parquet"
    )
    assert run(["train", "ease", "--dataset", str(snap)]) == 2
    assert "train.parquet has no positive" in capsys.readouterr().err
    with store.session() as session:
        assert registry.list_versions(session) == []  # nothing refused was registered
