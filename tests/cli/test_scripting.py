"""The CLI as a tool people script: documented exit codes (a busy port is refused at once),
``--json`` where a script reads the answer, whole rows when the output is piped, help texts
in users' words, generated data that leads up to today, and a demo that runs twice."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from sqlalchemy import func, select
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from matchwise.cli.app import app, main
from matchwise.cli.demo import replace_key, run_demo, train_models
from matchwise.data.synthetic import generate_items, window_start
from matchwise.db.tables import ApiKey, Interaction, Item, Job, ModelVersion
from matchwise.ingest.bulk import write_bundle
from matchwise.ops.auth import hash_key
from matchwise.runtime import Runtime
from matchwise.settings import Settings


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """An empty store the CLI's settings point at, and a runtime on it for the checks."""
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", db_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "art"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runtime = Runtime.open(Settings(database_url=db_url), migrate=False)
    yield runtime
    runtime.close()


# --- exit codes ----------------------------------------------------------------------------


def test_serve_refuses_a_busy_port_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "never-opened.db"
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(["serve", "--port", str(port)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == f"error: port {port} on 127.0.0.1 is in use: another program listens " \
        "there; stop it or use --port"  # fmt: skip
    assert not database.exists()  # refused before the store (or any model) was opened
    assert run(["serve", "--host", "nowhere.invalid", "--port", str(port)]) == 3
    assert "cannot listen on nowhere.invalid" in capsys.readouterr().err
    assert run(["serve", "--port", "70000"]) == 2  # usage


def test_exit_codes_by_kind(store: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(["models", "list"]) == 0
    assert run(["models", "list", "--no-such-option"]) == 2  # usage
    assert run(["jobs", "enqueue", "teleport"]) == 2  # a bad value
    assert run(["models", "rollback", "ease"]) == 2  # an unknown name
    monkeypatch.setenv("MATCHWISE_DEFAULT_TOP_N", "many")
    assert run(["models", "list"]) == 1  # configuration


# --- JSON and piped tables -----------------------------------------------------------------


def test_models_list_json(store: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["generate", "--domain", "items", "--size", "small"]) == 0
    assert run(["train", "ease", "--domain", "items", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert run(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{
        "id": trained["registry_id"], "model_type": "ease", "version": trained["version"],
        "size_bytes": rows[0]["size_bytes"], "validation_ndcg@10": trained["validation"]["ndcg@10"],
        "test_ndcg@10": trained["test"]["ease"]["ndcg@10"], "created_at": rows[0]["created_at"],
        "active": True,
    }]  # fmt: skip
    assert rows[0]["size_bytes"] > 0 and pd.Timestamp(rows[0]["created_at"]).tzinfo is not None


def test_keys_create_json_and_whole_rows_when_piped(
    store: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "integration key for the nightly import job " * 4  # wider than any terminal row
    assert run(["keys", "create", "--scope", "read", "--name", name, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"id", "scope", "name", "created_at", "key"}
    assert out["scope"] == "read" and out["name"] == name
    with store.session() as session:
        row = session.get(ApiKey, out["id"])
        assert row is not None and row.key_hash == hash_key(out["key"])  # the secret, once

    runner = CliRunner()
    piped = runner.invoke(app, ["keys", "list"], env={"COLUMNS": None})
    assert piped.exit_code == 0
    assert any(name in line and out["id"] in line for line in piped.output.splitlines())
    narrow = runner.invoke(app, ["keys", "list"], env={"COLUMNS": "80"})
    assert name not in narrow.output  # a width asked for is still kept


def test_jobs_list_json(store: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["jobs", "enqueue", "retrain"]) == 0
    error = "RuntimeError: the store went away\n" + "traceback line\n" * 5
    with store.session() as session:
        job = session.scalars(select(Job)).one()
        job.last_error, job_id = error, job.id
    capsys.readouterr()
    assert run(["jobs", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"id": job_id, "job_type": "retrain", "status": "queued", "attempts": 0,
                     "max_attempts": rows[0]["max_attempts"], "created_at": rows[0]["created_at"],
                     "worker": None, "last_error": error}]  # fmt: skip
    assert run(["jobs", "list"]) == 0
    table = capsys.readouterr().out
    assert "RuntimeError: the store went away" in table and "traceback line" not in table


# --- help texts ----------------------------------------------------------------------------

#: Names only the project's own history knows: a user never needs them.
INTERNAL = [r"\bseed \d", r"\bPatra\b", r"\bissue \d", r"#\d{2,}"]


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_help_texts_speak_to_users() -> None:
    runner = CliRunner()
    paths = list(_commands(get_command(app)))
    assert len(paths) > 30 and ("interact",) in paths and ("models", "list") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        for pattern in INTERNAL:
            found = re.search(pattern, result.output)
            assert found is None, f"`matchwise {' '.join(path)} --help` says {found.group()!r}"


# --- generated data leads up to today ------------------------------------------------------


def test_generate_leads_up_to_today_so_events_can_be_recommended(
    store: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    today = pd.Timestamp.now(tz="UTC").normalize()
    assert run(["generate", "--domain", "items", "--size", "small"]) == 0
    with store.session() as session:
        events = session.scalar(select(func.count()).select_from(Interaction))
        last = pd.Timestamp(session.scalar(select(func.max(Interaction.occurred_at))))
        starts = pd.to_datetime(list(session.scalars(select(Item.starts_at))), utc=True)
        busiest = session.execute(select(Interaction.user_id).group_by(Interaction.user_id)
                                  .order_by(func.count().desc()).limit(1)).scalar_one()  # fmt: skip
    last = last.tz_localize("UTC") if last.tzinfo is None else last
    assert today - pd.Timedelta(days=3) < last <= today
    assert (starts > today).mean() > 0.2  # part of the events are still to come
    assert run(["train", "ease", "--domain", "items"]) == 0
    capsys.readouterr()
    assert run(["recommend", "--user-id", busiest, "--kind", "item", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) > 0

    # pinned to a day: the same events (no event twice), their times moved to that day
    assert run(["generate", "--domain", "items", "--size", "small", "--anchor", "2031-05-01"]) == 0
    assert "interactions: 5,000 skipped as duplicates" in capsys.readouterr().out
    anchor = pd.Timestamp("2031-05-01", tz="UTC")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Interaction)) == events
        starts = pd.to_datetime(list(session.scalars(select(Item.starts_at))), utc=True)
    assert (starts > anchor).mean() > 0.2 and (starts < anchor).mean() > 0.3
    assert run(["generate", "--anchor", "01/05/2031"]) == 2


# --- the demo ------------------------------------------------------------------------------

#: Popularity cannot beat itself, so the demo never activates it; logistic beats it here.
MODELS = ("popularity", "logistic")


def test_demo_training_keeps_one_version_per_model_and_one_key(
    runtime: Runtime, tmp_path: Path
) -> None:
    start = window_start()
    write_bundle(runtime, generate_items(n_users=150, n_items=80, n_interactions=4000, seed=3,
                                         start=start), runtime.settings.action_table)  # fmt: skip
    quiet = Console(file=io.StringIO())
    first = train_models(quiet, runtime, MODELS)
    assert first["popularity"].registry_id is None
    assert "does not beat popularity" in first["popularity"].reason
    assert first["logistic"].activated
    again = train_models(quiet, runtime, MODELS)  # the same data: the first version stays
    assert again["logistic"].registry_id is None
    assert again["logistic"].reason.startswith("not registered: kept logistic-")
    with runtime.session() as session:
        assert list(session.scalars(select(ModelVersion.id))) == [first["logistic"].registry_id]

    # a demo version that a new one beats is replaced, not kept beside it
    shutil.rmtree(Path(runtime.settings.artifact_root) / "models" / "logistic")  # any new one wins
    replaced = train_models(quiet, runtime, ("logistic",))["logistic"]
    assert replaced.activated
    with runtime.session() as session:
        assert list(session.scalars(select(ModelVersion.id))) == [replaced.registry_id]

    keys = [replace_key(runtime), replace_key(runtime)]
    with runtime.session() as session:
        usable = session.scalars(select(ApiKey.key_hash).where(ApiKey.revoked_at.is_(None)))
        assert list(usable) == [hash_key(keys[1])]  # the first key is revoked


@pytest.mark.slow
def test_demo_runs_twice_without_piling_up_versions_or_keys(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "art"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    quiet = Console(file=io.StringIO())
    first = run_demo(quiet, models=MODELS)
    second = run_demo(quiet, models=MODELS)
    assert second["counts"] == first["counts"]  # no event written twice
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    with runtime.session() as session:
        assert list(session.scalars(select(ModelVersion.id))) == [
            first["trained"]["logistic"].registry_id
        ]
        usable = session.scalars(select(ApiKey.key_hash).where(ApiKey.revoked_at.is_(None)))
        assert list(usable) == [hash_key(second["api_key"])]
    runtime.close()
