"""A store for experiment tests: synthetic items and users, an active ``ease`` version (what
serves by default) and a second, inactive one an arm can name; and simulated traffic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from matchwise.data.synthetic import generate_items
from matchwise.ingest.bulk import write_bundle
from matchwise.ingest.events import store_events
from matchwise.runtime import Runtime
from matchwise.schemas import ExperimentIn, ImpressionEvent, InteractionIn
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model


@dataclass(frozen=True)
class Versions:
    active: str  # serves by default
    other: str  # registered, not active: the treatment arm's


def open_runtime(url: str, tmp_path: Path, redis_url: str | None = None) -> Runtime:
    settings = Settings(database_url=url, artifact_root=str(tmp_path / "art"),
                        analytics_sample_rate=1.0, redis_url=redis_url)  # fmt: skip
    return Runtime.open(settings, migrate=False)


def seed_store(runtime: Runtime, n_users: int = 150) -> Versions:
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=n_users, n_items=120, n_interactions=40 * n_users, seed=3,
                            start=start)  # fmt: skip
    write_bundle(runtime, bundle, runtime.settings.action_table)
    active = train_model(runtime, "ease", domain="items", activate="always").version
    other = train_model(runtime, "ease", domain="items", activate="never").version
    return Versions(active, other)


def ab_spec(name: str, versions: Versions, **kw: object) -> ExperimentIn:
    return ExperimentIn.model_validate({
        "name": name,
        "arms": [{"name": "control"}, {"name": "treat", "model_version": versions.other}],
        "salt": f"{name}-salt",  # fixed: the split, and so each test, is the same every run
        **kw,
    })  # fmt: skip


def simulate(
    runtime: Runtime,
    served: dict[str, tuple[list[str], str | None, str | None]],
    click_rate: dict[str, float],
    seed: int = 0,
    echo: str = "mixed",
) -> None:
    """Impressions of each user's served list, and clicks at ``click_rate[arm]`` per
    impression (by the arm the response named). ``echo``: how the app reports back:
    ``mixed`` echoes experiment and arm for a third of users, model_version only for a
    third, nothing for the rest; ``none`` never echoes."""
    rng = np.random.default_rng(seed)
    events: list[ImpressionEvent | InteractionIn] = []
    for n, (user, (ids, experiment, arm)) in enumerate(sorted(served.items())):
        if not ids:
            continue
        style = n % 3 if echo == "mixed" else 2
        tags = {"experiment": experiment, "arm": arm} if style == 0 else {}
        if style == 1:
            tags = {"model_version": "echoed", "route": "warm"}
        events.append(ImpressionEvent(event_type="impression", user_id=user, candidate_ids=ids,
                                      candidate_kind="item", **tags))  # fmt: skip
        rate = click_rate.get(arm or "", 0.0)
        for item in ids:
            if rng.random() < rate:
                events.append(InteractionIn(user_id=user, item_id=item, action="click", **tags))
    with runtime.session() as session:
        store_events(session, runtime.settings, events)
