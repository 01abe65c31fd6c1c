"""The full pipeline as one Recommender: candidate generators re-ranked by a LightGBM ranker.

Generators (EASE, implicit ALS, popularity, optionally the two-tower) each propose their
top ``n_candidates`` unseen items per user; the union is described by
:func:`~matchwise.models.ranker.candidate_features` (every generator's score, rank, gap
to the user's top and z-score, popularity, history length, tag/category/city/owner
match, recency...) and ordered by a :class:`~matchwise.models.ranker.LightGBMRanker`.

Where the ranker's labels come from (``label_source``):

- ``"auto"`` (default): ``"validation"`` when ``fit`` gets validation data with
  positives (what ``matchwise train`` always passes), else ``"holdout"``.
- ``"holdout"``: a seeded random ``holdout`` share of each user's *training*
  positives is hidden, the generators fit on the rest, and the hidden items label the
  candidates. Needs no validation data, so validation stays an honest yardstick.
- ``"validation"``: the generators fit on ``train`` and the validation positives label
  the candidates (seed 001's "next period"). The ranker has then seen validation: its
  validation figures are in-sample, test is the honest one.

With ``refit`` the generators are fitted again on all the data they may use (train, and
validation when it labelled), so the served model loses no history; ``None`` (default)
refits after holdout labels only, so with validation labels the generators the ranker
learnt from are the ones it serves with, fitted on train as every other model
``matchwise train`` fits. Test data is never seen in either mode.

The earlier defaults (EASE, ALS and popularity, holdout labels, refit, ``blend`` 1),
measured on MovieLens-100K, RecBole protocol, three split seeds
(``benchmarks/movielens/hybrid_experiment.py``): test NDCG@10 +0.9% to +2.1% over EASE
with λ tuned on validation, validation NDCG@10 +1.3% to +3.4%, about 22 s to fit on two
shared cores. The ranker alone, without the rank ``blend`` with EASE, was on par with
EASE: features learnt on 80% of train shift when the generators refit on all of it.
The benchmark's configuration (``HYBRID`` in :mod:`matchwise.bench.movielens`), now the
defaults, takes its labels from validation without refit (``label_source="validation"``,
``refit=False``): five generators including RP3beta and item-kNN, a small pointwise
ranker, genres as side features; +3.1% NDCG@10 over EASE with λ on a 37-value grid,
mean of three split seeds (benchmarks/RESULTS.md). ``score`` returns a full
``(users, n_items)`` matrix for ordering: candidates score in
(1, 2] by their position (ranker position + ``blend`` x the first generator's rank),
every other item in [-2, -1) by the first generator's rank, so full-ranking evaluation
works unchanged.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matchwise.data.splits import random_split
from matchwise.errors import ArtifactError, InvalidInput
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.catalog import model_class
from matchwise.models.ranker import (
    FeatureContext,
    LightGBMRanker,
    candidate_features,
    grouped_ranks,
)

log = logging.getLogger(__name__)

STATE = "hybrid.npz"
GENERATORS = ("ease", "als", "popularity", "two_tower", "item_knn", "rp3beta")
LABEL_SOURCES = ("auto", "holdout", "validation")
#: The defaults are the benchmarked configuration (``HYBRID`` in
#: :mod:`matchwise.bench.movielens`, chosen on MovieLens-100K validation alone), so
#: ``matchwise train hybrid`` fits what RESULTS.md measures (issue 17).
DEFAULT_GENERATORS = ("ease", "als", "rp3beta", "item_knn", "popularity")
DEFAULT_ALS: dict[str, Any] = {
    "factors": 128,
    "regularization": 50.0,
    "alpha": 10.0,
    "iterations": 20,
    "random_state": 0,
    "num_threads": 1,
}
DEFAULT_RP3BETA: dict[str, Any] = {"alpha": 0.8, "beta": 0.5, "k": 0}
DEFAULT_ITEM_KNN: dict[str, Any] = {"k": 200, "shrink": 0.0}
#: Measured on MovieLens-100K (RecBole split, 2 cores): pointwise ``binary`` ranked the
#: candidates better than ``lambdarank`` here; early stopping on a few hundred users
#: stopped after 3-40 trees by noise, so a fixed, strongly regularised 150 trees of 7
#: leaves it is, every labelled user trained on. ``ranker={"objective": "lambdarank"}``
#: switches back.
DEFAULT_RANKER: dict[str, Any] = {
    "objective": "binary",
    "n_estimators": 150,
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_data_in_leaf": 200,
    "lambda_l2": 1.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "valid_share": 0.0,
    "early_stopping_rounds": 0,
}


class HybridRecommender(Recommender):
    """Candidate generators + a LightGBM re-ranker (ONNX at serving) behind one interface.

    Parameters
    ----------
    generators:
        Names from ``ease``, ``als`` (implicit's ALS), ``popularity``, ``two_tower``,
        ``item_knn``, ``rp3beta``; the first one also scores the non-candidates.
    n_candidates:
        Each generator's top-N per user; the ranker orders their union.
    ease_l2, als, two_tower, item_knn, rp3beta, ranker:
        Hyperparameters of EASE (λ), ALS, the two-tower (config overrides), item-kNN,
        RP3beta and the ranker.
    label_source, holdout, folds:
        Where the ranker's labels come from (module docstring), the hidden share, and
        how many disjoint hidden shares (each a generator fit) feed the ranker.
    refit:
        Fit the generators again on all usable data once the ranker is trained
        (``None``: only when the labels were hidden training positives).
    positive_threshold:
        Labels at or above it are positives (history, ranker labels).
    drop_features:
        Shell-style patterns of feature names the ranker must not use (``"*_score"``).
    ranker_users:
        At most this many labelled users per fold teach the ranker (a seeded sample
        above it; all of them below, so small data trains as before).
    blend:
        Candidates are ordered by ranker position + ``blend`` x the first generator's rank
        (0: the ranker alone). A rank average hedges the ranker's noise on small data.
    """

    model_type: ClassVar[str] = "hybrid"
    serves: ClassVar[frozenset[str]] = frozenset({"hot"})
    pipeline: ClassVar[bool] = True  # candidates from several generators, re-ranked
    score_scale: ClassVar[str] = (
        "raw / 2 for a re-ranked candidate (raw in (1, 2]: its position in the user's "
        "candidate list), (raw + 2) / 2 for any other item"
    )

    def __init__(
        self,
        generators: Sequence[str] = DEFAULT_GENERATORS,
        n_candidates: int = 100,
        ease_l2: float = 400.0,
        als: Mapping[str, Any] | None = None,
        two_tower: Mapping[str, Any] | None = None,
        ranker: Mapping[str, Any] | None = None,
        item_knn: Mapping[str, Any] | None = None,
        rp3beta: Mapping[str, Any] | None = None,
        label_source: str = "auto",
        holdout: float = 0.2,
        folds: int = 2,
        refit: bool | None = None,
        positive_threshold: float = 0.7,
        drop_features: Sequence[str] = (),
        blend: float = 0.0,
        seed: int = 0,
        batch_size: int = 512,
        ranker_users: int = 4000,
    ) -> None:
        super().__init__()
        generators = [str(g) for g in generators]
        unknown = sorted(set(generators) - set(GENERATORS))
        if not generators or unknown:
            raise InvalidInput(
                f"hybrid generators must be some of {', '.join(GENERATORS)}; got {generators}"
            )
        if label_source not in LABEL_SOURCES:
            raise InvalidInput(f"label_source must be one of {LABEL_SOURCES}: {label_source!r}")
        if not 0 < holdout < 1:
            raise InvalidInput(f"holdout must be in (0, 1), got {holdout}")
        if n_candidates < 1:
            raise InvalidInput("n_candidates must be >= 1")
        self.generators = generators
        self.n_candidates = int(n_candidates)
        self.ease_l2 = float(ease_l2)
        self.als = {**DEFAULT_ALS, **(als or {})}
        self.two_tower = dict(two_tower or {})
        self.ranker = {**DEFAULT_RANKER, **(ranker or {})}
        self.item_knn = {**DEFAULT_ITEM_KNN, **(item_knn or {})}
        self.rp3beta = {**DEFAULT_RP3BETA, **(rp3beta or {})}
        self.label_source = label_source
        self.holdout = float(holdout)
        if folds < 1:
            raise InvalidInput("folds must be >= 1")
        self.folds = int(folds)
        self.refit = None if refit is None else bool(refit)
        self.positive_threshold = float(positive_threshold)
        self.drop_features = [str(p) for p in drop_features]
        if blend < 0:
            raise InvalidInput(f"blend must be >= 0, got {blend}")
        self.blend = float(blend)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        if ranker_users < 1:
            raise InvalidInput(f"ranker_users must be >= 1, got {ranker_users}")
        self.ranker_users = int(ranker_users)
        self.generators_: dict[str, Recommender] = {}
        self.ranker_: LightGBMRanker | None = None
        self.context_: FeatureContext | None = None
        self.seen_: sp.csr_matrix | None = None
        self.people_: bool = False

    def get_params(self) -> dict[str, Any]:
        return {
            "generators": list(self.generators),
            "n_candidates": self.n_candidates,
            "ease_l2": self.ease_l2,
            "als": dict(self.als),
            "two_tower": dict(self.two_tower),
            "ranker": dict(self.ranker),
            "item_knn": dict(self.item_knn),
            "rp3beta": dict(self.rp3beta),
            "label_source": self.label_source,
            "holdout": self.holdout,
            "folds": self.folds,
            "refit": self.refit,
            "positive_threshold": self.positive_threshold,
            "drop_features": list(self.drop_features),
            "blend": self.blend,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "ranker_users": self.ranker_users,
        }

    # --- generators ---------------------------------------------------------------------
    def _make_generator(self, name: str, epochs: int | None = None) -> Recommender:
        """A fresh generator; ``epochs`` fixes the two-tower's epochs (refits)."""
        cls: Any = _generator_class(name)
        if name == "ease":
            return cls(l2=self.ease_l2)
        if name == "als":
            return cls(**self.als)
        if name == "two_tower":
            config = {"seed": self.seed, **self.two_tower}
            if epochs is not None:
                config["epochs"] = epochs
            return cls(**config)
        if name == "item_knn":
            return cls(**self.item_knn)
        if name == "rp3beta":
            return cls(**self.rp3beta)
        return cls()

    def _fit_generators(
        self,
        data: InteractionSet,
        early_stop: InteractionSet | None,
        epochs: Mapping[str, int] | None = None,
    ) -> dict[str, Recommender]:
        fitted: dict[str, Recommender] = {}
        for name in self.generators:
            started = time.perf_counter()
            fixed = (epochs or {}).get(name)
            model = self._make_generator(name, fixed)
            if name == "two_tower":  # early-stops on the hidden positives, or runs `fixed`
                model.fit(data, None if fixed else early_stop)
            else:
                try:
                    model.fit(data)
                except ImportError as exc:
                    raise InvalidInput(f"hybrid generator {name!r} cannot run: {exc}") from exc
            fitted[name] = model
            log.debug("hybrid generator %s fitted in %.2fs", name, time.perf_counter() - started)
        return fitted

    # --- training -----------------------------------------------------------------------
    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        """Fit generators, learn the ranker from hidden positives, refit the generators."""
        started = time.perf_counter()
        if validation is not None and (validation.n_users, validation.n_items) != (
            train.n_users,
            train.n_items,
        ):
            raise InvalidInput("validation must share the training id universe")
        if not (train.labels >= self.positive_threshold).any():
            raise InvalidInput(
                f"the training data has no positives (label >= {self.positive_threshold}): "
                "the hybrid has nothing to learn from"
            )
        self.people_ = _same_universe(train)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        source = self._label_source(validation)
        refit = (source == "holdout") if self.refit is None else self.refit
        if source == "validation":
            if validation is None:
                raise InvalidInput("label_source='validation' needs validation data in fit()")
            hidden = validation.subset(validation.labels >= self.positive_threshold)
            stages = [(train, hidden)]
            final_data = concat_interactions(train, validation) if refit else train
        else:
            stages = self._holdout_stages(train)
            final_data = train
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        names: list[str] = []
        found = total = 0
        for fold, (stage_data, labels) in enumerate(stages):
            self._set_stage(stage_data, self._fit_generators(stage_data, labels))
            label_matrix = labels.to_csr(positive_only=True)
            label_matrix.data[:] = 1.0
            label_users = self._ranker_sample(np.diff(label_matrix.indptr) > 0, fold)
            X, y, groups, names = self._training_rows(label_users, label_matrix)
            blocks.append((X, y, groups, label_users))
            found += int(y.sum())
            total += int(label_matrix.sum())
        X = np.concatenate([b[0] for b in blocks])
        y = np.concatenate([b[1] for b in blocks])
        groups = np.concatenate([b[2] for b in blocks])
        keys = np.concatenate([b[3] for b in blocks])
        recall = found / max(total, 1)
        log.info("hybrid ranker data: %d rows, candidate recall %.3f", len(y), recall)
        self.ranker_ = LightGBMRanker(**{"seed": self.seed, **self.ranker}).fit(
            X, y, groups, names, group_keys=keys, baseline=f"{self.generators[0]}_score"
        )
        self.feature_names = list(names)
        stage_seconds = time.perf_counter() - started
        if refit and final_data is not stages[-1][0]:
            epochs = None
            model = self.generators_.get("two_tower")
            if model is not None:  # as many epochs as early stopping chose on the stage
                epochs = {"two_tower": int(model.training_metrics.get("best_epoch") or 1)}
            self._set_stage(final_data, self._fit_generators(final_data, None, epochs))
        self.training_metrics = {
            "train_seconds": round(time.perf_counter() - started, 2),
            "stage_seconds": round(stage_seconds, 2),
            "label_source": source,
            "refit": refit,
            "ranker_rows": int(len(y)),
            "ranker_groups": int(len(groups)),
            "candidate_recall": round(recall, 4),
            "ranker": {
                k: v for k, v in self.ranker_.training_metrics.items() if k != "feature_importance"
            },
            "feature_importance": self.ranker_.training_metrics.get("feature_importance", {}),
            "backend": self.ranker_.backend,
        }
        log.info("hybrid trained in %.1fs", self.training_metrics["train_seconds"])
        return self

    def _label_source(self, validation: InteractionSet | None) -> str:
        """``auto``: the validation positives when there are any, else hidden train ones."""
        if self.label_source != "auto":
            return self.label_source
        if validation is not None and (validation.labels >= self.positive_threshold).any():
            return "validation"
        return "holdout"

    def _ranker_sample(self, labelled: np.ndarray, fold: int) -> np.ndarray:
        """The users whose candidates teach the ranker in ``fold``: every labelled user up
        to ``ranker_users``, else a seeded random ``ranker_users`` of them (sorted). At 20,000
        users building every user's candidate rows was half the fit (issue 16); a few
        thousand users' rows teach a ranker of 150-300 small trees as well."""
        users = np.flatnonzero(labelled)
        if len(users) <= self.ranker_users:
            return users
        rng = np.random.default_rng([self.seed, fold])
        return np.sort(rng.choice(users, self.ranker_users, replace=False))

    def _set_stage(self, data: InteractionSet, generators: dict[str, Recommender]) -> None:
        self.generators_ = generators
        self.context_ = FeatureContext.from_interactions(data, self.positive_threshold)
        self.seen_ = _seen(data)

    def _holdout_stages(self, train: InteractionSet) -> list[tuple[InteractionSet, InteractionSet]]:
        """Per fold, (training part, hidden positives): disjoint seeded random shares.

        Each user's positives are cut into ``round(1 / holdout)`` random parts (RecBole's
        arithmetic, so a user with a single positive hides nothing); fold ``f`` hides part
        ``f``.
        """
        n_parts = max(2, round(1.0 / self.holdout))
        positive = np.flatnonzero(train.labels >= self.positive_threshold)
        frame = pd.DataFrame({"user_id": train.users[positive], "row": positive})
        parts = random_split(frame, [1.0 / n_parts] * n_parts, seed=self.seed)
        stages = []
        for fold in range(min(self.folds, n_parts)):
            mask = np.zeros(len(train), dtype=bool)
            mask[parts[n_parts - 1 - fold]["row"].to_numpy()] = True
            if mask.any():
                stages.append((train.subset(~mask), train.subset(mask)))
        if not stages:
            raise InvalidInput(
                "too little data for the hybrid's holdout: no user has two positives; "
                "use label_source='validation' or more data"
            )
        return stages

    def _training_rows(
        self, users: np.ndarray, labels: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Candidate features and 0/1 labels of ``users``, grouped by user."""
        blocks_X, blocks_y, blocks_g = [], [], []
        names: list[str] = []
        for start in range(0, len(users), self.batch_size):
            batch = users[start : start + self.batch_size]
            X, names, rows, cols = self._batch_features(batch)
            y = np.asarray(labels[batch[rows], cols]).ravel().astype(np.float32)
            blocks_X.append(X)
            blocks_y.append(y)
            blocks_g.append(np.bincount(rows, minlength=len(batch)))
        X = np.concatenate(blocks_X)
        y = np.concatenate(blocks_y)
        groups = np.concatenate(blocks_g)
        return X, y, groups, names

    # --- candidates and features -----------------------------------------------------------
    def _generator_scores(self, users: np.ndarray) -> dict[str, np.ndarray]:
        assert self.seen_ is not None
        seen = self.seen_[users]
        r, c = seen.nonzero()
        out = {}
        for name, model in self.generators_.items():
            scores = np.array(model.score(users), dtype=np.float32, copy=True)
            scores[r, c] = -np.inf
            out[name] = scores
        return out

    def _batch_features(
        self, users: np.ndarray, scores: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Features of the candidate union of a batch: (X, names, rows, cols), grouped by row."""
        assert self.context_ is not None
        if scores is None:
            scores = self._generator_scores(users)
        n_items = self.context_.n_items
        k = min(self.n_candidates, n_items)
        votes = np.zeros((len(users), n_items), dtype=np.int8)
        row_of = np.repeat(np.arange(len(users)), k)
        for values in scores.values():
            top = np.argpartition(-values, k - 1, axis=1)[:, :k].ravel()
            ok = np.isfinite(values[row_of, top])  # seen items never become candidates
            votes[row_of[ok], top[ok]] += 1
        rows, cols = np.nonzero(votes)
        extra = {"n_generators": votes[rows, cols].astype(np.float32)}
        if self.people_:
            extra["reciprocal"] = self._reciprocal(users, rows, cols)
            # the candidate already liked this user: half a match is waiting
            liked = self.context_.history[cols, users[rows]]
            extra["liked_back"] = np.asarray(liked, dtype=np.float32).ravel()
        X, names = candidate_features(self.context_, users, rows, cols, scores, extra)
        if self.drop_features:
            keep = [
                k for k, name in enumerate(names)
                if not any(fnmatch.fnmatchcase(name, p) for p in self.drop_features)
            ]  # fmt: skip
            X, names = X[:, keep], [names[k] for k in keep]
        return X, names, rows, cols

    def _reciprocal(self, users: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """People domain: the first generator's score of the user for the candidate."""
        primary = self.generators_[self.generators[0]]
        unique, position = np.unique(cols, return_inverse=True)
        values = np.zeros(len(cols), np.float32)
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            back = primary.score(chunk)  # candidates as users, scoring everyone as items
            sel = (position >= start) & (position < start + len(chunk))
            values[sel] = back[position[sel] - start, users[rows[sel]]]
        return values

    # --- scoring ------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> np.ndarray:
        """Ranker scores for each user's candidates, above a generator-rank floor elsewhere."""
        self._check_fitted()
        assert self.ranker_ is not None
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= (self.n_users_ or 0)):
            raise InvalidInput(f"user index out of range [0, {self.n_users_})")
        out = np.empty((len(users), self.n_items_ or 0), dtype=np.float32)
        for start in range(0, len(users), self.batch_size):
            batch = users[start : start + self.batch_size]
            out[start : start + len(batch)] = self._score_batch(batch)
        return out

    def unit_scores(self, scores: np.ndarray) -> np.ndarray:
        """Positions on [0, 1]: a re-ranked candidate's (1, 2] becomes (0.5, 1] (1 is the
        top of the user's candidate list, just above 0.5 its last), any other item's
        [-2, -1) becomes [0, 0.5) by the first generator's rank. Linear on each part, so
        increasing."""
        s = np.asarray(scores, dtype=np.float64)
        return np.clip(np.where(s >= 0, 0.5 * s, 0.5 * (s + 2.0)), 0.0, 1.0)

    def _score_batch(self, users: np.ndarray) -> np.ndarray:
        assert self.ranker_ is not None
        scores = self._generator_scores(users)
        X, names, rows, cols = self._batch_features(users, scores)
        X = _align_columns(X, names, self.ranker_.feature_names)
        ranked = self.ranker_.predict(X)
        primary = scores[self.generators[0]]
        n_items = primary.shape[1]
        primary_rank = grouped_ranks(primary)
        out = (-1.0 - primary_rank / n_items).astype(np.float32)
        if len(ranked):
            # candidates: by ranker position plus `blend` x the first generator's rank (a
            # rank average that hedges the ranker's noise), ties by the first generator;
            # scored by final position so that float32 never merges two close scores
            sizes = np.bincount(rows, minlength=len(users))
            first = np.cumsum(sizes) - sizes
            by_ranker = np.lexsort((primary_rank[rows, cols], -ranked, rows))
            ranker_position = np.empty(len(rows), dtype=np.float64)
            ranker_position[by_ranker] = np.arange(len(rows)) - first[rows[by_ranker]]
            combined = ranker_position + self.blend * primary_rank[rows, cols]
            order = np.lexsort((primary_rank[rows, cols], combined, rows))
            position = np.arange(len(order)) - first[rows[order]]
            size = sizes[rows[order]]
            out[rows[order], cols[order]] = 1.0 + (size - position) / size
        return out

    # --- persistence --------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        assert self.ranker_ is not None and self.context_ is not None and self.seen_ is not None
        for name, model in self.generators_.items():
            model.save(folder / "generators" / name)
        self.ranker_.save(folder / "ranker")
        arrays = self.context_.to_arrays()
        arrays["seen.indices"] = self.seen_.indices.astype(np.int64)
        arrays["seen.indptr"] = self.seen_.indptr.astype(np.int64)
        arrays["people"] = np.array([self.people_])
        np.savez(folder / STATE, **arrays)  # type: ignore[arg-type]

    def _load_state(self, folder: Path) -> None:
        if not (folder / STATE).is_file():
            raise ArtifactError(f"hybrid artifact at {folder} has no {STATE}")
        with np.load(folder / STATE, allow_pickle=False) as state:
            arrays = {key: state[key] for key in state.files}
        self.context_ = FeatureContext.from_arrays(arrays)
        if (self.context_.n_users, self.context_.n_items) != (self.n_users_, self.n_items_):
            raise ArtifactError(f"{folder / STATE} does not match the manifest's shape")
        indices = arrays["seen.indices"]
        self.seen_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, arrays["seen.indptr"]),
            shape=(self.n_users_, self.n_items_),
        )
        self.people_ = bool(arrays["people"][0])
        self.generators_ = {}
        for name in self.generators:
            self.generators_[name] = _generator_class(name).load(folder / "generators" / name)
        self.ranker_ = LightGBMRanker.load(folder / "ranker")
        if self.feature_names and self.ranker_.feature_names != self.feature_names:
            raise ArtifactError(f"{folder}: the ranker's features differ from the manifest's")


# --- helpers ---------------------------------------------------------------------------------
#: The hybrid's generator names and the catalogue's model names they are.
GENERATOR_MODELS = {"ease": "ease", "popularity": "popularity", "als": "implicit_als",
                    "two_tower": "two_tower", "item_knn": "item_knn",
                    "rp3beta": "rp3beta"}  # fmt: skip


def _generator_class(name: str) -> type[Recommender]:
    """Looked up in the catalogue, so implicit and torch load only for the generators in use."""
    if name not in GENERATOR_MODELS:
        raise InvalidInput(f"unknown hybrid generator {name!r}; known: "
                           f"{', '.join(sorted(GENERATOR_MODELS))}")  # fmt: skip
    return model_class(GENERATOR_MODELS[name])


def _seen(data: InteractionSet) -> sp.csr_matrix:
    """Every (user, item) with any interaction: never proposed again as a candidate."""
    matrix = sp.csr_matrix(
        (np.ones(len(data), np.float32), (data.users, data.items)),
        shape=(data.n_users, data.n_items),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def concat_interactions(a: InteractionSet, b: InteractionSet) -> InteractionSet:
    """Two interaction sets over one id universe as one (side features from ``a``)."""

    def join(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or y is None else np.concatenate([x, y])

    return InteractionSet(
        user_ids=a.user_ids,
        item_ids=a.item_ids,
        users=np.concatenate([a.users, b.users]),
        items=np.concatenate([a.items, b.items]),
        labels=np.concatenate([a.labels, b.labels]),
        weights=join(a.weights, b.weights),
        timestamps=join(a.timestamps, b.timestamps),
        user_features=a.user_features,
        item_features=a.item_features,
        meta=dict(a.meta),
    )


def _same_universe(data: InteractionSet) -> bool:
    """People domain: candidates are the users themselves (same ids, same order)."""
    if data.meta.get("domain") == "people":
        return data.n_users == data.n_items
    return data.n_users == data.n_items and np.array_equal(
        np.asarray(data.user_ids).astype(str), np.asarray(data.item_ids).astype(str)
    )


def _align_columns(X: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """Columns in the ranker's order; a feature the data lacks now is 0."""
    if list(names) == list(wanted):
        return X
    index = {name: k for k, name in enumerate(names)}
    out = np.zeros((len(X), len(wanted)), dtype=np.float32)
    for k, name in enumerate(wanted):
        if name in index:
            out[:, k] = X[:, index[name]]
    return out
