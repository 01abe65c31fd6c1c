"""Training the safety classifier: every head on the public sets, the synthetic corpus and
the moderators' labels, then registered like every other model: through
``train.pipeline.register_versions`` (one transaction) with an activation verdict under
``if_better``, ``always`` or ``never``.

``if_better`` cannot re-score the active classifier on a shared split the way recommenders
are (its held-out data are the public sets, not the store), so it compares one documented
summary of held-out metrics, :func:`selection_score`, with the one the active version
stored at its registration.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matchwise import registry
from matchwise.errors import InvalidInput
from matchwise.models.base import json_default
from matchwise.models.safety import LABELS, SafetyClassifier, train_safety
from matchwise.ops.safety import MODEL_TYPE, moderator_labels
from matchwise.runtime import Runtime
from matchwise.train.pipeline import (
    PendingVersion,
    TrainResult,
    check_policy,
    judge,
    register_versions,
)

#: How the reasons name :func:`selection_score`.
SELECTION_METRIC = "held-out mean F1"


def selection_score(metrics: Mapping[str, Any]) -> float:
    """What ``if_better`` compares: the mean F1 over every safety label (:data:`LABELS`) on
    its held-out test split, as ``train_safety`` measures it (the SMS test split, unseen
    synthetic templates, the Instagram test file). A label without a figure counts 0, so a
    version missing a head cannot win on the others. Versions trained on the same public
    files are measured on the same splits; other files make the comparison looser."""
    labels = metrics.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise InvalidInput("its metrics hold no held-out figures per label")
    total = 0.0
    for label in LABELS:
        values = labels.get(label)
        f1 = values.get("f1") if isinstance(values, Mapping) else None
        if isinstance(f1, int | float) and math.isfinite(f1):
            total += float(f1)
    return total / len(LABELS)


def stage_classifier(
    runtime: Runtime,
    classifier: SafetyClassifier,
    metrics: Mapping[str, Any],
    stage: Path | None,
    activate: str = "if_better",
) -> PendingVersion:
    """A trained classifier saved under ``stage`` with its held-out ``metrics`` and its
    verdict against the active safety version: what ``register_versions`` registers.
    ``stage`` None is a dry run, as in ``train_version``: nothing saved, nothing judged."""
    check_policy(activate)
    stored = _jsonable(metrics)
    score = selection_score(stored)
    version = registry.new_version(MODEL_TYPE)
    test = {
        label: {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
        for label, values in stored.get("labels", {}).items()
        if isinstance(values, Mapping)
    }
    seconds = stored.get("training_seconds", {})
    result = TrainResult(
        model_type=MODEL_TYPE,
        version=version,
        validation={},
        test=test,
        dataset_version="",
        train_seconds=float(seconds.get("total", 0.0)) if isinstance(seconds, dict) else 0.0,
    )
    pending = PendingVersion(result, stored)
    if stage is None:
        result.reason = "dry run: nothing written to the store"
        return pending
    pending.folder = classifier.save(stage / version)
    pending.verdict = judge(runtime, MODEL_TYPE, activate, SELECTION_METRIC, score,
                            lambda _uri, active: selection_score(active))  # fmt: skip
    return pending


def train_and_register(
    runtime: Runtime,
    sms_path: str | Path | None = None,
    instagram_dir: str | Path | None = None,
    activate: str = "if_better",
    actor: str = "cli",
    dry_run: bool = False,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train every head (public sets + synthetic corpus + moderator labels) and register it
    under the ``activate`` policy (``dry_run``: train and measure, write nothing); the
    result and the held-out metrics."""
    check_policy(activate)  # before a long training, not after
    with runtime.session() as session:
        extra = moderator_labels(session)
    classifier, metrics = train_safety(
        sms_path=sms_path, instagram_dir=instagram_dir,
        extra_labels=extra if len(extra) else None,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="matchwise-safety-") as tmp:
        pending = stage_classifier(runtime, classifier, metrics,
                                   None if dry_run else Path(tmp), activate)  # fmt: skip
        if dry_run:
            return pending.result, pending.metrics
        result = register_versions(runtime, [pending], actor=actor)[0]
    return result, pending.metrics


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=json_default))
