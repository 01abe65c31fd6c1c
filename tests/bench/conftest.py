"""A MovieLens folder small enough for the benchmark's fast tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tiny_100k(tmp_path: Path) -> Path:
    """40 users x 30 items in the 100K layout, two taste groups, every user with 18 ratings."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    lines = []
    for user in range(1, 41):
        liked = np.arange(1, 16) if user % 2 else np.arange(16, 31)
        for item in rng.choice(liked, size=14, replace=False):
            lines.append(f"{user}\t{item}\t{rng.integers(3, 6)}\t{880000000 + 1000 * user + item}")
        for item in rng.choice(np.arange(1, 31), size=4, replace=False):
            lines.append(f"{user}\t{item}\t1\t{870000000 + 1000 * user + item}")
    (folder / "u.data").write_text("\n".join(dict.fromkeys(lines)) + "\n")
    flags = "|".join(["0"] * 19)
    (folder / "u.item").write_text(
        "".join(f"{i}|Movie {i} (1990)|01-Jan-1990||http://x/{i}|{flags}\n" for i in range(1, 31)),
        encoding="latin-1",
    )
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u}|{'MF'[u % 2]}|student|0000{u}\n" for u in range(1, 41))
    )
    return folder
