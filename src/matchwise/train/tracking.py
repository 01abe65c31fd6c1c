"""Offline experiment tracking: each training run in MLflow when ``mlflow_tracking_uri`` is
set (seed 003: "track experiments with MLflow").

MLflow is a notebook of what was tried: parameters, metrics, the report and the artifact
of every run. What serves stays matchwise's registry (``model_registry``, one active
version per type, audit-logged); nothing here reads MLflow back. Tracking is best effort:
a tracking server that cannot be reached, or ``mlflow`` not installed
(``pip install 'matchwise[mlflow]'``), logs a warning and training goes on.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matchwise.redaction import redact
from matchwise.settings import Settings

try:  # an optional extra: matchwise[mlflow] (mlflow-skinny)
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
except ImportError:  # pragma: no cover - exercised only without the extra
    MlflowClient = None  # type: ignore[misc,assignment]

log = logging.getLogger(__name__)

#: MLflow keys allow letters, digits, ``_ - . / `` and space; ``ndcg@10`` becomes ``ndcg_at_10``.
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def tracking_key(name: str) -> str:
    return _KEY_UNSAFE.sub("_", name.replace("@", "_at_"))


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"test": {"ease": {"ndcg@10": 0.3}}}`` → ``{"test.ease.ndcg_at_10": 0.3}``."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}{tracking_key(str(name))}"
        if isinstance(value, Mapping):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def track_training(
    settings: Settings,
    model_type: str,
    version: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    files: Iterable[Path] = (),
    artifact: Path | None = None,
    tags: Mapping[str, str] | None = None,
) -> str | None:
    """Log one training run (nested ``params``/``metrics`` are flattened with dots; the
    report ``files`` under ``report/``, the model folder under ``model/``); returns the
    MLflow run id, or None when tracking is off or failed (a warning says why)."""
    uri = settings.mlflow_tracking_uri
    if not uri:
        return None
    if MlflowClient is None:
        log.warning("mlflow_tracking_uri is set but mlflow is not installed "
                    "(pip install 'matchwise[mlflow]'): run %s not tracked", version)  # fmt: skip
        return None
    client: Any = None
    run_id: str | None = None
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = _experiment(client, settings.mlflow_experiment)
        run_tags = {"matchwise.model_type": model_type, "matchwise.version": version,
                    **(tags or {})}  # fmt: skip
        run_id = client.create_run(experiment, run_name=version, tags=run_tags).info.run_id
        stamp = int(time.time() * 1000)
        flat_params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flatten(params).items()]
        flat_metrics = [Metric(k, v, stamp, 0) for k, v in _numbers(flatten(metrics)).items()]
        client.log_batch(run_id, metrics=flat_metrics, params=flat_params)
        for path in files:
            client.log_artifact(run_id, str(path), "report")
        if artifact is not None:
            client.log_artifacts(run_id, str(artifact), "model")
        client.set_terminated(run_id)
        return run_id
    except Exception as exc:  # tracking never fails training
        log.warning("MLflow: run %s was not tracked at %s: %s", version, redact(uri),
                    redact(f"{type(exc).__name__}: {exc}"))  # fmt: skip
        if run_id is not None:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # the store is gone: nothing more to do
                log.debug("MLflow: could not mark run %s failed", run_id)
        return None


def _experiment(client: Any, name: str) -> str:
    """The experiment's id, created on first use (another process creating it first is fine)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)
