"""Training's COPY read of PostgreSQL (``db.columnar``) gives the frame the row query
gives: same rows in the same order (time, then id), ids and actions as strings, value
float (NaN when absent), times UTC; blocks of a few rows join up exactly."""

from __future__ import annotations

import pandas as pd
import pytest

from matchwise.data.synthetic import generate_people
from matchwise.db import columnar, queries
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.conftest import _truncate_all


@pytest.mark.postgres
@pytest.mark.parametrize("block_bytes", [columnar.BLOCK_BYTES, 4096])
def test_copy_read_equals_the_row_query(postgres_url: str, block_bytes: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _truncate_all(postgres_url)
    runtime = Runtime.open(Settings(database_url=postgres_url), migrate=False)
    try:
        bundle = generate_people(n_users=80, n_swipes=900, seed=4)
        bundle.interactions.loc[:9, "value"] = 0.25  # some values, most absent
        write_bundle(runtime, bundle, runtime.settings.action_table)
        monkeypatch.setattr(columnar, "BLOCK_BYTES", block_bytes)
        with runtime.session() as s:
            rows = queries.training_interactions(s, "people")
            copied = columnar.training_interactions(s, "people")
            empty = columnar.training_interactions(s, "items")
    finally:
        runtime.close()
    assert len(rows) == 900
    pd.testing.assert_frame_equal(copied, rows, check_dtype=False)
    assert copied["user_id"].dtype == object and copied["value"].notna().sum() == 10
    assert str(copied["occurred_at"].dt.tz) == "UTC"
    assert empty.empty and list(empty.columns) == list(rows.columns)
