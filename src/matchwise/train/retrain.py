"""Retraining: every model of ``retrain_models`` trained, then registered together and
activated where better (locally, or one Ray task per model)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from matchwise.runtime import Runtime
from matchwise.scale import train_with_ray
from matchwise.serve.state import serving_state
from matchwise.train.pipeline import Finish, register_versions, train_summary, train_version


def retrain(
    runtime: Runtime,
    models: list[str] | None = None,
    domain: str | None = None,
    actor: str = "cli",
    ray: bool = False,
    finish: Finish | None = None,
) -> tuple[dict[str, Any], bool]:
    """Train each of ``models`` (default: ``settings.retrain_models``), then register them
    all and activate the ones that beat the active version in one transaction; returns a
    summary per model and whether any activation happened (then the serving state and
    the cache need a refresh).

    Nothing is registered until every model is trained, so a run that dies part-way
    leaves no versions behind. ``finish`` runs inside that transaction (the retrain job
    marks itself done there). With ``ray`` each model trains in a Ray task of its own
    (``settings.ray_address``, or a local Ray), in parallel: see :mod:`matchwise.scale`.
    """
    names = models or list(runtime.settings.retrain_models)
    if ray:
        outcome = train_with_ray(runtime, names, domain=domain, actor=actor, finish=finish)
    else:
        with tempfile.TemporaryDirectory(prefix="matchwise-retrain-") as tmp:
            pending = [train_version(runtime, name, Path(tmp), domain=domain) for name in names]
            results = register_versions(runtime, pending, actor=actor, finish=finish)
        outcome = {result.model_type: train_summary(result) for result in results}
    activated = any(summary["activated"] for summary in outcome.values())
    if activated:
        serving_state(runtime).invalidate()
    return outcome, activated
