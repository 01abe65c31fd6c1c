"""``matchwise matches --user-id ID [--json]`` lists what ``GET /v1/users/{id}/matches``
lists (the same service function), and refuses bad input with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matchwise.cli.app import main
from matchwise.ingest.events import ingest_events
from matchwise.ingest.profiles import upsert_users
from matchwise.runtime import Runtime
from matchwise.schemas import InteractionIn
from matchwise.serve.matches import matches_of
from matchwise.settings import Settings
from tests.utils.factories import people_fixture


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_matches_on_the_command_line(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runtime = Runtime.open(Settings(), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        pairs = [("alice", "bob", "like"), ("bob", "alice", "like"),
                 ("ivan", "alice", "superlike"), ("alice", "ivan", "like")]  # fmt: skip
        likes = [InteractionIn(user_id=a, target_user_id=b, action=act) for a, b, act in pairs]
        ingest_events(s, likes, runtime.settings.action_table)
    with runtime.read_session() as s:
        expected = matches_of(s, "alice").model_dump(mode="json")
    runtime.close()

    assert _run(["matches", "--user-id", "alice", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == expected
    assert [(m["user_id"], m["match_type"]) for m in out["matches"]] == [
        ("ivan", "superlike"),
        ("bob", "mutual_like"),
    ]
    assert _run(["matches", "--user-id", "alice", "--limit", "1"]) == 0
    table = capsys.readouterr().out
    assert "ivan" in table and "superlike" in table and "bob" not in table
    assert "--offset 1" in table

    assert _run(["matches", "--user-id", "nobody"]) == 2
    assert "unknown user 'nobody'" in capsys.readouterr().err
    assert _run(["matches", "--user-id", "alice", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err
