"""Run the reliability drills (tests marked ``drill``) against the real PostgreSQL and
Redis the test suite uses, and print their figures as the Markdown table kept in
benchmarks/RESULTS.md ("Reliability drills").

    .venv/bin/python benchmarks/drills/run.py            # from the repository root

The drills assert their guarantees (no 5xx, every like stored, nothing lost); the table
records what each one cost on this machine: requests, status codes, wall time, p99.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _start(script: str) -> str:
    out = subprocess.run(["bash", str(ROOT / "scripts" / script), "start"], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    env = {**os.environ, "MATCHWISE_TEST_DATABASE_URL": _start("pg-test-server.sh"),
           "MATCHWISE_TEST_REDIS_URL": _start("redis-test-server.sh")}  # fmt: skip
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as report:
        env["MATCHWISE_DRILL_REPORT"] = report.name
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "drill", "-p",
                            "no:cacheprovider"], cwd=ROOT, env=env)  # fmt: skip
    rows = [
        json.loads(line) for line in Path(env["MATCHWISE_DRILL_REPORT"]).read_text().splitlines()
    ]
    print("\n| drill | requests | status codes | seconds | p99 ms | notes |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        codes = ", ".join(f"{n}× {c}" for c, n in row.pop("codes", {}).items())
        fixed = [row.pop(k, "") for k in ("drill", "requests", "seconds", "p99_ms")]
        notes = ", ".join(f"{k} {v}" for k, v in row.items())
        print(f"| {fixed[0]} | {fixed[1]} | {codes} | {fixed[2]} | {fixed[3]} | {notes} |")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
