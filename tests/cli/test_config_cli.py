"""The CLI with a config file in the working directory: picked up without
MATCHWISE_CONFIG; a broken one, or a SQLite path in a missing folder, is one line on
stderr and exit 1, no traceback, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchwise.cli.app import main


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("MATCHWISE_CONFIG", "MATCHWISE_DATABASE_URL", "MATCHWISE_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_working_directorys_config_names_the_store(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "stores").mkdir()
    (workdir / "matchwise.yaml").write_text("database_url: sqlite:///stores/app.db\n")
    assert run(["db", "upgrade"]) == 0
    assert (workdir / "stores" / "app.db").is_file()
    assert not (workdir / "var").exists()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("blend:\n  model: [0.5\n", "matchwise.yaml:3:1: YAML syntax error"),
        ("- domain: people\n", "matchwise.yaml: the config file must be a mapping"),
        ("database_url: sqlite:///./dta/mw.db\n", "folder 'dta' of the SQLite file does not"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_1(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    (workdir / "matchwise.yaml").write_text(text)
    assert run(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (workdir / "dta").exists() and not (workdir / "var").exists()
