"""benchmarks/experiments/run.py runs end to end and writes its table's JSON (a tiny run:
the figures themselves come from the full run recorded in benchmarks/RESULTS.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "experiments" / "run.py"


def test_the_benchmark_writes_both_curves_the_ratio_and_provenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("experiments_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "results.json"
    module.main(["--reps", "3", "--pilot", "2000", "--max-users", "400", "--out", str(out)])
    result = json.loads(out.read_text())
    for design in ("interleaving", "ab"):
        curve = result[design]
        assert curve["users"][0] == 100 and len(curve["users"]) == len(curve["power"])
        assert all(0.0 <= p <= 1.0 for p in curve["power"])
    assert result["ab_by_formula"]["users_needed"] > 0
    assert result["reps"] == 3 and result["provenance"]["seed"] == 2026
    assert "users needed" in capsys.readouterr().out
