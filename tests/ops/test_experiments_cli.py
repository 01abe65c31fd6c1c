"""``matchwise experiments create|list|show|stop|promote`` with ``--json``, and errors
that exit non-zero with a message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matchwise.cli.app import main
from matchwise.cli.experiments import parse_arm
from matchwise.db.audit import recent
from matchwise.errors import InvalidInput
from matchwise.experiments.assignment import assign_arm
from matchwise.runtime import Runtime
from tests.utils.experiments import Versions, open_runtime, seed_store


@pytest.fixture
def store(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Runtime, Versions]]:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "art"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runtime = open_runtime(db_url, tmp_path)
    yield runtime, seed_store(runtime, n_users=60)
    runtime.close()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    """Exit code, stdout as JSON (None when it is not), stderr."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except json.JSONDecodeError:
        return code, None, err


def test_experiments_commands_with_json(
    store: tuple[Runtime, Versions], capsys: pytest.CaptureFixture[str]
) -> None:
    runtime, versions = store
    treat = f"treat:weight=2,model_version={versions.other}"
    argv = ["experiments", "create", "cli-test", "--arm", "control", "--arm", treat,
            "--coverage", "0.5", "--outcome", "click", "--salt", "s1", "--json"]  # fmt: skip
    code, created, _ = run(argv, capsys)
    assert code == 0
    assert [(a["name"], a["weight"]) for a in created["arms"]] == [("control", 1.0), ("treat", 2.0)]
    assert created["arms"][1]["model_version"] == versions.other
    assert (created["coverage"], created["outcome_actions"]) == (0.5, ["click"])
    split = [("control", 1.0), ("treat", 2.0)]
    expected = {f"u{i}": assign_arm("s1", f"u{i}", split, 0.5) for i in range(12)}
    assert set(expected.values()) == {"control", "treat", None}  # coverage 0.5
    for user, arm in expected.items():
        code, rows, _ = run(["recommend", "--user-id", user, "--kind", "item", "--json"], capsys)
        assert code == 0 and rows
        named = {(row.get("experiment"), row.get("arm")) for row in rows}
        assert named == {(None if arm is None else "cli-test", arm)}, user
    code, listed, _ = run(["experiments", "list", "--json"], capsys)
    assert code == 0 and [e["name"] for e in listed] == ["cli-test"]
    code, shown, _ = run(["experiments", "show", "cli-test", "--json"], capsys)
    assert code == 0 and shown["experiment"]["name"] == "cli-test"
    assert shown["sample_ratio"]["flagged"] is False and shown["primary_metric"] == "conversion"
    code, promoted, _ = run(["experiments", "promote", "cli-test", "--arm", "treat", "--json"],
                            capsys)  # fmt: skip
    assert code == 0 and promoted["activated"] == versions.other
    code, _, err = run(["experiments", "stop", "cli-test"], capsys)
    assert code != 0 and "promoted, not running" in err
    with runtime.read_session() as session:
        actions = [e.action for e in recent(session) if e.action.startswith("experiment.")]
    assert actions == ["experiment.promote", "experiment.create"]
    assert all(e.actor == "cli" for e in recent(session, action="experiment.create"))


def test_bad_input_exits_non_zero_with_a_message(
    store: tuple[Runtime, Versions], capsys: pytest.CaptureFixture[str]
) -> None:
    create = ["experiments", "create", "x", "--arm", "a", "--arm"]
    code, _, err = run([*create, "b:model_version=nope"], capsys)
    assert code != 0 and "no model version 'nope'" in err
    code, _, err = run(
        ["experiments", "create", "x", "--arm", "a", "--arm", "b:colour=red"], capsys
    )
    assert code != 0 and "unknown key 'colour'" in err
    code, _, err = run(["experiments", "show", "nope"], capsys)
    assert code != 0 and "no experiment named 'nope'" in err


def test_parse_arm() -> None:
    arm = parse_arm("people:blend.model=0.5,blend.elo=0.2,weight=3")
    assert (arm.name, arm.weight, arm.blend) == ("people", 3.0, {"model": 0.5, "elo": 0.2})
    with pytest.raises(InvalidInput, match="must be a number"):
        parse_arm("a:weight=lots")
