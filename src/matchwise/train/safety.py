"""Training the safety classifier: every head on the public sets, the synthetic corpus and
the moderators' labels, then registered like every other model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from matchwise import registry
from matchwise.models.base import json_default
from matchwise.models.safety import train_safety
from matchwise.ops.safety import MODEL_TYPE, moderator_labels
from matchwise.runtime import Runtime


def train_and_register(
    runtime: Runtime,
    sms_path: str | Path | None = None,
    instagram_dir: str | Path | None = None,
    activate: bool = True,
    actor: str = "cli",
) -> dict[str, Any]:
    """Train every head (public sets + synthetic corpus + moderator labels), register it."""
    with runtime.session() as session:
        extra = moderator_labels(session)
    classifier, metrics = train_safety(
        sms_path=sms_path, instagram_dir=instagram_dir,
        extra_labels=extra if len(extra) else None,
    )  # fmt: skip
    version = registry.new_version(MODEL_TYPE)
    store = registry.ArtifactStore(runtime.settings.artifact_root)
    with tempfile.TemporaryDirectory() as tmp:
        folder = classifier.save(Path(tmp) / version)
        with runtime.session() as session:
            row = registry.register(session, store, MODEL_TYPE, folder, metrics=_jsonable(metrics),
                                    version=version, activate=activate, actor=actor)  # fmt: skip
            registry_id = row.id
    return {"version": version, "registry_id": registry_id, "metrics": metrics,
            "moderator_labels": int(len(extra))}  # fmt: skip


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=json_default))
