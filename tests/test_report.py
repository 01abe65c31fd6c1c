"""Training reports draw their plots without touching the process's matplotlib backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from matchwise.report import write_report


@pytest.fixture
def svg_backend() -> Iterator[None]:
    """A backend other than Agg, as a notebook's inline backend would be."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(before)


@pytest.mark.usefixtures("svg_backend")
def test_write_report_leaves_the_backend_alone(tmp_path: Path) -> None:
    # switching it to Agg made every later plot in a notebook vanish after train_model
    payload = {
        "model": "ease",
        "version": "ease-1",
        "test": {"ease": {"ndcg@10": 0.2}, "popularity": {"ndcg@10": 0.1}},
        "dataset": {"stats": {"labels": {"0.0": 3, "1.0": 5}}},
    }
    history = [{"epoch": 1, "loss": 0.9, "val_ndcg@10": 0.1}, {"epoch": 2, "loss": 0.5}]
    scores = np.linspace(0, 1, 20)
    _, page = write_report(tmp_path, "ease-1", payload, history, scores, scores[::-1])
    assert matplotlib.get_backend() == "svg"
    assert page.read_text().count("data:image/png;base64,") == 4
