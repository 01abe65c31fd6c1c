"""``matchwise demo``: the main job end to end on the embedded default (SQLite, local files)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from sqlalchemy import func, select

from matchwise.cli.render import console, print_metrics, print_recommendations
from matchwise.data.bundle import DataBundle
from matchwise.data.dataset import Dataset, Domain
from matchwise.data.synthetic import generate, window_start
from matchwise.db.audit import audit
from matchwise.db.tables import ApiKey, AuditLog, Interaction, Item, Match, ModelVersion, User
from matchwise.ingest.bulk import write_bundle
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.catalog import MODEL_TYPES, make_model
from matchwise.ops.auth import create_key, revoke_key
from matchwise.redaction import redact
from matchwise.registry import ArtifactStore, lock_type
from matchwise.runtime import Runtime
from matchwise.serve.recommend import recommend
from matchwise.serve.refresh import refresh_users
from matchwise.serve.state import serving_state
from matchwise.settings import load_settings
from matchwise.train.dataset import build_dataset
from matchwise.train.pipeline import (
    SELECTION_METRIC,
    TrainResult,
    register_versions,
    train_version,
)

SIZES = {"small", "medium", "large"}


DEMO_MODELS = ("ease", "logistic", "two_tower", "reciprocal")
#: Who the demo acts as in the audit log: how a re-run finds its own versions and key.
ACTOR = "demo"


def train_models(console: Console, runtime: Runtime, models: tuple[str, ...]) -> dict[str, Any]:
    """Train and evaluate the demo's models; a version is registered and activated only
    where it beats popularity on validation and, as ``train --activate if_better`` judges,
    the active version of its type. The demo's versions it replaces are deleted, so a
    re-run leaves one version per model, not a pile."""

    out: dict[str, Any] = {}
    datasets: dict[str, Dataset] = {}
    for name in models:
        if name not in MODEL_TYPES:
            continue
        domain: Domain = "people" if name == "reciprocal" else "items"
        if domain not in datasets:
            with runtime.session() as session:
                datasets[domain] = build_dataset(session, runtime.settings.action_table,
                                                 runtime.settings.hash_secret, domain=domain,
                                                 seed=runtime.settings.seed)  # fmt: skip
        with console.status(f"training {name} on the {domain} data..."):
            config = {"epochs": 15, "patience": 3} if name == "two_tower" else None
            result = _train_one(runtime, name, datasets[domain], config)
        print_metrics(f"{name} {result.version}", result.test)
        console.print(f"  {result.reason}; report: [cyan]{result.report_html}[/cyan]")
        out[name] = result
    serving_state(runtime).invalidate()
    return out


def _train_one(
    runtime: Runtime, name: str, dataset: Dataset, config: dict[str, Any] | None
) -> TrainResult:
    """One model through the pipeline, judged ``if_better`` and against popularity."""

    with tempfile.TemporaryDirectory(prefix="matchwise-demo-") as stage:
        pending = train_version(runtime, name, Path(stage), dataset=dataset,
                                activate="if_better", config_overrides=config)  # fmt: skip
        result, verdict = pending.result, pending.verdict
        assert verdict is not None  # staged, so judged
        score, baseline = result.validation[SELECTION_METRIC], _popularity_score(dataset)
        if verdict.activate and score <= baseline:
            result.reason = (f"not registered: validation {SELECTION_METRIC} {score:.4f} does "
                             f"not beat popularity's {baseline:.4f}")  # fmt: skip
            return result
        if not verdict.activate:
            result.reason = f"not registered: {verdict.reason}"
            return result
        register_versions(runtime, [pending], actor=ACTOR)
    _drop_replaced(runtime, name)
    return result


def _popularity_score(dataset: Dataset) -> float:
    """Popularity's validation figure on ``dataset``: what a model must beat to serve."""
    train, valid, _ = dataset.interaction_sets()
    baseline = make_model("popularity")
    baseline.fit(train, valid)
    return evaluate_full_ranking(baseline, train, valid)[SELECTION_METRIC]


def _drop_replaced(runtime: Runtime, model_type: str) -> None:
    """Delete the versions of ``model_type`` an earlier demo run registered that are no
    longer active (registry row and artifact, audit-logged); others' stay."""

    store = ArtifactStore(runtime.settings.artifact_root)
    registered_here = select(AuditLog.target).where(
        AuditLog.actor == ACTOR, AuditLog.action == "model.register"
    )
    with runtime.session() as session:
        lock_type(session, model_type)
        stale = session.scalars(select(ModelVersion).where(
            ModelVersion.model_type == model_type, ModelVersion.is_active.is_(False),
            ModelVersion.id.in_(registered_here))).all()  # fmt: skip
        for row in stale:
            store.delete(row.uri)
            session.delete(row)
            audit(session, ACTOR, "model.prune", row.id,
                  {"model_type": row.model_type, "version": row.version})  # fmt: skip


def replace_key(runtime: Runtime) -> str:
    """A new admin key for the demo; the earlier demo runs' keys are revoked."""

    with runtime.session() as session:
        created_here = select(AuditLog.target).where(
            AuditLog.actor == ACTOR, AuditLog.action == "key.create"
        )
        earlier = session.scalars(select(ApiKey.id).where(
            ApiKey.id.in_(created_here), ApiKey.revoked_at.is_(None))).all()  # fmt: skip
        for key_id in earlier:
            revoke_key(session, key_id, actor=ACTOR)
        key, _ = create_key(session, "admin", name="demo", actor=ACTOR)
    return key


def _example_users(
    runtime: Runtime, items_bundle: DataBundle, people_bundle: DataBundle
) -> list[tuple[str, str]]:
    """A cold, a warm and a hot events user, and two dating users."""
    counts = items_bundle.interactions[items_bundle.interactions["action"] != "impression"]
    per_user = counts["user_id"].value_counts()
    cold_below = runtime.settings.router.cold_below
    hot_above = runtime.settings.router.hot_above
    picks: list[tuple[str, str]] = []
    for low, high in ((0, cold_below - 1), (cold_below, hot_above), (hot_above + 1, 10**9)):
        users = per_user[(per_user >= low) & (per_user <= high)]
        if len(users):
            picks.append((str(users.index[0]), "item"))
        elif low == 0:
            idle = set(items_bundle.users["id"]) - set(per_user.index)
            if idle:
                picks.append((sorted(idle)[0], "item"))
    swipes = people_bundle.interactions["user_id"].value_counts()
    picks += [(str(u), "user") for u in swipes.index[:2]]
    return picks


def run_demo(
    console: Console, size: str = "small", seed: int = 42, models: tuple[str, ...] = DEMO_MODELS
) -> dict[str, Any]:

    settings = load_settings()
    runtime = Runtime.open(settings)
    console.print(Rule("[bold]matchwise demo"), width=min(console.width, 80))
    console.print(f"store: [cyan]{redact(settings.database_url)}[/cyan]")
    console.print(f"artifacts: [cyan]{settings.artifact_root}[/cyan]")

    started = time.perf_counter()
    with console.status("generating synthetic events (items domain) and people (dating)..."):
        start = window_start()  # the data leads up to today: upcoming events are upcoming
        items_bundle = generate("items", size=size, seed=seed, start=start)
        people_bundle = generate("people", size="small", seed=seed, start=start)
    with console.status("writing the store..."):
        write_bundle(runtime, items_bundle, settings.action_table)
        write_bundle(runtime, people_bundle, settings.action_table, elo=settings.elo)
    with runtime.session() as session:
        counts = {
            "users": session.scalar(select(func.count()).select_from(User)),
            "items": session.scalar(select(func.count()).select_from(Item)),
            "interactions": session.scalar(select(func.count()).select_from(Interaction)),
            "matches": session.scalar(select(func.count()).select_from(Match)),
        }
    table = Table(title="the store")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, value in counts.items():
        table.add_row(name, f"{value:,}")
    console.print(table)

    trained = train_models(console, runtime, models)
    with console.status("refreshing every user's ranking cache..."):
        refreshed = refresh_users(runtime, None, top_n=20)
    console.print(f"ranking cache: {refreshed['rows']:,} rows for {refreshed['users']:,} users")

    key = replace_key(runtime)
    examples = _example_users(runtime, items_bundle, people_bundle)
    with runtime.session() as session:
        for user_id, kind in examples:
            result = recommend(
                runtime,
                session,
                user_id,
                limit=5,
                kind=kind,  # type: ignore[arg-type]
                use_cache=False,
            )
            print_recommendations(result)
    elapsed = time.perf_counter() - started
    people = [u for u, kind in examples if kind == "user"]
    console.print(f"admin API key for this store (shown once): [bold]{key}[/bold]")
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"done in {elapsed:.1f} s. Where to look next:",
                    f"  .venv/bin/matchwise recommend --user-id {examples[0][0]} --top-n 10",
                    f"  .venv/bin/matchwise recommend --user-id {people[0]} --kind user --json",
                    f"  .venv/bin/matchwise interact --user-id {people[0]} --target "
                    f"{people[1]} --action like",
                    "  .venv/bin/matchwise models list",
                    "  .venv/bin/matchwise serve   then open http://127.0.0.1:8000/docs",
                    f"  curl -H 'X-API-Key: {key}' "
                    f"'http://127.0.0.1:8000/v1/recommendations?user_id={examples[0][0]}'",
                    f"  reports: {runtime.settings.artifact_root}/reports/",
                ]
            ),
            title="next",
        )
    )
    runtime.close()
    return {"counts": counts, "seconds": elapsed, "trained": trained, "api_key": key}


def demo(
    size: Annotated[str, typer.Option(help="small, medium or large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
) -> None:
    """The main job on the embedded default: data, store, recommendations, summary."""

    run_demo(console, size=size, seed=seed)
