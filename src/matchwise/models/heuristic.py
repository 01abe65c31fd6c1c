"""The content + popularity heuristic (seed 004's fallback): what answers a cold user,
or anyone when no model is active. Pure functions over arrays the serving catalogue
holds; ``serve.items`` feeds them."""

from __future__ import annotations

import numpy as np

HEURISTIC_VERSION = "heuristic-1"


def top_by_score(score: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first, ties broken by id.

    Only the candidates that can make the cut are sorted: a string sort over the whole
    catalogue would cost more than the scoring itself.
    """
    if k < len(score):
        kth = np.partition(-score, k - 1)[k - 1]
        cut = np.flatnonzero(-score <= kth)
    else:
        cut = np.arange(len(score))
    return cut[np.lexsort((ids[cut], -score[cut]))][:k]


def normalise(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values, dtype=np.float64)


def list_phrase(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
