"""`matchwise load` on exports as they come: an ``event_id`` column that is an event (an
item), explicit --event-id-col, --map onto recognised columns (listed in --help), tab-
and '::'-separated .dat/.txt/.data files, implicit feedback with --action and
--value-col, and summaries that say what was created, updated and matched; on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from matchwise.cli.app import main
from matchwise.data.importers import INTERACTION_FIELDS, ITEM_FIELDS, PROFILE_FIELDS
from matchwise.db.tables import Interaction, Item, Match, User
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.conftest import ROOT
from tests.utils.factories import items_fixture, people_fixture


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "art"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./matchwise.yaml from elsewhere
    runtime = Runtime.open(Settings(database_url=db_url), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    yield runtime
    runtime.close()


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _rows(runtime: Runtime, *columns: object, where: object = True) -> list[tuple]:
    with runtime.read_session() as s:
        return [tuple(r) for r in s.execute(select(*columns).where(where)).all()]


def test_item_col_event_id_is_the_item_not_the_dedup_id(
    store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "alice,e1,register\nbob,e1,register\ncarl,e1,register\n"
    csv = write(tmp_path / "registrations.csv", "member,event_id,action\n" + rows)
    argv = ["load", "interactions", str(csv), "--user-col", "member", "--item-col", "event_id"]
    assert run(argv) == 0, capsys.readouterr().err
    rows = _rows(store, Interaction.user_id, Interaction.item_id,
                 where=Interaction.action == "register")  # fmt: skip
    assert sorted(rows) == [("alice", "e1"), ("bob", "e1"), ("carl", "e1")]
    assert run(argv) == 0  # the same file again adds nothing
    assert "interactions: 3 skipped as duplicates" in capsys.readouterr().out


def test_explicit_event_id_col(
    store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write(tmp_path / "clicks.csv", "uuid,user_id,item_id,action\nk1,alice,e1,click\n"
                "k2,alice,e2,click\n")  # fmt: skip
    assert run(["load", "interactions", str(csv), "--event-id-col", "uuid"]) == 0
    assert sorted(_rows(store, Interaction.event_id)) == [("k1",), ("k2",)]
    again = write(tmp_path / "again.csv", "uuid,user_id,item_id,action\nk2,alice,e2,click\n")
    assert run(["load", "interactions", str(again), "--event-id-col", "uuid"]) == 0
    assert "interactions: 1 skipped as duplicates" in capsys.readouterr().out
    assert run(["load", "interactions", str(csv), "--event-id-col", "id"]) == 2
    assert "missing event id column 'id'" in capsys.readouterr().err


def test_map_columns_onto_recognised_ones(
    store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "nina,yoga|climbing,Berlin\nalice,chess,Hamburg\n"
    csv = write(tmp_path / "people.csv", "member,interests,town\n" + rows)
    argv = ["load", "profiles", str(csv), "--map", "member=id", "--map", "interests=tags",
            "--map", "town=city"]  # fmt: skip
    assert run(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "created" in out and "updated" in out
    users = dict(((i, (t, c)) for i, t, c in _rows(store, User.id, User.tags, User.city)))
    assert users["nina"] == (["yoga", "climbing"], "Berlin")
    assert users["alice"] == (["chess"], "Hamburg")
    assert run(["load", "profiles", str(csv), "--map", "interests=tgas"]) == 2
    err = capsys.readouterr().err
    assert "'tgas' is not a recognised profile column; recognised: id, name" in err
    events = write(tmp_path / "events.csv", "slug,headline\nyoga1,Weekly Yoga Circle\n")
    assert run(["load", "items", str(events), "--map", "slug=id", "--map", "title=headline"]) == 0
    assert ("yoga1", "Weekly Yoga Circle") in _rows(store, Item.id, Item.title)


def test_summary_counts_created_updated_and_matches(
    store: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write(tmp_path / "people.csv", "id,city\nalice,Hamburg\nnew1,Berlin\n")
    assert run(["load", "profiles", str(csv)]) == 0
    table = capsys.readouterr().out
    assert _row_of(table, "users") == ["2", "1", "1"]  # in file, created, updated
    swipes = write(
        tmp_path / "swipes.csv",
        "user_id,target,action\nalice,bob,like\nbob,alice,like\ncarl,alice,like\n"
        "ivan,alice,match\ngus_seeks_men,hal_picky,block\nhal_picky,gus_seeks_men,match\n",
    )
    assert run(["load", "interactions", str(swipes), "--target-user-col", "target"]) == 0
    # a mutual like and a reported match make matches; a reported one after a block does not,
    # and is not stored at all (as POST /v1/events does not store it)
    out = capsys.readouterr().out
    assert "matches created: 2" in out and "match rows not stored: 1" in out
    assert sorted(_rows(store, Match.user_a, Match.user_b)) == [("alice", "bob"), ("alice", "ivan")]
    reported = _rows(store, Interaction.user_id, where=Interaction.action == "match")
    assert ("hal_picky",) not in reported


def _row_of(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if f" {label} " in line)
    return [cell.strip() for cell in line.split("│")[2:-1]]


def test_delimited_text_exports_and_implicit_feedback(
    store: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    u_data = write(tmp_path / "u.data", "alice\te1\t4\t881250949\nbob\te2\t2\t891717742\n")
    assert run(["load", "interactions", str(u_data)]) == 2
    assert "no header row: name its columns with --columns" in capsys.readouterr().err
    argv = ["load", "interactions", str(u_data), "--columns", "user_id,item_id,rating,timestamp"]
    assert run(argv) == 0, capsys.readouterr().err
    rated = _rows(store, Interaction.user_id, Interaction.value, where=Interaction.action == "rate")
    assert sorted(rated) == [("alice", 4.0), ("bob", 2.0)]
    ratings = write(tmp_path / "ratings.dat", "carl::e3::5::978300760\n")
    assert (
        run(["load", "interactions", str(ratings), "--columns", "user_id,item_id,rating,ts"]) == 0
    )
    listens = write(tmp_path / "user_artists.txt", "userID\tartistID\tweight\nivan\ta51\t13883\n")
    plays = ["load", "interactions", str(listens), "--user-col", "userID", "--item-col",
             "artistID", "--action", "play", "--value-col", "weight"]  # fmt: skip
    assert run(plays) == 2
    assert "--action: unknown action 'play'" in capsys.readouterr().err
    config = write(tmp_path / "matchwise.yaml",
                   "actions:\n  play: {label: 1.0, weight: 1.0, positive: true}\n")  # fmt: skip
    monkeypatch.setenv("MATCHWISE_CONFIG", str(config))
    assert run(plays) == 0, capsys.readouterr().err
    assert _rows(store, Interaction.user_id, Interaction.item_id, Interaction.value,
                 where=Interaction.action == "play") == [("ivan", "a51", 13883.0)]  # fmt: skip
    piped = write(tmp_path / "export.out", "user_id|item_id|action\nalice|e4|click\n")
    assert run(["load", "interactions", str(piped)]) == 2
    assert "--format" in capsys.readouterr().err
    assert run(["load", "interactions", str(piped), "--format", "csv", "--sep", "|"]) == 0


@pytest.mark.parametrize(
    ("command", "fields"),
    [("interactions", INTERACTION_FIELDS), ("profiles", PROFILE_FIELDS), ("items", ITEM_FIELDS)],
)
def test_help_lists_the_recognised_columns(
    command: str, fields: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["load", command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    listed = text.split("Recognised columns: ", 1)[1]
    for field in fields:
        assert f"{field}," in listed or f"{field} " in listed or f"{field}." in listed
    assert "--map" in text and "--format" in text and "--sep" in text


def test_readme_lists_the_recognised_columns() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command, fields in (("profiles", PROFILE_FIELDS), ("items", ITEM_FIELDS),
                            ("interactions", INTERACTION_FIELDS)):  # fmt: skip
        row = next(line for line in readme.splitlines() if line.startswith(f"| `load {command}` |"))
        assert row.split("|")[2].strip().split("`")[1].split(", ") == list(fields)


def test_load_events_takes_the_seed_events_as_written(
    store: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    lines = [
        {"event_type": "match", "user_a_id": "alice", "user_b_id": "bob",
         "match_type": "mutual_like", "timestamp": "2026-01-05T10:00:00Z"},
        {"event_type": "swipe_batch", "user_id": "carl", "session_id": "s1",
         "swipes": [{"candidate_id": "alice", "action": "like", "duration_ms": 2500}]},
        {"event_type": "impression", "user_id": "alice", "candidate_ids": ["e1", "e2"],
         "positions": [1, 2], "timestamp": "2026-01-05T10:00:00Z"},
        {"user_id": "ivan", "item_id": "e1", "action": "register", "event_id": "r1"},
    ]  # fmt: skip
    monkeypatch.setenv("MATCHWISE_ANALYTICS_SAMPLE_RATE", "1")  # keep every impression
    path = write(tmp_path / "events.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    assert run(["load", "events", str(path)]) == 0, capsys.readouterr().err
    assert "matches created: 1" in capsys.readouterr().out
    assert _rows(store, Match.user_a, Match.user_b) == [("alice", "bob")]
    shown = _rows(store, Interaction.item_id, where=Interaction.action == "impression")
    assert sorted(shown) == [("e1",), ("e2",)]
    assert run(["load", "events", str(path)]) == 0  # retried: nothing twice
    assert "matches created: 0" in capsys.readouterr().out
    assert len(_rows(store, Interaction.id, where=Interaction.action == "register")) == 1
    body = write(tmp_path / "batch.json", json.dumps({"events": [
        {"event_type": "match", "user_a_id": "alice", "user_b_id": "nobody"}]}))  # fmt: skip
    assert run(["load", "events", str(body)]) == 2
    assert "batch.json: events[0].matched_user_id: unknown user 'nobody'" in (
        capsys.readouterr().err
    )
    bad = write(tmp_path / "bad.jsonl", json.dumps(lines[3]) + "\n" + json.dumps(
        {"event_type": "match", "user_a_id": "alice"}) + "\n")  # fmt: skip
    assert run(["load", "events", str(bad)]) == 2
    assert "bad.jsonl: line 2: user_a_id and user_b_id go together" in capsys.readouterr().err
