"""Progress bars for a training's long stages: shown by the CLI (on stderr, so ``--json``
output stays clean), never by tests or jobs, which train with ``progress=False``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from matchwise.models.base import InteractionSet

#: Advance a bar by this many units of its work.
Advance = Callable[[int], None]


@contextmanager
def stage_bar(show: bool, label: str, total: int | None = None) -> Iterator[Advance]:
    """A bar over ``total`` units (a spinner with elapsed time when the total is unknown);
    a no-op when ``show`` is off."""
    if not show:
        yield lambda n: None
        return
    columns = (SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def users_to_rank(test: InteractionSet) -> int:
    """How many users a full-ranking evaluation of ``test`` scores: those with a positive."""
    return int(np.count_nonzero(np.diff(test.to_csr(positive_only=True).indptr)))


def counting(model: Any, advance: Advance) -> Callable[[np.ndarray], np.ndarray]:
    """``model.score`` that advances a bar by the users it scored."""

    def score(users: np.ndarray) -> np.ndarray:
        scores = model.score(users)
        advance(len(users))
        return np.asarray(scores)

    return score
