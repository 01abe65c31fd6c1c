"""Settings: defaults < YAML < environment, and wrong values named at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from matchwise.errors import ConfigError
from matchwise.runtime import Runtime
from matchwise.settings import Settings, load_settings


def test_defaults_are_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.delenv("MATCHWISE_DATABASE_URL", raising=False)
    s = load_settings()
    assert s.database_url.startswith("sqlite:///")
    assert s.router.cold_below == 5 and s.router.hot_above == 20
    assert s.action_table["apply"].label == 1.0
    assert s.action_table["view"].label == 0.4
    assert s.action_table["dislike"].label == 0.0


def test_yaml_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "matchwise.yaml"
    config.write_text(
        "blend:\n  model: 0.5\n  elo: 0.2\n"
        "actions:\n  wink: {label: 0.7, weight: 1.2, positive: true}\n"
        "  view: {label: 0.3}\n"
        "cache_max_age_seconds: 600\n"
    )
    monkeypatch.setenv("MATCHWISE_CONFIG", str(config))
    monkeypatch.setenv("MATCHWISE_CACHE_MAX_AGE_SECONDS", "60")
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", "postgres://u:p@localhost/db")
    s = load_settings()
    assert s.blend.model == 0.5 and s.blend.elo == 0.2
    assert s.action_table["wink"].label == 0.7
    assert s.action_table["view"].label == 0.3
    assert s.action_table["apply"].label == 1.0
    assert s.cache_max_age_seconds == 60  # environment beats the file
    assert s.database_url == "postgresql+psycopg://u:p@localhost/db"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("MATCHWISE_CACHE_MAX_AGE_SECONDS", "soon", "cache_max_age_seconds"),
        ("MATCHWISE_DATABASE_URL", "mysql://x", "database_url"),
        ("MATCHWISE_ANALYTICS_SAMPLE_RATE", "1.5", "analytics_sample_rate"),
        ("MATCHWISE_DOMAIN", "cats", "domain"),
    ],
)
def test_wrong_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_unknown_or_bad_yaml_keys_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "matchwise.yaml"
    config.write_text("blend:\n  modle: 0.5\n")
    monkeypatch.setenv("MATCHWISE_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"blend\.modle"):
        load_settings()
    config.write_text("actions:\n  wink: {label: 3}\n")
    with pytest.raises(ConfigError, match="wink"):
        load_settings()
    config.write_text("router: {cold_below: 30, hot_above: 10}\n")
    with pytest.raises(ConfigError, match="hot_above"):
        load_settings()
    monkeypatch.setenv("MATCHWISE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


# --- where the config file is found, and how a broken one is reported -------------------


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working directory of its own, with no config or store settings from outside."""
    for name in ("MATCHWISE_CONFIG", "MATCHWISE_DATABASE_URL", "MATCHWISE_DEFAULT_TOP_N"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_matchwise_yaml_in_the_working_directory_is_read(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (elsewhere / "matchwise.yaml").write_text("domain: people\ndefault_top_n: 7\n")
    s = load_settings()
    assert s.domain == "people" and s.default_top_n == 7
    monkeypatch.setenv("MATCHWISE_DEFAULT_TOP_N", "9")  # the environment beats the file
    assert load_settings().default_top_n == 9
    named = elsewhere / "other.yaml"  # MATCHWISE_CONFIG beats ./matchwise.yaml
    named.write_text("default_top_n: 3\n")
    monkeypatch.delenv("MATCHWISE_DEFAULT_TOP_N")
    monkeypatch.setenv("MATCHWISE_CONFIG", str(named))
    s = load_settings()
    assert s.default_top_n == 3 and s.domain == "items"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("blend:\n  model: [0.5\n", r"^matchwise\.yaml:3:1: YAML syntax error: expected ','"),
        ("domain: people\n  default_top_n: 4\n", r"^matchwise\.yaml:2:16: YAML syntax error"),
        ("- domain: people\n- default_top_n: 4\n", r"must be a mapping of settings .* not a list"),
        ("people\n", r"must be a mapping of settings .* not a single value \('people'\)"),
    ],
)
def test_a_broken_config_file_says_where_in_one_line(elsewhere: Path, text: str, said: str) -> None:
    (elsewhere / "matchwise.yaml").write_text(text)
    with pytest.raises(ConfigError, match=said) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_an_empty_config_file_means_the_defaults(elsewhere: Path) -> None:
    (elsewhere / "matchwise.yaml").write_text("# nothing yet\n")
    assert load_settings().default_top_n == 20


def test_a_sqlite_file_in_a_missing_folder_is_refused(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", f"sqlite:///{elsewhere / 'dta' / 'mw.db'}")
    with pytest.raises(ConfigError, match=r"database_url.*folder '.*dta' of the SQLite file does "
                       r"not exist"):  # fmt: skip
        load_settings()
    assert not (elsewhere / "dta").exists()
    (elsewhere / "matchwise.yaml").write_text("database_url: sqlite:///./typo/mw.db\n")
    monkeypatch.delenv("MATCHWISE_DATABASE_URL")
    with pytest.raises(ConfigError, match=r"\(config file matchwise\.yaml\).*'typo'"):
        load_settings()
    # a folder that exists, memory, and the folder matchwise makes itself are fine
    for url in (f"sqlite:///{elsewhere}/mw.db", "sqlite://", "sqlite:///:memory:",
                "sqlite:///./var/matchwise.db", "sqlite:///var/runs/one.db"):  # fmt: skip
        monkeypatch.setenv("MATCHWISE_DATABASE_URL", url)
        assert load_settings().database_url == url


def test_the_default_store_is_still_created_on_a_first_run(elsewhere: Path) -> None:
    settings = load_settings()
    runtime = Runtime.open(settings)
    runtime.close()
    assert (elsewhere / "var" / "matchwise.db").is_file()


def test_live_on_event_loop_takes_its_old_switch_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """It was a switch: true meant "on SQLite", false "never"; both still mean that."""
    assert Settings().live_on_event_loop == "always"
    assert Settings(live_on_event_loop=True).live_on_event_loop == "sqlite"
    assert Settings(live_on_event_loop=False).live_on_event_loop == "never"
    assert Settings(live_on_event_loop="always").live_on_event_loop == "always"
    monkeypatch.setenv("MATCHWISE_LIVE_ON_EVENT_LOOP", "false")
    assert load_settings().live_on_event_loop == "never"
    with pytest.raises(ValidationError):
        Settings(live_on_event_loop="sometimes")
