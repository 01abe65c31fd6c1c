"""``matchwise similar --item-id/--user-id`` prints what the similar routes answer (the
same service functions), and refuses bad input with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matchwise.cli.app import main
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_similar_on_the_command_line(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runtime = Runtime.open(Settings(), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
        likes = [InteractionIn(user_id=u, item_id=e, action="like")
                 for u in ("alice", "bob") for e in ("e1", "e2")]  # fmt: skip
        likes += [InteractionIn(user_id=u, target_user_id="bob", action="like")
                  for u in ("alice", "erin_woman")]  # fmt: skip
        ingest_events(s, likes, runtime.settings.action_table)
    runtime.close()

    assert _run(["similar", "--item-id", "e1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "co-occurrence"
    assert [(c["candidate_id"], c["score"]) for c in out["similar"]] == [("e2", 1.0)]
    assert _run(["similar", "--user-id", "alice"]) == 0
    table = capsys.readouterr().out
    assert "bob" in table and "co-occurrence" in table  # both liked e1 and e2

    for argv, message in ((["similar"], "--item-id or --user-id"),
                          (["similar", "--item-id", "e1", "--user-id", "bob"], "one of"),
                          (["similar", "--item-id", "nope"], "unknown item 'nope'")):  # fmt: skip
        assert _run(argv) == 2
        assert message in capsys.readouterr().err
