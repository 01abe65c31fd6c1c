"""The live item path as the API runs it (issue 16 item 2) serves the lists it served
before: the profile and history read on held connections (no session transaction) give
the lists the session's reads give, and the filtered HNSW search that takes the wider
candidates from its first search answers as the two searches did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchwise.data.synthetic import generate_items
from matchwise.index import HNSWIndex
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.tiers import held_reads
from matchwise.serve.types import RecommendationList, RecommendFilters
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model
from tests.test_index import _clustered


@pytest.fixture
def items_store(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A generated events store with a small two-tower active."""
    settings = Settings(database_url=db_url, artifact_root=str(tmp_path / "art"))
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=120, n_items=150, n_interactions=5000, seed=5, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    train_model(runtime, "two_tower", domain="items", activate="always",
                config_overrides={"epochs": 1, "patience": 1})  # fmt: skip
    yield runtime
    runtime.close()


def _served(result: RecommendationList) -> tuple[Any, ...]:
    recs = tuple((r.candidate_id, r.score, r.reason, r.title) for r in result.recommendations)
    return result.route, result.model_version, recs


def test_held_reads_serve_the_lists_the_session_reads_serve(items_store: Runtime) -> None:
    runtime = items_store
    now = datetime.now(UTC)
    asks = [RecommendFilters(), RecommendFilters(include_past=True),
            RecommendFilters(category="music")]  # fmt: skip
    compared = routes = 0
    for n in range(120):
        user = f"u{n}"
        for filters in asks:
            with runtime.read_session() as s:
                by_session = recommend(runtime, s, user, limit=10, kind="item",
                                       filters=filters, use_cache=False, now=now)  # fmt: skip
            with runtime.read_session() as s:
                held = recommend(runtime, s, user, limit=10, kind="item", filters=filters,
                                 use_cache=False, now=now, reads=held_reads(runtime))  # fmt: skip
            assert _served(held) == _served(by_session), (user, filters)
            compared += 1
            routes += by_session.route in ("warm", "hot")
    assert compared == 360 and routes > 100  # the model served most of them


def _two_searches(index: HNSWIndex, query: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """What the filtered search did before: search, drop the disallowed, and if short
    search again four times wider, then exactly."""
    share = allowed.sum() / index.size
    oversample = min(index.size, max(4 * k, int(np.ceil(2 * k / share))))
    for wanted in (oversample, min(index.size, 4 * oversample)):
        labels, _ = index.index_.knn_query(query, k=wanted, num_threads=1)
        kept = labels[0][allowed[labels[0]]]
        if len(kept) >= k:
            break
    else:
        return index._exact(query, k, allowed)[0][0]
    kept = kept[:k].astype(np.int64)
    assert index.vectors_ is not None
    scores = index.vectors_[kept] @ query[0]
    return kept[np.argsort(-scores, kind="stable")]


@pytest.mark.parametrize("share", [0.3, 0.08])
def test_filtered_search_answers_as_the_two_searches_did(share: float) -> None:
    items = _clustered(5000, 32, seed=11)
    queries = _clustered(150, 32, seed=12)
    index = HNSWIndex(exact_work=0).build(items)  # the graph, not brute force
    rng = np.random.default_rng(13)
    allowed = rng.random(len(items)) < share
    for k in (10, 40):
        for q in queries:
            got = index.query(q[None, :], k, allowed=allowed)[0][0]
            assert list(got) == list(_two_searches(index, q[None, :], k, allowed))
