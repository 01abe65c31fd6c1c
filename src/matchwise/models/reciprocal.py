"""Reciprocal recommender (seed 001's reciprocal matcher): score b for a by both directions.

A one-sided model trained in the people domain (EASE, the two-tower, any
:class:`~matchwise.models.base.Recommender`) learns P(a likes b) from swipes. Users and
candidates are the same people, so the same model also gives P(b likes a): row b, column
a. The reciprocal score combines the two (:func:`~matchwise.features.people.reciprocal_score`,
harmonic mean by default), so a candidate who would never like the user back sinks.

Making the two directions comparable. Raw scores are not probabilities: a two-tower dot
product, an EASE reconstruction (whose scale grows with the length of the history). Each
direction is mapped to a probability with one fitted *Platt scaling*,
``P = sigmoid(alpha * s + beta)`` (``calibration="platt"``), or, with
``calibration="zscore"``, after standardising each row by its own mean and standard
deviation over all candidates (for models whose score scale differs from user to user).
The sigmoid is fitted by logistic regression on the training swipes (like = 1, pass = 0;
when the data holds no negatives, random unswiped pairs stand in), so the probability of
a picky user stays low and one of an easy-going user high: a per-row percentile rank
would erase exactly the difference that makes matches predictable. The fit is in-sample
(two parameters; the base model is not refitted), which is cheap and, being monotone,
never changes the one-sided order.

Which base. ``base="auto"`` (the default) picks EASE up to ``ease_max_people`` people
(10,000) and implicit ALS above. EASE is the better model on small populations, but it
inverts a dense people x people Gram matrix: n² floats each for the Gram, its inverse and
B (3 x 4 bytes x n², 1.2 GB at 10,000, 30 GB at 50,000, 12 TB at a million) and n³
operations (about 10^12 at 10,000: tens of seconds on two cores, hours past 50,000).
ALS learns a swiper vector u_a and a candidate vector v_b for "a likes b"; P(b likes a)
reads the same factors the other way round, u_b · v_a. Training is O(swipes x d² + n x d³),
the artifact two n x d arrays, and scoring one user O(n x d) in both directions: no step
holds an n x n matrix (scores are taken in row blocks sized to ``_CELLS``).

Known decisions. With ``known_decisions`` (default) a decision already on record
overrides the model's guess of the other side: if b liked a in training, P(b likes a) is
1; if b passed on a, it is 0. Serving knows these too ("already likes you").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.features.people import RECIPROCAL_MODES, reciprocal_score
from matchwise.models.base import MANIFEST, InteractionSet, Recommender
from matchwise.models.catalog import make_model, model_class

log = logging.getLogger(__name__)

STATE = "reciprocal.npz"
BASE_FOLDER = "base"
CALIBRATIONS = ("platt", "zscore")
AUTO = "auto"
#: Above this many people ``base="auto"`` trains ALS instead of EASE (module docstring).
EASE_MAX_PEOPLE = 10_000
FACTOR_BASE = "implicit_als"
#: ALS settings ``auto`` trains people with (``base_params`` override them): 32 factors and a
#: firmer ridge than ALS's item-domain defaults (64, 0.01), which overfit ~20 likes a person.
#: Chosen on one 5,000-person generated split (seed 7), checked on another (seed 11).
FACTOR_PARAMS: dict[str, Any] = {"factors": 32, "regularization": 1.0}
_CHUNK = 1024
#: Most score cells (rows x people) held at once by the chunked loops: 128 MB of float64.
_CELLS = 1 << 24
#: Cells per step of the element-wise passes (calibration, combination): 256 KB of float64,
#: so their temporaries stay in cache. Whole-block temporaries (a dozen arrays of 128 MB per
#: block, each freshly page-faulted) made these passes 90% of a people training's
#: evaluation, ~200 ns a cell (issue 21); a step at a time, from the base's scores to the
#: combined float32 one, they are a fraction of that, with the same values.
_STEP = 1 << 15


def _rows_per_chunk(n: int) -> int:
    """Rows per block so a block of ``n``-wide score rows stays within ``_CELLS``."""
    return max(1, min(_CHUNK, _CELLS // max(n, 1)))


def choose_base(n_people: int, ease_max_people: int = EASE_MAX_PEOPLE) -> str:
    """``ease`` while its dense n x n inverse is affordable, else factorised ALS."""
    return "ease" if n_people <= ease_max_people else FACTOR_BASE


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _steps(size: int) -> Iterator[slice]:
    """Slices of :data:`_STEP` cells covering ``range(size)``."""
    for start in range(0, size, _STEP):
        yield slice(start, min(start + _STEP, size))


def fit_logistic(
    X: np.ndarray, y: np.ndarray, l2: float = 1e-2, max_iter: int = 50, tol: float = 1e-8
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method: ``(coef, intercept)``.

    Small and exact for the few features calibration needs, and it spares importing
    scikit-learn (seconds) for a two-parameter fit. The intercept is not penalised.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, dtype=np.float64)
    if len(X) != len(y) or len(y) == 0:
        raise InvalidInput("logistic fit needs as many labels as rows, and at least one")
    design = np.column_stack([X, np.ones(len(X))])
    penalty = np.full(design.shape[1], float(l2))
    penalty[-1] = 0.0
    w = np.zeros(design.shape[1])
    w[-1] = np.log((y.mean() + 1e-6) / (1.0 - y.mean() + 1e-6))
    for _ in range(max_iter):
        p = _sigmoid(design @ w)
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design * (p * (1.0 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < tol:
            break
    return w[:-1], float(w[-1])


class ReciprocalRecommender(Recommender):
    """Two-sided scores from one one-sided people model.

    Parameters
    ----------
    base:
        Model type of the wrapped one-sided model (``ease``, ``implicit_als``,
        ``two_tower``, ...; see :mod:`matchwise.models.catalog`), built with
        ``base_params``; ``auto`` chooses by population (:func:`choose_base`).
    ease_max_people:
        The largest population ``auto`` trains EASE on.
    mode, weight:
        How the two probabilities combine: ``harmonic`` | ``product`` | ``min`` |
        ``weighted`` (``weight`` is the user's own side's share).
    calibration:
        ``platt`` (one sigmoid on raw scores) or ``zscore`` (per-row standardised first).
    known_decisions:
        Let training decisions override the model's P(b likes a).
    positive_threshold:
        Training labels at or above it are likes.
    """

    model_type = "reciprocal"
    serves = frozenset({"people"})  # P(a likes b) and P(b likes a) for the people path

    def __init__(
        self,
        base: str = AUTO,
        base_params: dict[str, Any] | None = None,
        ease_max_people: int = EASE_MAX_PEOPLE,
        mode: str = "harmonic",
        weight: float = 0.5,
        calibration: str = "platt",
        known_decisions: bool = True,
        positive_threshold: float = 0.5,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if mode not in RECIPROCAL_MODES:
            raise InvalidInput(
                f"unknown reciprocal mode {mode!r}; use {', '.join(RECIPROCAL_MODES)}"
            )
        if calibration not in CALIBRATIONS:
            raise InvalidInput(
                f"unknown calibration {calibration!r}; use {', '.join(CALIBRATIONS)}"
            )
        if not 0.0 <= weight <= 1.0:
            raise InvalidInput(f"reciprocal weight must be in [0, 1], got {weight}")
        if ease_max_people < 0:
            raise InvalidInput(f"ease_max_people must be >= 0, got {ease_max_people}")
        self.base = base
        self.base_params = dict(base_params or {})
        self.ease_max_people = int(ease_max_people)
        self.mode = mode
        self.weight = float(weight)
        self.calibration = calibration
        self.known_decisions = bool(known_decisions)
        self.positive_threshold = float(positive_threshold)
        self.seed = int(seed)
        self.base_model_: Recommender | None = None
        self.alpha_: float = 1.0
        self.beta_: float = 0.0
        self.row_mean_: np.ndarray | None = None
        self.row_std_: np.ndarray | None = None
        self.decisions_: sp.csr_matrix | None = None  # +1 liked, -1 passed (latest)
        self._user_vectors: np.ndarray | None = None
        self._decisions_csc: tuple[sp.csr_matrix, sp.csc_matrix] | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "base_params": self.base_params,
            "ease_max_people": self.ease_max_people,
            "mode": self.mode,
            "weight": self.weight,
            "calibration": self.calibration,
            "known_decisions": self.known_decisions,
            "positive_threshold": self.positive_threshold,
            "seed": self.seed,
        }

    # --- training -------------------------------------------------------------------------
    @classmethod
    def wrap(cls, model: Recommender, train: InteractionSet, **params: Any) -> Self:
        """A reciprocal model around an already fitted one-sided ``model`` (no refit)."""
        params.setdefault("base", model.model_type)
        self = cls(**params)
        check_people(train)
        self.base_model_ = model
        self._finish(train)
        return self

    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        """Fit the one-sided base on ``train`` (users = candidates), then calibrate it."""

        check_people(train)
        chosen, params = self.base, dict(self.base_params)
        if self.base == AUTO:
            chosen = choose_base(train.n_users, self.ease_max_people)
            if chosen == FACTOR_BASE:
                params = {**FACTOR_PARAMS, **params}
        log.info("reciprocal base for %d people: %s", train.n_users, chosen)
        model = make_model(chosen, params)
        model.fit(train, validation)
        self.base_model_ = model
        self._finish(train)
        return self

    def _finish(self, train: InteractionSet) -> None:
        assert self.base_model_ is not None
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self._user_vectors = None
        if self.calibration == "zscore":
            self._fit_row_stats()
        self.decisions_ = _decision_matrix(train, self.positive_threshold)
        self._decisions_csc = None
        self._fit_platt(train)
        self.version = getattr(self.base_model_, "version", "unversioned")
        self.feature_names = [f"base.{name}" for name in self.base_model_.feature_names]
        self.training_metrics = {
            "base": self.base_model_.model_type,
            "base_metrics": self.base_model_.training_metrics,
            "calibration": {"kind": self.calibration, "alpha": self.alpha_, "beta": self.beta_},
            "mode": self.mode,
        }

    def _fit_row_stats(self) -> None:
        assert self.base_model_ is not None and self.n_users_ is not None
        means = np.zeros(self.n_users_)
        stds = np.ones(self.n_users_)
        step = _rows_per_chunk(self.n_users_)
        for start in range(0, self.n_users_, step):
            rows = np.arange(start, min(start + step, self.n_users_))
            scores = np.asarray(self.base_model_.score(rows), dtype=np.float64)
            means[rows] = scores.mean(axis=1)
            stds[rows] = scores.std(axis=1)
        self.row_mean_ = means
        self.row_std_ = np.where(stds > 1e-12, stds, 1.0)

    def _fit_platt(self, train: InteractionSet) -> None:
        """Logistic regression of the like label on the (standardised) raw score."""
        users, items = train.users, train.items
        labels = (train.labels >= self.positive_threshold).astype(np.int64)
        if not labels.any() or labels.all():  # one class only, or no swipes at all
            # implicit data (likes only): random unswiped pairs are the negatives
            rng = np.random.default_rng(self.seed)
            n_neg = max(len(users), 1)
            neg_u = rng.integers(0, train.n_users, n_neg)
            neg_i = rng.integers(0, train.n_items, n_neg)
            seen = train.to_csr(values="weights")
            keep = (np.asarray(seen[neg_u, neg_i]).ravel() == 0) & (neg_u != neg_i)
            users = np.concatenate([users, neg_u[keep]])
            items = np.concatenate([items, neg_i[keep]])
            labels = np.concatenate([labels, np.zeros(int(keep.sum()), dtype=np.int64)])
        if len(users) == 0 or labels.min() == labels.max():
            log.warning("reciprocal calibration: no like/pass contrast; using sigmoid(score)")
            self.alpha_, self.beta_ = 1.0, 0.0
            return
        raw = self._pair_raw(users, items)
        scale = float(np.std(raw)) or 1.0
        coef, intercept = fit_logistic(raw / scale, labels, l2=1e-2)
        self.alpha_ = float(coef[0] / scale)
        self.beta_ = intercept
        log.debug("reciprocal calibration: alpha=%.4g beta=%.4g", self.alpha_, self.beta_)

    # --- raw scores in both directions ----------------------------------------------------
    def _base(self) -> Recommender:
        self._check_fitted()
        assert self.base_model_ is not None
        return self.base_model_

    def _standardise(self, raw: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.calibration != "zscore":
            return raw
        assert self.row_mean_ is not None and self.row_std_ is not None
        shape = (-1,) + (1,) * (raw.ndim - 1)
        return (raw - self.row_mean_[rows].reshape(shape)) / self.row_std_[rows].reshape(shape)

    def _rows_base(self, users: np.ndarray) -> np.ndarray:
        """Base scores of rows ``users`` against every candidate, in the base's dtype."""
        return np.asarray(self._base().score(users))

    def _rows_raw(self, users: np.ndarray) -> np.ndarray:
        """Base scores of rows ``users`` against every candidate, standardised if asked."""
        raw = np.asarray(self._rows_base(users), dtype=np.float64)
        return self._standardise(raw, users)

    def _columns_raw(self, users: np.ndarray) -> np.ndarray:
        """``out[i, b]`` = base score of row b at column ``users[i]``: how b sees each user."""
        raw = np.asarray(self._columns_base(users), dtype=np.float64)
        if self.calibration == "zscore":
            assert self.row_mean_ is not None and self.row_std_ is not None
            raw = (raw - self.row_mean_[None, :]) / self.row_std_[None, :]
        return raw

    def _columns_base(self, users: np.ndarray) -> np.ndarray:
        """:meth:`_columns_raw` before standardising, in the base's dtype."""
        base = self._base()
        n = self.n_users_ or 0
        if hasattr(base, "B_") and hasattr(base, "X_") and base.B_ is not None:
            raw = np.asarray(base.X_ @ base.B_[:, users]).T  # EASE
        elif (factors := _factors(base)) is not None:  # ALS/BPR: u_b · v_a, O(n x d)
            swipers, candidates = factors
            raw = np.asarray(candidates[users] @ swipers.T)
        elif hasattr(base, "user_embeddings") and hasattr(base, "item_embeddings"):
            if self._user_vectors is None:
                self._user_vectors = np.asarray(base.user_embeddings(np.arange(n)), np.float64)
            items = np.asarray(base.item_embeddings()[users], dtype=np.float64)
            raw = items @ self._user_vectors.T
        else:
            raw = np.empty((len(users), n))
            step = _rows_per_chunk(n)
            for start in range(0, n, step):
                rows = np.arange(start, min(start + step, n))
                raw[:, rows] = np.asarray(base.score(rows), dtype=np.float64)[:, users].T
        return raw

    def _pair_raw(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Base score of each (row, column) pair, scoring each distinct row once."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        base = self._base()
        if (factors := _factors(base)) is not None:  # O(pairs x d), no score rows
            swipers, candidates = factors
            pair = np.empty(len(rows))
            for start in range(0, len(rows), _CELLS // 16):  # two pairs x d blocks at once
                sl = slice(start, start + _CELLS // 16)
                pair[sl] = np.einsum("ij,ij->i", swipers[rows[sl]], candidates[cols[sl]])
            return self._standardise(pair, rows)
        out = np.empty(len(rows))
        unique, inverse = np.unique(rows, return_inverse=True)
        step = _rows_per_chunk(self.n_items_ or 0)
        for start in range(0, len(unique), step):
            block = unique[start : start + step]
            scores = self._rows_raw(block)
            sel = (inverse >= start) & (inverse < start + len(block))
            out[sel] = scores[inverse[sel] - start, cols[sel]]
        return out

    def _proba(self, raw: np.ndarray) -> np.ndarray:
        """``sigmoid(alpha * raw + beta)``: P from a raw score."""
        return self._calibrate_into(raw, np.empty(np.shape(raw)))

    def _calibrate_into(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out[...] = sigmoid(alpha * raw + beta)`` in float64, a :data:`_STEP` of cells
        at a time in place: the same operations on each cell as the whole-array expression,
        so equal values (``out``: C-contiguous, ``raw``'s shape)."""
        cells, flat = np.ascontiguousarray(raw).reshape(-1), out.reshape(-1)
        for part in _steps(flat.size):
            x = flat[part]
            x[...] = cells[part]  # as float64: a float32 score converts exactly
            x *= self.alpha_
            x += self.beta_
            x *= 0.5  # _sigmoid, in place
            np.tanh(x, out=x)
            x += 1.0
            x *= 0.5
        return out

    def _decisions_by_column(self) -> sp.csc_matrix:
        """The recorded decisions by column (who decided on each person), indices sorted:
        a CSR column slice walks every row."""
        assert self.decisions_ is not None
        cached = self._decisions_csc
        if cached is None or cached[0] is not self.decisions_:
            columns = self.decisions_.tocsc()
            columns.sum_duplicates()  # sorted indices, each (a, b) once
            cached = self._decisions_csc = (self.decisions_, columns)
        return cached[1]

    def _decided(self, users: np.ndarray) -> sp.coo_matrix | None:
        """``(len(users), n)``: b's recorded decision on each user (None when not used)."""
        if not self.known_decisions or self.decisions_ is None:
            return None
        return self._decisions_by_column()[:, users].T.tocoo()

    def _decisions_on(self, user: int, candidates: np.ndarray) -> np.ndarray:
        """Each candidate's recorded decision on ``user`` (+1, -1, 0 for none), float32 as
        the matrix holds it: a binary search in the user's column, not a sparse fancy index
        of every candidate's row (~0.5 ms a person at a million)."""
        columns = self._decisions_by_column()
        start, stop = columns.indptr[user], columns.indptr[user + 1]
        deciders, decisions = columns.indices[start:stop], columns.data[start:stop]
        recorded = np.zeros(len(candidates), dtype=columns.dtype)
        if stop > start and len(candidates):
            at = np.minimum(np.searchsorted(deciders, candidates), stop - start - 1)
            found = deciders[at] == candidates
            recorded[found] = decisions[at[found]]
        return recorded

    def _override(self, p_ba: np.ndarray, users: np.ndarray) -> np.ndarray:
        """``p_ba[i, b]``: replace with b's recorded decision on ``users[i]``, if any."""
        known = self._decided(users)
        if known is None:
            return p_ba
        p_ba = p_ba.copy()
        p_ba[known.row, known.col] = np.where(known.data > 0, 1.0, 0.0)
        return p_ba

    def _known_cells(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_override`'s cells as flat positions in a ``(len(users), n)`` block, in
        ascending order (a stable sort: equal positions keep their order), and values."""
        known = self._decided(users)
        if known is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        flat = known.row.astype(np.int64) * (self.n_items_ or 0) + known.col
        order = np.argsort(flat, kind="stable")
        return flat[order], np.where(known.data > 0, 1.0, 0.0)[order]

    # --- public scoring -------------------------------------------------------------------
    def one_sided_proba(self, users: np.ndarray) -> np.ndarray:
        """P(a likes b) for each user row a and every candidate b: ``(len(users), n)``."""
        users = self._check_users(users)
        return self._proba(self._rows_raw(users))

    def reverse_proba(self, users: np.ndarray) -> np.ndarray:
        """P(b likes a) for each user row a and every candidate b (known decisions applied)."""
        users = self._check_users(users)
        return self._override(self._proba(self._columns_raw(users)), users)

    def score(self, users: np.ndarray) -> np.ndarray:
        """Reciprocal scores in [0, 1]: ``(len(users), n)``, the base's scores taken in
        row blocks of at most ``_CELLS`` (200 rows at a million people were 1.6 GB each),
        then calibrated, overridden by known decisions and combined a :data:`_STEP` of
        cells at a time: :meth:`one_sided_proba` and :meth:`reverse_proba` combined, the
        same values without their whole-block float64 arrays."""
        users = self._check_users(users)
        n = self.n_items_ or 0
        out = np.empty((len(users), n), dtype=np.float32)
        step = _rows_per_chunk(n)
        ab, ba = np.empty(_STEP), np.empty(_STEP)  # a step of each direction's P
        zscore = self.calibration == "zscore"
        for start in range(0, len(users), step):
            rows = users[start : start + step]
            raw_ab = self._rows_raw(rows) if zscore else self._rows_base(rows)
            raw_ba = self._columns_raw(rows) if zscore else self._columns_base(rows)
            raw_ab = np.ascontiguousarray(raw_ab).reshape(-1)
            raw_ba = np.ascontiguousarray(raw_ba).reshape(-1)
            cells, decided = self._known_cells(rows)
            block = out[start : start + len(rows)].reshape(-1)  # a view: rows are contiguous
            for part in _steps(block.size):  # one_sided_proba and reverse_proba, combined
                p_ab = self._calibrate_into(raw_ab[part], ab[: part.stop - part.start])
                p_ba = self._calibrate_into(raw_ba[part], ba[: part.stop - part.start])
                lo, hi = np.searchsorted(cells, [part.start, part.stop])
                p_ba[cells[lo:hi] - part.start] = decided[lo:hi]  # _override, this step's
                block[part] = reciprocal_score(p_ab, p_ba, self.mode, self.weight)
        return out

    def score_candidates(
        self, user: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(P(user likes c), P(c likes user), reciprocal)`` for one user's candidate set.

        The online path: cost grows with the candidate set, not the population (EASE and
        the two-tower; other bases score the candidates' full rows).
        """
        p_ab, p_ba = self.pair_probabilities(user, candidates)
        return p_ab, p_ba, reciprocal_score(p_ab, p_ba, self.mode, self.weight)

    def pair_probabilities(
        self, user: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(P(user likes c), P(c likes user))``: :meth:`score_candidates` without the
        model's own combination (serving combines them its own way)."""
        cands = np.asarray(candidates, dtype=np.int64)
        return self.block_pair_probabilities(np.array([user]), np.array([0, len(cands)]), cands)

    def block_pair_probabilities(
        self, users: np.ndarray, groups: np.ndarray, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`pair_probabilities` of many users at once, user ``users[i]``'s candidates
        being ``candidates[groups[i]:groups[i + 1]]`` (both results laid out alike): the
        raw scores a user at a time (a few products each), then standardising,
        calibration and known decisions over the whole block, element by element, so
        each pair's values are those it gets alone (a batched refresh's ~25 small array
        operations a person were a fifth of its time at a million)."""
        users = self._check_users(users)
        cands = np.asarray(candidates, dtype=np.int64)
        groups = np.asarray(groups, dtype=np.int64)
        if len(groups) != len(users) + 1 or (len(groups) and groups[-1] != len(cands)):
            raise InvalidInput("groups must bound each user's candidates: len(users) + 1 "
                               "offsets ending at len(candidates)")  # fmt: skip
        if cands.size and (cands.min() < 0 or cands.max() >= (self.n_items_ or 0)):
            raise InvalidInput(f"candidate index out of range [0, {self.n_items_})")
        base = self._base()
        forward = _factors(base)
        raw_ab, raw_ba = np.empty(len(cands)), np.empty(len(cands))
        recorded = np.zeros(len(cands), np.float32) if self._uses_decisions() else None
        for i, u in enumerate(users.tolist()):
            part = slice(int(groups[i]), int(groups[i + 1]))
            c = cands[part]
            if forward is not None:  # the candidates' columns alone, not the whole row:
                # a row of a million people was most of a batched refresh
                raw_ab[part] = (forward[0][u : u + 1] @ forward[1][c].T)[0]
            else:
                raw_ab[part] = np.asarray(self._rows_base(np.array([u])), np.float64)[0, c]
            raw_ba[part] = self._reverse_raw(base, u, c)
            if recorded is not None:
                recorded[part] = self._decisions_on(u, c)
        owners = np.repeat(users, np.diff(groups))
        p_ab = self._proba(self._standardise(raw_ab, owners))
        p_ba = self._proba(self._standardise(raw_ba, cands))
        if recorded is not None:
            p_ba = np.where(recorded > 0, 1.0, np.where(recorded < 0, 0.0, p_ba))
        return p_ab, p_ba

    def _uses_decisions(self) -> bool:
        return bool(self.known_decisions and self.decisions_ is not None)

    def _reverse_raw(self, base: Recommender, user: int, candidates: np.ndarray) -> np.ndarray:
        """Each candidate's raw base score for ``user`` (how they see the user), float64."""
        if hasattr(base, "B_") and hasattr(base, "X_") and base.B_ is not None:
            raw = base.X_[candidates] @ base.B_[:, user]
        elif (factors := _factors(base)) is not None:
            swipers, seen = factors
            raw = swipers[candidates] @ seen[user]
        elif hasattr(base, "user_embeddings") and hasattr(base, "item_embeddings"):
            vecs = np.asarray(base.user_embeddings(candidates), dtype=np.float64)
            raw = vecs @ np.asarray(base.item_embeddings()[user], dtype=np.float64)
        else:
            raw = np.asarray(base.score(candidates), dtype=np.float64)[:, user]
        return np.asarray(raw, dtype=np.float64).ravel()

    def _check_users(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= (self.n_users_ or 0)):
            raise InvalidInput(f"user index out of range [0, {self.n_users_})")
        return users

    # --- persistence ----------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        base = self._base()
        base.save(folder / BASE_FOLDER)
        decisions = (
            self.decisions_ if self.decisions_ is not None else sp.csr_matrix((0, 0))
        ).tocoo()
        np.savez(
            folder / STATE,
            calibration=np.array([self.alpha_, self.beta_], dtype=np.float64),
            row_mean=self.row_mean_ if self.row_mean_ is not None else np.zeros(0),
            row_std=self.row_std_ if self.row_std_ is not None else np.zeros(0),
            d_row=decisions.row.astype(np.int64),
            d_col=decisions.col.astype(np.int64),
            d_data=decisions.data.astype(np.int8),
        )

    def _load_state(self, folder: Path) -> None:

        base_folder = folder / BASE_FOLDER
        if not base_folder.is_dir():
            raise ArtifactError(f"reciprocal artifact at {folder} has no {BASE_FOLDER}/ folder")
        chosen = self.base
        if chosen == AUTO:  # the base folder's manifest names the type fit chose
            try:
                manifest = json.loads((base_folder / MANIFEST).read_text())
            except (OSError, ValueError) as exc:
                raise ArtifactError(f"{base_folder} has no readable {MANIFEST}: {exc}") from exc
            chosen = str(manifest.get("model_type"))
        self.base_model_ = model_class(chosen).load(base_folder)
        with np.load(folder / STATE, allow_pickle=False) as state:
            self.alpha_, self.beta_ = (float(v) for v in state["calibration"])
            row_mean, row_std = state["row_mean"], state["row_std"]
            d_row, d_col, d_data = state["d_row"], state["d_col"], state["d_data"]
        n = self.n_users_ or 0
        if self.base_model_.n_users_ != n or self.base_model_.n_items_ != self.n_items_:
            raise ArtifactError(f"{base_folder} does not match the reciprocal manifest's shape")
        if self.calibration == "zscore":
            if len(row_mean) != n or len(row_std) != n:
                raise ArtifactError(f"{folder / STATE} lacks the per-row calibration statistics")
            self.row_mean_, self.row_std_ = row_mean.astype(np.float64), row_std.astype(np.float64)
        self.decisions_ = sp.csr_matrix(
            (d_data.astype(np.float32), (d_row, d_col)), shape=(n, n), dtype=np.float32
        )
        self._user_vectors = None
        self._decisions_csc = None


def _factors(base: Recommender) -> tuple[np.ndarray, np.ndarray] | None:
    """A factorisation base's ``(swiper, candidate)`` factors (implicit ALS/BPR), else None:
    its score of a for b is ``swiper[a] · candidate[b]``, so either direction is one row."""
    swipers = getattr(base, "user_factors_", None)
    candidates = getattr(base, "item_factors_", None)
    if isinstance(swipers, np.ndarray) and isinstance(candidates, np.ndarray):
        return swipers, candidates
    return None


def check_people(train: InteractionSet, who: str = "a reciprocal model") -> int:
    """Users and candidates must be one universe of people, in the same order (every
    people model checks it: this one and :mod:`matchwise.models.pairwise`); the number
    of people."""
    same = train.n_users == train.n_items and np.array_equal(
        np.asarray(train.user_ids).astype(str), np.asarray(train.item_ids).astype(str)
    )
    if not same:
        raise InvalidInput(
            f"{who} needs the people domain: build the InteractionSet with "
            "item_ids equal to user_ids (candidates are the same people as users)"
        )
    return train.n_users


def _decision_matrix(train: InteractionSet, threshold: float) -> sp.csr_matrix:
    """``D[a, b]`` = +1 if a's latest decision on b was a like, -1 if a pass, else absent."""
    n = train.n_users
    if len(train) == 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    order = np.arange(len(train))
    if train.timestamps is not None:
        order = np.argsort(np.asarray(train.timestamps), kind="stable")
    users, items = train.users[order], train.items[order]
    values = np.where(train.labels[order] >= threshold, 1.0, -1.0)
    key = users * n + items
    # the last occurrence of each (a, b) in time order wins
    _, last_rev = np.unique(key[::-1], return_index=True)
    last = len(key) - 1 - last_rev
    return sp.csr_matrix(
        (values[last].astype(np.float32), (users[last], items[last])), shape=(n, n)
    )
