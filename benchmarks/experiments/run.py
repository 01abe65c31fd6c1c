"""Online experiments: users needed for 80% power, team-draft interleaving against A/B.

Run from the repository root::

    .venv/bin/python benchmarks/experiments/run.py [--reps 400] [--seed 2026]

Simulated users (``matchwise.experiments.simulation.RankingWorld``, its defaults): one
query each over 30 candidates with standard-normal relevance; ranker A sees relevance
through noise of sd 1.0, ranker B through sd 0.7 (B is truly better); 10 results shown;
a user examines position k (0-based) with probability 1 / (k + 1) and clicks an examined
item with probability activity * sigmoid(1.5 (relevance - 1)), activity ~ Beta(1, 1) per
user. The A/B test splits users half and half and compares CTR per user (Welch, delta
method, :mod:`matchwise.experiments.stats`); interleaving shows each user one team-draft
list and runs the sign test over users (:mod:`matchwise.experiments.interleaving`). Power
is the share of ``--reps`` simulated experiments that find B better at p < 0.05, on a
geometric grid of user counts (x1.5), interpolated in log users to 80%. As a check on the
simulation, the A/B figure is also computed from the sample-size formula with the
per-user sd and CTR difference measured on a large pilot. Writes
``benchmarks/experiments/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from matchwise.bench.provenance import provenance  # noqa: E402
from matchwise.experiments.simulation import (  # noqa: E402
    PowerCurve,
    RankingWorld,
    ab_power,
    interleaving_power,
    users_for_power,
)
from matchwise.experiments.stats import estimate, sample_size_mean  # noqa: E402


def _analytic_ab_users(world: RankingWorld, rng: np.random.Generator, pilot: int) -> dict:
    """Total A/B users for 80% power by the formula, from a large pilot of each ranker."""
    rel_a, top_a, _ = world.queries(rng, pilot)
    rel_b, _, top_b = world.queries(rng, pilot)
    shown = np.full(pilot, float(world.list_length))
    arm_a = estimate(world.clicks(rng, rel_a, top_a).sum(axis=1), shown)
    arm_b = estimate(world.clicks(rng, rel_b, top_b).sum(axis=1), shown)
    unit_sd = float(np.sqrt((arm_a.unit_sd**2 + arm_b.unit_sd**2) / 2))
    per_arm = sample_size_mean(unit_sd, arm_b.value - arm_a.value)
    return {
        "pilot_users_per_ranker": pilot,
        "ctr_a": arm_a.value,
        "ctr_b": arm_b.value,
        "relative_lift": arm_b.value / arm_a.value - 1,
        "unit_sd": unit_sd,
        "users_needed": 2 * per_arm,
    }


def _curve(curve: PowerCurve) -> dict:
    return {
        "users": list(curve.users),
        "power": list(curve.power),
        "users_needed": curve.users_needed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400, help="simulated experiments per point")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--pilot", type=int, default=200_000)
    parser.add_argument("--max-users", type=int, default=200_000, help="give up past this")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)

    world = RankingWorld()
    seeds = np.random.SeedSequence(args.seed).spawn(3)
    rng_il, rng_ab, rng_pilot = (np.random.default_rng(s) for s in seeds)
    timings = {}

    started = time.perf_counter()
    interleaved = users_for_power(
        lambda n: interleaving_power(world, n, args.reps, rng_il, args.alpha),
        target=args.target, start=100, growth=1.5, max_users=args.max_users,
    )  # fmt: skip
    timings["interleaving_s"] = time.perf_counter() - started
    started = time.perf_counter()
    ab = users_for_power(
        lambda n: ab_power(world, n, args.reps, rng_ab, args.alpha),
        target=args.target, start=100, growth=1.5, max_users=args.max_users,
    )  # fmt: skip
    timings["ab_s"] = time.perf_counter() - started
    analytic = _analytic_ab_users(world, rng_pilot, args.pilot)

    ratio = None
    if interleaved.users_needed and ab.users_needed:
        ratio = ab.users_needed / interleaved.users_needed
    print(f"users for {args.target:.0%} power, {args.reps} simulated experiments per point")
    print(f"{'design':<34} {'users needed':>12}")
    nan = float("nan")
    print(f"{'team-draft interleaving (sign test)':<34} {interleaved.users_needed or nan:>12.0f}")
    print(f"{'A/B test on CTR per user (Welch)':<34} {ab.users_needed or nan:>12.0f}")
    print(f"{'A/B by the sample-size formula':<34} {analytic['users_needed']:>12d}")
    if ratio is not None:
        print(f"A/B needs {ratio:.1f}x the users interleaving needs")
    for name, curve in (("interleaving", interleaved), ("A/B", ab)):
        points = ", ".join(f"{u}: {p:.3f}" for u, p in zip(curve.users, curve.power, strict=True))
        print(f"power curve {name}: {points}")

    result = {
        "target_power": args.target,
        "alpha": args.alpha,
        "reps": args.reps,
        "world": asdict(world),
        "interleaving": _curve(interleaved),
        "ab": _curve(ab),
        "ab_by_formula": analytic,
        "ab_over_interleaving": ratio,
        "timings": timings,
        "provenance": provenance(seed=args.seed, packages=("matchwise", "numpy", "scipy")),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
