"""Drift between training and serving: population stability index per feature, and the
catalogue coverage of served lists.

PSI compares the share of a reference sample (what the model was trained on) and of a
current sample (what it scores now) in the same bins::

    PSI = sum over bins of (current% - reference%) * ln(current% / reference%)

Every term is >= 0, so PSI is >= 0 and is 0 exactly when the shares match. The usual
reading: below 0.1 stable, 0.1 to 0.25 a moderate shift worth a look, above 0.25 a major
shift (:data:`PSI_MODERATE`, :data:`PSI_MAJOR`; settings may choose others).

Bins come from the reference alone, so a later sample is judged against a fixed ruler:

- numeric features with more distinct values than bins: edges at the reference's
  quantiles (equal reference shares, ``bins`` of them; repeated edges merge), open at
  both ends so values outside the training range still land somewhere;
- numeric features with at most ``bins`` distinct values (flags, counts, a constant):
  each value is its own bin and so is each gap between and beyond them, so a constant
  training feature that starts to move is seen on either side;
- categorical features: one bin per category seen in either sample;
- missing values (NaN, None) get a bin of their own: a feature that starts arriving empty
  is drift too.

An empty bin on one side would make the log infinite; shares are floored at ``epsilon``
(1e-4 by default), which keeps each term finite and non-negative.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from matchwise.errors import InvalidInput
from matchwise.metrics import catalogue_coverage

__all__ = [
    "PSI_MAJOR",
    "PSI_MODERATE",
    "categorical_psi",
    "feature_psi",
    "numeric_psi",
    "psi_from_shares",
    "served_coverage",
]

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
DEFAULT_EPSILON = 1e-4


def psi_from_shares(
    reference: ArrayLike, current: ArrayLike, epsilon: float = DEFAULT_EPSILON
) -> float:
    """PSI from per-bin counts or shares (normalised here), shares floored at ``epsilon``."""
    if not (0.0 < epsilon < 1.0):
        raise InvalidInput(f"epsilon must be in (0, 1), got {epsilon}")
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise InvalidInput("reference and current need the same bins")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise InvalidInput("both samples need at least one value")
    ref = np.maximum(ref / ref.sum(), epsilon)
    cur = np.maximum(cur / cur.sum(), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _numeric_bins(reference: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each value under the reference's binning (missing values excluded)."""
    distinct = np.unique(reference)
    if len(distinct) <= bins:
        # point bins at 2i + 1 for distinct[i], gaps at 2i (below distinct[i]) and 2k (above all)
        index = np.searchsorted(distinct, values, side="left")
        clipped = np.minimum(index, len(distinct) - 1)
        exact = (index < len(distinct)) & (distinct[clipped] == values)
        return 2 * index + exact
    # quantiles of the finite values: an infinite one would make an edge NaN; infinities
    # land in the open end bins
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        finite = np.zeros(1)
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def numeric_psi(
    reference: ArrayLike,
    current: ArrayLike,
    bins: int = 10,
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    """PSI of a numeric feature, binned by the reference (see the module docstring)."""
    if bins < 1:
        raise InvalidInput("bins must be >= 1")
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    if ref.size == 0 or cur.size == 0:
        raise InvalidInput("both samples need at least one value")
    ref_missing, cur_missing = np.isnan(ref), np.isnan(cur)
    present = ref[~ref_missing]
    if present.size == 0:  # nothing to bin by: compare missing shares only
        return psi_from_shares([ref.size, 0], [cur_missing.sum(), (~cur_missing).sum()], epsilon)
    ref_bins = _numeric_bins(present, present, bins)
    cur_bins = _numeric_bins(present, cur[~cur_missing], bins)
    size = int(max(ref_bins.max(initial=0), cur_bins.max(initial=0))) + 1
    ref_counts = np.append(np.bincount(ref_bins, minlength=size), ref_missing.sum())
    cur_counts = np.append(np.bincount(cur_bins, minlength=size), cur_missing.sum())
    return psi_from_shares(ref_counts, cur_counts, epsilon)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def categorical_psi(
    reference: Iterable[Hashable], current: Iterable[Hashable], epsilon: float = DEFAULT_EPSILON
) -> float:
    """PSI of a categorical feature: one bin per category in either sample, one for missing."""
    missing = object()
    ref = Counter(missing if _is_missing(v) else v for v in reference)
    cur = Counter(missing if _is_missing(v) else v for v in current)
    categories = list(ref.keys() | cur.keys())
    return psi_from_shares([ref[c] for c in categories], [cur[c] for c in categories], epsilon)


def feature_psi(
    reference: Mapping[str, Sequence[object] | np.ndarray],
    current: Mapping[str, Sequence[object] | np.ndarray],
    bins: int = 10,
    epsilon: float = DEFAULT_EPSILON,
) -> dict[str, float]:
    """PSI of every feature the reference has (columns of a training frame, e.g.
    ``{name: frame[name].to_numpy()}``): numeric dtypes by :func:`numeric_psi`, anything
    else by :func:`categorical_psi`. A feature missing from ``current`` is refused."""
    absent = sorted(set(reference) - set(current))
    if absent:
        raise InvalidInput(f"the current sample lacks features {absent}")
    result: dict[str, float] = {}
    for name, ref_values in reference.items():
        ref_array, cur_array = np.asarray(ref_values), np.asarray(current[name])
        numeric = all(
            np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.bool_)
            for a in (ref_array, cur_array)
        )
        if numeric:
            result[name] = numeric_psi(
                ref_array.astype(np.float64), cur_array.astype(np.float64), bins, epsilon
            )
        else:
            result[name] = categorical_psi(ref_array.tolist(), cur_array.tolist(), epsilon)
    return result


def served_coverage(served: Iterable[Iterable[Hashable]], catalogue: Collection[Hashable]) -> float:
    """Share of the catalogue shown in at least one served list (ids outside the catalogue,
    such as items deleted since, are ignored). Reuses :func:`matchwise.metrics.catalogue_coverage`
    on catalogue positions, so offline and online coverage are one definition."""
    position = {item: i for i, item in enumerate(dict.fromkeys(catalogue))}
    if not position:
        raise InvalidInput("the catalogue is empty")
    shown = [position[item] for items in served for item in items if item in position]
    return catalogue_coverage(np.asarray(shown, dtype=np.int64), len(position))
