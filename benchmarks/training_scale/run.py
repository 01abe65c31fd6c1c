"""Training at scale (issue 16 target 5): the full pipeline on 1,000,000 interactions.

Generates the ``large`` items preset (20,000 users, 5,000 items, 1,000,000 interactions:
``matchwise generate --domain items --size large``) into a store under ``--workdir``
(SQLite, or a PostgreSQL database with ``--store postgres``), then, in a fresh process so
that peak RSS is the pipeline's own, runs what ``matchwise train`` runs for each model:
the dataset from the store (:func:`~matchwise.train.dataset.build_dataset`), then
:func:`~matchwise.train.pipeline.train_model` (fit, validation and test full-ranking
evaluation, the popularity baseline, the report, saving and registering with
``--activate never``). The dataset is built once and shared by the models, as two
``matchwise train`` commands would each build it: ``pipeline_seconds`` counts it once.
Each stage's wall seconds, the peak RSS after each, and the models' evaluation metrics
(the quality check: same data, same seeds) go to ``results.json`` under ``--label``.

    .venv/bin/python benchmarks/training_scale/run.py --workdir /tmp/train16 --label after
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from matchwise.data.synthetic import generate, window_start
from matchwise.db.tables import Interaction
from matchwise.ingest.bulk import write_bundle
from matchwise.runtime import Runtime
from matchwise.settings import load_settings
from matchwise.train.dataset import build_dataset
from matchwise.train.pipeline import train_model

HERE = Path(__file__).resolve().parent
TARGET_SECONDS = 300.0
#: The generated data's last day: fixed, so every run trains on the same events.
ANCHOR = "2026-12-01"
KEEP = ("ndcg@10", "recall@10", "hit@10", "map@10", "precision@10", "coverage@10", "users")


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _metrics(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(values[k]), 4) for k in KEEP if k in values}


def _stored(runtime: Runtime) -> int:
    with runtime.session() as session:
        return int(session.execute(select(func.count()).select_from(Interaction)).scalar_one())


def phase_generate(size: str, seed: int) -> dict[str, Any]:
    """Write the preset into the store unless it already holds interactions."""
    runtime = Runtime.open(load_settings())
    have = _stored(runtime)
    if have:
        return {"interactions": have, "generated": False}
    start = time.perf_counter()
    bundle = generate("items", size=size, seed=seed, start=window_start(ANCHOR))
    made = time.perf_counter() - start
    stats = write_bundle(runtime, bundle, runtime.settings.action_table,
                         elo=runtime.settings.elo)  # fmt: skip
    return {"interactions": _stored(runtime), "generated": True,
            "generate_seconds": round(made, 1),
            "write_seconds": round(time.perf_counter() - start - made, 1),
            "written": stats["interactions"]}  # fmt: skip


def phase_pipeline(models: list[str], progress: bool) -> dict[str, Any]:
    """Dataset once, then each model through ``train_model``; seconds and RSS per stage."""
    runtime = Runtime.open(load_settings())
    settings = runtime.settings
    out: dict[str, Any] = {"rss_mib_at_start": _rss_mib()}
    start, cpu = time.perf_counter(), time.process_time()
    with runtime.session() as session:
        dataset = build_dataset(session, settings.action_table, settings.hash_secret,
                                domain="items", negative_samples=0, seed=settings.seed)  # fmt: skip
    out["dataset"] = {
        "seconds": round(time.perf_counter() - start, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "rss_mib": _rss_mib(),
        "rows": dataset.manifest["stats"]["rows"],
        "version": dataset.manifest["version"],
    }
    total = out["dataset"]["seconds"]
    for name in models:
        begun = time.perf_counter()
        result = train_model(runtime, name, dataset=dataset, activate="never",
                             progress=progress, actor="benchmark")  # fmt: skip
        seconds = time.perf_counter() - begun
        total += seconds
        fitted = result.stages
        out[name] = {
            "seconds": round(seconds, 2),
            "stages": {k: round(v, 2) for k, v in fitted.items()},
            "stage_cpu": {k: round(v, 2) for k, v in result.stage_cpu.items()},
            "rss_mib": _rss_mib(),
            "training": result.training,
            "validation": _metrics(result.validation),
            "test": {m: _metrics(v) for m, v in result.test.items()},
        }
        print(f"{name}: {seconds:.1f}s {out[name]['stages']}", file=sys.stderr, flush=True)
    out["pipeline_seconds"] = round(total, 2)
    out["peak_rss_mib"] = _rss_mib()
    return out


def _child(args: argparse.Namespace, phase: str, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--size", args.size,
               "--seed", str(args.seed), "--models", *args.models]  # fmt: skip
    if args.progress:
        command.append("--progress")
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/training_scale"))
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", help="a database to use (emptied first: its own)")
    parser.add_argument("--size", default="large", help="generator preset (large: 1M)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", nargs="+", default=["two_tower", "hybrid"])
    parser.add_argument("--label", default="run", help="key of this run in results.json")
    parser.add_argument("--progress", action="store_true", help="show the progress bars")
    parser.add_argument("--phase", choices=("generate", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    if args.phase == "generate":
        print(json.dumps(phase_generate(args.size, args.seed)))
        return
    if args.phase == "pipeline":
        print(json.dumps(phase_pipeline(args.models, args.progress)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{args.workdir / 'store.db'}"
    if args.store == "postgres":
        if not args.postgres_url:
            parser.error("--store postgres needs --postgres-url")
        url = args.postgres_url
    env = {**os.environ, "MATCHWISE_DATABASE_URL": url,
           "MATCHWISE_ARTIFACT_ROOT": str(args.workdir / "artifacts")}  # fmt: skip
    started = time.time()
    store = _child(args, "generate", env)
    print(json.dumps(store), flush=True)
    load_before = [round(v, 2) for v in os.getloadavg()]
    run = _child(args, "pipeline", env)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()  # fmt: skip
    record = {
        "command": "python benchmarks/training_scale/run.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "store": {"kind": args.store, **store},
        "target_seconds": TARGET_SECONDS,
        **run,
        "meets_target": run["pipeline_seconds"] <= TARGET_SECONDS,
        "wall_seconds": round(time.time() - started, 1),
    }
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.label] = record
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("pipeline_seconds", "peak_rss_mib",
                                             "meets_target")}))  # fmt: skip
    print(f"wrote {args.out} [{args.label}]")


if __name__ == "__main__":
    main()
