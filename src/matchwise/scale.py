"""Work beyond one machine with Ray: the cache refresh fanned out over Ray actors, and
retraining with one Ray task per model type (registered together at the end).

The work is :func:`matchwise.serve.refresh.refresh_users` itself (or, for people lists,
:class:`matchwise.serve.people_refresh.PeopleRefresher`), run on chunks of users by Ray
actors (one per CPU); each actor opens its own store connection and loads the
active models once from ``artifact_root`` (on several machines that must be storage they
all reach: an ``s3://`` URL, or a shared folder) and the store must be PostgreSQL (or
SQLite on one machine). Every user's list is still replaced in one transaction, so readers never see
half a list, and an actor that dies is restarted and its chunk retried by Ray before the
refresh reports it.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import resource
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matchwise.errors import ConfigError
from matchwise.registry import ArtifactStore
from matchwise.runtime import Runtime, keep_freed_memory
from matchwise.serve.people_refresh import BLOCK as PEOPLE_BLOCK
from matchwise.serve.people_refresh import PeopleRefresher, people_by_place
from matchwise.serve.refresh import reconcile_online_visibility, refresh_users, users_to_refresh
from matchwise.serve.types import Kind, resolve_request
from matchwise.settings import Settings
from matchwise.train.pipeline import (
    Finish,
    PendingVersion,
    register_versions,
    train_summary,
    train_version,
)

log = logging.getLogger(__name__)

#: Most users a Ray refresh hands an actor at once (smaller chunks: finer progress and
#: less work redone when an actor dies; each costs a round trip).
CHUNK = 20_000
#: Fewest users in a chunk near the end of a big refresh (a block: smaller ones would
#: only add round trips).
LAST_CHUNK = 1_000


def chunk_sizes(total: int, workers: int, largest: int = CHUNK,
                smallest: int = LAST_CHUNK) -> list[int]:  # fmt: skip
    """How ``total`` users are cut for ``workers`` actors: each chunk a share of what is
    left (one in ``2 * workers``), at most ``largest`` and at least ``smallest`` (or, for
    a small refresh, a quarter of a worker's share, so every worker gets some), the last
    whatever remains. Chunks of one size left one actor finishing its last alone: ~20 s
    of a million-person refresh on one core of two; shrinking chunks end together."""
    if total <= 0:
        return []
    workers = max(workers, 1)
    smallest = max(1, min(smallest, math.ceil(total / (4 * workers))))
    sizes, left = [], total
    while left > 0:
        size = min(left, largest, max(smallest, math.ceil(left / (2 * workers))))
        sizes.append(size)
        left -= size
    return sizes


class _Refresher:
    """One Ray actor per CPU: opens the store and loads the active models once, then
    refreshes chunk after chunk. (A task per chunk loaded the models again for every
    chunk: the two-tower's user vectors and its ANN index take seconds at a million
    users.)"""

    def __init__(self, settings: dict[str, Any], top_n: int, kind: Kind) -> None:
        self.runtime = Runtime.open(Settings(**settings), migrate=False)
        keep_freed_memory(self.runtime.settings.refresh_keep_freed_mib)  # block after block
        self.top_n, self.kind = top_n, kind

    def refresh(self, user_ids: list[str]) -> dict[str, Any]:
        stats = refresh_users(self.runtime, user_ids, top_n=self.top_n, kind=self.kind)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {**stats, "peak_rss_mib": round(peak, 1), "pid": os.getpid()}

    def close(self) -> None:
        self.runtime.close()


def _train_one(settings: dict[str, Any], name: str, domain: str | None) -> PendingVersion:
    """One Ray task: train, evaluate and upload one model type; registering is the
    driver's, once every task is done."""
    runtime = Runtime.open(Settings(**settings), migrate=False)
    try:
        with tempfile.TemporaryDirectory(prefix="matchwise-ray-train-") as tmp:
            pending = train_version(runtime, name, Path(tmp), domain=domain)
            pending.upload(ArtifactStore(runtime.settings.artifact_root))
        pending.folder = None  # gone with the task's temporary folder
        return pending
    finally:
        runtime.close()


def train_with_ray(
    runtime: Runtime,
    names: Sequence[str],
    domain: str | None = None,
    actor: str = "cli",
    address: str | None = None,
    num_cpus: int | None = None,
    finish: Finish | None = None,
) -> dict[str, Any]:
    """Train several model types at once, one Ray task each (a task per model keeps each
    model's own training code as it is; Ray places the tasks on the cluster's cores), then
    register them all and activate the winners in one transaction, as
    :func:`matchwise.training.retrain` does; ``finish`` runs inside it."""
    ray = _ray(runtime, address)
    started_here = _start(ray, address or runtime.settings.ray_address, num_cpus)
    try:
        task = ray.remote(max_retries=1)(_train_one)
        settings = runtime.settings.model_dump()
        refs = [task.remote(settings, name, domain) for name in names]
        pending, failures = [], []
        for ref in refs:
            try:
                pending.append(ray.get(ref))
            except Exception as exc:  # the others' artifacts must not outlive the run
                failures.append(exc)
    finally:
        if started_here:
            ray.shutdown()
    if failures:
        store = ArtifactStore(runtime.settings.artifact_root)
        for item in pending:
            if item.uri is not None:
                store.remove(item.uri)
        raise failures[0]
    results = register_versions(runtime, pending, actor=f"{actor}+ray", finish=finish)
    return {result.model_type: train_summary(result) for result in results}


def _ray(runtime: Runtime, address: str | None) -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "Ray is not installed: pip install 'matchwise[scale]' (or ray) to use --ray"
        ) from exc
    remote = address or runtime.settings.ray_address
    if runtime.settings.database_url.startswith("sqlite") and remote not in (None, "local"):
        raise ConfigError("a Ray cluster needs a shared store: set database_url to PostgreSQL")
    return ray


def _start(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Start (or join) Ray unless this process already did; True when it was started here."""
    if ray.is_initialized():
        return False
    ray.init(address=None if address in (None, "local") else address, num_cpus=num_cpus,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    return True


class _PeopleRefresherActor:
    """One Ray actor per CPU for the people refresh: loads the people catalogue, the
    active people model and the distance cells once (seconds at a million people), then
    ranks chunk after chunk (:class:`~matchwise.serve.people_refresh.PeopleRefresher`)."""

    def __init__(self, settings: dict[str, Any], top_n: int, block: int) -> None:
        self.runtime = Runtime.open(Settings(**settings), migrate=False)
        self.refresher = PeopleRefresher.open(self.runtime)
        self.top_n, self.block = top_n, block

    def refresh(self, user_ids: list[str]) -> dict[str, Any]:
        return self.refresher.refresh(user_ids, self.top_n, self.block)

    def close(self) -> None:
        self.runtime.close()


def refresh_with_ray(
    runtime: Runtime,
    user_ids: Sequence[str] | None = None,
    top_n: int = 50,
    kind: Kind | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    chunk_size: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Refresh every active user's cache (or ``user_ids``) with Ray actors: item lists by
    :func:`~matchwise.serve.refresh.refresh_users` (the block scorer), people lists
    (``kind="user"``) by the batched people refresh, as :func:`refresh_people_with_ray`.

    ``address`` joins an existing cluster (``"auto"`` or ``ray://host:10001``); without it
    a local Ray starts with ``num_cpus`` (all cores by default) and stops afterwards.
    """
    top_n, list_kind = resolve_request(runtime.settings, top_n, kind)
    if list_kind == "user":
        return refresh_people_with_ray(runtime, user_ids, top_n, address, num_cpus, chunk_size,
                                       progress=progress)  # fmt: skip
    return _fan_out(runtime, user_ids, _Refresher, (top_n, list_kind), address, num_cpus,
                    chunk_size, progress)  # fmt: skip


def refresh_people_with_ray(
    runtime: Runtime,
    user_ids: Sequence[str] | None = None,
    top_n: int = 50,
    address: str | None = None,
    num_cpus: int | None = None,
    chunk_size: int | None = None,
    block: int = PEOPLE_BLOCK,
    progress: Any = None,
) -> dict[str, Any]:
    """Refresh every active person's people list (or ``user_ids``'), a
    :class:`~matchwise.serve.people_refresh.PeopleRefresher` per Ray actor (one per CPU),
    ``block`` people a transaction."""
    return _fan_out(runtime, user_ids, _PeopleRefresherActor, (top_n, block), address,
                    num_cpus, chunk_size, progress, order=people_by_place)  # fmt: skip


def _fan_out(
    runtime: Runtime,
    user_ids: Sequence[str] | None,
    actor_class: type,
    actor_args: tuple[Any, ...],
    address: str | None,
    num_cpus: int | None,
    chunk_size: int | None,
    progress: Any,
    order: Callable[[Runtime, list[str]], list[str]] | None = None,
) -> dict[str, Any]:
    """The Ray refreshes' scaffolding (``order`` sorts the users before they are cut into
    chunks): one ``actor_class(settings, *actor_args)`` per CPU,
    chunks of :func:`chunk_sizes` users (``chunk_size`` each when given) handed out as
    actors free up (each actor's ``refresh(chunk)`` returns users, rows, its pid and peak
    RSS), Redis's hidden sets
    reconciled after a full refresh. Returns counts and each actor's peak RSS
    (``actor_peak_rss_mib``, by process id)."""
    ray = _ray(runtime, address)
    full = user_ids is None
    user_ids = users_to_refresh(runtime, user_ids)
    started_here = _start(ray, address or runtime.settings.ray_address, num_cpus)
    users = rows = 0
    peaks: dict[int, float] = {}
    try:
        cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        sizes = ([chunk_size] * math.ceil(len(user_ids) / chunk_size) if chunk_size
                 else chunk_sizes(len(user_ids), cpus))  # fmt: skip
        remote = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(actor_class)
        settings = runtime.settings.model_dump()
        # the actors load (catalogue, index, model: most of a minute at a million) while
        # the users are put in order here
        actors = [remote.remote(settings, *actor_args) for _ in range(min(cpus, len(sizes)))]
        if order is not None:
            user_ids = order(runtime, user_ids)
        starts = [0, *itertools.accumulate(sizes)]
        chunks = [user_ids[a:b] for a, b in itertools.pairwise(starts)]
        if actors:
            pool = ray.util.ActorPool(actors)
            for stats in pool.map_unordered(lambda a, chunk: a.refresh.remote(chunk), chunks):
                users += stats["users"]
                rows += stats["rows"]
                pid = stats["pid"]
                peaks[pid] = max(peaks.get(pid, 0.0), stats["peak_rss_mib"])
                if progress is not None:
                    progress(stats["users"])
            ray.get([a.close.remote() for a in actors])
    finally:
        if started_here:
            ray.shutdown()
    if full:
        reconcile_online_visibility(runtime)
    return {"users": users, "rows": rows, "tasks": len(chunks), "cpus": cpus,
            "actor_peak_rss_mib": peaks}  # fmt: skip
