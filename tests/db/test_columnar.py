"""Training's COPY read of PostgreSQL (``db.columnar``) gives the frame the row query
gives: same rows in the same order (time, then id), ids and actions as strings, value
float (NaN when absent), times UTC; blocks of a few rows join up exactly."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from matchwise.data.synthetic import generate_people
from matchwise.db import columnar, queries
from matchwise.db.tables import User
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


@pytest.mark.postgres
@pytest.mark.parametrize("block_bytes", [columnar.BLOCK_BYTES, 512])
def test_copy_read_of_people_equals_the_row_query(
    postgres_url: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training's people read through COPY (issue 21: a million people through driver rows
    and per-row JSON decoding was most of a minute) gives the row query's frame: NULLs
    apart from empty strings, quotes and line breaks in bios, ints, floats, JSON values."""
    _truncate_all(postgres_url)
    runtime = Runtime.open(Settings(database_url=postgres_url), migrate=False)
    try:
        monkeypatch.setattr(columnar, "BLOCK_BYTES", block_bytes)
        with runtime.session() as s:
            assert columnar.training_users(s).equals(queries.training_users(s))  # nobody yet
        bundle = generate_people(n_users=40, n_swipes=100, seed=4)
        write_bundle(runtime, bundle, runtime.settings.action_table)
        with runtime.session() as s:
            people = {u.id: u for u in s.scalars(select(User))}
            people["p0"].bio, people["p1"].bio = "", None
            people["p2"].bio = 'says "hi", twice\nand \\N, on two lines'
            people["p3"].gender, people["p3"].age, people["p3"].city = None, None, ""
            people["p4"].photo_embeddings = [[0.1, 0.25], [0.3, 1e-7]]
            people["p5"].attributes = {"smokes": False, "answers": [1, 2.5, None]}
            people["p6"].tags, people["p7"].elo = [], 1234.5678901234567
            people["p8"].latitude, people["p8"].seeking, people["p8"].age_min = None, [], None
            people["p9"].active, people["p10"].moderation_status = False, "held"
            people["p11"].max_distance_km, people["p11"].longitude = 12.345678901, -0.1
            s.commit()
        with runtime.session() as s:
            rows = queries.training_users(s)
            copied = columnar.training_users(s)
            # the people catalogue's read: the same frame, values and dtypes
            profiles = queries.users_frame(s)
            pd.testing.assert_frame_equal(columnar.users_frame(s), profiles)
    finally:
        runtime.close()
    assert len(rows) == 40 and {"photo_vector", "attributes"} <= set(rows.columns)
    assert profiles["latitude"].isna().sum() == 1 and not profiles["active"].all()
    pd.testing.assert_frame_equal(copied, rows)
    bios = copied.set_index("id")["bio"]
    assert bios["p0"] == "" and pd.isna(bios["p1"])
    assert bios["p2"] == 'says "hi", twice\nand \\N, on two lines'
