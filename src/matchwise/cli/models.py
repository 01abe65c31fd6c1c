"""Training, evaluation and the model registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from matchwise.cli.render import (
    console,
    open_runtime,
    print_metrics,
)
from matchwise.data.dataset import load_dataset
from matchwise.db.tables import ModelVersion
from matchwise.errors import InvalidInput
from matchwise.models.safety import LABELS
from matchwise.registry import ArtifactStore, activate_version, list_versions, rollback
from matchwise.runtime import Runtime
from matchwise.train.pipeline import TrainResult, evaluate_active, train_model
from matchwise.train.safety import SELECTION_METRIC, selection_score, train_and_register

models_app = typer.Typer(
    help="The model registry: list, activate, roll back.", no_args_is_help=True
)


def train(
    model: Annotated[
        str, typer.Argument(help="two_tower, hybrid, ease, logistic, popularity, ...")
    ],
    config: Annotated[Path | None, typer.Option(help="JSON file of hyperparameters")] = None,
    epochs: Annotated[int | None, typer.Option(help="training epochs")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate")] = None,
    l2: Annotated[float | None, typer.Option(help="L2 regularisation / weight decay")] = None,
    domain: Annotated[str | None, typer.Option(help="items or people")] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(help="a snapshot folder from `matchwise dataset build` to train on"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="train and evaluate; write nothing to the store")
    ] = False,
    activate: Annotated[str, typer.Option(help="if_better, always or never")] = "if_better",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    sms: Annotated[Path | None, typer.Option(help="safety only: SMS Spam Collection file")] = None,
    instagram: Annotated[
        Path | None, typer.Option(help="safety only: folder with the fake-account CSVs")
    ] = None,
) -> None:
    """Train a model on the store's data, evaluate it against baselines, register it.

    ``--dataset DIR`` trains and evaluates on a snapshot instead (its splits, its version);
    it must come from this deployment (same hash secret). ``train safety`` trains the
    multi-label safety classifier instead (public sets, the synthetic corpus and moderator
    labels from the store).
    """

    if domain not in (None, "items", "people"):
        raise InvalidInput(f"--domain must be 'items' or 'people', not {domain!r}")
    runtime = open_runtime()
    if model == "safety":
        if dataset is not None:
            raise InvalidInput("--dataset is for recommendation models: the safety classifier "
                               "trains on its own corpora (--sms, --instagram)")  # fmt: skip
        _train_safety(runtime, sms, instagram, activate, dry_run, as_json)
        return
    result = train_model(
        runtime,
        model,
        config_path=config,
        flags={"epochs": epochs, "lr": lr, "l2": l2},
        dry_run=dry_run,
        domain=domain,
        dataset=None if dataset is None else load_dataset(dataset),
        activate=activate,
        progress=not as_json,
    )
    if as_json:
        sys.stdout.write(json.dumps(_result_json(result), default=str) + "\n")
        return
    print_metrics(f"{result.model_type} {result.version}", result.test)
    console.print(f"dataset {result.dataset_version}")
    console.print(result.reason)
    console.print(f"report: [cyan]{result.report_html}[/cyan]")


def _train_safety(
    runtime: Runtime,
    sms: Path | None,
    instagram: Path | None,
    activate: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Like every model: the JSON of :func:`_result_json`, or a table and the verdict."""

    with console.status("training the safety classifier (embedding texts takes a while)..."):
        result, metrics = train_and_register(runtime, sms, instagram, activate=activate,
                                             dry_run=dry_run)  # fmt: skip
    moderator = int(metrics.get("n_train", {}).get("moderator_labels", 0))
    if as_json:
        extra = {"selection": {SELECTION_METRIC: selection_score(metrics)},
                 "moderator_labels": moderator}  # fmt: skip
        sys.stdout.write(json.dumps({**_result_json(result), **extra}, default=str) + "\n")
        return
    table = Table(title=f"safety {result.version}: held-out test splits")
    for col in ("head", "precision", "recall", "F1", "AUC"):
        table.add_column(col, justify="right" if col != "head" else "left")
    for label, values in result.test.items():
        table.add_row(label, *(f"{values.get(k, float('nan')):.3f}"
                               for k in ("precision", "recall", "f1", "auc")))  # fmt: skip
    console.print(table)
    console.print(f"{SELECTION_METRIC} over {', '.join(LABELS)}: {selection_score(metrics):.4f}")
    console.print(f"moderator labels used: {moderator}")
    console.print(result.reason)


def _result_json(result: TrainResult) -> dict[str, Any]:
    """What ``train --json`` prints for every model, the safety classifier included."""
    return {
        "model": result.model_type,
        "version": result.version,
        "dataset": result.dataset_version,
        "validation": result.validation,
        "test": result.test,
        "train_seconds": result.train_seconds,
        "registry_id": result.registry_id,
        "activated": result.activated,
        "reason": result.reason,
        "report": None if result.report_html is None else str(result.report_html),
    }


def evaluate(
    model: Annotated[str, typer.Argument(help="model type whose active version to evaluate")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Evaluate the active version of a model on a fresh dataset from the store."""

    result = evaluate_active(open_runtime(), model)
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    print_metrics(f"{model} {result['version']}", result["test"])


@models_app.command("list")
def models_list(
    model_type: Annotated[str | None, typer.Option("--type", help="only this type")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print a JSON list, one object per version")
    ] = False,
) -> None:
    """Registered versions: id, type, version, size, validation and test NDCG@10, active."""

    runtime = open_runtime()
    with runtime.session() as session:
        rows = [_version_fields(r) for r in list_versions(session, model_type)]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="models")
    for col in ("id", "type", "version", "MB", "val ndcg@10", "test ndcg@10", "created", "active"):
        table.add_column(col)
    for r in rows:
        val, test = r["validation_ndcg@10"], r["test_ndcg@10"]
        table.add_row(
            r["id"][:8], r["model_type"], r["version"], f"{r['size_bytes'] / 1e6:.2f}",
            "" if val is None else f"{val:.4f}", "" if test is None else f"{test:.4f}",
            r["created_at"][:16].replace("T", " "), "[green]yes[/green]" if r["active"] else "",
        )  # fmt: skip
    console.print(table)


def _version_fields(row: ModelVersion) -> dict[str, Any]:
    """One registry row as ``models list`` shows it: the table's columns, whole."""
    metrics = row.metrics or {}
    return {
        "id": row.id,
        "model_type": row.model_type,
        "version": row.version,
        "size_bytes": row.size_bytes,
        "validation_ndcg@10": metrics.get("validation", {}).get("ndcg@10"),
        "test_ndcg@10": metrics.get("test", {}).get("ndcg@10"),
        "created_at": row.created_at.isoformat(),
        "active": bool(row.is_active),
    }


def _resolve_model_id(session: Any, ident: str) -> str:
    from sqlalchemy import select

    rows = session.scalars(select(ModelVersion.id).where(ModelVersion.id.startswith(ident))).all()
    if len(rows) == 1:
        return str(rows[0])
    if len(rows) > 1:
        raise InvalidInput(f"{ident!r} matches several model ids; give more characters")
    return ident


@models_app.command("activate")
def models_activate(
    ident: Annotated[str, typer.Argument(help="registry id (prefix) or version")],
) -> None:
    """Make a version the active one of its type (audit-logged)."""

    runtime = open_runtime()
    store = ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as session:
        row = activate_version(session, store, _resolve_model_id(session, ident), actor="cli")
        console.print(f"[green]active[/green] {row.model_type} {row.version}")


@models_app.command("rollback")
def models_rollback(model_type: Annotated[str, typer.Argument(help="model type")]) -> None:
    """Re-activate the version that was active before the current one."""

    runtime = open_runtime()
    store = ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as session:
        row = rollback(session, store, model_type, actor="cli")
        console.print(f"[green]rolled back[/green] {row.model_type} to {row.version}")
