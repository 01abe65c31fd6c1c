"""Imports validate like the API, load one file all or nothing, and never drop rows silently.

Every test that touches the store runs on SQLite and on PostgreSQL (``db_url``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from matchwise.cli.app import main
from matchwise.data.bundle import DataBundle
from matchwise.data.importers import read_items, read_profiles
from matchwise.db.tables import Interaction, Item, User
from matchwise.errors import InvalidInput
from matchwise.ingest.bulk import (
    RowSource,
    _bulk_insert_interactions,
    _interaction_columns,
    write_bundle,
)
from matchwise.runtime import Runtime
from matchwise.schemas import ItemIn, UserIn


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI pointed at a clean store (SQLite or PostgreSQL)."""
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    return db_url


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.session() as s:
        return (
            s.scalar(select(func.count()).select_from(User)) or 0,
            s.scalar(select(func.count()).select_from(Item)) or 0,
            s.scalar(select(func.count()).select_from(Interaction)) or 0,
        )


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


# --- item 8: profiles and items validate with the API's models -------------------------------


def test_the_api_refuses_these_profiles() -> None:
    """The rows the importer must refuse are exactly the ones POST /v1/users refuses."""
    with pytest.raises(ValidationError):
        UserIn.model_validate({"id": "kid", "age": 7})
    with pytest.raises(ValidationError):
        UserIn.model_validate({"id": "odd", "age_min": 40, "age_max": 20})


def test_read_profiles_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "id,age,city\nann,29,Berlin\nkid,7,Berlin\n")
    with pytest.raises(InvalidInput) as err:
        read_profiles(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line 3, column 'age': ")
    assert "greater than or equal to 13" in message and "7" in message

    path = write(tmp_path / "prefs.csv", "uid,min_age,max_age\nann,20,30\nbob,40,20\n")
    with pytest.raises(InvalidInput) as err:
        read_profiles(path, id_col="uid", column_map={"min_age": "age_min", "max_age": "age_max"})
    message = str(err.value)
    assert message.startswith(f"{path}: line 3, columns 'min_age', 'max_age': ")
    assert "age_min must be <= age_max" in message


def test_read_profiles_keeps_the_api_normalisation(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id,gender,seeking,active\nann, Woman ,Man|woman,no\n")
    frame = read_profiles(path)
    assert list(frame.columns) == ["id", "gender", "seeking", "attributes", "active"]
    row = frame.iloc[0]
    assert (row["gender"], row["seeking"], row["active"]) == ("woman", ["man", "woman"], False)
    bad = write(tmp_path / "b.csv", "id,active\nann,maybe\n")
    with pytest.raises(InvalidInput, match=r"line 2, column 'active': .*'maybe'"):
        read_profiles(bad)


def test_read_items_names_file_line_and_column(tmp_path: Path) -> None:
    long_tag = "x" * 65
    path = write(tmp_path / "events.csv", f"id,labels\nev1,jazz\nev2,jazz|{long_tag}\n")
    with pytest.raises(InvalidInput) as err:
        read_items(path, column_map={"labels": "tags"})
    assert str(err.value).startswith(f"{path}: line 3, column 'labels': ")
    with pytest.raises(ValidationError):  # the API refuses the same item
        ItemIn.model_validate({"id": "ev2", "tags": ["jazz", long_tag]})


def test_load_profiles_refuses_a_bad_row_and_writes_nothing(
    store: str, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "profiles.csv",
        "id,age,age_min,age_max\nann,29,25,35\nbob,31,40,20\ncid,7,,\n",
    )
    assert run(["load", "profiles", str(path)]) == 2
    err = one_line_error(capsys)
    assert f"{path}: line 3, columns 'age_min', 'age_max'" in err
    assert counts(runtime) == (0, 0, 0)  # ann (line 2) was not written either

    write(path, "id,age\nann,29\ncid,7\n")
    assert run(["load", "profiles", str(path)]) == 2
    assert f"{path}: line 3, column 'age'" in one_line_error(capsys)
    assert counts(runtime) == (0, 0, 0)

    write(path, "id,age,age_min,age_max\nann,29,25,35\nbob,31,20,40\n")
    assert run(["load", "profiles", str(path)]) == 0
    assert counts(runtime) == (2, 0, 0)


def test_load_items_refuses_a_bad_row_and_writes_nothing(
    store: str, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    title = "t" * 501  # POST /v1/items refuses titles over 500 characters
    path = write(tmp_path / "items.csv", f"id,title\nev1,Jazz night\nev2,{title}\n")
    assert run(["load", "items", str(path), "--id-col", "id"]) == 2
    assert f"{path}: line 3, column 'title': " in one_line_error(capsys)
    assert counts(runtime) == (0, 0, 0)


# --- item 8: interactions follow the API's action table and id rules ------------------------


def test_load_interactions_unknown_action_names_the_line_and_writes_nothing(
    store: str, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "events.csv",
        "member,event,kind\nalice,e1,click\nbob,e2,view\ncarol,e3,teleport\n",
    )
    argv = ["load", "interactions", str(path), "--user-col", "member", "--item-col", "event",
            "--action-col", "kind"]  # fmt: skip
    assert run(argv) == 2
    err = one_line_error(capsys)
    assert f"{path}: line 4, column 'kind': unknown action 'teleport'; known: " in err
    assert counts(runtime) == (0, 0, 0)  # neither the events nor the users/items they named


def test_load_interactions_refuses_self_swipes(
    store: str, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "swipes.csv", "a,b,action\nu1,u2,like\nu3,u3,like\n")
    argv = ["load", "interactions", str(path), "--user-col", "a", "--target-user-col", "b"]
    assert run(argv) == 2
    assert f"{path}: line 3: a user cannot act on themselves" in one_line_error(capsys)
    assert counts(runtime) == (0, 0, 0)


def test_one_file_is_one_transaction(runtime: Runtime) -> None:
    """A row refused by the store late in the file leaves nothing of the file behind."""
    n = 7
    frame = pd.DataFrame(
        {
            "event_id": [f"e{k}" for k in range(n)],
            "user_id": ["u1"] * (n - 1) + ["ghost"],  # the last row names a user nobody has
            "item_id": ["i1"] * n,
            "target_user_id": [None] * n,
            "action": ["view"] * n,
            "value": [float("nan")] * n,
            "occurred_at": pd.Timestamp("2024-05-01", tz="UTC"),
        }
    )
    bundle = DataBundle(
        users=pd.DataFrame({"id": ["u1"]}),
        items=pd.DataFrame({"id": ["i1"]}),
        interactions=frame,
        name="views.csv",
    )
    with pytest.raises(InvalidInput, match=r"views\.csv: interactions row 7.*unknown user 'ghost'"):
        write_bundle(runtime, bundle, runtime.settings.action_table, batch_size=2)
    assert counts(runtime) == (0, 0, 0)


# --- item 12: no silent drops -----------------------------------------------------------------


def play_counts(path: Path, n_users: int = 40, n_items: int = 30) -> tuple[Path, int]:
    """An implicit-feedback export shaped like Last.fm's user_artists: user, item, play count,
    and no time column."""
    rows = [
        f"{u},{i},{(u * 31 + i * 17) % 500 + 1}"
        for u in range(1, n_users + 1)
        for i in range(1, n_items + 1)
        if (u + i) % 3 == 0
    ]
    path.write_text("user,item,count\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path, len(rows)


def test_load_interactions_without_a_time_column_writes_every_row(
    store: str, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, n = play_counts(tmp_path / "user_artists.csv")
    argv = ["load", "interactions", str(path), "--user-col", "user", "--item-col", "item",
            "--value-col", "count"]  # fmt: skip
    before = datetime.now(UTC)
    assert run(argv) == 0
    after = datetime.now(UTC)
    out = capsys.readouterr().out
    assert f"{n:,}" in out
    assert "0 skipped as duplicates" in out
    assert counts(runtime) == (40, 30, n)
    with runtime.session() as s:
        times = s.execute(
            select(func.min(Interaction.occurred_at), func.max(Interaction.occurred_at))
        ).one()
        total = s.scalar(select(func.sum(Interaction.value)))
    assert times[0] == times[1]  # one load, one time: the load time
    assert before.replace(microsecond=0) <= times[0].replace(tzinfo=UTC) <= after
    expected = pd.read_csv(path)["count"].sum()
    assert total == expected

    assert run(argv) == 0  # the same export again: every row is a duplicate, and says so
    out = capsys.readouterr().out
    assert f"{n:,} skipped as duplicates" in out
    assert counts(runtime) == (40, 30, n)


def test_bulk_insert_skips_only_duplicates(runtime: Runtime) -> None:
    """The store's other refusals are errors naming the row, never silent skips."""
    with runtime.session() as s:
        s.add_all([User(id="u1"), Item(id="i1")])
    rows = pd.DataFrame(
        {
            "event_id": ["a", "b", "c"],
            "user_id": ["u1"] * 3,
            "item_id": ["i1"] * 3,
            "action": ["view"] * 3,
            "occurred_at": pd.Timestamp("2024-05-01", tz="UTC"),
        }
    )
    source = RowSource("clicks.csv", unit="line", first=2)
    now = datetime.now(UTC)
    with runtime.session() as s:
        assert _bulk_insert_interactions(s, _interaction_columns(rows, now), source) == 3
    with runtime.session() as s:  # a reload: duplicates only, skipped
        assert _bulk_insert_interactions(s, _interaction_columns(rows, now), source) == 0
    broken = pd.concat([rows] * 20, ignore_index=True)  # 60 new rows, the 38th without action
    broken["event_id"] = [f"new{k}" for k in range(len(broken))]
    broken.loc[37, "action"] = None
    with runtime.session() as s, pytest.raises(InvalidInput) as err:
        _bulk_insert_interactions(s, _interaction_columns(broken, now), source)
    assert str(err.value).startswith("clicks.csv: line 39: the store refused the row: ")
    assert "action" in str(err.value)  # the store's own reason: NOT NULL on action
    assert counts(runtime) == (1, 1, 3)


def test_load_interactions_refuses_what_the_api_refuses_in_fields(
    store: str, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Field rules come from ``InteractionIn`` itself: a session id longer than it accepts."""
    path = write(
        tmp_path / "events.csv",
        "user_id,item_id,action,session_id\n"
        f"u1,i1,view,s1\nu2,i2,view,{'s' * 129}\n",  # session ids are at most 128 characters
    )
    assert run(["load", "interactions", str(path)]) == 2
    assert f"{path}: line 3, column 'session_id': " in one_line_error(capsys)
    assert counts(runtime) == (0, 0, 0)
