"""The CLI: JSON output contract, and bad input → a message and a non-zero exit; every
command that touches the store runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from matchwise.cli.app import main
from matchwise.ingest.profiles import upsert_items, upsert_users
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from tests.utils.factories import items_fixture, people_fixture


@pytest.fixture
def store(db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "art"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    runtime = Runtime.open(Settings(database_url=db_url), migrate=False)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        upsert_items(s, items_fixture())
    runtime.close()
    return db_url


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_recommend_json_contract(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["recommend", "--user-id", "alice", "--top-n", "5", "--kind", "user", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and len(rows) == 3
    for rank, row in enumerate(rows, start=1):
        assert {"candidate_id", "score", "rank", "reason"} <= set(row)
        assert row["rank"] == rank
    assert rows[0]["score"] >= rows[-1]["score"]


def test_recommend_table(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["recommend", "--user_id", "alice", "--kind", "item"]) == 0
    out = capsys.readouterr().out
    assert "Trail run" in out and "route" in out


def test_unknown_user_exits_non_zero(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["recommend", "--user-id", "nobody"]) == 2
    assert "unknown user 'nobody'" in capsys.readouterr().err


def test_interact_records_and_matches(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["interact", "--user-id", "alice", "--target", "bob", "--action", "like"]) == 0
    assert run(["interact", "--user-id", "bob", "--target", "alice", "--action", "like",
                "--json"]) == 0  # fmt: skip
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["match_created"] is True


def test_interact_unknown_action_and_target(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["interact", "--user-id", "alice", "--target", "bob", "--action", "lik"]) == 2
    assert "unknown action 'lik'" in capsys.readouterr().err
    assert run(["interact", "--user-id", "alice", "--target", "zz", "--action", "like"]) == 2
    assert "unknown target 'zz'" in capsys.readouterr().err


def test_bad_option_values(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["recommend", "--user-id", "alice", "--top-n", "0"]) == 2
    assert "--top-n" in capsys.readouterr().err
    assert run(["generate", "--domain", "cats"]) == 2


def test_bad_setting_fails_at_start(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MATCHWISE_DEFAULT_TOP_N", "many")
    assert run(["recommend", "--user-id", "alice"]) == 1
    assert "default_top_n" in capsys.readouterr().err


def test_load_commands(store: str, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    assert run(["load", "movielens", str(ROOT / "tests" / "fixtures" / "movielens-1m")]) == 0
    assert "interactions" in capsys.readouterr().out
    csv = tmp_path / "clicks.csv"
    csv.write_text("member,event,kind,at\nalice,e1,click,2026-01-01T10:00:00Z\n"
                   "newbie,e2,register,1767225600\n")  # fmt: skip
    argv = ["load", "interactions", str(csv), "--user-col", "member", "--item-col", "event",
            "--action-col", "kind", "--time-col", "at"]  # fmt: skip
    assert run(argv) == 0
    assert "interactions: 0 skipped as duplicates" in capsys.readouterr().out
    assert run(argv) == 0  # idempotent: the same export twice writes nothing new
    assert "interactions: 2 skipped as duplicates" in capsys.readouterr().out
    assert run(["load", "interactions", str(csv), "--user-col", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
    assert run(["load", "movielens", str(tmp_path)]) == 2


def test_interact_refreshes_the_cached_list(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["refresh", "--user-id", "alice", "--kind", "user"]) == 0
    capsys.readouterr()
    assert run(["recommend", "--user-id", "alice", "--kind", "user", "--json"]) == 0
    before = [r["candidate_id"] for r in json.loads(capsys.readouterr().out)]
    assert "ivan" in before
    assert run(["interact", "--user-id", "alice", "--target", "ivan", "--action", "reject"]) == 0
    capsys.readouterr()
    assert run(["recommend", "--user-id", "alice", "--kind", "user", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["route"] == "cache" and "ivan" not in [r["candidate_id"] for r in rows]


def test_speed_dating_commands(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    fixture = str(ROOT / "tests" / "fixtures" / "speed_dating_sample.csv")
    assert run(["benchmark", "speed-dating", fixture, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["results"]) >= {"random", "popularity", "one_sided", "reciprocal"}
    for row in result["results"].values():
        assert set(row) == {"decision_auc", "match_auc", "ndcg@5"}
    assert run(["load", "speed-dating", fixture]) == 0


def test_train_refuses_bad_config_and_dry_run_writes_nothing(
    store: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 2, "hidden_layers": [64]}')
    assert run(["train", "two_tower", "--config", str(bad)]) == 2
    assert "hidden_layers" in capsys.readouterr().err
    assert run(["train", "ease", "--config", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad.write_text("{not json")
    assert run(["train", "ease", "--config", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert run(["train", "ease", "--epochs", "3"]) == 2
    assert "--epochs does not apply" in capsys.readouterr().err
    assert run(["train", "ease", "--domain", "items"]) == 2  # the fixture store has no events
    assert "no positive interactions" in capsys.readouterr().err
    assert run(["generate", "--domain", "items", "--size", "small"]) == 0
    capsys.readouterr()
    assert run(["train", "ease", "--dry-run", "--domain", "items", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["registry_id"] is None and out["activated"] is False
    assert run(["models", "list"]) == 0
    assert "ease-" not in capsys.readouterr().out  # a dry run registers nothing


def test_refresh_with_training_trains_activates_then_refreshes(
    db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    from matchwise import registry
    from matchwise.data.synthetic import generate_items
    from matchwise.ingest.bulk import write_bundle

    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "art"))
    monkeypatch.setenv("MATCHWISE_RETRAIN_MODELS", '["ease"]')
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    settings = Settings(database_url=db_url)
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=60)
    bundle = generate_items(n_users=120, n_items=80, n_interactions=4000, seed=5, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    assert run(["refresh", "--train", "--top-n", "5", "--kind", "item"]) == 0
    out = capsys.readouterr().out
    assert "ease:" in out and "activated" in out and "refreshed 120 users" in out
    with runtime.session() as s:
        assert registry.active_version(s, "ease") is not None
    runtime.close()


def test_db_current_on_a_store_never_migrated(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It says there is no schema yet (it failed on the missing secrets table before)."""
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    assert run(["db", "current"]) == 0
    assert "no schema yet" in capsys.readouterr().out
    assert run(["db", "upgrade"]) == 0
    revision = capsys.readouterr().out.split("revision")[1].split()[0]
    assert run(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == revision
