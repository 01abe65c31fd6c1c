"""Model registry: one active version per type, rollback, corrupt artifacts refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from matchwise import registry
from matchwise.db.tables import AuditLog
from matchwise.errors import ArtifactError
from matchwise.runtime import Runtime


def _model_folder(tmp_path: Path, name: str, payload: bytes = b"weights") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "manifest.json").write_text('{"model_type": "popularity"}')
    (folder / "state.npz").write_bytes(payload)
    return folder


def test_activate_and_rollback(runtime: Runtime, tmp_path: Path) -> None:
    store = registry.ArtifactStore(str(tmp_path / "artifacts"))
    with runtime.session() as s:
        v1 = registry.register(s, store, "popularity", _model_folder(tmp_path, "a"), activate=True)
        v2 = registry.register(s, store, "popularity", _model_folder(tmp_path, "b"), {"ndcg@10": 1})
        assert registry.active_version(s, "popularity").id == v1.id
        registry.activate_version(s, store, v2.version, actor="alice")
        assert registry.active_version(s, "popularity").id == v2.id
        back = registry.rollback(s, store, "popularity", actor="alice")
        assert back.id == v1.id
        actives = [r for r in registry.list_versions(s, "popularity") if r.is_active]
        assert [r.id for r in actives] == [v1.id]
        actions = [e.action for e in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions.count("model.activate") == 3 and "model.rollback" in actions
    assert v2.size_bytes == len(b"weights") + len('{"model_type": "popularity"}')


def test_corrupt_or_missing_artifact_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    store = registry.ArtifactStore(str(tmp_path / "artifacts"))
    with runtime.session() as s:
        good = registry.register(s, store, "ease", _model_folder(tmp_path, "g"), activate=True)
        bad = registry.register(s, store, "ease", _model_folder(tmp_path, "b"))
        (Path(bad.uri) / "state.npz").write_bytes(b"garbage")
        with pytest.raises(ArtifactError, match="checksum"):
            registry.activate_version(s, store, bad.id)
        assert registry.active_version(s, "ease").id == good.id
        gone = registry.register(s, store, "ease", _model_folder(tmp_path, "c"))
        (Path(gone.uri) / "state.npz").unlink()
        with pytest.raises(ArtifactError, match="missing state.npz"):
            registry.activate_version(s, store, gone.id)
        assert registry.active_version(s, "ease").id == good.id


def test_fsspec_store_round_trip(tmp_path: Path) -> None:
    """Any fsspec URL works as the artifact root (memory:// stands in for s3:// here)."""
    store = registry.ArtifactStore("memory://matchwise-test", cache_dir=tmp_path / "cache")
    uri, size = store.put(_model_folder(tmp_path, "m"), "popularity", "v1")
    assert uri == "memory://matchwise-test/models/popularity/v1" and size > 0
    local = store.fetch(uri)
    assert (local / "state.npz").read_bytes() == b"weights"
