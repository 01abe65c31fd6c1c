"""Settings: defaults < YAML < environment, and wrong values named at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchwise.errors import ConfigError
from matchwise.settings import load_settings


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
