"""Benchmarks against peers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from matchwise.bench.movielens import (
    DEFAULT_SEEDS,
    parse_seeds,
    render_table,
    run_movielens_benchmark,
)
from matchwise.bench.people import run_people_benchmark
from matchwise.bench.speed_dating import PROTOCOLS, render_tables, run_speed_dating_benchmark
from matchwise.cli.render import (
    console,
)
from matchwise.errors import InvalidInput

bench_app = typer.Typer(help="Benchmarks against peer libraries.", no_args_is_help=True)


@bench_app.command("speed-dating")
def benchmark_speed_dating(
    path: Annotated[Path, typer.Argument(help="Speed Dating Experiment CSV")],
    protocol: Annotated[
        str, typer.Option(help="pair, new-event (whole evenings held out), replay or all")
    ] = "all",
    seed: Annotated[int, typer.Option(help="seed of the held-out pairs and the models")] = 42,
    pair_seeds: Annotated[
        str, typer.Option(help="the pair protocol once per seed (comma-separated): mean ± sd")
    ] = "42,7,1",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Decision AUC, match AUC and NDCG@5 of random, popularity, one-sided, reciprocal and
    matchwise's people ranking, under three protocols side by side: 20% of pairs held out,
    whole evenings held out (every test person new), and each held-out evening replayed in
    the order of its dates (earlier rounds' decisions known, with the reference model)."""

    if protocol not in (*PROTOCOLS, "all"):
        raise InvalidInput(f"--protocol must be {', '.join(PROTOCOLS)} or all, not {protocol!r}")
    chosen = PROTOCOLS if protocol == "all" else (protocol,)
    try:
        seeds = [int(v) for v in pair_seeds.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"--pair-seeds must be whole numbers separated by commas, "
                           f"not {pair_seeds!r}") from None  # fmt: skip
    if not seeds:
        raise InvalidInput("--pair-seeds needs at least one seed")
    result = run_speed_dating_benchmark(path, seed=seed, protocols=chosen, pair_seeds=seeds)
    if as_json:
        sys.stdout.write(json.dumps(result, default=float) + "\n")
        return
    for table in render_tables(result):
        console.print(table)


@bench_app.command("people")
def benchmark_people(
    users: Annotated[int, typer.Option(help="synthetic people")] = 1000,
    swipes: Annotated[int, typer.Option(help="synthetic swipes")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
    base: Annotated[str, typer.Option(help="one-sided model: two_tower or ease")] = "two_tower",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Reciprocal vs one-sided vs popularity on synthetic dating data (mutual matches).

    Both directions of a pair are held out together; '+ reverse' rows also get the other
    side's decision recorded before the user's own ("already likes you"), the rest do not.
    """

    result = run_people_benchmark(n_users=users, n_swipes=swipes, seed=seed, base=base)
    if as_json:
        sys.stdout.write(json.dumps(result, default=float) + "\n")
        return
    sizes = result["sizes"]
    table = Table(
        title=f"people: {result['dataset']}, {base} base, seed {seed}",
        caption=(
            f"{sizes['test_pairs']} test pairs (both directions held out), "
            f"{sizes['test_swipes']} test swipes, {sizes['test_matches']} of them in a match; "
            f"the other side's decision came first for {sizes['test_swipes_with_reverse']}"
        ),
    )
    full = result.get("full_ranking", {})
    table.add_column("scorer", no_wrap=True)
    for col in ("NDCG@10", "match AUC", "decision AUC", "full-ranking NDCG@10"):
        table.add_column(col, justify="right")
    for name, row in result["results"].items():
        table.add_row(name, f"{row['ndcg@10']:.3f}", f"{row['match_auc']:.3f}",
                      f"{row['decision_auc']:.3f}",
                      f"{full[name]:.3f}" if name in full else "")  # fmt: skip
    console.print(table)
    for pair, diff in result["paired"].items():
        console.print(
            f"{pair}: NDCG@10 {diff['ndcg@10_difference']:+.3f} "
            f"(95% paired bootstrap over users {diff['low']:+.3f} to {diff['high']:+.3f})"
        )


#: What `benchmark movielens` runs by default: the strongest baseline, the peers that fit
#: in seconds and the hybrid, in about five minutes on two cores.
QUICK_MODELS = ("popularity", "implicit_als", "ease", "hybrid")


@bench_app.command("movielens")
def benchmark_movielens(
    path: Annotated[Path, typer.Argument(help="MovieLens folder: 100K, 1M or latest")],
    protocol: Annotated[str, typer.Option(help="recbole or temporal")] = "recbole",
    k: Annotated[int, typer.Option(help="cut-off")] = 10,
    models: Annotated[
        str,
        typer.Option(
            help="comma-separated model names, or 'all' (adds the two-tower and BPR: about "
            "35 minutes on two cores; benchmarks/movielens/run.sh runs that)"
        ),
    ] = ",".join(QUICK_MODELS),
    seeds: Annotated[
        str, typer.Option(help="comma-separated split seeds (temporal runs the first only)")
    ] = ",".join(map(str, DEFAULT_SEEDS)),
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """matchwise's models and peer libraries, full ranking: each tuned on validation with
    the same budget, mean ± spread over split seeds, the difference to the strongest
    baseline with a paired bootstrap interval, and the run's provenance in the JSON."""

    if protocol not in ("recbole", "temporal"):
        raise InvalidInput(f"--protocol must be recbole or temporal, not {protocol!r}")
    if k < 1:
        raise InvalidInput("--k must be >= 1")
    names = None if models.strip() == "all" else [m.strip() for m in models.split(",")]
    result = run_movielens_benchmark(path, protocol=protocol, k=k, models=names,
                                     progress=not as_json,
                                     seeds=parse_seeds(seeds))  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    console.print(render_table(result))
