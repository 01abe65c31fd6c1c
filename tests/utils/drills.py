"""Helpers for the concurrency and fault drills: fire many requests at once at a live
server and keep the figures (codes, time) for benchmarks/RESULTS.md."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Burst:
    """What a burst of requests got back."""

    codes: Counter[int] = field(default_factory=Counter)
    bodies: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500)

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
        return {"requests": sum(self.codes.values()), "codes": dict(sorted(self.codes.items())),
                "seconds": round(self.seconds, 3), "p99_ms": round(1000 * p99, 1)}  # fmt: skip


async def _burst(base_url: str, headers: dict[str, str], requests: Sequence[tuple[str, str, Any]],
                 timeout: float) -> Burst:  # fmt: skip
    out = Burst()
    limits = httpx.Limits(max_connections=len(requests) + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=timeout) as client:  # fmt: skip
        gate = asyncio.Event()

        async def one(method: str, path: str, body: Any) -> None:
            await gate.wait()
            started = time.perf_counter()
            response = await client.request(method, path, json=body)
            out.latencies.append(time.perf_counter() - started)
            out.codes[response.status_code] += 1
            out.bodies.append(response.json() if response.content else None)

        tasks = [asyncio.create_task(one(*r)) for r in requests]
        await asyncio.sleep(0.05)  # every task is waiting at the gate
        started = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        out.seconds = time.perf_counter() - started
    return out


def burst(base_url: str, headers: dict[str, str], requests: Sequence[tuple[str, str, Any]],
          timeout: float = 120.0) -> Burst:  # fmt: skip
    """Send every request at the same moment (one connection each); wait for all."""
    return asyncio.run(_burst(base_url, headers, requests, timeout))


def record(drill: str, **figures: Any) -> None:
    """Append a drill's figures to ``$MATCHWISE_DRILL_REPORT`` (JSON lines), when set:
    ``benchmarks/drills/run.sh`` collects them for RESULTS.md."""
    path = os.environ.get("MATCHWISE_DRILL_REPORT")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"drill": drill, **figures}) + "\n")
