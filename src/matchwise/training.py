"""Training orchestration: dataset → fit → evaluate against baselines → report → register.

The CLI's ``train``/``evaluate`` and the worker's ``retrain`` job all call these.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from matchwise import registry
from matchwise.data.dataset import Dataset, build_dataset
from matchwise.errors import ArtifactError, InvalidInput
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.catalog import make_model, model_class, read_config
from matchwise.report import write_report
from matchwise.runtime import Runtime

log = logging.getLogger(__name__)

IDS_FILE = "ids.npz"
TRAINING_FILE = "training.json"
BASELINES = ("popularity",)
SELECTION_METRIC = "ndcg@10"


@dataclass
class TrainedModel:
    """A model with the id maps it was trained with (ids are keyed hashes)."""

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    domain: str
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_index = {u: i for i, u in enumerate(self.user_ids.tolist())}
        self.item_index = {u: i for i, u in enumerate(self.item_ids.tolist())}


def save_trained(trained: TrainedModel, folder: Path) -> Path:
    trained.model.save(folder)
    np.savez(
        folder / IDS_FILE,
        user_ids=trained.user_ids.astype(str),
        item_ids=trained.item_ids.astype(str),
    )
    (folder / TRAINING_FILE).write_text(
        json.dumps({"domain": trained.domain, **trained.info}, indent=2, default=str)
    )
    return folder


def load_trained(folder: str | Path) -> TrainedModel:
    """Load a registered model folder; a missing or corrupt one raises ArtifactError."""
    path = Path(folder)
    try:
        info = json.loads((path / TRAINING_FILE).read_text())
        manifest = json.loads((path / "manifest.json").read_text())
        with np.load(path / IDS_FILE, allow_pickle=False) as ids:
            user_ids, item_ids = ids["user_ids"], ids["item_ids"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"model artifact at {path} is missing or corrupt: {exc}") from exc
    model = model_class(manifest["model_type"]).load(path)
    return TrainedModel(model, user_ids, item_ids, info.get("domain", "items"), info)


def reports_folder(artifact_root: str) -> Path:
    """Reports are for people: a local folder even when artifacts live in object storage."""
    return Path(artifact_root if "://" not in artifact_root else "var") / "reports"


@dataclass
class TrainResult:
    model_type: str
    version: str
    validation: dict[str, float]
    test: dict[str, dict[str, float]]
    dataset_version: str
    train_seconds: float
    report_html: Path | None = None
    report_json: Path | None = None
    registry_id: str | None = None
    activated: bool = False
    reason: str = ""


def _fit(model: Recommender, train: InteractionSet, valid: InteractionSet) -> float:
    started = time.perf_counter()
    model.fit(train, valid)
    return time.perf_counter() - started


def _score_samples(
    model: Recommender, train: InteractionSet, test: InteractionSet, users: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of held-out positives vs. all candidates, for the report's histogram."""
    relevant = test.to_csr(positive_only=True)
    rows = np.flatnonzero(np.diff(relevant.indptr) > 0)[:users]
    if len(rows) == 0:
        return np.array([]), np.array([])
    scores = np.asarray(model.score(rows), dtype=np.float64)
    positive = np.asarray(scores[relevant[rows].nonzero()]).ravel()
    rng = np.random.default_rng(0)
    other = rng.choice(scores.ravel(), size=min(20_000, scores.size), replace=False)
    finite = np.isfinite
    return positive[finite(positive)], other[finite(other)]


def retrain(
    runtime: Runtime,
    models: list[str] | None = None,
    domain: str | None = None,
    actor: str = "cli",
    ray: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Train each of ``models`` (default: ``settings.retrain_models``) and activate the
    ones that beat the active version; returns a summary per model and whether any
    activation happened (then the serving state and the cache need a refresh).

    With ``ray`` each model trains in a Ray task of its own (``settings.ray_address``,
    or a local Ray), in parallel: see :mod:`matchwise.batch`.
    """
    names = models or list(runtime.settings.retrain_models)
    if ray:
        from matchwise.batch import train_with_ray

        outcome = train_with_ray(runtime, names, domain=domain, actor=actor)
    else:
        outcome = {name: train_summary(train_model(runtime, name, domain=domain, actor=actor))
                   for name in names}  # fmt: skip
    activated = any(summary["activated"] for summary in outcome.values())
    if activated:
        from matchwise.serving import state_for

        state_for(runtime.settings).invalidate()
    return outcome, activated


def train_summary(result: TrainResult) -> dict[str, Any]:
    """What a retrain reports per model (JSON-friendly)."""
    return {"version": result.version, "activated": result.activated, "reason": result.reason,
            "validation_ndcg@10": result.validation.get("ndcg@10")}  # fmt: skip


def train_model(
    runtime: Runtime,
    name: str,
    config_path: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    dry_run: bool = False,
    domain: str | None = None,
    dataset: Dataset | None = None,
    activate: str = "if_better",
    progress: bool = False,
    actor: str = "cli",
    config_overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``name`` on the store's data, evaluate it against baselines, report, register.

    ``dry_run`` trains and evaluates and writes nothing to the store (seed 004).
    ``activate``: ``if_better`` (validation NDCG@10 above the active version's, measured
    on this dataset), ``always`` or ``never``.
    """
    if activate not in ("if_better", "always", "never"):
        raise InvalidInput("activate must be if_better, always or never")
    settings = runtime.settings
    config = {**read_config(config_path), **(config_overrides or {})}
    model = make_model(name, config, flags, progress=progress)  # refuse bad config first
    domain = domain or settings.domain
    if dataset is None:
        with runtime.session() as session:
            dataset = build_dataset(
                session,
                settings.action_table,
                settings.hash_secret,
                domain=domain,  # type: ignore[arg-type]
                negative_samples=0,
                seed=settings.seed,
            )
    train, valid, test = dataset.interaction_sets()
    seconds = _fit(model, train, valid)
    validation = evaluate_full_ranking(model, train, valid)
    results = {name: evaluate_full_ranking(model, train, test, exclude=valid)}
    for baseline in BASELINES:
        if baseline != name:
            base = make_model(baseline)
            base.fit(train, valid)
            results[baseline] = evaluate_full_ranking(base, train, test, exclude=valid)
    version = registry.new_version(name)
    model.version = version
    model.training_metrics = {
        **model.training_metrics,
        "validation": validation,
        "test": results[name],
    }
    trained = TrainedModel(
        model,
        dataset.users["id"].to_numpy(),
        dataset.items["id"].to_numpy(),
        domain,
        {"dataset": dataset.manifest, "validation": validation, "test": results[name]},
    )
    history = getattr(model, "history_", None) or model.training_metrics.get("history", [])
    positive, other = _score_samples(model, train, test)
    payload = {
        "model": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "train_seconds": seconds,
        "validation": validation,
        "test": results,
        "dataset": dataset.manifest,
        "config": model.get_params(),
        "dry_run": dry_run,
    }
    json_path, html_path = write_report(
        reports_folder(settings.artifact_root), version, payload, history, positive, other
    )
    result = TrainResult(
        model_type=name,
        version=version,
        validation=validation,
        test=results,
        dataset_version=dataset.manifest.get("version", ""),
        train_seconds=seconds,
        report_html=html_path,
        report_json=json_path,
    )
    if dry_run:
        result.reason = "dry run: nothing written to the store"
        return result
    store = registry.ArtifactStore(settings.artifact_root)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_trained(trained, Path(tmp) / version)
        with runtime.session() as session:
            row = registry.register(
                session,
                store,
                name,
                folder,
                metrics={"validation": validation, "test": results[name]},
                version=version,
                actor=actor,
            )
            result.registry_id = row.id
            should, why = _should_activate(runtime, session, store, name, validation,
                                           train, valid, activate)  # fmt: skip
            if should:
                registry.activate_version(session, store, row.id, actor=actor)
            result.activated, result.reason = should, why
    return result


def _should_activate(
    runtime: Runtime,
    session: Any,
    store: registry.ArtifactStore,
    name: str,
    validation: dict[str, float],
    train: InteractionSet,
    valid: InteractionSet,
    policy: str,
) -> tuple[bool, str]:
    if policy == "always":
        return True, "activated (policy: always)"
    if policy == "never":
        return False, "registered, not activated (policy: never)"
    current = registry.active_version(session, name)
    if current is None:
        return True, "activated: no active version yet"
    try:
        old = load_trained(store.fetch(current.uri))
        old_score = evaluate_full_ranking(_aligned(old, train), train, valid)[SELECTION_METRIC]
    except (ArtifactError, InvalidInput) as exc:
        return True, f"activated: the active version cannot be evaluated ({exc})"
    new_score = validation[SELECTION_METRIC]
    if new_score > old_score:
        return True, f"activated: validation {SELECTION_METRIC} {new_score:.4f} > {old_score:.4f}"
    return False, f"kept {current.version}: validation {SELECTION_METRIC} {old_score:.4f} >= " \
        f"{new_score:.4f}"  # fmt: skip


def _aligned(old: TrainedModel, data: InteractionSet) -> Any:
    """A score function of ``old`` in ``data``'s id universe (unknown ids score lowest)."""
    user_map = np.array([old.user_index.get(u, -1) for u in data.user_ids.tolist()])
    item_map = np.array([old.item_index.get(i, -1) for i in data.item_ids.tolist()])
    known_items = item_map >= 0

    def score(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), data.n_items), -1e9, dtype=np.float32)
        rows = user_map[users]
        ok = rows >= 0
        if ok.any():
            scored = np.asarray(old.model.score(rows[ok]), dtype=np.float32)
            block = np.full((int(ok.sum()), data.n_items), -1e9, dtype=np.float32)
            block[:, known_items] = scored[:, item_map[known_items]]
            out[ok] = block
        return out

    return score


def evaluate_active(runtime: Runtime, name: str, domain: str | None = None) -> dict[str, Any]:
    """Re-evaluate the active ``name`` version on a fresh dataset from the store."""
    settings = runtime.settings
    store = registry.ArtifactStore(settings.artifact_root)
    with runtime.session() as session:
        current = registry.active_version(session, name)
        if current is None:
            raise InvalidInput(f"no active {name} model: train one with `matchwise train {name}`")
        uri, version = current.uri, current.version
    trained = load_trained(store.fetch(uri))
    with runtime.session() as session:
        dataset = build_dataset(session, settings.action_table, settings.hash_secret,
                                domain=domain or trained.domain, seed=settings.seed)  # type: ignore[arg-type]  # fmt: skip
    train, valid, test = dataset.interaction_sets()
    scorer = _aligned(trained, train)
    baseline = make_model("popularity").fit(train, valid)
    return {
        "model": name,
        "version": version,
        "dataset": dataset.manifest.get("version"),
        "validation": evaluate_full_ranking(scorer, train, valid),
        "test": {
            name: evaluate_full_ranking(scorer, train, test, exclude=valid),
            "popularity": evaluate_full_ranking(baseline, train, test, exclude=valid),
        },
    }
