"""Logistic regression over hand-made (user, item) features, trained by SGD (seed 004).

The features are seed 004's, read from :class:`~matchwise.models.base.InteractionSet` side
frames (``tags``, ``category``, ``city``, ``owner_id``, ``starts_at``; a missing column
leaves its feature at 0): tag overlap with the user's stated interests and with the tags
of the items they liked, the share of their history in the item's category, same city,
owner affinity (they liked the owner's other items), how soon the item starts (upcoming
scores higher, past lower), popularity, and their past weaker interactions with the item.

Training pairs are each positive against ``negatives`` random items the user has no
positive with, resampled every epoch; a positive's own contribution is removed from its
history features (leave-one-out), or the model would learn "items I liked look like items
I liked". The weights are small and readable: ``weights.json`` holds them with their
feature names and the standardisation, as seed 004's ``recommender_models`` row does.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.metrics import evaluate_full_ranking
from matchwise.models.base import InteractionSet, Recommender, sigmoid
from matchwise.models.ranker import FeatureContext, candidate_features

log = logging.getLogger(__name__)

WEIGHTS = "weights.json"
CONTEXT = "context.npz"
#: Seed 004's features, as derived below from the shared pair-feature builder.
FEATURES = (
    "tag_stated_overlap",
    "tag_stated_jaccard",
    "tag_history_overlap",
    "category_share",
    "city_match",
    "owner_affinity",
    "starts_upcoming",
    "starts_soon",
    "started_days_ago",
    "item_log_pop",
    "item_log_recent_pop",
    "past_label",
)
SOON_DAYS = 14.0  # "starts soon" decays over about two weeks
PAST_CAP_DAYS = 90.0


def _seed004_features(base: np.ndarray, names: list[str]) -> np.ndarray:
    """The :data:`FEATURES` columns from :func:`candidate_features` output (absent → 0)."""
    index = {name: k for k, name in enumerate(names)}
    out = np.zeros((len(base), len(FEATURES)), dtype=np.float32)

    def col(name: str) -> np.ndarray | None:
        return base[:, index[name]] if name in index else None

    for k, name in enumerate(FEATURES):
        values = col(name)
        if values is not None:
            out[:, k] = values
    start, known = col("start_days"), col("start_known")
    if start is not None and known is not None:
        upcoming = (start >= 0) & (known > 0)
        out[:, FEATURES.index("starts_upcoming")] = upcoming
        out[:, FEATURES.index("starts_soon")] = np.where(
            upcoming, np.exp(-np.maximum(start, 0) / SOON_DAYS), 0.0
        )
        out[:, FEATURES.index("started_days_ago")] = np.where(
            known > 0, np.clip(-start, 0, PAST_CAP_DAYS) / PAST_CAP_DAYS, 0.0
        )
    return out


class LogisticRecommender(Recommender):
    """Seed 004's logistic model: hand-made pair features, SGD on positives vs negatives.

    Parameters
    ----------
    epochs, lr, l2:
        SGD passes, step size and L2 penalty (seed 004's defaults 6, 0.35, 0.01).
    negatives:
        Random non-positive items per positive, drawn afresh each epoch.
    batch_size:
        Pairs per SGD step.
    positive_threshold:
        Labels at or above it are positives.
    seed:
        Seeds sampling and shuffling: the same data and flags give the same weights.
    """

    model_type: ClassVar[str] = "logistic"
    serves: ClassVar[frozenset[str]] = frozenset({"warm", "hot"})
    score_scale: ClassVar[str] = "sigmoid(logit): the probability of a positive"

    def __init__(
        self,
        epochs: int = 6,
        lr: float = 0.35,
        l2: float = 0.01,
        negatives: int = 4,
        batch_size: int = 256,
        positive_threshold: float = 0.7,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if epochs < 1:
            raise InvalidInput(f"epochs must be >= 1, got {epochs}")
        if lr <= 0:
            raise InvalidInput(f"lr must be > 0, got {lr}")
        if l2 < 0:
            raise InvalidInput(f"l2 must be >= 0, got {l2}")
        if negatives < 1 or batch_size < 1:
            raise InvalidInput("negatives and batch_size must be >= 1")
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.l2 = float(l2)
        self.negatives = int(negatives)
        self.batch_size = int(batch_size)
        self.positive_threshold = float(positive_threshold)
        self.seed = int(seed)
        self.weights_: np.ndarray | None = None
        self.bias_: float = 0.0
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.context_: FeatureContext | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "l2": self.l2,
            "negatives": self.negatives,
            "batch_size": self.batch_size,
            "positive_threshold": self.positive_threshold,
            "seed": self.seed,
        }

    # --- features -----------------------------------------------------------------------
    def pair_features(
        self, users: np.ndarray, items: np.ndarray, exclude_self: bool = False
    ) -> np.ndarray:
        """Raw (unstandardised) :data:`FEATURES` for aligned ``users[k]``, ``items[k]``."""
        assert self.context_ is not None
        unique, rows = np.unique(np.asarray(users, dtype=np.int64), return_inverse=True)
        base, names = candidate_features(
            self.context_, unique, rows, np.asarray(items, dtype=np.int64),
            exclude_self=exclude_self,
        )  # fmt: skip
        return _seed004_features(base, names)

    # --- training -----------------------------------------------------------------------
    def fit(self, train: InteractionSet, validation: InteractionSet | None = None) -> Self:
        """SGD on log loss; ``validation`` (optional) is scored each epoch (NDCG@10)."""
        started = time.perf_counter()
        positive = train.labels >= self.positive_threshold
        if not positive.any():
            raise InvalidInput(
                f"the training data has no positives (label >= {self.positive_threshold}): "
                "the logistic model has nothing to learn from"
            )
        if train.n_items < 2:
            raise InvalidInput("the logistic model needs at least two candidates")
        if validation is not None and (validation.n_users, validation.n_items) != (
            train.n_users,
            train.n_items,
        ):
            raise InvalidInput("validation must share the training id universe")
        self.context_ = FeatureContext.from_interactions(train, self.positive_threshold)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.feature_names = list(FEATURES)
        history = self.context_.history
        pos_users, pos_items = history.nonzero()
        rng = np.random.default_rng(self.seed)
        X_pos = self.pair_features(pos_users, pos_items, exclude_self=True)
        neg_users = np.repeat(pos_users, self.negatives)
        # standardise on positives and negatives together, as the model will see them
        sample = np.concatenate(
            [X_pos, self.pair_features(neg_users, _sample_negatives(history, neg_users, rng))]
        )
        mean, scale = sample.mean(axis=0), sample.std(axis=0)
        self.mean_, self.scale_ = mean, np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
        w = np.zeros(len(FEATURES), dtype=np.float64)
        b = 0.0
        record: list[dict[str, float]] = []
        for epoch in range(1, self.epochs + 1):
            neg_items = _sample_negatives(history, neg_users, rng)
            X_neg = self.pair_features(neg_users, neg_items)
            X = self._standardise(np.concatenate([X_pos, X_neg]))
            y = np.concatenate([np.ones(len(X_pos)), np.zeros(len(X_neg))])
            # positives weigh as much as their negatives together (balanced classes)
            sample_weight = np.concatenate(
                [np.full(len(X_pos), float(self.negatives)), np.ones(len(X_neg))]
            )
            order = rng.permutation(len(y))
            total_loss = 0.0
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                z = X[idx] @ w + b
                p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
                sw = sample_weight[idx]
                err = (p - y[idx]) * sw
                norm = sw.sum()
                w -= self.lr * (X[idx].T @ err / norm + self.l2 * w)
                b -= self.lr * float(err.sum() / norm)
                eps = 1e-7
                total_loss += float(
                    -(sw * (y[idx] * np.log(p + eps) + (1 - y[idx]) * np.log(1 - p + eps))).sum()
                )
            entry = {"epoch": epoch, "loss": round(float(total_loss / sample_weight.sum()), 5)}
            self.weights_, self.bias_ = w.astype(np.float32), float(b)
            if validation is not None:
                entry.update(self._validate(train, validation))
            record.append(entry)
            log.debug("logistic epoch %s", entry)
        self.training_metrics = {
            "train_seconds": round(time.perf_counter() - started, 2),
            "positives": int(len(pos_users)),
            "history": record,
            "weights": dict(zip(FEATURES, np.round(w, 4).tolist(), strict=True)),
        }
        if validation is not None:
            self.training_metrics["validation"] = {
                k: v for k, v in record[-1].items() if k not in ("epoch", "loss")
            }
        return self

    def _validate(self, train: InteractionSet, validation: InteractionSet) -> dict[str, float]:

        metrics = evaluate_full_ranking(self, train, validation, k=10)
        return {"ndcg@10": round(metrics["ndcg@10"], 5), "hit@10": round(metrics["hit@10"], 5)}

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        assert self.mean_ is not None and self.scale_ is not None
        return ((X - self.mean_) / self.scale_).astype(np.float64)

    # --- scoring ------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> np.ndarray:
        """Logits of every item for each user row (vectorised in user chunks)."""
        self._check_fitted()
        assert self.weights_ is not None
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        n_users, n_items = self.n_users_ or 0, self.n_items_ or 0
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise InvalidInput(f"user index out of range [0, {n_users})")
        out = np.empty((len(users), n_items), dtype=np.float32)
        chunk = max(1, 1_000_000 // max(n_items, 1))
        for start in range(0, len(users), chunk):
            batch = users[start : start + chunk]
            pair_users = np.repeat(batch, n_items)
            pair_items = np.tile(np.arange(n_items), len(batch))
            X = self._standardise(self.pair_features(pair_users, pair_items))
            logits = X @ self.weights_.astype(np.float64) + self.bias_
            out[start : start + len(batch)] = logits.reshape(len(batch), n_items)
        return out

    def unit_scores(self, scores: np.ndarray) -> np.ndarray:
        """The logits as the probability the model was trained to give: sigmoid(logit),
        P(the user engages positively with the item)."""
        return sigmoid(scores)

    # --- persistence --------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        assert self.weights_ is not None and self.context_ is not None
        assert self.mean_ is not None and self.scale_ is not None
        state = {
            "feature_names": list(FEATURES),
            "weights": self.weights_.tolist(),
            "bias": self.bias_,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }
        (folder / WEIGHTS).write_text(json.dumps(state, indent=2))
        np.savez(folder / CONTEXT, **self.context_.to_arrays())  # type: ignore[arg-type]

    def _load_state(self, folder: Path) -> None:
        path = folder / WEIGHTS
        if not path.is_file():
            raise ArtifactError(f"logistic artifact at {folder} has no {WEIGHTS}")
        try:
            state = json.loads(path.read_text())
            names = [str(n) for n in state["feature_names"]]
            weights = np.asarray(state["weights"], dtype=np.float32)
            mean = np.asarray(state["mean"], dtype=np.float32)
            scale = np.asarray(state["scale"], dtype=np.float32)
            bias = float(state["bias"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path} is corrupt: {exc}") from exc
        if names != list(FEATURES) or not len(weights) == len(mean) == len(scale) == len(names):
            raise ArtifactError(
                f"{path} holds features {names}; this version computes {list(FEATURES)}"
            )
        with np.load(folder / CONTEXT, allow_pickle=False) as arrays:
            context = FeatureContext.from_arrays({key: arrays[key] for key in arrays.files})
        if (context.n_users, context.n_items) != (self.n_users_, self.n_items_):
            raise ArtifactError(f"{folder / CONTEXT} does not match the manifest's shape")
        self.weights_, self.bias_, self.mean_, self.scale_ = weights, bias, mean, scale
        self.context_ = context
        self.feature_names = names


def _sample_negatives(history: Any, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn item per entry of ``users`` that the user has no positive with.

    Rejection sampling, vectorised: redraw the collisions a few times, then keep what is
    left (a user who liked nearly everything can collide forever).
    """
    n_items = history.shape[1]
    items = rng.integers(0, n_items, len(users))
    for _ in range(10):
        clash = np.asarray(history[users, items]).ravel() > 0
        if not clash.any():
            break
        items[clash] = rng.integers(0, n_items, int(clash.sum()))
    return items
