"""Training orchestration: dataset → fit → evaluate against baselines → report → register.

The CLI's ``train``/``evaluate`` and the worker's ``retrain`` job all call these; every
model registers through :func:`register_versions` with a :func:`judge` verdict, the safety
classifier too (``train.safety``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from matchwise import registry
from matchwise.actions import DECIDED_ACTIONS
from matchwise.data.dataset import Dataset, check_fits
from matchwise.errors import ArtifactError, InvalidInput
from matchwise.experiments.reference import REFERENCE_FILE, acted_on, reference_sample
from matchwise.features.text import text_cache_dir
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.artifacts import TrainedModel, load_trained, save_trained
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.catalog import make_model, read_config
from matchwise.report import write_report
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.dataset import build_dataset
from matchwise.train.progress import counting, stage_bar, users_to_rank
from matchwise.train.tracking import track_training

log = logging.getLogger(__name__)

BASELINES = ("popularity",)
SELECTION_METRIC = "ndcg@10"
#: ``if_better``: activate when better than the active version; ``always``; ``never``.
ACTIVATION_POLICIES = ("if_better", "always", "never")


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
    #: Wall seconds of each pipeline stage (dataset, fit, validation, test, baselines,
    #: report, save), in order, and this process's CPU seconds in each (a loaded machine
    #: stretches the first, hardly the second): what ``benchmarks/training_scale`` reads.
    stages: dict[str, float] = field(default_factory=dict)
    stage_cpu: dict[str, float] = field(default_factory=dict)
    #: The model's own training figures (epochs run, ranker rows, label source...).
    training: dict[str, Any] = field(default_factory=dict)


#: Called inside the registration transaction with its results (a job marks itself done).
Finish = Callable[[Session, list[TrainResult]], None]


@dataclass
class _Clock:
    """Wall and process-CPU seconds per named stage."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu


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


def _share_text_cache(model: Recommender, settings: Settings) -> None:
    """A model that embeds texts (the two-tower) and names no cache of its own uses the
    store's: the one serving keeps bio vectors in and erasure purges, so a retrain embeds
    only the texts that are new (20,000 bios and 5,000 item texts cost minutes on CPU)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "text_cache_dir") and not config.text_cache_dir:
        config.text_cache_dir = text_cache_dir(settings.artifact_root)


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
    """Train ``name`` on the store's data (or on ``dataset``, a snapshot whose domain and id
    hashes must fit this deployment), evaluate it against baselines, report, register.

    ``dry_run`` trains and evaluates and writes nothing to the store (seed 004).
    ``activate``: ``if_better`` (validation NDCG@10 above the active version's, measured
    on this dataset), ``always`` or ``never``.
    """
    with tempfile.TemporaryDirectory(prefix="matchwise-train-") as tmp:
        pending = train_version(runtime, name, None if dry_run else Path(tmp),
                                config_path=config_path, flags=flags, domain=domain,
                                dataset=dataset, activate=activate, progress=progress,
                                config_overrides=config_overrides)  # fmt: skip
        if dry_run:
            return pending.result
        return register_versions(runtime, [pending], actor=actor)[0]


@dataclass(frozen=True)
class Verdict:
    """Whether a new version should replace the active one. Decided after training, it
    holds at registration only while the version it was compared with is still active."""

    policy: str
    activate: bool
    reason: str
    against: str | None = None  # registry id of the active version compared with


@dataclass
class PendingVersion:
    """A trained, evaluated model version not registered yet: its artifact folder (a local
    one, or once uploaded its URI), its registry metrics and its verdict."""

    result: TrainResult
    metrics: dict[str, Any]
    verdict: Verdict | None = None
    folder: Path | None = None
    uri: str | None = None
    size_bytes: int = 0

    def upload(self, store: registry.ArtifactStore) -> None:
        """Copy the folder to the artifact store (once)."""
        if self.uri is None and self.folder is not None:
            self.uri, self.size_bytes = store.put(self.folder, self.result.model_type,
                                                  self.result.version)  # fmt: skip


def train_version(
    runtime: Runtime,
    name: str,
    stage: Path | None,
    config_path: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    domain: str | None = None,
    dataset: Dataset | None = None,
    activate: str = "if_better",
    progress: bool = False,
    config_overrides: dict[str, Any] | None = None,
) -> PendingVersion:
    """Train, evaluate against baselines and report ``name``; then, unless ``stage`` is
    None (a dry run), save it under ``stage`` and compare it with the active version.
    Nothing is written to the store: :func:`register_versions` does that."""
    check_policy(activate)
    settings = runtime.settings
    config = {**read_config(config_path), **(config_overrides or {})}
    model = make_model(name, config, flags, progress=progress)  # refuse bad config first
    _share_text_cache(model, settings)
    home = model_domain(model)
    if dataset is not None:  # a snapshot: its own domain, its ids this deployment's
        domain = check_fits(dataset, settings.hash_secret, domain)
    else:
        domain = domain or home or settings.domain
    if home is not None and domain != home:
        raise InvalidInput(f"{name} learns from the {home} domain only, not {domain}: "
                           f"train it with --domain {home} (or on a {home} snapshot)")  # fmt: skip
    clock = _Clock()
    with clock.stage("dataset"):
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
    # a model with a bar of its own (the two-tower's epochs) draws it; others get a spinner
    own_bar = getattr(model, "progress", None) is not None
    with clock.stage("fit"), stage_bar(progress and not own_bar, f"fit {name}"):
        model.fit(train, valid)
    seconds = clock.wall["fit"]
    with clock.stage("validation"), stage_bar(progress, f"validate {name}",
                                              users_to_rank(valid)) as advance:  # fmt: skip
        validation = evaluate_full_ranking(counting(model, advance), train, valid)
    with clock.stage("test"), stage_bar(progress, f"test {name}", users_to_rank(test)) as advance:
        results = {name: evaluate_full_ranking(counting(model, advance), train, test,
                                               exclude=valid)}  # fmt: skip
    with clock.stage("baselines"):
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
    with clock.stage("report"):
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
            "dry_run": stage is None,
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
            stages=clock.wall,
            stage_cpu=clock.cpu,
            training={k: v for k, v in model.training_metrics.items()
                      if k not in ("validation", "test", "history", "feature_importance")},
        )  # fmt: skip
    pending = PendingVersion(result, {"validation": validation, "test": results[name]})
    if stage is not None:
        with clock.stage("save"):
            pending.folder = save_trained(trained, stage / version)
            _write_reference(pending.folder, model, train, dataset, domain, runtime.settings)
    track_training(settings, name, version,
                   params={"model": name, "domain": domain, "activate": activate,
                           "dataset": dataset.manifest.get("version", ""),
                           "config": model.get_params()},
                   metrics={"validation": validation, "test": results, "train_seconds": seconds},
                   files=[json_path, html_path],
                   artifact=pending.folder,
                   tags={"matchwise.dry_run": str(stage is None).lower()})  # fmt: skip
    if stage is None:
        result.reason = "dry run: nothing written to the store"
        return pending
    pending.verdict = _judge(runtime, name, validation, train, valid, activate)
    return pending


def _write_reference(
    folder: Path, model: Recommender, train: InteractionSet, dataset: Dataset, domain: str,
    settings: Settings,
) -> None:  # fmt: skip
    """Save the sample monitoring compares serving with (``experiments.reference``) in the
    artifact folder; a model it cannot be drawn from trains and serves without one."""
    try:
        splits = [dataset.train, dataset.valid, dataset.test]
        known = acted_on(splits, train.user_ids, train.item_ids)
        decided = acted_on(splits, train.user_ids, train.item_ids, DECIDED_ACTIONS)
        sample = reference_sample(model, train, known, decided, dataset.users,
                                  dataset.items if domain == "items" else None,
                                  min_events=settings.router.cold_below,
                                  seed=settings.seed)  # fmt: skip
        (folder / REFERENCE_FILE).write_text(json.dumps(sample))
    except Exception as exc:  # monitoring is no reason to lose a trained model
        log.warning("no drift reference for %s: %s: %s", model.version, type(exc).__name__, exc)


def model_domain(model: Recommender) -> str | None:
    """The one domain a model can learn from, None when any will do: a model that serves
    only the people path (people scored for people) needs people as candidates."""
    return "people" if model.serves == {"people"} else None


def register_versions(
    runtime: Runtime,
    pending: Sequence[PendingVersion],
    actor: str = "cli",
    finish: Finish | None = None,
) -> list[TrainResult]:
    """Upload the artifacts, then in one transaction register every version, activate
    those whose verdict still holds and run ``finish``: all of it commits, or none.

    Artifacts uploaded for a transaction that rolled back are removed again.
    """
    store = registry.ArtifactStore(runtime.settings.artifact_root)
    try:
        for item in pending:  # before the transaction: an upload may take a while
            item.upload(store)
        with runtime.session() as session:
            for item in pending:
                _register(session, store, item, actor)
            if finish is not None:
                finish(session, [item.result for item in pending])
    except Exception:
        for item in pending:
            if item.uri is not None:
                store.remove(item.uri)
        raise
    return [item.result for item in pending]


def _register(
    session: Session, store: registry.ArtifactStore, item: PendingVersion, actor: str
) -> None:
    result, verdict = item.result, item.verdict
    if item.uri is None or verdict is None:
        raise InvalidInput(f"{result.version} was trained as a dry run: it cannot be registered")
    registry.lock_type(session, result.model_type)
    row = registry.add_version(session, result.model_type, result.version, item.uri,
                               item.size_bytes, item.metrics, actor=actor)  # fmt: skip
    activate, reason = _still_holds(session, result, verdict)
    if activate:
        registry.activate_version(session, store, row.id, actor=actor)
    result.registry_id, result.activated, result.reason = row.id, activate, reason


def _still_holds(session: Session, result: TrainResult, verdict: Verdict) -> tuple[bool, str]:
    """The verdict, unless another version became active after the comparison."""
    if verdict.policy != "if_better":
        return verdict.activate, verdict.reason
    current = registry.active_version(session, result.model_type)
    if current is None:
        return True, "activated: no active version yet"
    if current.id != verdict.against:
        return False, f"kept {current.version}: it became active while {result.version} " \
            "was compared with the one before"  # fmt: skip
    return verdict.activate, verdict.reason


def _judge(
    runtime: Runtime,
    name: str,
    validation: dict[str, float],
    train: InteractionSet,
    valid: InteractionSet,
    policy: str,
) -> Verdict:
    """A recommender's verdict: validation NDCG@10 against the active version's, both
    measured on this dataset's validation split."""
    store = registry.ArtifactStore(runtime.settings.artifact_root)

    def active_score(uri: str, _metrics: dict[str, Any]) -> float:
        old = load_trained(store.fetch(uri))
        return evaluate_full_ranking(_aligned(old, train), train, valid)[SELECTION_METRIC]

    return judge(runtime, name, policy, f"validation {SELECTION_METRIC}",
                 validation[SELECTION_METRIC], active_score)  # fmt: skip


#: A score of the active version from its artifact's URI and its stored metrics.
ActiveScore = Callable[[str, dict[str, Any]], float]


def check_policy(policy: str) -> None:
    """Refuse an unknown activation policy before anything is trained."""
    if policy not in ACTIVATION_POLICIES:
        raise InvalidInput(f"activate must be {', '.join(ACTIVATION_POLICIES[:-1])} or "
                           f"{ACTIVATION_POLICIES[-1]}, not {policy!r}")  # fmt: skip


def judge(
    runtime: Runtime,
    name: str,
    policy: str,
    metric: str,
    new_score: float,
    active_score: ActiveScore,
) -> Verdict:
    """Whether a new version of ``name`` should replace the active one: ``always``,
    ``never``, or ``if_better``: ``new_score`` above ``active_score`` of the active
    version (higher is better; ``metric`` names the figure in the reason). An active
    version that cannot be scored is replaced, so a broken one never blocks a new one."""
    check_policy(policy)
    if policy == "always":
        return Verdict(policy, True, "activated (policy: always)")
    if policy == "never":
        return Verdict(policy, False, "registered, not activated (policy: never)")
    with runtime.session() as session:
        current = registry.active_version(session, name)
        if current is None:
            return Verdict(policy, True, "activated: no active version yet")
        against, uri, old_version = current.id, current.uri, current.version
        stored = dict(current.metrics or {})
    try:
        old_score = active_score(uri, stored)
    except (ArtifactError, InvalidInput) as exc:
        return Verdict(policy, True, f"activated: the active version cannot be evaluated ({exc})",
                       against)  # fmt: skip
    if new_score > old_score:
        return Verdict(policy, True, f"activated: {metric} {new_score:.4f} > {old_score:.4f}",
                       against)  # fmt: skip
    return Verdict(policy, False, f"kept {old_version}: {metric} "
                   f"{old_score:.4f} >= {new_score:.4f}", against)  # fmt: skip


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
