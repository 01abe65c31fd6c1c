"""Pure, seeded train/validation/test splits and k-core filtering of interactions.

Every split takes a frame (``user_id``, ``item_id``, ``label``, ``timestamp``, ...) or an
:class:`~matchwise.models.base.InteractionSet` and returns one part per ratio, of the same
type: frames keep their columns and index, interaction sets keep their id universe (so the
parts line up as matrices). Per-user splits follow RecBole's arithmetic: every part after
the first gets ``floor(ratio * n)`` of a user's ``n`` interactions (at least one when the
product is between 0 and 1 and the user has more than one left for training); the
training part gets the rest, and it gets a user's earliest interactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd

from matchwise.errors import InvalidInput
from matchwise.models.base import InteractionSet

__all__ = [
    "global_temporal_split",
    "k_core_filter",
    "leave_last_out",
    "random_split",
    "recbole_split",
    "split_counts",
    "temporal_split",
]

Data = TypeVar("Data", pd.DataFrame, InteractionSet)

DEFAULT_RATIOS: tuple[float, float, float] = (0.8, 0.1, 0.1)


# --- column access shared by frames and interaction sets -----------------------------------
def _users(data: pd.DataFrame | InteractionSet) -> np.ndarray:
    if isinstance(data, InteractionSet):
        return data.users
    _require(data, "user_id")
    return pd.factorize(data["user_id"])[0]


def _items(data: pd.DataFrame | InteractionSet) -> np.ndarray:
    if isinstance(data, InteractionSet):
        return data.items
    _require(data, "item_id")
    return pd.factorize(data["item_id"])[0]


def _timestamps(data: pd.DataFrame | InteractionSet) -> np.ndarray:
    if isinstance(data, InteractionSet):
        if data.timestamps is None:
            raise InvalidInput("a temporal split needs timestamps; this InteractionSet has none")
        values = data.timestamps
    else:
        _require(data, "timestamp")
        column = data["timestamp"]
        if isinstance(column.dtype, pd.DatetimeTZDtype):  # as UTC instants, vectorised
            return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
        values = column.to_numpy()
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64) or values.dtype == object:
        # tz-aware pandas columns arrive as objects: compare them as UTC instants
        values = pd.to_datetime(pd.Series(values), utc=True).to_numpy(dtype="datetime64[ns]")
    return values


def _require(frame: pd.DataFrame, column: str) -> None:
    if column not in frame.columns:
        raise InvalidInput(f"interaction frame has no {column!r} column")


def _take(data: Data, mask: np.ndarray) -> Data:
    if isinstance(data, InteractionSet):
        return data.subset(mask)
    return data.loc[mask]


def _ratios(ratios: Sequence[float]) -> np.ndarray:
    values = np.asarray(ratios, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2 or (values < 0).any() or values.sum() <= 0:
        raise InvalidInput(f"ratios must be two or more non-negative numbers, got {ratios!r}")
    return values / values.sum()


# --- per-user splitting arithmetic ----------------------------------------------------------
def split_counts(n: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """How many of each user's ``n`` interactions go to each part: shape ``(len(n), parts)``.

    RecBole's ``_calcu_split_ids``, vectorised: later parts get ``floor(ratio * n)``, a part
    whose share is below one interaction still gets one while training keeps more than one.
    """
    r = _ratios(ratios)
    n = np.asarray(n, dtype=np.int64)
    counts = np.zeros((len(n), len(r)), dtype=np.int64)
    for part in range(1, len(r)):
        counts[:, part] = np.floor(r[part] * n).astype(np.int64)
    counts[:, 0] = n - counts[:, 1:].sum(axis=1)
    for part in range(len(r) - 1, 0, -1):
        share = r[part] * n
        bump = (counts[:, 0] > 1) & (share > 0) & (share < 1)
        counts[bump, part] += 1
        counts[bump, 0] -= 1
    return counts


def _assign_by_position(
    users: np.ndarray, order: np.ndarray, ratios: Sequence[float]
) -> np.ndarray:
    """Part index of each row when each user's rows, taken in ``order``, are cut by ``ratios``."""
    sorted_users = users[order]
    # position of each row inside its user's ordered run
    boundaries = np.concatenate([[True], sorted_users[1:] != sorted_users[:-1]])
    run_start = np.flatnonzero(boundaries)
    run_id = np.cumsum(boundaries) - 1
    position = np.arange(len(order)) - run_start[run_id]
    run_length = np.diff(np.concatenate([run_start, [len(order)]]))
    cumulative = np.cumsum(split_counts(run_length, ratios), axis=1)[run_id]
    part_sorted = (position[:, None] >= cumulative).sum(axis=1)
    part = np.empty(len(order), dtype=np.int64)
    part[order] = part_sorted
    return part


def _parts(data: Data, part: np.ndarray, n_parts: int) -> tuple[Data, ...]:
    return tuple(_take(data, part == p) for p in range(n_parts))


# --- public splits ----------------------------------------------------------------------------
def temporal_split(data: Data, ratios: Sequence[float] = DEFAULT_RATIOS) -> tuple[Data, ...]:
    """Per user, in time order: each user's earliest interactions train, the latest test.

    Ties in time keep the input order, so the split is deterministic.
    """
    if len(data) == 0:
        return tuple(data for _ in _ratios(ratios))
    users = _users(data)
    order = np.lexsort((np.arange(len(users)), _timestamps(data), users))
    return _parts(data, _assign_by_position(users, order, ratios), len(ratios))


def random_split(
    data: Data, ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0
) -> tuple[Data, ...]:
    """Per user, in a seeded random order (RecBole's ``RS`` ordering)."""
    if len(data) == 0:
        return tuple(data for _ in _ratios(ratios))
    users = _users(data)
    shuffled = np.random.default_rng(seed).permutation(len(users))
    order = shuffled[np.argsort(users[shuffled], kind="stable")]
    return _parts(data, _assign_by_position(users, order, ratios), len(ratios))


def global_temporal_split(
    data: Data,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    cutoffs: Sequence[object] | None = None,
) -> tuple[Data, ...]:
    """One cut-off time for everyone, as production sees it: train strictly before the test.

    Cut-offs default to the timestamps at the cumulative ``ratios`` quantiles; rows at a
    cut-off go to the later part, so no part holds a time later than any row of the next.
    ``cutoffs`` (one fewer than parts, ascending, same type as the timestamps) overrides.
    """
    times = _timestamps(data)
    if cutoffs is None:
        r = _ratios(ratios)
        if len(times) == 0:
            return tuple(data for _ in r)
        sorted_times = np.sort(times, kind="stable")
        positions = np.floor(np.cumsum(r)[:-1] * len(times) + 1e-9).astype(np.int64)
        positions = np.minimum(positions, len(times) - 1)
        bounds = sorted_times[positions]
        n_parts = len(r)
    else:
        bounds = np.asarray(cutoffs)
        if np.issubdtype(times.dtype, np.datetime64):
            bounds = pd.to_datetime(pd.Series(list(cutoffs)), utc=True).to_numpy("datetime64[ns]")
        if not np.all(bounds[:-1] <= bounds[1:]):
            raise InvalidInput("cutoffs must be ascending")
        n_parts = len(bounds) + 1
    part = np.searchsorted(bounds, times, side="right")
    return _parts(data, part, n_parts)


def leave_last_out(data: Data, n_test: int = 1, n_valid: int = 1) -> tuple[Data, Data, Data]:
    """Each user's last ``n_test`` interactions test, the ``n_valid`` before them validate.

    A user with no more than ``n_test + n_valid`` interactions stays wholly in training
    (so nobody is evaluated without history).
    """
    if n_test < 0 or n_valid < 0:
        raise InvalidInput("n_test and n_valid must be >= 0")
    empty = np.zeros(len(data), dtype=bool)
    if len(data) == 0:
        return _take(data, empty), _take(data, empty), _take(data, empty)
    users = _users(data)
    order = np.lexsort((np.arange(len(users)), _timestamps(data), users))
    sorted_users = users[order]
    boundaries = np.concatenate([[True], sorted_users[1:] != sorted_users[:-1]])
    run_start = np.flatnonzero(boundaries)
    run_id = np.cumsum(boundaries) - 1
    length = np.diff(np.concatenate([run_start, [len(order)]]))[run_id]
    from_end = length - (np.arange(len(order)) - run_start[run_id])  # 1 = the last one
    eligible = length > n_test + n_valid
    part_sorted = np.where(
        eligible & (from_end <= n_test),
        2,
        np.where(eligible & (from_end <= n_test + n_valid), 1, 0),
    )
    part = np.empty(len(order), dtype=np.int64)
    part[order] = part_sorted
    train, valid, test = _parts(data, part, 3)
    return train, valid, test


def k_core_filter(
    data: Data, k: int = 10, user_k: int | None = None, item_k: int | None = None
) -> Data:
    """Drop users and items with fewer than ``k`` interactions, repeating until stable.

    Counts are interactions (rows), as RecBole counts them; ``user_k`` / ``item_k``
    override ``k`` for one side (0 disables it).
    """
    user_min = k if user_k is None else user_k
    item_min = k if item_k is None else item_k
    users, items = _users(data), _items(data)
    keep = np.ones(len(users), dtype=bool)
    while True:
        user_count = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        item_count = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        new_keep = keep & (user_count[users] >= user_min) & (item_count[items] >= item_min)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    return _take(data, keep)


def recbole_split(
    frame: pd.DataFrame,
    seed: int = 2020,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    rating_column: str = "rating",
    min_rating: float = 3.0,
    k: int = 10,
    order: str = "random",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """RecBole's standard MovieLens protocol: ratings >= 3, iterative 10-core, 8:1:1 per user.

    Kept ratings become implicit positives (``label = 1``). ``order="temporal"`` swaps the
    seeded shuffle for time order (RecBole's ``TO``), keeping the same filtering.
    """
    _require(frame, rating_column)
    kept = frame.loc[frame[rating_column].to_numpy(dtype=np.float64) >= min_rating].copy()
    kept["label"] = np.float32(1.0)
    kept = k_core_filter(kept, k)
    if order == "random":
        parts = random_split(kept, ratios, seed=seed)
    elif order == "temporal":
        parts = temporal_split(kept, ratios)
    else:
        raise InvalidInput(f"order must be 'random' or 'temporal', got {order!r}")
    if len(parts) != 3:
        raise InvalidInput("recbole_split needs three ratios (train, validation, test)")
    return parts[0], parts[1], parts[2]
