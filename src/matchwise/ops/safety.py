"""Safety at the edges: classify texts and profiles with the active classifier, scan
profiles and hold flagged ones for review, keep moderators' labels for retraining
(training itself is ``train.safety``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matchwise import registry
from matchwise.db import queries
from matchwise.db.audit import audit
from matchwise.db.tables import Interaction, ModerationLabel, Report, User, utcnow
from matchwise.errors import ArtifactError, InvalidInput, NotFound
from matchwise.models.safety import LABELS, SafetyClassifier
from matchwise.ops.moderation import flag_profile
from matchwise.runtime import Runtime

log = logging.getLogger(__name__)

MODEL_TYPE = "safety"


def moderator_labels(session: Session) -> pd.DataFrame:
    rows = session.execute(
        select(ModerationLabel.text, ModerationLabel.label, ModerationLabel.value)
    ).all()
    return pd.DataFrame(rows, columns=["text", "label", "value"])


def add_label(session: Session, text: str, label: str, value: bool, actor: str) -> int:
    """Store a moderator's label for retraining, under ``actor`` (the API key's owner)."""
    if label not in LABELS:
        raise InvalidInput(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    if not text.strip():
        raise InvalidInput("text must not be empty")
    row = ModerationLabel(text=text, label=label, value=value, created_by=actor)
    session.add(row)
    session.flush()
    audit(session, actor, "moderation.label", str(row.id), {"label": label, "value": value})
    return row.id


class LoadedSafety:
    """The runtime's loaded safety model: one version at a time, swapped when another
    becomes active; a version that cannot load leaves the loaded one serving."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.classifier: SafetyClassifier | None = None
        self.lock = threading.Lock()


def active_classifier(runtime: Runtime) -> SafetyClassifier:
    """The active safety model, loaded once per runtime per version."""
    with runtime.read_session() as session:
        row = registry.active_version(session, MODEL_TYPE)
        if row is None:
            raise NotFound("no active safety model: run `matchwise train safety` first")
        version, uri = row.version, row.uri
    loaded = runtime.component(LoadedSafety, LoadedSafety)
    with loaded.lock:
        if loaded.classifier is not None and loaded.version == version:
            return loaded.classifier
        store = registry.ArtifactStore(runtime.settings.artifact_root)
        try:
            classifier = SafetyClassifier.load(store.fetch(uri))
        except ArtifactError:
            if loaded.classifier is not None:
                log.error("safety model %s cannot load; keeping %s", version, loaded.version)
                return loaded.classifier
            raise
        loaded.version, loaded.classifier = version, classifier
        return classifier


def profile_features(session: Session, user_ids: list[str]) -> pd.DataFrame:
    """The fake-profile head's inputs from the store (NaN where the store has no signal)."""
    users = session.scalars(select(User).where(User.id.in_(user_ids))).all()
    if not users:
        return pd.DataFrame()
    now = utcnow()
    likes = dict(session.execute(
        select(Interaction.user_id, func.count())
        .where(Interaction.user_id.in_(user_ids), Interaction.action.in_(["like", "superlike"]))
        .group_by(Interaction.user_id)
    ).all())  # fmt: skip
    swipes = dict(session.execute(
        select(Interaction.user_id, func.count())
        .where(Interaction.user_id.in_(user_ids),
               Interaction.action.in_(["like", "superlike", "pass", "reject", "dislike"]))
        .group_by(Interaction.user_id)
    ).all())  # fmt: skip
    reports = dict(session.execute(
        select(Report.reported_id, func.count()).where(Report.reported_id.in_(user_ids))
        .group_by(Report.reported_id)
    ).all())  # fmt: skip
    rows = []
    for u in users:
        attrs = u.attributes or {}
        photos = attrs.get("photo_count", len(u.photo_embeddings or []) or None)
        n_swipes = swipes.get(u.id, 0)
        rows.append({
            "id": u.id,
            "account_age_days": (now - u.created_at).total_seconds() / 86400,
            "bio_length": len(u.bio or ""),
            "photo_count": photos,
            "has_profile_photo": None if photos is None else int(photos > 0),
            "like_ratio": likes.get(u.id, 0) / n_swipes if n_swipes else None,
            "messages_per_hour": attrs.get("messages_per_hour"),
            "reports_received": reports.get(u.id, 0),
            "has_external_url": int("http" in (u.bio or "").lower()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def classify(
    runtime: Runtime,
    text: str | None = None,
    profile_id: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Per-label probabilities and decisions for a text and/or a stored profile."""
    if text is None and profile_id is None:
        raise InvalidInput("give a text, a profile_id, or both")
    classifier = active_classifier(runtime)
    limits = {**runtime.settings.safety_thresholds, **(thresholds or {})}
    profile = None
    if profile_id is not None:
        with runtime.read_session() as session:
            queries.get_user(session, profile_id)
            frame = profile_features(session, [profile_id])
        profile = frame.drop(columns=["id"]).iloc[0].to_dict()
    result = classifier.check(text=text, profile=profile, thresholds=limits or None)
    return {
        "probabilities": {k: float(v) for k, v in result["probabilities"].items()},
        "flags": {k: bool(v) for k, v in result["flags"].items()},
    }


def scan_profiles(
    runtime: Runtime, user_ids: list[str] | None = None, actor: str = "safety-scan"
) -> dict[str, int]:
    """Classify bios and profile signals; hold any profile flagged above threshold."""
    classifier = active_classifier(runtime)
    limits = runtime.settings.safety_thresholds or None
    with runtime.session() as session:
        if user_ids is None:
            user_ids = list(session.scalars(select(User.id).where(User.moderation_status == "ok")))
        frame = profile_features(session, user_ids)
        bios = dict(session.execute(select(User.id, User.bio).where(User.id.in_(user_ids))).all())
    flagged = 0
    if frame.empty:
        return {"scanned": 0, "flagged": 0}
    texts = [(bios.get(i) or "").strip() for i in frame["id"]]
    with_text = [j for j, t in enumerate(texts) if t]
    probas: dict[str, Any] = classifier.predict_proba(profiles=frame.drop(columns=["id"]))
    if with_text:
        text_probas = classifier.predict_proba(texts=[texts[j][:10_000] for j in with_text])
        for label, values in text_probas.items():
            full = [0.0] * len(frame)
            for j, v in zip(with_text, values, strict=True):
                full[j] = float(v)
            probas[label] = full
    decisions = classifier.decide(probas, limits)
    with runtime.session() as session:
        for j, user_id in enumerate(frame["id"]):
            hits = {
                label: round(float(probas[label][j]), 4)
                for label, flags in decisions.items()
                if bool(np.atleast_1d(flags)[j])
            }
            if hits:
                flag_profile(session, user_id, "classifier", hits, actor=actor)
                flagged += 1
    return {"scanned": len(frame), "flagged": flagged}
