"""MLflow tracking of training runs (issue 13 item 6), against a real local MLflow store
(SQLite tracking, local artifacts) read back with ``MlflowClient``: the run holds the
parameters, metrics, report and model folder; a store that cannot be reached only warns.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from matchwise import registry
from matchwise.data.synthetic import generate_items
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.pipeline import train_model

mlflow = pytest.importorskip("mlflow")
MlflowClient = mlflow.tracking.MlflowClient


def _store(sqlite_url: str, tmp_path: Path, tracking_uri: str) -> Runtime:
    settings = Settings(database_url=sqlite_url, artifact_root=str(tmp_path / "artifacts"),
                        mlflow_tracking_uri=tracking_uri, mlflow_experiment="tests")  # fmt: skip
    runtime = Runtime.open(settings, migrate=False)
    start = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=30)
    bundle = generate_items(n_users=50, n_items=30, n_interactions=1200, seed=3, start=start)
    write_bundle(runtime, bundle, settings.action_table)
    return runtime


def test_a_training_run_is_logged_with_params_metrics_report_and_artifact(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runtime = _store(sqlite_url, tmp_path, uri)
    try:
        result = train_model(runtime, "ease", activate="always")
        with runtime.session() as session:
            active = registry.active_version(session, "ease")
            assert active is not None and active.version == result.version  # what serves
    finally:
        runtime.close()

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tests")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["matchwise.version"] == result.version
    assert run.data.tags["matchwise.model_type"] == "ease"
    assert run.data.params["model"] == "ease"
    assert run.data.params["dataset"] == result.dataset_version
    assert any(key.startswith("config.") for key in run.data.params)
    assert run.data.metrics["validation.ndcg_at_10"] == pytest.approx(result.validation["ndcg@10"])
    assert run.data.metrics["test.ease.ndcg_at_10"] == pytest.approx(result.test["ease"]["ndcg@10"])
    assert "test.popularity.ndcg_at_10" in run.data.metrics
    reports = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "report")}
    assert reports == {f"{result.version}.json", f"{result.version}.html"}
    model_files = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "model")}
    assert "training.json" in model_files


def test_an_unreachable_tracking_store_warns_and_training_goes_on(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the tracking store's folder should be")
    runtime = _store(sqlite_url, tmp_path, f"sqlite:///{blocker / 'mlflow.db'}")
    try:
        with caplog.at_level(logging.WARNING, logger="matchwise.train.tracking"):
            result = train_model(runtime, "ease", activate="always")
        with runtime.session() as session:
            assert registry.active_version(session, "ease") is not None
    finally:
        runtime.close()
    assert result.registry_id is not None and result.activated
    assert any("was not tracked" in r.getMessage() for r in caplog.records)
