"""LightGBM lambdarank re-ranker (seed 001) and the pair features it and the logistic model use.

Two halves, both pure:

- :class:`FeatureContext` + :func:`candidate_features`: per-user and per-item statistics
  computed once from training interactions (popularity, recency, history tag and category
  profiles, city, owner, start time, Elo, age), turned into one feature row per
  (user, candidate) pair, vectorised over a batch of users. Generator scores (EASE,
  ALS, two-tower...) become score / rank / gap-to-top / z-score features. Side columns
  that are missing simply leave their features out, so MovieLens, events and people
  share one builder.
- :class:`LightGBMRanker`: lambdarank on a feature matrix grouped by user, early-stopped
  on a held-out share of users, exported to ONNX and scored with ONNX Runtime (one CPU
  thread), saved as ``model.txt`` + ``model.onnx`` + ``ranker.json`` (no pickle).

LightGBM and ONNX Runtime are imported lazily, so the feature half stays cheap to import.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.metrics import grouped_ndcg
from matchwise.models.base import InteractionSet

log = logging.getLogger(__name__)

RANKER_MANIFEST = "ranker.json"
MODEL_TEXT = "model.txt"
MODEL_ONNX = "model.onnx"
DAY = 86_400.0
#: lambdarank and rank_xendcg learn the order within a user; binary scores pairs one by one
OBJECTIVES = ("lambdarank", "rank_xendcg", "binary")

__all__ = [
    "FeatureContext",
    "LightGBMRanker",
    "candidate_features",
    "grouped_ranks",
]


# --- side-feature helpers ---------------------------------------------------------------------
def align_rows(frame: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame | None:
    """Rows of ``frame`` in dense-index order: by its ``id`` column, else by position.

    ``InteractionSet`` side features may carry an ``id`` column (store datasets) or be
    indexed by dense index; ids absent from the frame give rows of missing values.
    """
    if frame is None:
        return None
    if "id" in frame.columns:
        keyed = frame.drop_duplicates("id", keep="last")
        key = pd.Index(keyed["id"].astype(str))
        positions = key.get_indexer(pd.Index(np.asarray(ids).astype(str)))
        out = keyed.iloc[np.where(positions >= 0, positions, 0)].reset_index(drop=True)
        if (positions < 0).any():
            out = out.astype(object)
            out.loc[positions < 0, :] = None
        return out
    if len(frame) == len(ids):
        return frame.reset_index(drop=True)
    return frame.reindex(range(len(ids))).reset_index(drop=True)


def _column(frame: pd.DataFrame | None, name: str) -> pd.Series | None:
    if frame is None or name not in frame.columns:
        return None
    column = frame[name]
    return None if column.isna().all() else column


def _tag_lists(column: pd.Series) -> list[list[str]]:
    """Tags as lists of strings, whatever the storage (list, array, comma string, None)."""
    out: list[list[str]] = []
    for value in column.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append([])
        elif isinstance(value, str):
            out.append([t.strip().lower() for t in value.split(",") if t.strip()])
        else:
            out.append([str(t).strip().lower() for t in value if t is not None])
    return out


def _multi_hot(lists: list[list[str]], vocabulary: dict[str, int]) -> sp.csr_matrix:
    rows = [r for r, tags in enumerate(lists) for t in set(tags) if t in vocabulary]
    cols = [vocabulary[t] for tags in lists for t in set(tags) if t in vocabulary]
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(lists), len(vocabulary)),
    )


def _codes(*columns: pd.Series | None) -> list[np.ndarray | None]:
    """Integer codes over one shared vocabulary (-1 for missing), one array per column."""
    present = [c for c in columns if c is not None]
    if not present:
        return [None for _ in columns]
    values = pd.concat([c.astype("string").str.strip().str.lower() for c in present])
    vocabulary = pd.Index(pd.unique(values.dropna()))
    out: list[np.ndarray | None] = []
    for column in columns:
        if column is None:
            out.append(None)
            continue
        keys = column.astype("string").str.strip().str.lower()
        codes = vocabulary.get_indexer(keys.fillna("\x00missing"))
        out.append(codes.astype(np.int64))
    return out


def _numeric(column: pd.Series | None) -> np.ndarray | None:
    if column is None:
        return None
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    return None if np.isnan(values).all() else values


def _seconds(values: Any) -> np.ndarray:
    """Timestamps (Unix seconds, datetimes, strings) as float seconds; NaN when missing."""
    array = np.asarray(values)
    if array.dtype.kind in "iuf":
        return array.astype(np.float64)
    stamps = pd.to_datetime(pd.Series(array), utc=True, errors="coerce")
    seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


# --- the feature context ----------------------------------------------------------------------
@dataclass
class FeatureContext:
    """What pair features need from training data, computed once and reused per batch.

    Arrays are indexed by dense user / item index. Optional parts are ``None`` when the
    data lacks them (no tags, no city...), and their features are left out.
    """

    history: sp.csr_matrix  # users x items, 1 per positive
    interactions: sp.csr_matrix | None  # users x items, max label of non-positive events
    item_count: np.ndarray
    item_recent: np.ndarray
    item_first_days: np.ndarray | None  # days before the reference time of the first positive
    item_last_days: np.ndarray | None
    user_first_days: np.ndarray | None  # the user's active period, days before the reference
    user_last_days: np.ndarray | None
    user_mid_days: np.ndarray | None
    item_times: sp.csr_matrix | None  # items x 1 runs of positive times (days before ref)
    window_days: float
    item_tags: sp.csr_matrix | None  # items x tags
    user_stated_tags: sp.csr_matrix | None  # users x tags
    item_category: np.ndarray | None
    n_categories: int = 0
    user_city: np.ndarray | None = None
    item_city: np.ndarray | None = None
    item_owner: np.ndarray | None = None
    n_owners: int = 0
    item_start_days: np.ndarray | None = None  # days from the reference time to the start
    item_elo: np.ndarray | None = None
    user_age: np.ndarray | None = None
    item_age: np.ndarray | None = None
    reference_time: float = 0.0
    # derived in __post_init__
    user_count: np.ndarray = field(init=False, repr=False)
    user_mean_pop: np.ndarray = field(init=False, repr=False)
    user_tag_counts: sp.csr_matrix | None = field(init=False, repr=False)
    user_category_counts: sp.csr_matrix | None = field(init=False, repr=False)
    user_owner_counts: sp.csr_matrix | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.history = sp.csr_matrix(self.history, dtype=np.float32)
        n_users, n_items = self.history.shape
        self.user_count = np.asarray(self.history.sum(axis=1)).ravel().astype(np.float32)
        log_pop = np.log1p(self.item_count).astype(np.float32)
        totals = np.asarray(self.history @ log_pop).ravel()
        self.user_mean_pop = np.divide(
            totals, self.user_count, out=np.zeros(n_users, np.float32), where=self.user_count > 0
        ).astype(np.float32)
        self.user_tag_counts = (
            None if self.item_tags is None else sp.csr_matrix(self.history @ self.item_tags)
        )
        self.user_category_counts = None
        if self.item_category is not None and self.n_categories:
            self.user_category_counts = sp.csr_matrix(
                self.history @ _one_hot(self.item_category, self.n_categories)
            )
        self.user_owner_counts = None
        if self.item_owner is not None and self.n_owners:
            self.user_owner_counts = sp.csr_matrix(
                self.history @ _one_hot(self.item_owner, self.n_owners)
            )

    @property
    def n_users(self) -> int:
        return int(self.history.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.history.shape[1])

    @classmethod
    def from_interactions(
        cls,
        train: InteractionSet,
        positive_threshold: float = 0.7,
        recent_share: float = 0.1,
        reference_time: float | None = None,
        window_share: float = 0.05,
    ) -> FeatureContext:
        """Statistics of ``train`` (positives: ``label >= positive_threshold``).

        ``recent_share`` is the last share of the training time span counted as "recent";
        ``reference_time`` (Unix seconds) defaults to the latest training timestamp;
        ``window_share`` of the time span is the half-width of the "popular around the
        user's active time" window.
        """
        n_users, n_items = train.n_users, train.n_items
        positive = train.labels >= positive_threshold
        history = sp.csr_matrix(
            (
                np.ones(int(positive.sum()), np.float32),
                (train.users[positive], train.items[positive]),
            ),
            shape=(n_users, n_items),
        )
        history.sum_duplicates()
        history.data[:] = 1.0
        item_count = np.asarray(history.sum(axis=0)).ravel().astype(np.float32)
        interactions = None
        if (~positive).any():
            weak = ~positive
            interactions = sp.csr_matrix(
                (
                    train.labels[weak] + np.float32(1e-3),  # a label-0 event still counts
                    (train.users[weak], train.items[weak]),
                ),
                shape=(n_users, n_items),
            )
            interactions = _max_duplicates(interactions)

        item_recent = item_count.copy()
        first = last = user_first = user_last = user_mid = item_times = None
        window = 0.0
        times = None if train.timestamps is None else _seconds(train.timestamps)
        if times is not None and np.isfinite(times).any():
            t_pos = times[positive]
            finite = np.isfinite(t_pos)
            ref = float(np.nanmax(times)) if reference_time is None else float(reference_time)
            reference_time = ref
            if finite.any():
                t_min = float(np.nanmin(t_pos))
                cut = ref - recent_share * (ref - t_min)
                recent = finite & (t_pos >= cut)
                items_pos = train.items[positive]
                item_recent = np.bincount(items_pos[recent], minlength=n_items).astype(np.float32)
                first = np.full(n_items, np.inf)
                last = np.full(n_items, -np.inf)
                np.minimum.at(first, items_pos[finite], t_pos[finite])
                np.maximum.at(last, items_pos[finite], t_pos[finite])
                first = np.where(np.isfinite(first), (ref - first) / DAY, np.nan)
                last = np.where(np.isfinite(last), (ref - last) / DAY, np.nan)
                # the user's active period, and every positive's time by item (days before ref)
                users_pos = train.users[positive][finite]
                ago = (ref - t_pos[finite]) / DAY
                frame = pd.DataFrame({"u": users_pos, "ago": ago})
                stats = frame.groupby("u")["ago"].agg(["min", "max", "median"])
                user_first = np.full(n_users, np.nan)
                user_last = np.full(n_users, np.nan)
                user_mid = np.full(n_users, np.nan)
                index = stats.index.to_numpy()
                user_first[index] = stats["max"].to_numpy()
                user_last[index] = stats["min"].to_numpy()
                user_mid[index] = stats["median"].to_numpy()
                order = np.lexsort((ago, items_pos[finite]))
                counts = np.bincount(items_pos[finite], minlength=n_items)
                item_times = sp.csr_matrix(
                    (ago[order].astype(np.float32), np.zeros(len(order), np.int32),
                     np.concatenate([[0], np.cumsum(counts)])),
                    shape=(n_items, 1),
                )  # fmt: skip
                window = max(1.0, window_share * (ref - t_min) / DAY)
        reference = float(reference_time) if reference_time is not None else 0.0

        users = align_rows(train.user_features, train.user_ids)
        item_frame = train.item_features
        if item_frame is None and train.meta.get("domain") == "people":
            item_frame = train.user_features  # people as candidates: one profile frame
        items = align_rows(item_frame, train.item_ids)
        item_tags = stated = None
        item_tag_col, user_tag_col = _column(items, "tags"), _column(users, "tags")
        if item_tag_col is not None:
            item_lists = _tag_lists(item_tag_col)
            user_lists = _tag_lists(user_tag_col) if user_tag_col is not None else None
            words = sorted({t for tags in item_lists for t in tags})
            vocabulary = {t: k for k, t in enumerate(words)}
            if vocabulary:
                item_tags = _multi_hot(item_lists, vocabulary)
                if user_lists is not None and any(user_lists):
                    stated = _multi_hot(user_lists, vocabulary)
        (category,) = _codes(_column(items, "category"))
        user_city, item_city = _codes(_column(users, "city"), _column(items, "city"))
        if user_city is None or item_city is None:
            user_city = item_city = None
        (owner,) = _codes(_column(items, "owner_id"))
        start = None
        start_col = _column(items, "starts_at")
        if start_col is not None:
            start = (_seconds(start_col) - reference) / DAY
        return cls(
            history=history,
            interactions=interactions,
            item_count=item_count,
            item_recent=item_recent,
            item_first_days=None if first is None else first.astype(np.float32),
            item_last_days=None if last is None else last.astype(np.float32),
            user_first_days=user_first,
            user_last_days=user_last,
            user_mid_days=user_mid,
            item_times=item_times,
            window_days=window,
            item_tags=item_tags,
            user_stated_tags=stated,
            item_category=category,
            n_categories=0 if category is None else int(category.max(initial=-1) + 1),
            user_city=user_city,
            item_city=item_city,
            item_owner=owner,
            n_owners=0 if owner is None else int(owner.max(initial=-1) + 1),
            item_start_days=start,
            item_elo=_numeric(_column(items, "elo")),
            user_age=_numeric(_column(users, "age")),
            item_age=_numeric(_column(items, "age")),
            reference_time=reference,
        )

    # --- persistence as plain arrays (npz, no pickle) ------------------------------------
    def to_arrays(self, prefix: str = "ctx/") -> dict[str, np.ndarray]:
        """Flat name -> array mapping for ``np.savez`` (sparse matrices as CSR triplets)."""
        out: dict[str, np.ndarray] = {
            f"{prefix}meta": np.array(
                [self.n_categories, self.n_owners, self.reference_time, self.window_days],
                dtype=np.float64,
            )
        }
        for name in _SPARSE:
            matrix = getattr(self, name)
            if matrix is not None:
                m = sp.csr_matrix(matrix)
                out[f"{prefix}{name}.data"] = m.data
                out[f"{prefix}{name}.indices"] = m.indices
                out[f"{prefix}{name}.indptr"] = m.indptr
                out[f"{prefix}{name}.shape"] = np.asarray(m.shape, dtype=np.int64)
        for name in _DENSE:
            value = getattr(self, name)
            if value is not None:
                out[f"{prefix}{name}"] = np.asarray(value)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "ctx/") -> FeatureContext:
        """Rebuild from :meth:`to_arrays`' mapping; a missing part raises ArtifactError."""

        def sparse(name: str) -> sp.csr_matrix | None:
            key = f"{prefix}{name}"
            if f"{key}.data" not in arrays:
                return None
            shape = tuple(int(v) for v in arrays[f"{key}.shape"])
            return sp.csr_matrix(
                (arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"]),
                shape=shape,
            )

        if f"{prefix}meta" not in arrays or f"{prefix}history.data" not in arrays:
            raise ArtifactError("feature context arrays are missing (history/meta)")
        meta = arrays[f"{prefix}meta"]
        values: dict[str, Any] = {name: sparse(name) for name in _SPARSE}
        for name in _DENSE:
            key = f"{prefix}{name}"
            values[name] = np.asarray(arrays[key]) if key in arrays else None
        if values["item_count"] is None or values["item_recent"] is None:
            raise ArtifactError("feature context arrays are missing item counts")
        return cls(
            n_categories=int(meta[0]),
            n_owners=int(meta[1]),
            reference_time=float(meta[2]),
            window_days=float(meta[3]),
            **values,
        )


_SPARSE = ("history", "interactions", "item_tags", "user_stated_tags", "item_times")
_DENSE = (
    "item_count",
    "item_recent",
    "item_first_days",
    "item_last_days",
    "user_first_days",
    "user_last_days",
    "user_mid_days",
    "item_category",
    "user_city",
    "item_city",
    "item_owner",
    "item_start_days",
    "item_elo",
    "user_age",
    "item_age",
)


def _one_hot(codes: np.ndarray, n: int) -> sp.csr_matrix:
    valid = codes >= 0
    return sp.csr_matrix(
        (np.ones(int(valid.sum()), np.float32), (np.flatnonzero(valid), codes[valid])),
        shape=(len(codes), n),
    )


def _window_counts(
    times: sp.csr_matrix, items: np.ndarray, centers: np.ndarray, half: float
) -> np.ndarray:
    """Per pair, how many of item ``items[k]``'s positives lie within ``half`` days of
    ``centers[k]`` (NaN centre: 0). ``times`` holds each item's sorted times as one run."""
    values = times.data.astype(np.float64)
    if len(values) == 0 or len(items) == 0:
        return np.zeros(len(items), np.float64)
    span = float(values.max()) + 2 * half + 2.0
    run = np.repeat(np.arange(times.shape[0]), np.diff(times.indptr))
    keys = run * span + (values + half + 1.0)  # ascending: item-major, time within item
    valid = np.isfinite(centers)
    c = np.where(valid, centers, 0.0) + half + 1.0
    lo = items * span + np.clip(c - half, 0.0, span - 1.0)
    hi = items * span + np.clip(c + half, 0.0, span - 1.0)
    count = np.searchsorted(keys, hi, side="right") - np.searchsorted(keys, lo, side="left")
    return np.where(valid, count, 0).astype(np.float64)


def _max_duplicates(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Collapse duplicate entries by max (``sum_duplicates`` would add labels)."""
    coo = matrix.tocoo()
    if coo.nnz == 0:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    key = coo.row.astype(np.int64) * matrix.shape[1] + coo.col
    order = np.lexsort((-coo.data, key))
    key, data = key[order], coo.data[order]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    key, data = key[first], data[first]
    return sp.csr_matrix(
        (data.astype(np.float32), (key // matrix.shape[1], key % matrix.shape[1])),
        shape=matrix.shape,
    )


# --- pair features ------------------------------------------------------------------------
def _gather_sparse(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows, cols]`` as a flat float32 array (zeros where absent)."""
    if len(rows) == 0:
        return np.zeros(0, np.float32)
    return np.asarray(matrix[rows, cols], dtype=np.float32).ravel()


def _pair_dot(
    left: sp.csr_matrix, right: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Row-wise dot products ``left[rows[k]] · right[cols[k]]`` without a dense product."""
    if len(rows) == 0:
        return np.zeros(0, np.float32)
    product = left[rows].multiply(right[cols])
    return np.asarray(product.sum(axis=1), dtype=np.float32).ravel()


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Per row, the column indices from the highest score down, ties by position: what
    ``np.argsort(-scores, axis=1, kind="stable")`` gives (NaN counts as ``-inf``).

    Sorts one int64 key per entry (the float's bits in score order, then the position)
    instead of a stable argsort: 5x less CPU at 5,000 items, where the hybrid's rank
    features sorted every user's whole catalogue once per generator (issue 16).
    """
    values = np.array(scores, dtype=np.float32, ndmin=2) + np.float32(0.0)  # -0.0 is 0.0
    values[np.isnan(values)] = -np.inf
    n = values.shape[1]
    bits = max(1, (n - 1).bit_length())
    raw = values.view(np.int32)
    ordered = raw ^ ((raw >> 31) & np.int32(0x7FFFFFFF))  # ints in the floats' order
    keys = (-ordered.astype(np.int64) << bits) | np.arange(n, dtype=np.int64)
    keys.sort(axis=1)
    return keys & np.int64((1 << bits) - 1)


def grouped_ranks(scores: np.ndarray) -> np.ndarray:
    """0-based descending rank of every entry within its row (ties broken by position)."""
    order = descending_order(scores)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1], dtype=np.int64)[None, :], axis=1)
    return ranks


def candidate_features(
    context: FeatureContext,
    users: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    generator_scores: Mapping[str, np.ndarray] | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    exclude_self: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """One float32 feature row per (user, candidate) pair, and the feature names.

    ``users`` are the dense user indices of a batch; pair ``k`` is user ``users[rows[k]]``
    and item ``cols[k]``. ``generator_scores`` maps a generator name to its
    ``(len(users), n_items)`` score rows with already-seen items at ``-inf``: each gives
    score, rank in the user's whole unseen catalogue, gap to the user's top score and
    z-score. ``extra`` adds ready-made per-pair columns (reciprocity, membership counts).
    ``exclude_self`` removes each pair's own contribution from the history statistics
    (leave-one-out), for training pairs that are themselves in the history.
    """
    users = np.asarray(users, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if len(rows) != len(cols):
        raise InvalidInput("rows and cols must have the same length")
    u = users[rows]
    columns: list[np.ndarray] = []
    names: list[str] = []

    def add(name: str, values: np.ndarray) -> None:
        names.append(name)
        columns.append(np.asarray(values, dtype=np.float32))

    for name, scores in (generator_scores or {}).items():
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != (len(users), context.n_items):
            raise InvalidInput(
                f"scores of {name!r} have shape {scores.shape}, expected "
                f"{(len(users), context.n_items)}"
            )
        finite = np.isfinite(scores)
        clean = np.where(finite, scores, np.nan)
        with warnings.catch_warnings():  # users with every item seen give all-NaN rows
            warnings.simplefilter("ignore", RuntimeWarning)
            top = np.nan_to_num(np.nanmax(clean, axis=1))
            mean = np.nan_to_num(np.nanmean(clean, axis=1))
            std = np.nan_to_num(np.nanstd(clean, axis=1))
        std = np.where(std > 0, std, 1.0)
        value = np.where(finite[rows, cols], scores[rows, cols], mean[rows])
        add(f"{name}_score", value)
        add(f"{name}_rank", np.log1p(grouped_ranks(np.where(finite, scores, -np.inf))[rows, cols]))
        add(f"{name}_gap", value - top[rows])
        add(f"{name}_z", (value - mean[rows]) / std[rows])

    self_hit = _gather_sparse(context.history, u, cols) if exclude_self else np.zeros(len(u))
    hist_len = context.user_count[u] - self_hit
    pop = context.item_count[cols] - self_hit
    log_pop = np.log1p(pop)
    add("item_log_pop", log_pop)
    add("item_log_recent_pop", np.log1p(np.maximum(context.item_recent[cols] - self_hit, 0)))
    add("user_log_history", np.log1p(hist_len))
    user_pop_total = context.user_mean_pop[u] * context.user_count[u]
    own_pop = np.log1p(context.item_count[cols]) * self_hit
    user_mean = np.divide(
        user_pop_total - own_pop, hist_len, out=np.zeros(len(u), np.float64), where=hist_len > 0
    )
    add("user_mean_item_pop", user_mean)
    add("pop_vs_user", log_pop - user_mean)
    if context.item_first_days is not None and context.item_last_days is not None:
        add("item_first_days", context.item_first_days[cols])
        add("item_last_days", context.item_last_days[cols])
    if (
        context.user_first_days is not None
        and context.user_last_days is not None
        and context.item_first_days is not None
        and context.item_last_days is not None
    ):
        # time relative to the user's own activity: an item first liked after the user's
        # last visit, or forgotten before the first, is an unlikely candidate
        add("item_first_vs_user_last", context.user_last_days[u] - context.item_first_days[cols])
        add("item_last_vs_user_first", context.user_first_days[u] - context.item_last_days[cols])
        add("user_last_days", context.user_last_days[u])
    if context.item_times is not None and context.user_mid_days is not None:
        near = _window_counts(context.item_times, cols, context.user_mid_days[u],
                              context.window_days)  # fmt: skip
        add("item_pop_near_user", np.log1p(np.maximum(near - self_hit, 0)))
    safe_len = np.maximum(hist_len, 1.0)
    if context.item_tags is not None and context.user_tag_counts is not None:
        n_tags = np.asarray(context.item_tags.sum(axis=1)).ravel()[cols]
        shared = _pair_dot(context.user_tag_counts, context.item_tags, u, cols)
        shared = shared - self_hit * n_tags  # the item's own tags, when it is in the history
        add("tag_history_overlap", shared / np.maximum(n_tags, 1.0) / safe_len)
        add("item_n_tags", n_tags)
        if context.user_stated_tags is not None:
            stated = _pair_dot(context.user_stated_tags, context.item_tags, u, cols)
            n_stated = np.asarray(context.user_stated_tags.sum(axis=1)).ravel()[u]
            add("tag_stated_overlap", stated)
            add("tag_stated_jaccard", stated / np.maximum(n_tags + n_stated - stated, 1.0))
    if context.item_category is not None and context.user_category_counts is not None:
        category = context.item_category[cols]
        same = _gather_sparse(context.user_category_counts, u, np.maximum(category, 0))
        same = np.where(category >= 0, same - self_hit, 0.0)
        add("category_share", same / safe_len)
    if context.user_city is not None and context.item_city is not None:
        uc, ic = context.user_city[u], context.item_city[cols]
        add("city_match", (uc >= 0) & (uc == ic))
    if context.item_owner is not None and context.user_owner_counts is not None:
        owner = context.item_owner[cols]
        count = _gather_sparse(context.user_owner_counts, u, np.maximum(owner, 0))
        count = np.where(owner >= 0, count - self_hit, 0.0)
        add("owner_affinity", count / safe_len)
    if context.item_start_days is not None:
        start = context.item_start_days[cols]
        add("start_days", np.nan_to_num(start, nan=0.0))
        add("start_known", np.isfinite(start))
    if context.interactions is not None:
        add("past_label", _gather_sparse(context.interactions, u, cols))
    if context.item_elo is not None:
        elo = context.item_elo[cols]
        add("item_elo", np.nan_to_num(elo, nan=float(np.nanmean(context.item_elo))))
    if context.user_age is not None and context.item_age is not None:
        gap = np.abs(context.user_age[u] - context.item_age[cols])
        add("age_gap", np.nan_to_num(gap, nan=-1.0))
    for name, values in (extra or {}).items():
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(rows),):
            raise InvalidInput(f"extra feature {name!r} must have one value per pair")
        add(name, values)
    if not columns:
        return np.zeros((len(rows), 0), np.float32), names
    matrix = np.column_stack(columns).astype(np.float32, copy=False)
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0), names


# --- the ranker -------------------------------------------------------------------------------
def _lightgbm() -> Any:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import lightgbm

    return lightgbm


class LightGBMRanker:
    """LightGBM lambdarank over candidate feature rows grouped by user; ONNX at serving.

    Parameters are LightGBM's (``n_estimators`` boosting rounds at most, early-stopped on
    NDCG@``eval_at`` of a ``valid_share`` of the groups; ``early_stopping_rounds=0``
    keeps every round). ``objective="binary"`` scores each pair on its own, which on
    small data can rank as well as lambdarank. ``num_threads`` stays 1: OpenMP
    pools on a shared machine are many times slower than one thread. ``onnx=True``
    converts the trained booster and scores through ONNX Runtime; if the conversion
    fails the booster scores instead and :meth:`export_onnx` names the problem.
    """

    def __init__(
        self,
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_data_in_leaf: int = 50,
        feature_fraction: float = 0.9,
        bagging_fraction: float = 0.8,
        lambda_l2: float = 1.0,
        objective: str = "lambdarank",
        eval_at: int = 10,
        early_stopping_rounds: int = 40,
        valid_share: float = 0.15,
        truncation_level: int = 20,
        seed: int = 0,
        num_threads: int = 1,
        onnx: bool = True,
    ) -> None:
        if objective not in OBJECTIVES:
            raise InvalidInput(f"ranker objective must be one of {OBJECTIVES}, got {objective!r}")
        if not 0 <= valid_share < 1:
            raise InvalidInput(f"valid_share must be in [0, 1), got {valid_share}")
        if n_estimators < 1:
            raise InvalidInput("n_estimators must be >= 1")
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.num_leaves = int(num_leaves)
        self.min_data_in_leaf = int(min_data_in_leaf)
        self.feature_fraction = float(feature_fraction)
        self.bagging_fraction = float(bagging_fraction)
        self.lambda_l2 = float(lambda_l2)
        self.objective = objective
        self.eval_at = int(eval_at)
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.valid_share = float(valid_share)
        self.truncation_level = int(truncation_level)
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.onnx = bool(onnx)
        self.feature_names: list[str] = []
        self.training_metrics: dict[str, Any] = {}
        self.booster_: Any = None
        self.onnx_bytes_: bytes | None = None
        self.onnx_error_: str | None = None
        self._session: Any = None

    def get_params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "lambda_l2": self.lambda_l2,
            "objective": self.objective,
            "eval_at": self.eval_at,
            "early_stopping_rounds": self.early_stopping_rounds,
            "valid_share": self.valid_share,
            "truncation_level": self.truncation_level,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "onnx": self.onnx,
        }

    def _lgb_params(self, n_rows: int) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "metric": "ndcg",
            "eval_at": [self.eval_at],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            # tiny training sets (tests, small catalogues) still get splits
            "min_data_in_leaf": max(1, min(self.min_data_in_leaf, n_rows // 20)),
            "min_sum_hessian_in_leaf": 1e-6,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.lambda_l2,
            "lambdarank_truncation_level": self.truncation_level,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    # --- training ---------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray,
        feature_names: Sequence[str] | None = None,
        group_keys: np.ndarray | None = None,
        baseline: str | None = None,
    ) -> Self:
        """Train on rows grouped by user: ``groups`` are the sizes of consecutive groups.

        Groups without a positive label teach lambdarank nothing and are dropped. Groups
        sharing a ``group_keys`` value (one user in several folds) go to the same side of
        the early-stopping split. ``baseline`` names a feature whose own NDCG on the
        early-stopping groups is recorded, to show what the ranker adds.
        """
        lgb = _lightgbm()
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        sizes = np.asarray(groups, dtype=np.int64)
        if X.ndim != 2 or len(X) != len(y) or sizes.sum() != len(X) or (sizes < 0).any():
            raise InvalidInput(
                f"ranker input mismatch: X {X.shape}, y {y.shape}, groups adding up to "
                f"{int(sizes.sum())}"
            )
        names = (
            list(feature_names)
            if feature_names is not None
            else [f"f{k}" for k in range(X.shape[1])]
        )
        if len(names) != X.shape[1]:
            raise InvalidInput(f"{len(names)} feature names for {X.shape[1]} columns")
        group_id = np.repeat(np.arange(len(sizes)), sizes)
        has_positive = np.bincount(group_id, weights=(y > 0).astype(float), minlength=len(sizes))
        keep_group = (has_positive > 0) & (sizes > 0)
        if not keep_group.any():
            raise InvalidInput("no group has a positive label: the ranker has nothing to learn")
        rng = np.random.default_rng(self.seed)
        keys = np.arange(len(sizes)) if group_keys is None else np.asarray(group_keys)
        if len(keys) != len(sizes):
            raise InvalidInput("group_keys needs one key per group")
        unique_keys = np.unique(keys[keep_group])
        n_valid = int(round(self.valid_share * len(unique_keys)))
        n_valid = n_valid if len(unique_keys) - n_valid >= 1 else 0
        valid_groups = np.zeros(len(sizes), dtype=bool)
        if n_valid:
            chosen = rng.choice(unique_keys, n_valid, replace=False)
            valid_groups = keep_group & np.isin(keys, chosen)
        train_groups = keep_group & ~valid_groups
        train_rows, valid_rows = train_groups[group_id], valid_groups[group_id]
        params = self._lgb_params(int(train_rows.sum()))
        started = time.perf_counter()
        train_set = lgb.Dataset(
            X[train_rows], y[train_rows], group=sizes[train_groups], feature_name=names,
            free_raw_data=True,
        )  # fmt: skip
        callbacks = []
        valid_sets = []
        evals: dict[str, Any] = {}
        if n_valid:
            valid_set = lgb.Dataset(
                X[valid_rows], y[valid_rows], group=sizes[valid_groups], reference=train_set
            )
            valid_sets = [valid_set]
            callbacks = [lgb.record_evaluation(evals)]
            if self.early_stopping_rounds > 0:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            valid_names=["valid"] if n_valid else None,
            callbacks=callbacks,
        )
        if booster.best_iteration and booster.best_iteration > 0:
            booster = lgb.Booster(
                model_str=booster.model_to_string(num_iteration=booster.best_iteration)
            )
        self.booster_ = booster
        self.feature_names = names
        curve = evals.get("valid", {}).get(f"ndcg@{self.eval_at}", [])
        baseline_ndcg = None
        if baseline is not None and baseline in names and n_valid:
            baseline_ndcg = grouped_ndcg(
                group_id[valid_rows], X[valid_rows, names.index(baseline)], y[valid_rows],
                self.eval_at,
            ).mean  # fmt: skip
        self.training_metrics = {
            "train_seconds": round(time.perf_counter() - started, 2),
            "rows": int(train_rows.sum()),
            "groups": int(train_groups.sum()),
            "valid_groups": int(valid_groups.sum()),
            "trees": int(booster.num_trees()),
            f"valid_ndcg@{self.eval_at}": float(max(curve)) if curve else None,
            f"baseline_ndcg@{self.eval_at}": baseline_ndcg,
            "feature_importance": dict(
                zip(names, booster.feature_importance("gain").round(3).tolist(), strict=True)
            ),
        }
        self.onnx_bytes_ = self.onnx_error_ = None
        self._session = None
        if self.onnx:
            try:
                self.onnx_bytes_ = self._convert()
                self._session = _session(self.onnx_bytes_)
            except ArtifactError as exc:
                self.onnx_error_ = str(exc)
                log.warning("ranker scores with LightGBM instead of ONNX: %s", exc)
        log.info("ranker trained: %s", {k: v for k, v in self.training_metrics.items()
                                         if k != "feature_importance"})  # fmt: skip
        return self

    # --- ONNX ---------------------------------------------------------------------------
    def _convert(self) -> bytes:
        """The booster as an ONNX model (float32 input ``features``, output ``scores``)."""
        try:
            from onnxmltools import convert_lightgbm
            from onnxmltools.convert.common.data_types import FloatTensorType
        except ImportError as exc:  # pragma: no cover - onnxmltools is a dependency
            raise ArtifactError(f"ONNX export needs onnxmltools: {exc}") from exc
        try:
            model = convert_lightgbm(
                self.booster_,
                initial_types=[("features", FloatTensorType([None, len(self.feature_names)]))],
                zipmap=False,
            )
            return model.SerializeToString()
        except Exception as exc:  # the converter raises many types for unsupported models
            raise ArtifactError(
                f"converting the LightGBM ranker to ONNX failed ({type(exc).__name__}: {exc}); "
                "score with the LightGBM booster (onnx=False) or upgrade onnxmltools"
            ) from exc

    def export_onnx(self, path: str | Path) -> Path:
        """Write the ONNX model; raises :class:`ArtifactError` when conversion failed."""
        self._check_fitted()
        if self.onnx_bytes_ is None:
            self.onnx_bytes_ = self._convert()
        target = Path(path)
        target.write_bytes(self.onnx_bytes_)
        return target

    @property
    def backend(self) -> str:
        """``"onnx"`` when scoring goes through ONNX Runtime, else ``"lightgbm"``."""
        return "onnx" if self._session is not None else "lightgbm"

    # --- scoring ------------------------------------------------------------------------
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Relevance scores, one per row (ONNX Runtime when available, else LightGBM)."""
        self._check_fitted()
        X = self._check_matrix(X)
        if self._session is not None:
            return self.predict_onnx(X)
        return self.predict_lightgbm(X)

    def predict_onnx(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        if self._session is None:
            raise NotFitted(f"the ranker has no ONNX model: {self.onnx_error_ or 'onnx=False'}")
        X = self._check_matrix(X)
        if len(X) == 0:
            return np.zeros(0, np.float32)
        outputs = self._session.run(None, {"features": X})
        if len(outputs) == 2:  # binary classifier: (label, probabilities)
            return np.asarray(outputs[1], dtype=np.float32)[:, 1]
        return np.asarray(outputs[0], dtype=np.float32).reshape(-1)

    def predict_lightgbm(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = self._check_matrix(X)
        if len(X) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self.booster_.predict(X, num_threads=self.num_threads), dtype=np.float32)

    def _check_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise InvalidInput(
                f"ranker expects {len(self.feature_names)} feature columns, got shape {X.shape}"
            )
        return X

    def _check_fitted(self) -> None:
        if self.booster_ is None:
            raise NotFitted("the ranker is not fitted: call fit() or load() first")

    # --- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """``model.txt`` (LightGBM text), ``model.onnx`` (when converted), ``ranker.json``."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_TEXT).write_text(self.booster_.model_to_string())
        if self.onnx_bytes_ is not None:
            (folder / MODEL_ONNX).write_bytes(self.onnx_bytes_)
        manifest = {
            "kind": "lightgbm_ranker",
            "feature_names": self.feature_names,
            "params": self.get_params(),
            "training_metrics": self.training_metrics,
            "onnx": self.onnx_bytes_ is not None,
            "onnx_error": self.onnx_error_,
        }
        (folder / RANKER_MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> LightGBMRanker:
        """Read a saved ranker; anything missing or corrupt raises :class:`ArtifactError`."""
        folder = Path(path)
        manifest_path = folder / RANKER_MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"ranker artifact at {folder} has no {RANKER_MANIFEST}")
        try:
            manifest = json.loads(manifest_path.read_text())
            ranker = cls(**manifest["params"])
            ranker.feature_names = [str(n) for n in manifest["feature_names"]]
        except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
            raise ArtifactError(f"{manifest_path} is corrupt: {exc}") from exc
        ranker.training_metrics = dict(manifest.get("training_metrics") or {})
        ranker.onnx_error_ = manifest.get("onnx_error")
        text_path = folder / MODEL_TEXT
        if not text_path.is_file():
            raise ArtifactError(f"ranker artifact at {folder} has no {MODEL_TEXT}")
        lgb = _lightgbm()
        try:
            booster = lgb.Booster(model_str=text_path.read_text())
        except (lgb.basic.LightGBMError, OSError, ValueError) as exc:
            raise ArtifactError(f"{text_path} is not a LightGBM model: {exc}") from exc
        if booster.num_feature() != len(ranker.feature_names):
            raise ArtifactError(
                f"{text_path} expects {booster.num_feature()} features but {RANKER_MANIFEST} "
                f"names {len(ranker.feature_names)}"
            )
        ranker.booster_ = booster
        if manifest.get("onnx"):
            onnx_path = folder / MODEL_ONNX
            if not onnx_path.is_file():
                raise ArtifactError(f"ranker artifact at {folder} has no {MODEL_ONNX}")
            ranker.onnx_bytes_ = onnx_path.read_bytes()
            try:
                ranker._session = _session(ranker.onnx_bytes_)
            except ArtifactError as exc:
                raise ArtifactError(f"{onnx_path}: {exc}") from exc
        return ranker


def _session(model: bytes) -> Any:
    """A one-thread CPU ONNX Runtime session (several models share two cores)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise ArtifactError(f"scoring the ranker with ONNX needs onnxruntime: {exc}") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for invalid graphs
        raise ArtifactError(f"not a valid ONNX model: {exc}") from exc
