"""Settings: defaults < the config file < ``MATCHWISE_*`` env.

The config file is the one ``MATCHWISE_CONFIG`` names, else ``matchwise.yaml`` in the
working directory when there is one. Validated as a whole at start; a wrong value raises
:class:`ConfigError` naming the setting, a broken file names its line and column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from matchwise.actions import ActionRule, merge_action_table
from matchwise.errors import ConfigError

CONFIG_ENV = "MATCHWISE_CONFIG"
#: The config file read from the working directory when ``MATCHWISE_CONFIG`` is not set.
LOCAL_CONFIG = "matchwise.yaml"
#: The folder matchwise creates for itself on a first run (the default store and
#: artifacts); a SQLite file anywhere else must be in a folder that exists.
DATA_DIR = Path("var")
DEFAULT_DATABASE_URL = f"sqlite:///./{DATA_DIR}/matchwise.db"


def config_file() -> Path | None:
    """The config file in force: ``MATCHWISE_CONFIG``, else ``./matchwise.yaml`` if present."""
    given = os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    local = Path(LOCAL_CONFIG)
    return local if local.is_file() else None


def check_config_file(path: Path) -> None:
    """Refuse a config file that is not YAML or not a mapping, in one line that says where
    (``matchwise.yaml:3:9: ...``), before the settings are read from it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "not valid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
        raise ConfigError(
            f"{path}: the config file must be a mapping of settings (name: value, e.g. "
            f"'domain: people'), not {kind}"
        )


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or a URI filename."""
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def _made_by_matchwise(folder: Path) -> bool:
    """Whether ``folder`` is one matchwise creates itself (``./var`` and below)."""
    data_dir = DATA_DIR.resolve()
    resolved = folder.resolve()
    return resolved == data_dir or data_dir in resolved.parents


class BlendWeights(BaseModel):
    """Weights of the signals in the final people-domain score (Patra's weighted blend)."""

    model_config = {"extra": "forbid"}

    model: float = Field(default=0.35, ge=0)
    reciprocal: float = Field(default=0.25, ge=0)
    compatibility: float = Field(default=0.15, ge=0)
    bio: float = Field(default=0.1, ge=0)
    interaction: float = Field(default=0.1, ge=0)
    elo: float = Field(default=0.05, ge=0)
    popularity: float = Field(default=0.1, ge=0)
    #: Running swipe rates (features.people.swipe_rate_score): how choosy and how desired
    #: both people have shown themselves so far, updated with every swipe. The strongest
    #: weight: on the Speed Dating replay it was the best predictor of a match, and 2 sits
    #: on the plateau chosen on the training evenings of both directions (benchmarks/RESULTS.md).
    swipe_rates: float = Field(default=2.0, ge=0)
    #: The reciprocal signal's weight in place of ``reciprocal`` when the pairwise model
    #: serves it (features.people.blend_weights): that model already reads every swipe as
    #: fitted choosiness and desirability, and on the Speed Dating training pairs the
    #: blend only approached the model alone as this weight grew; at 100 it leads and the
    #: other signals (2.85 together) move a candidate by at most 0.03 of its mutual score.
    pairwise: float = Field(default=100.0, ge=0)


class RouterSettings(BaseModel):
    """Cold / warm / hot thresholds in number of interactions (seed 003)."""

    model_config = {"extra": "forbid"}

    cold_below: int = Field(default=5, ge=0, description="fewer interactions than this: cold")
    hot_above: int = Field(default=20, ge=0, description="more interactions than this: hot")

    @model_validator(mode="after")
    def _ordered(self) -> RouterSettings:
        if self.hot_above < self.cold_below:
            raise ValueError("router.hot_above must be >= router.cold_below")
        return self


class EloSettings(BaseModel):
    """Desirability rating parameters (Patra's elo_update)."""

    model_config = {"extra": "forbid"}

    initial: float = 1500.0
    k_factor: float = Field(default=32.0, gt=0)
    superlike_weight: float = Field(default=1.5, gt=0)


class MonitoringSettings(BaseModel):
    """Thresholds of ``matchwise monitor`` / ``GET /v1/admin/monitoring`` and the daily job:
    a figure past one raises a flag (README's Monitoring section says what each means)."""

    model_config = {"extra": "forbid"}

    psi_warn: float = Field(default=0.1, gt=0, description="PSI at or above this: a warning")
    psi_alert: float = Field(default=0.25, gt=0, description="PSI at or above this: an alert")
    min_sample: int = Field(
        default=200,
        ge=1,
        description="A drift figure from fewer served values than this is shown, not "
        "flagged: small samples have a PSI near 0.1 by chance alone.",
    )
    coverage_min: float = Field(
        default=0.05, ge=0, le=1, description="Share of the catalogue the cached lists show"
    )
    stale_share_max: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Most cached lists older than cache_max_age_seconds (served live instead)",
    )
    fallback_share_max: float = Field(
        default=0.2, ge=0, le=1, description="Most requests the fallback route may answer"
    )
    window_days: int = Field(
        default=7, ge=1, le=3650, description="Events of the last this many days count"
    )
    interval_hours: float = Field(
        default=24.0,
        ge=0,
        description="The worker queues a monitoring job this often (0: never; "
        "`matchwise jobs enqueue monitoring` still does)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringSettings:
        if self.psi_alert < self.psi_warn:
            raise ValueError("monitoring.psi_alert must be >= monitoring.psi_warn")
        return self


#: Gorse's usual feedback types (its positive ones and its "read") as matchwise actions.
GORSE_FEEDBACK_ACTIONS: dict[str, str] = {
    "star": "favorite",
    "like": "like",
    "favorite": "favorite",
    "share": "share",
    "click": "click",
    "read": "view",
    "view": "view",
    "dislike": "dislike",
}


class Settings(BaseSettings):
    """Every knob matchwise has; see README's Configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="MATCHWISE_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the store. A SQLite file's folder must exist, "
        "except ./var, which matchwise creates.",
    )
    artifact_root: str = Field(
        default="./var/artifacts", description="Folder or fsspec URL (s3://...) for artifacts."
    )
    domain: Literal["items", "people"] = Field(
        default="items", description="Default domain when a request does not say."
    )
    actions: dict[str, ActionRule] = Field(
        default_factory=dict, description="Overrides of the action label/weight table."
    )
    gorse_feedback_actions: dict[str, str] = Field(
        default_factory=lambda: dict(GORSE_FEEDBACK_ACTIONS),
        description="Gorse-compatible API (/api): the matchwise action each Gorse feedback "
        "type is stored as; a type not listed is kept as an action of its own name.",
    )
    blend: BlendWeights = Field(default_factory=BlendWeights)
    router: RouterSettings = Field(default_factory=RouterSettings)
    elo: EloSettings = Field(default_factory=EloSettings)
    reciprocal_mode: Literal["harmonic", "product", "min", "weighted"] = "harmonic"
    default_top_n: int = Field(default=20, ge=1, le=1000)
    retrain_models: list[str] = Field(
        default_factory=lambda: ["ease", "logistic", "two_tower"],
        description="Models the retrain job trains, in order.",
    )
    use_cache: bool = True
    cache_max_age_seconds: int = Field(default=86_400, ge=0)
    registry_check_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often a server asks the registry for the active versions "
        "unasked: the safety net under PostgreSQL's change notices (which switch every "
        "server within a second), and the only way on SQLite.",
    )
    catalogue_max_age_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A server reloads its item and people catalogues in the background "
        "once they are this old (new popularity, Elo ratings, swipe counts); profiles and "
        "items written on PostgreSQL reload them at once, on the change notice.",
    )
    live_on_event_loop: Literal["never", "sqlite", "always"] = Field(
        default="always",
        description="Where a live items request whose models and catalogue are loaded is "
        "computed: on the API's event loop instead of a worker thread (its work holds the "
        "GIL either way; the hop and the threads' turns on the GIL cost more than the "
        "work, and a thread loses the GIL to a busy loop: live requests beside cached ones "
        "were 10-100x slower in one). 'always' (the default): on SQLite, whose reads are "
        "local, and on PostgreSQL, its reads (profile, history) awaited on the API's "
        "async connections, so the loop serves other requests during the round trips. "
        "'sqlite' (true means it): on SQLite only, a worker thread on PostgreSQL. "
        "Anything that may load, wait on the store or write (a model or catalogue not yet "
        "loaded, a running experiment, people lists) still runs in a worker thread. "
        "'never' (false means it): every live request in a worker thread.",
    )
    list_copies: int = Field(
        default=10_000,
        ge=0,
        description="An API server keeps this many cached lists it read in memory and "
        "answers them again: on PostgreSQL without a round trip, until a change notice "
        "says one may have changed (a decision, a refusal, a candidate hidden, a list "
        "re-made); on SQLite while nothing at all was committed since (one PRAGMA per "
        "read). 0 turns it off: every cached read goes to the database.",
    )
    list_copy_seconds: float = Field(
        default=30.0,
        ge=0,
        description="The oldest a list kept in memory (list_copies) is answered (a "
        "quarter of them sooner, at random): a bound on its age whatever happens to the "
        "change notices. 0 turns the copies off.",
    )
    warm_up_on_start: bool = Field(
        default=True,
        description="The API loads the active models and the catalogue before it accepts "
        "traffic, so no early request waits for them.",
    )
    refresh_keep_freed_mib: int = Field(
        default=1024,
        ge=0,
        le=2047,
        description="A refresh process (serial or a Ray actor) keeps up to this much freed "
        "memory instead of handing it back to the kernel, and takes its block-sized arrays "
        "from it: each block frees and allocates the same hundreds of MiB, and taking them "
        "back as page faults was a quarter of a people refresh at a million people (glibc "
        "only; 0 leaves the allocator as it is). Its peak memory is unchanged.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster for --ray work ('auto', 'ray://head:10001'); unset: a "
        "local Ray on this machine's cores.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis as the shared online cache (e.g. redis://host:6379/0): refreshed "
        "lists are written there too and the API reads them first. Unset: the database "
        "cache alone.",
    )
    redis_timeout_ms: int = Field(
        default=100,
        ge=1,
        le=60_000,
        description="How long a request waits for Redis before serving from the database "
        "cache (writes to Redis get ten times as long).",
    )
    redis_cooldown_seconds: float = Field(
        default=5.0,
        gt=0,
        description="After three Redis failures in a row, skip Redis for this long "
        "(circuit breaker), then try again.",
    )
    write_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="PostgreSQL: API writes run at most this many at once (the write "
        "pool's size); more wait their turn. SQLite always writes one at a time.",
    )
    task_queue_enabled: bool = True
    realtime_refresh_enabled: bool = True
    realtime_refresh_min_interval_seconds: int = Field(default=60, ge=0)
    retention_days: int = Field(default=90, ge=1)
    analytics_sample_rate: float = Field(default=0.1, gt=0, le=1)
    hash_secret: str = Field(
        default="matchwise-development-secret",
        description="HMAC key for hashed ids in analytics exports and training snapshots.",
    )
    report_threshold: int = Field(
        default=3, ge=1, description="Distinct reporters that hide a profile until reviewed."
    )
    report_min_account_age_days: float = Field(
        default=7.0,
        ge=0,
        description="A report counts towards a hold only when its reporter's account is at "
        "least this old (its profile or its first event, whichever came first), so fresh "
        "throwaway accounts cannot take someone down.",
    )
    report_min_interactions: int = Field(
        default=10,
        ge=0,
        description="A report counts towards a hold only when its reporter has made at least "
        "this many meaningful interactions (swipes, clicks, registrations; impressions do not "
        "count).",
    )
    model_retention_days: int = Field(
        default=30,
        ge=1,
        description="The retention job deletes model versions (registry rows and artifacts) "
        "older than this, except each type's active version and the one before it "
        "(for rollback): trained models hold the like/pass graph.",
    )
    liked_me_boost: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="How much a pending like lifts the liker in the liked person's people "
        "list (the swipe-adjustment signal): it makes matches, and it means a list's order "
        "and scores reflect who already likes the user. 0 turns it off.",
    )
    reveal_likes_in_reasons: bool = Field(
        default=False,
        description="Say 'already likes you' in people recommendations' reasons. Off by "
        "default: a like is a private swipe, so the reason names what else is true.",
    )
    location_cell_km: float = Field(
        default=1.5,
        gt=0,
        le=100,
        description="Side in km of the grid cells people's positions are snapped to before "
        "any distance is computed (scores, distance filters, reasons): someone who sets "
        "their own position freely learns at most which cell a person is in. Smaller "
        "cells reveal more.",
    )
    people_candidate_budget: int = Field(
        default=1000,
        ge=0,
        description="Most people ranked for one person's list: the nearest this many who pass "
        "every hard filter both ways (plus everyone without a position), found cell by cell "
        "outward instead of by testing everyone (0: no bound, every qualifying person). A "
        "list costs time in proportion to it; at a million people the qualifying pool of a "
        "city is ~10^5.",
    )
    safety_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-label decision thresholds of the safety model."
    )
    bad_key_burst: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="Failed API keys or user tokens one client address may present at "
        "once; past that it gets 429 with Retry-After (valid credentials still pass).",
    )
    bad_key_per_second: float = Field(
        default=1.0,
        gt=0,
        le=1_000_000,
        description="How fast a client address earns back failed attempts after a burst.",
    )
    user_token_seconds: int = Field(
        default=3600, ge=60, le=86_400, description="Lifetime of a user token by default."
    )
    user_token_max_seconds: int = Field(
        default=86_400,
        ge=60,
        le=86_400,
        description="Longest lifetime a user token may be minted with (at most 24 h).",
    )
    auth_enabled: bool = Field(
        default=True, description="Require API keys (except /healthz and the docs)."
    )
    max_batch_size: int = Field(default=10_000, ge=1)
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="`serve` closes a connection whose request headers "
        "are not complete this long after the request began (slow-header attacks).",
    )
    http_body_idle_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="`serve` closes a connection whose request body sends nothing for this long.",
    )
    http_body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="`serve` closes a connection whose request body is "
        "not complete this long after its headers (slow-body attacks).",
    )
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI (sqlite:///mlflow.db, http://host:5000): each "
        "training run logs its parameters, metrics, report and artifact there (needs "
        "matchwise[mlflow]). The registry stays what serves.",
    )
    mlflow_experiment: str = Field(
        default="matchwise", min_length=1, description="MLflow experiment of training runs."
    )
    seed: int = 42

    @field_validator("live_on_event_loop", mode="before")
    @classmethod
    def _on_off_as_before(cls, value: Any) -> Any:
        """``true``/``false`` (the setting was a switch) mean ``sqlite``/``never``."""
        if isinstance(value, bool):
            return "sqlite" if value else "never"
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return "sqlite"
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return "never"
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        file = _sqlite_file(value) if value.startswith("sqlite") else None
        if file is not None and not file.parent.is_dir() and not _made_by_matchwise(file.parent):
            raise ValueError(
                f"the folder {str(file.parent)!r} of the SQLite file does not exist; create "
                "it first or correct the path (matchwise creates only ./var itself)"
            )
        return value

    @field_validator("actions")
    @classmethod
    def _valid_labels(cls, value: dict[str, ActionRule]) -> dict[str, ActionRule]:
        for name, rule in value.items():
            if rule.label is not None and not 0.0 <= rule.label <= 1.0:
                raise ValueError(f"label of action {name!r} must be within [0, 1]")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = config_file()
        if config_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_path))
        return tuple(sources)

    @property
    def action_table(self) -> dict[str, ActionRule]:
        return merge_action_table(self.actions)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: Any) -> Settings:
    """Build and validate settings; a wrong value becomes a :class:`ConfigError`, which
    names the config file it was read with."""
    config_path = config_file()
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(f"{CONFIG_ENV} points to {str(config_path)!r}, which is not a file")
        check_config_file(config_path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"setting {where!r}: {str(err['msg']).removeprefix('Value error, ')}")
        read = f" (config file {config_path})" if config_path is not None else ""
        raise ConfigError(f"invalid configuration{read}: " + "; ".join(problems)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed YAML
        raise ConfigError(f"cannot read configuration: {exc}") from exc
