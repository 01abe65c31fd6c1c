"""Pairwise people model: P(a says yes to b) from who a and b are and what fits between them.

Two views of each decision, blended in log-odds. A logistic model,

    logit P(a likes b) = mu + alpha_a + beta_b + w . x(a, b),

where ``alpha_a`` is how readily a says yes (choosiness, learned from a's swipes),
``beta_b`` how readily others say yes to b (desirability, learned from the swipes b
received), and ``x(a, b)`` the pair features of :mod:`matchwise.features.pairwise` (stated
preference weights times the partner's self-ratings, age gap, same race times the
importance of race, shared interests, both people's answers). The person effects are
ridge-penalised (``person_l2``), so someone with few swipes is pulled towards what people
like them do, and someone with none is scored from the features alone; the feature
weights have their own ridge (``feature_l2``). Fitted by L-BFGS on the exact penalised
log-likelihood: no leave-one-out rates, so a training row never sees its own label.
And a small LightGBM (:data:`TREE_PARAMS`, fixed) on the same pair features plus both
people's raw answers side by side, which finds the interactions a linear model misses;
``tree_weight`` is its share of the blended log-odds.

The two directions, P(a likes b) and P(b likes a), come from the same model with the
roles swapped and combine into one mutual score by ``mode`` (the harmonic mean by
default, as serving combines a people model's two directions). ``auto`` settings are
chosen by cross-validation over the training pairs (folds of pairs, both directions of a
pair held out together, as the mutual match they make is): the two ridge strengths and
the tree weight on small grids, by the match AUC averaged over the folds (one held-out
split of a few hundred pairs picked nearly at random among settings within its noise);
then the model is refitted on every training pair. Decisions on record override the
model's P(b likes a), as serving knows them ("already likes you").
"""

from __future__ import annotations

import itertools
import logging
import warnings
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.features.pairwise import (
    ANSWERS,
    INTERESTS,
    PAIR_FEATURES,
    PERSONAL,
    PairProfiles,
    answer_matrix,
    pair_feature_matrix,
)
from matchwise.features.people import RECIPROCAL_MODES, reciprocal_score
from matchwise.metrics import auc
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.reciprocal import check_people

log = logging.getLogger(__name__)

STATE = "pairwise.npz"
TREES = "pairwise_trees.txt"
AUTO = "auto"
#: The grids ``auto`` chooses from on the validation folds: few, sane values. Their range
#: came from cross-validation inside the Speed Dating benchmark's training pairs (three
#: seeds, five folds each; never its test pairs): the person ridge was best at 0.3-0.5 and
#: worse at 2, the feature ridge flat over 30-100, slightly lower at 10, a tree weight of 0.25
#: ahead of 0 and 0.5, the harmonic mean ahead of the minimum (benchmarks/RESULTS.md).
PERSON_L2_GRID: tuple[float, ...] = (0.25, 0.5, 1.0)
FEATURE_L2_GRID: tuple[float, ...] = (30.0, 100.0)
MODE_GRID: tuple[str, ...] = ("harmonic", "min")
TREE_WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5)
#: What ``auto`` falls back to when the validation pairs cannot tell (no mutual pairs).
DEFAULTS: dict[str, Any] = {"person_l2": 0.5, "feature_l2": 30.0, "mode": "harmonic",
                            "tree_weight": 0.25}  # fmt: skip
#: The tree model's settings: small, shallow, shrunk and subsampled (not tuned here).
TREE_PARAMS: dict[str, Any] = {
    "objective": "binary", "n_estimators": 200, "learning_rate": 0.03, "num_leaves": 15,
    "min_child_samples": 30, "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8,
    "reg_lambda": 5.0, "n_jobs": 1, "deterministic": True, "verbose": -1,
}  # fmt: skip
#: Pairs featurised at once when scoring whole rows (x 39 features x 8 bytes: 78 MB).
_PAIRS_PER_BLOCK = 1 << 18


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class PairwiseRecommender(Recommender):
    """Person effects plus pair features, and trees on both people's answers; both
    directions combined into a mutual score.

    Parameters
    ----------
    person_l2, feature_l2:
        Ridge strengths of the person effects and of the feature weights; ``auto``:
        chosen on the validation pairs from :data:`PERSON_L2_GRID` / :data:`FEATURE_L2_GRID`.
    tree_weight:
        The tree model's share of the blended log-odds (0: the logistic model alone, 1:
        the trees alone); ``auto``: chosen from :data:`TREE_WEIGHT_GRID`.
    mode:
        How the two directions combine (``harmonic``, ``min``, ``product``, ``weighted``);
        ``auto``: ``harmonic`` or ``min``, whichever ranks the validation pairs' matches
        better. Default ``harmonic``: serving's ``reciprocal_mode``, so the mutual score the
        benchmark measures is the one serving's blend reads.
    validation_share:
        The share of training pairs each validation fold holds out: ``auto`` cross-validates
        over ``round(1 / validation_share)`` folds (1/3: three).
    known_decisions:
        Let training decisions override the model's P(b likes a).
    """

    model_type = "pairwise"
    serves = frozenset({"people"})  # P(a likes b) and P(b likes a) for the people path
    score_scale = "the mutual score itself: a combination of two probabilities, in [0, 1]"

    def __init__(
        self,
        person_l2: float | str = AUTO,
        feature_l2: float | str = AUTO,
        tree_weight: float | str = AUTO,
        mode: str = "harmonic",
        validation_share: float = 1.0 / 3.0,
        known_decisions: bool = True,
        positive_threshold: float = 0.5,
        max_iter: int = 500,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if mode != AUTO and mode not in RECIPROCAL_MODES:
            raise InvalidInput(f"unknown mode {mode!r}; use auto, {', '.join(RECIPROCAL_MODES)}")
        for name, value in (("person_l2", person_l2), ("feature_l2", feature_l2)):
            if value != AUTO and not (isinstance(value, int | float) and value > 0):
                raise InvalidInput(f"{name} must be a positive number or 'auto', got {value!r}")
        if tree_weight != AUTO and not (
            isinstance(tree_weight, int | float) and 0.0 <= tree_weight <= 1.0
        ):
            raise InvalidInput(f"tree_weight must be in [0, 1] or 'auto', got {tree_weight!r}")
        if not 0.0 < validation_share <= 0.5:
            raise InvalidInput(f"validation_share must be in (0, 0.5], got {validation_share}")
        self.person_l2 = person_l2
        self.feature_l2 = feature_l2
        self.tree_weight = tree_weight
        self.mode = mode
        self.validation_share = float(validation_share)
        self.known_decisions = bool(known_decisions)
        self.positive_threshold = float(positive_threshold)
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        self.profiles_: PairProfiles | None = None
        self.mu_ = 0.0
        self.alpha_ = np.zeros(0)
        self.beta_ = np.zeros(0)
        self.w_ = np.zeros(0)
        self.medians_ = np.zeros(0)
        self.mean_ = np.zeros(0)
        self.std_ = np.ones(0)
        self.trees_: lgb.Booster | None = None
        self.chosen_: dict[str, Any] = {}
        self.decisions_: sp.csr_matrix | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "person_l2": self.person_l2,
            "feature_l2": self.feature_l2,
            "tree_weight": self.tree_weight,
            "mode": self.mode,
            "validation_share": self.validation_share,
            "known_decisions": self.known_decisions,
            "positive_threshold": self.positive_threshold,
            "max_iter": self.max_iter,
            "seed": self.seed,
        }

    # --- training -------------------------------------------------------------------------
    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        """Learn from the decisions in ``train`` (users = candidates, profiles as
        ``user_features``); ``validation`` is not used (``auto`` holds out its own pairs,
        both directions together, which a positives-only split cannot give)."""
        n = check_people(train, "the pairwise model")
        self.profiles_ = PairProfiles.from_frame(_aligned(train.user_features, train.user_ids))
        a, b, y = _latest_decisions(train, self.positive_threshold)
        if len(y) == 0 or y.min() == y.max():
            raise InvalidInput("the pairwise model needs both likes and passes among the swipes")
        raw = pair_feature_matrix(self.profiles_, a, b)
        self._fit_scaling(raw)
        X = self._standardise(raw)
        T = np.column_stack([raw, answer_matrix(self.profiles_, a, b)])
        self.chosen_ = self._choose(a, b, y, X, T, n)
        self.mu_, self.alpha_, self.beta_, self.w_ = _fit_effects(
            a, b, X, y, n, self.chosen_["person_l2"], self.chosen_["feature_l2"], self.max_iter
        )
        self.trees_ = _fit_trees(T, y, self.seed) if self.chosen_["tree_weight"] > 0 else None
        self.decisions_ = sp.csr_matrix(
            (np.where(y > 0, 1.0, -1.0).astype(np.float32), (a, b)), shape=(n, n)
        )
        self.n_users_ = self.n_items_ = n
        self.version = f"pairwise-{n}p-{len(y)}d"
        self.feature_names = list(PAIR_FEATURES)
        self.training_metrics = {"decisions": int(len(y)), "likes": int(y.sum()),
                                 "chosen": self.chosen_}  # fmt: skip
        return self

    def _fit_scaling(self, raw: np.ndarray) -> None:
        with warnings.catch_warnings():  # an answer nobody gave: NaN, then 0
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(raw, axis=0) if len(raw) else np.zeros(raw.shape[1])
        self.medians_ = np.nan_to_num(medians)
        filled = np.where(np.isnan(raw), self.medians_, raw)
        self.mean_ = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.std_ = np.where(std > 1e-12, std, 1.0)

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        return (np.where(np.isnan(raw), self.medians_, raw) - self.mean_) / self.std_

    def _choose(
        self, a: np.ndarray, b: np.ndarray, y: np.ndarray, X: np.ndarray, T: np.ndarray, n: int
    ) -> dict[str, Any]:
        """The ridge strengths, the tree weight and the combination: given, or chosen by
        their match AUC averaged over folds of held-out pairs (both directions of a pair
        out together)."""
        grids: dict[str, list[Any]] = {
            "person_l2": (
                [float(self.person_l2)] if self.person_l2 != AUTO else list(PERSON_L2_GRID)
            ),
            "feature_l2": (
                [float(self.feature_l2)] if self.feature_l2 != AUTO else list(FEATURE_L2_GRID)
            ),
            "tree_weight": (
                [float(self.tree_weight)] if self.tree_weight != AUTO else list(TREE_WEIGHT_GRID)
            ),
            "mode": [self.mode] if self.mode != AUTO else list(MODE_GRID),
        }  # fmt: skip
        if all(len(v) == 1 for v in grids.values()):
            return {k: v[0] for k, v in grids.items()}
        fallback = {**DEFAULTS, **{k: v[0] for k, v in grids.items() if len(v) == 1}}
        pair = np.minimum(a, b) * n + np.maximum(a, b)
        unique = np.unique(pair)
        n_folds = max(2, min(round(1.0 / self.validation_share), len(unique)))
        fold_of = np.random.default_rng(self.seed).permutation(len(unique)) % n_folds
        fold = fold_of[np.searchsorted(unique, pair)]
        key = pd.Series(np.arange(len(a)), index=a * n + b)  # each decision's reverse
        settings = list(itertools.product(*grids.values()))
        totals, used, pairs = np.zeros(len(settings)), 0, 0
        for k in range(n_folds):
            fit_rows, val_rows = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            reverse = key.reindex(b[val_rows] * n + a[val_rows]).to_numpy()
            both = ~np.isnan(reverse)
            forward, backward = val_rows[both], reverse[both].astype(np.int64)
            match = (y[forward] > 0) & (y[backward] > 0)
            if not 0 < match.sum() < len(match) or y[fit_rows].min() == y[fit_rows].max():
                continue  # this fold cannot tell
            tree_logits: tuple[np.ndarray, np.ndarray] | None = None
            if any(w > 0 for w in grids["tree_weight"]):
                trees = _fit_trees(T[fit_rows], y[fit_rows], self.seed)
                tree_logits = (_tree_logit(trees, T[forward]), _tree_logit(trees, T[backward]))
            effects: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}
            start: np.ndarray | None = None
            for p_l2, f_l2 in itertools.product(grids["person_l2"], grids["feature_l2"]):
                mu, alpha, beta, w = _fit_effects(
                    a[fit_rows], b[fit_rows], X[fit_rows], y[fit_rows], n, p_l2, f_l2,
                    self.max_iter, start,
                )  # fmt: skip
                start = np.concatenate([[mu], alpha, beta, w])  # warm start the next
                effects[p_l2, f_l2] = (
                    mu + alpha[a[forward]] + beta[b[forward]] + X[forward] @ w,
                    mu + alpha[a[backward]] + beta[b[backward]] + X[backward] @ w,
                )
            for i, (p_l2, f_l2, t_w, mode) in enumerate(settings):
                z_ab, z_ba = effects[p_l2, f_l2]
                if tree_logits is not None and t_w > 0:
                    z_ab = (1 - t_w) * z_ab + t_w * tree_logits[0]
                    z_ba = (1 - t_w) * z_ba + t_w * tree_logits[1]
                totals[i] += auc(match, reciprocal_score(_sigmoid(z_ab), _sigmoid(z_ba), mode))
            used += 1
            pairs += len(match) // 2
        if used == 0:
            log.info("pairwise: the validation pairs hold no mutual contrast; defaults kept")
            return {**fallback, "validation": "no mutual contrast"}
        means = np.round(totals / used, 4)
        best = int(np.argmax(means))  # the first of equals: the grids' order breaks ties
        return {**dict(zip(grids, settings[best], strict=True)),
                "validation_match_auc": float(means[best]), "validation_folds": used,
                "validation_pairs": pairs}  # fmt: skip

    # --- scoring ---------------------------------------------------------------------------
    @property
    def combine(self) -> str:
        """The chosen combination of the two directions."""
        return str(self.chosen_.get("mode", DEFAULTS["mode"]))

    def pair_proba(self, chooser: np.ndarray, partner: np.ndarray) -> np.ndarray:
        """P(chooser says yes to partner) for aligned arrays of person rows."""
        self._check_fitted()
        assert self.profiles_ is not None
        c = np.asarray(chooser, dtype=np.int64)
        p = np.asarray(partner, dtype=np.int64)
        t_w = float(self.chosen_.get("tree_weight", 0.0)) if self.trees_ is not None else 0.0
        out = np.empty(len(c))
        for start in range(0, len(c), _PAIRS_PER_BLOCK):
            sl = slice(start, start + _PAIRS_PER_BLOCK)
            raw = pair_feature_matrix(self.profiles_, c[sl], p[sl])
            z = self.mu_ + self.alpha_[c[sl]] + self.beta_[p[sl]] + self._standardise(raw) @ self.w_
            if t_w > 0 and self.trees_ is not None:
                T = np.column_stack([raw, answer_matrix(self.profiles_, c[sl], p[sl])])
                z = (1.0 - t_w) * z + t_w * _tree_logit(self.trees_, T)
            out[sl] = _sigmoid(z)
        return out

    def _known(self, p_ba: np.ndarray, others: np.ndarray, user: int) -> np.ndarray:
        """``p_ba[i]``: replaced by ``others[i]``'s recorded decision on ``user``, if any."""
        if not self.known_decisions or self.decisions_ is None:
            return p_ba
        recorded = np.asarray(self.decisions_[others, user].todense()).ravel()
        return np.where(recorded > 0, 1.0, np.where(recorded < 0, 0.0, p_ba))

    def score_candidates(
        self, user: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(P(user likes c), P(c likes user), mutual score)`` for one user's candidates:
        what serving's people path reads (as from the reciprocal model)."""
        p_ab, p_ba = self.pair_probabilities(user, candidates)
        return p_ab, p_ba, reciprocal_score(p_ab, p_ba, self.combine)

    def pair_probabilities(
        self, user: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(P(user likes c), P(c likes user))``: :meth:`score_candidates` without the
        model's own combination (serving combines them its own way)."""
        self._check_fitted()
        n = self.n_users_ or 0
        if not 0 <= int(user) < n:
            raise InvalidInput(f"user index out of range [0, {n})")
        cands = np.asarray(candidates, dtype=np.int64)
        if cands.size and (cands.min() < 0 or cands.max() >= n):
            raise InvalidInput(f"candidate index out of range [0, {n})")
        me = np.full(len(cands), int(user), dtype=np.int64)
        p_ab = self.pair_proba(me, cands)
        p_ba = self._known(self.pair_proba(cands, me), cands, int(user))
        return p_ab, p_ba

    def block_pair_probabilities(
        self, users: np.ndarray, groups: np.ndarray, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`pair_probabilities` of many users, ``users[i]``'s candidates being
        ``candidates[groups[i]:groups[i + 1]]``: a user at a time, so each pair's values
        are those it gets alone (the feature rows go through a matrix product whose
        rounding may depend on how many rows it is given)."""
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        groups = np.asarray(groups, dtype=np.int64)
        cands = np.asarray(candidates, dtype=np.int64)
        if len(groups) != len(users) + 1 or (len(groups) and groups[-1] != len(cands)):
            raise InvalidInput("groups must bound each user's candidates: len(users) + 1 "
                               "offsets ending at len(candidates)")  # fmt: skip
        p_ab, p_ba = np.empty(len(cands)), np.empty(len(cands))
        for i, user in enumerate(users.tolist()):
            part = slice(int(groups[i]), int(groups[i + 1]))
            p_ab[part], p_ba[part] = self.pair_probabilities(user, cands[part])
        return p_ab, p_ba

    def score(self, users: np.ndarray) -> np.ndarray:
        """Mutual scores of every person for each user row: ``(len(users), n)``."""
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        n = self.n_users_ or 0
        everyone = np.arange(n)
        out = np.empty((len(users), n), dtype=np.float32)
        for i, u in enumerate(users.tolist()):
            out[i] = self.score_candidates(int(u), everyone)[2]
        return out

    def unit_scores(self, scores: np.ndarray) -> np.ndarray:
        """Already on [0, 1] (two probabilities combined)."""
        return np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)

    # --- persistence ----------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        assert self.profiles_ is not None and self.decisions_ is not None
        pr = self.profiles_
        tags = pr.tags.tocoo()
        decisions = self.decisions_.tocoo()
        np.savez(
            folder / STATE,
            mu=np.array([self.mu_]), alpha=self.alpha_, beta=self.beta_, w=self.w_,
            medians=self.medians_, mean=self.mean_, std=self.std_,
            chosen=np.array([float(self.chosen_["person_l2"]), float(self.chosen_["feature_l2"]),
                             float(self.chosen_["tree_weight"]),
                             float(RECIPROCAL_MODES.index(self.combine))]),
            gender=pr.gender, age=pr.age, personal=pr.personal, prefs=pr.prefs,
            self_rating=pr.self_rating, interests=pr.interests, answers=pr.answers,
            tag_row=tags.row.astype(np.int64), tag_col=tags.col.astype(np.int64),
            tag_shape=np.array(pr.tags.shape, dtype=np.int64),
            d_row=decisions.row.astype(np.int64), d_col=decisions.col.astype(np.int64),
            d_data=decisions.data.astype(np.int8),
        )  # fmt: skip
        trees = folder / TREES
        if self.trees_ is not None:
            trees.write_text(self.trees_.model_to_string())
        elif trees.exists():
            trees.unlink()

    def _load_state(self, folder: Path) -> None:
        path = folder / STATE
        if not path.is_file():
            raise ArtifactError(f"pairwise artifact at {folder} has no {STATE}")
        with np.load(path, allow_pickle=False) as s:
            n = self.n_users_ or 0
            if len(s["alpha"]) != n or len(s["w"]) != len(PAIR_FEATURES):
                raise ArtifactError(f"{path} does not match the manifest's shape")
            self.mu_ = float(s["mu"][0])
            self.alpha_, self.beta_, self.w_ = s["alpha"], s["beta"], s["w"]
            self.medians_, self.mean_, self.std_ = s["medians"], s["mean"], s["std"]
            person_l2, feature_l2, tree_weight, mode = (float(v) for v in s["chosen"])
            self.chosen_ = {**self.training_metrics.get("chosen", {}), "person_l2": person_l2,
                            "feature_l2": feature_l2, "tree_weight": tree_weight,
                            "mode": RECIPROCAL_MODES[int(mode)]}  # fmt: skip
            shape = tuple(int(v) for v in s["tag_shape"])
            tags = sp.csr_matrix((np.ones(len(s["tag_row"])), (s["tag_row"], s["tag_col"])),
                                 shape=shape)  # fmt: skip
            self.profiles_ = PairProfiles(
                gender=s["gender"], age=s["age"], personal=s["personal"], prefs=s["prefs"],
                self_rating=s["self_rating"], interests=s["interests"], tags=tags,
                answers=s["answers"],
            )  # fmt: skip
            self.decisions_ = sp.csr_matrix(
                (s["d_data"].astype(np.float32), (s["d_row"], s["d_col"])), shape=(n, n)
            )
        if self.profiles_.personal.shape != (n, len(PERSONAL)) or (
            self.profiles_.interests.shape != (n, len(INTERESTS))
            or self.profiles_.answers.shape != (n, len(ANSWERS))
        ):
            raise ArtifactError(f"{path} holds profiles of another shape")
        self.trees_ = None
        if tree_weight > 0:
            if not (folder / TREES).is_file():
                raise ArtifactError(f"pairwise artifact at {folder} has no {TREES}")
            self.trees_ = lgb.Booster(model_str=(folder / TREES).read_text())


def _fit_trees(T: np.ndarray, y: np.ndarray, seed: int) -> lgb.Booster:
    """The tree model on pair features and both people's answers (NaN: missing)."""
    model = lgb.LGBMClassifier(**TREE_PARAMS, random_state=seed)
    model.fit(T, y.astype(np.int64))
    return model.booster_


def _tree_logit(trees: lgb.Booster, T: np.ndarray) -> np.ndarray:
    return np.asarray(trees.predict(T, raw_score=True), dtype=np.float64)


def _fit_effects(
    a: np.ndarray,
    b: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    n: int,
    person_l2: float,
    feature_l2: float,
    max_iter: int,
    start: np.ndarray | None = None,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, alpha, beta, w)`` minimising the ridge-penalised logistic loss (L-BFGS with
    the exact gradient; the intercept is not penalised). Convex: one optimum, any start
    (``start``, e.g. the optimum at a neighbouring ridge, only makes it quicker)."""
    d = X.shape[1]
    y = y.astype(np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        mu, alpha, beta, w = (
            theta[0],
            theta[1 : n + 1],
            theta[n + 1 : 2 * n + 1],
            theta[2 * n + 1 :],
        )
        z = mu + alpha[a] + beta[b] + X @ w
        # log(1 + exp(z)) - y z, stable for any z
        value = float(np.sum(np.logaddexp(0.0, z) - y * z))
        value += 0.5 * person_l2 * float(alpha @ alpha + beta @ beta) + 0.5 * feature_l2 * float(
            w @ w
        )
        g = _sigmoid(z) - y
        grad = np.concatenate([
            [g.sum()],
            np.bincount(a, weights=g, minlength=n) + person_l2 * alpha,
            np.bincount(b, weights=g, minlength=n) + person_l2 * beta,
            X.T @ g + feature_l2 * w,
        ])  # fmt: skip
        return value, grad

    theta = np.zeros(1 + 2 * n + d)
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    theta[0] = np.log(rate / (1.0 - rate))
    if start is not None and start.shape == theta.shape:
        theta = start.copy()
    result = minimize(loss, theta, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    t = result.x
    return float(t[0]), t[1 : n + 1], t[n + 1 : 2 * n + 1], t[2 * n + 1 :]


def _aligned(frame: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame:
    """Profiles in dense-index order (by ``id`` when the frame has one, else by position);
    people without a profile get an empty row."""
    n = len(ids)
    if frame is None:
        return pd.DataFrame(index=range(n))
    if "id" in frame.columns:
        keyed = frame.drop_duplicates("id", keep="last")
        keyed = keyed.set_index(keyed["id"].astype(str))
        return keyed.reindex(pd.Index(np.asarray(ids).astype(str))).reset_index(drop=True)
    return frame.reset_index(drop=True).reindex(range(n))


def _latest_decisions(
    train: InteractionSet, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (a, b)'s latest decision (1 like, 0 pass), self-pairs dropped."""
    order = np.arange(len(train))
    if train.timestamps is not None and len(train):
        order = np.argsort(np.asarray(train.timestamps), kind="stable")
    a, b = train.users[order], train.items[order]
    y = (train.labels[order] >= threshold).astype(np.float64)
    key = a * max(train.n_items, 1) + b
    _, last_rev = np.unique(key[::-1], return_index=True)
    last = np.sort(len(key) - 1 - last_rev)
    keep = last[a[last] != b[last]]
    return a[keep], b[keep], y[keep]
