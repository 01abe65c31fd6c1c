"""Stores with two trained versions of one model, for activation tests."""

from __future__ import annotations

import pandas as pd

from matchwise.data.bundle import DataBundle
from matchwise.data.synthetic import generate_items
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.train.pipeline import TrainResult, train_model


def two_ease_versions(runtime: Runtime) -> tuple[DataBundle, TrainResult, TrainResult]:
    """Items data written to ``runtime``'s store and two EASE versions trained on it: the
    first active, the second registered but not activated."""
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=60, n_items=40, n_interactions=1500, seed=5, start=start)
    write_bundle(runtime, bundle, runtime.settings.action_table)
    old = train_model(runtime, "ease", domain="items", activate="always")
    new = train_model(runtime, "ease", domain="items", activate="never")
    return bundle, old, new
