"""Online experiments (admin): create, list, show with per-arm statistics, stop, promote.
Each change is audit-logged by the service and taken up by this process's serving at
once (other processes within seconds: they read the running experiments every 10 s)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

from matchwise.api.actor import Actor
from matchwise.api.deps import RuntimeDep, StoreDep
from matchwise.api.routes.scopes import admin_router
from matchwise.ops import experiments
from matchwise.registry import ArtifactStore
from matchwise.runtime import Runtime
from matchwise.schemas import (
    ExperimentIn,
    ExperimentOut,
    ExperimentReportOut,
    PromoteIn,
    PromoteOut,
)
from matchwise.serve.experiments import experiment_book
from matchwise.serve.state import serving_state

admin = admin_router()

NamePath = Annotated[str, Path(min_length=1, max_length=64, description="The experiment's name")]


def _changed(runtime: Runtime, models: bool = False) -> None:
    experiment_book(runtime).invalidate()
    if models:
        serving_state(runtime).invalidate()


@admin.post("/v1/admin/experiments", response_model=ExperimentOut, status_code=201)
async def post_experiment(
    spec: ExperimentIn, store: StoreDep, runtime: RuntimeDep, actor: Actor
) -> ExperimentOut:
    """Create an experiment; it runs from ``starts_at`` (default now). 422 for arms that
    cannot serve (unknown model version, wrong domain, repeated names, weights <= 0),
    409 for a name in use or another experiment running in the same domain."""
    created = await store.write(experiments.create, store.settings, spec, actor)
    _changed(runtime)
    return created


@admin.get("/v1/admin/experiments", response_model=list[ExperimentOut])
async def get_experiments(
    store: StoreDep,
    status: Annotated[
        Literal["running", "ended", "stopped", "promoted"] | None,
        Query(description="Only experiments with this status; default all, newest first"),
    ] = None,
) -> list[ExperimentOut]:
    """Experiments, newest first."""
    return await store.read(experiments.list_experiments, status)


@admin.get("/v1/admin/experiments/{name}", response_model=ExperimentReportOut)
async def get_experiment(name: NamePath, store: StoreDep) -> ExperimentReportOut:
    """The experiment and its statistics so far: per arm users, impressions, CTR,
    conversion and per-user means with 95% intervals on users; each arm against the
    control with a fixed-horizon and an always-valid (sequential) interval and p-value;
    the sample-ratio check; users needed per arm; interleaving's wins and sign test."""
    return await store.read(experiments.report, name)


@admin.post("/v1/admin/experiments/{name}/stop", response_model=ExperimentOut)
async def stop_experiment(
    name: NamePath, store: StoreDep, runtime: RuntimeDep, actor: Actor
) -> ExperimentOut:
    """Stop a running experiment: its users get the default at once. 409 if not running."""
    stopped = await store.write(experiments.stop, name, actor)
    _changed(runtime)
    return stopped


@admin.post("/v1/admin/experiments/{name}/promote", response_model=PromoteOut)
async def promote_experiment(
    name: NamePath, body: PromoteIn, store: StoreDep, runtime: RuntimeDep, actor: Actor
) -> PromoteOut:
    """Make an arm what serves (default: the arm that beat the control with an
    always-valid p < 0.05): its model version is activated (audit-logged) and the
    experiment ends. 409 while the sample-ratio check flags the split, when no arm has
    won and none is named, or when the experiment is not running or stopped."""
    artifacts = ArtifactStore(runtime.settings.artifact_root)
    promoted = await store.write(experiments.promote, artifacts, name, body.arm, actor)
    _changed(runtime, models=True)
    return promoted
