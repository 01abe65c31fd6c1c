"""Artifact store and model registry: one active version per model type, audit-logged.

Artifacts live under ``settings.artifact_root`` (a local folder, or any fsspec URL such
as ``s3://bucket/prefix``) at ``models/<type>/<version>/``, with a ``CHECKSUMS.json``
written at registration. A version whose files are missing or do not match their
checksums is refused at activation and at load, so the previous version keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from matchwise.db.audit import audit
from matchwise.db.notify import notify
from matchwise.db.tables import AuditLog, ModelVersion
from matchwise.errors import ArtifactError, Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

CHECKSUMS = "CHECKSUMS.json"


def new_version(model_type: str) -> str:
    """A sortable, unique-enough version string: ``<type>-YYYYmmddHHMMSS-<4 hex>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    salt = uuid.uuid4().hex[:4]
    return f"{model_type}-{stamp}-{salt}"


def _checksums(folder: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKSUMS:
            sums[path.relative_to(folder).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return sums


@dataclass
class ArtifactStore:
    """Copies model folders to and from the artifact root through fsspec."""

    root: str
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        self.fs, self.base = fsspec.core.url_to_fs(self.root)

    def uri_for(self, model_type: str, version: str) -> str:
        base = self.root.rstrip("/")
        return f"{base}/models/{model_type}/{version}"

    def put(self, local_folder: Path, model_type: str, version: str) -> tuple[str, int]:
        """Upload a finished model folder with its checksums; returns (uri, size in bytes)."""
        local_folder = Path(local_folder)
        if not local_folder.is_dir():
            raise ArtifactError(f"{local_folder} is not a model folder")
        sums = _checksums(local_folder)
        (local_folder / CHECKSUMS).write_text(json.dumps(sums, indent=1))
        size = sum((local_folder / name).stat().st_size for name in sums)
        uri = self.uri_for(model_type, version)
        _, target = fsspec.core.url_to_fs(uri)
        if self.fs.exists(target):
            raise Conflict(f"artifact {uri} already exists")
        self.fs.mkdirs(target, exist_ok=True)
        for name in [*sums, CHECKSUMS]:
            dest = f"{target}/{name}"
            parent = dest.rsplit("/", 1)[0]
            self.fs.mkdirs(parent, exist_ok=True)
            self.fs.put_file(str(local_folder / name), dest)
        return uri, size

    def remove(self, uri: str) -> None:
        """Delete an artifact that never made it into the registry (best effort)."""
        fs, path = fsspec.core.url_to_fs(uri)
        try:
            if fs.exists(path):
                fs.rm(path, recursive=True)
        except OSError as exc:
            log.warning("could not remove the unregistered artifact %s (%s)", uri, exc)

    def delete(self, uri: str) -> None:
        """Delete a registered artifact for good (and this machine's copy of a remote one);
        raises ArtifactError when it cannot, so its registry row is kept to try again."""
        fs, path = fsspec.core.url_to_fs(uri)
        try:
            if fs.exists(path):
                fs.rm(path, recursive=True)
        except OSError as exc:
            raise ArtifactError(f"cannot delete the artifact {uri}: {exc}") from exc
        if not _is_local(fs):
            cache = self.cache_dir or Path(tempfile.gettempdir()) / "matchwise-artifacts"
            shutil.rmtree(cache / hashlib.sha256(uri.encode()).hexdigest()[:16], ignore_errors=True)

    def fetch(self, uri: str) -> Path:
        """A local folder holding the artifact, verified against its checksums."""
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            raise ArtifactError(f"artifact {uri} is missing")
        if _is_local(fs):
            folder = Path(path)
        else:
            cache = self.cache_dir or Path(tempfile.gettempdir()) / "matchwise-artifacts"
            folder = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
            if not (folder / CHECKSUMS).is_file():
                shutil.rmtree(folder, ignore_errors=True)
                fs.get(path.rstrip("/") + "/", str(folder), recursive=True)
        verify(folder)
        return folder


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def verify(folder: Path) -> None:
    """Raise ArtifactError unless every file listed in CHECKSUMS.json is present and intact."""
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise ArtifactError(f"artifact {folder} has no {CHECKSUMS}: incomplete upload?")
    try:
        expected = json.loads(listing.read_text())
    except ValueError as exc:
        raise ArtifactError(f"{listing} is corrupt") from exc
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"artifact {folder} is missing {name}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise ArtifactError(f"artifact {folder}: {name} does not match its checksum")


# --- registry rows --------------------------------------------------------------------


def register(
    session: Session,
    store: ArtifactStore,
    model_type: str,
    local_folder: Path,
    metrics: dict[str, Any] | None = None,
    version: str | None = None,
    activate: bool = False,
    actor: str = "system",
) -> ModelVersion:
    """Upload a trained model folder and add its registry row (optionally activating it)."""
    version = version or new_version(model_type)
    uri, size = store.put(Path(local_folder), model_type, version)
    row = add_version(session, model_type, version, uri, size, metrics, actor=actor)
    if activate:
        activate_version(session, store, row.id, actor=actor)
    return row


def add_version(
    session: Session,
    model_type: str,
    version: str,
    uri: str,
    size_bytes: int,
    metrics: dict[str, Any] | None = None,
    actor: str = "system",
) -> ModelVersion:
    """The registry row of an artifact already uploaded with :meth:`ArtifactStore.put`, so
    that uploads can happen before the transaction that registers several versions."""
    row = ModelVersion(model_type=model_type, version=version, uri=uri, metrics=metrics or {},
                       size_bytes=size_bytes)  # fmt: skip
    session.add(row)
    session.flush()
    audit(session, actor, "model.register", row.id, {"model_type": model_type, "version": version})
    return row


def lock_type(session: Session, model_type: str) -> None:
    """Lock a model type's registry rows until the transaction ends, so two activations of
    one type serialise (PostgreSQL; SQLite serialises every write anyway)."""
    session.execute(
        select(ModelVersion.id).where(ModelVersion.model_type == model_type).with_for_update()
    )


def get_version(session: Session, ident: str) -> ModelVersion:
    """By registry id, or by version string."""
    row = session.get(ModelVersion, ident)
    if row is None:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == ident))
    if row is None:
        raise NotFound(f"no model version {ident!r} in the registry")
    return row


def active_version(session: Session, model_type: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.model_type == model_type, ModelVersion.is_active.is_(True)
        )
    )


def active_types(session: Session) -> list[str]:
    """The model types that have an active version, sorted."""
    stmt = select(ModelVersion.model_type).where(ModelVersion.is_active.is_(True))
    return sorted(set(session.scalars(stmt)))


def active_versions(session: Session) -> dict[str, str]:
    """Each model type's active version string, by type."""
    stmt = select(ModelVersion.model_type, ModelVersion.version).where(
        ModelVersion.is_active.is_(True)
    )
    return {model_type: version for model_type, version in session.execute(stmt)}


def activate_version(
    session: Session, store: ArtifactStore, ident: str, actor: str = "system"
) -> ModelVersion:
    """Make ``ident`` the one active version of its type, atomically; audit-logged, and
    announced to every serving process in the same transaction (``db.notify``: they
    switch when it commits, within a second; a rollback comes through here too).

    The artifact is verified first: a corrupt or missing one is refused and the
    current active version stays.
    """
    row = get_version(session, ident)
    store.fetch(row.uri)  # raises ArtifactError before anything changes
    lock_type(session, row.model_type)
    previous = active_version(session, row.model_type)
    if previous is not None and previous.id == row.id:
        return row
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.model_type == row.model_type, ModelVersion.is_active.is_(True))
        .values(is_active=False)
    )
    session.flush()
    session.execute(update(ModelVersion).where(ModelVersion.id == row.id).values(is_active=True))
    session.flush()
    session.refresh(row)
    audit(
        session,
        actor,
        "model.activate",
        row.id,
        {
            "model_type": row.model_type,
            "version": row.version,
            "previous": previous.id if previous else None,
        },
    )
    notify(session, "registry", row.model_type)
    return row


def rollback(
    session: Session, store: ArtifactStore, model_type: str, actor: str = "system"
) -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    current = active_version(session, model_type)
    if current is None:
        raise NotFound(f"no active {model_type} model to roll back")
    previous_id = previous_of(session, current.id)
    if previous_id is None:
        raise InvalidInput(
            f"{model_type} {current.version} has no previous version to roll back to"
        )
    row = activate_version(session, store, previous_id, actor=actor)
    audit(session, actor, "model.rollback", row.id, {"from": current.id, "to": row.id})
    return row


def previous_of(session: Session, version_id: str) -> str | None:
    """The id of the version that was active before ``version_id`` was activated (what a
    rollback returns to), from the audit log."""
    entries = session.scalars(
        select(AuditLog)
        .where(AuditLog.action == "model.activate", AuditLog.target == version_id)
        .order_by(AuditLog.id.desc())
    )
    return next((e.details.get("previous") for e in entries if e.details.get("previous")), None)


def prune_versions(
    session: Session, store: ArtifactStore, older_than: datetime, actor: str = "retention"
) -> list[dict[str, str]]:
    """Delete the versions created before ``older_than``, registry row and artifact, except
    each type's active version and the one a rollback returns to: old models hold the
    like/pass graph of people who may have left. Each deletion is audit-logged."""
    pruned = []
    for model_type in sorted(set(session.scalars(select(ModelVersion.model_type)))):
        lock_type(session, model_type)  # no activation of this type meanwhile
        current = active_version(session, model_type)
        keep = {current.id, previous_of(session, current.id)} if current is not None else set()
        old = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_type == model_type, ModelVersion.created_at < older_than)
            .order_by(ModelVersion.created_at)
        ).all()
        for row in old:
            if row.id in keep:
                continue
            store.delete(row.uri)
            summary = {"model_type": row.model_type, "version": row.version,
                       "created_at": row.created_at.isoformat()}  # fmt: skip
            session.delete(row)
            audit(session, actor, "model.prune", row.id, summary)
            pruned.append(summary)
    session.flush()
    return pruned


def list_versions(session: Session, model_type: str | None = None) -> list[ModelVersion]:
    stmt = select(ModelVersion).order_by(ModelVersion.model_type, ModelVersion.created_at.desc())
    if model_type:
        stmt = stmt.where(ModelVersion.model_type == model_type)
    return list(session.scalars(stmt))
