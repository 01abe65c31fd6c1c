"""Two-tower retrieval model (seed 003, improved): a user tower and a candidate tower.

Each tower concatenates an id embedding, a behaviour summary and side features
(categorical, numeric, tags, text and image vectors: :mod:`matchwise.models.two_tower_features`)
and maps them through an MLP (plus a linear skip path) to a 128-dim, L2-normalised vector;
a score is the dot product, so candidates can be served from an ANN index
(:meth:`TwoTowerRecommender.item_embeddings`). That concatenate-then-project tower is seed
001's fused dual encoder: give the profile frame a bio text column and an image-vector
column (missing for some people is fine) and both are fused with the behaviour summary.

The behaviour summary is the user's liked items' embeddings, summed and divided by the
square root of their number. In training each row's target is taken out of it, so the
model learns to predict unseen likes rather than to echo its input, and a share of it is
hidden (``history_dropout``). Per-user id embeddings are off by default: on MovieLens
they overfit, while the history generalises.

Two losses:

- ``"softmax"`` (default): sampled softmax over the batch's candidates plus uniformly
  drawn ones ("mixed negative sampling"), with a log-Q correction for how often each was
  drawn, a temperature, and the user's other known likes masked out of the negatives.
  Exact softmax over the whole catalogue is available (``full_softmax_items``).
- ``"bce"``: seed 003's weighted binary cross-entropy on labelled pairs plus ``negatives``
  random negatives per positive.

Training is seeded (bit-identical reruns on CPU), early-stops on validation NDCG@10 (full
ranking, training items masked) and keeps the best and the latest weights. In the people
domain (``meta["domain"] == "people"``, candidates are users) one profile frame feeds both
towers, and the candidate tower also sees the candidate's own like history.

Example
-------
>>> model = TwoTowerRecommender(epochs=20).fit(train, validation)  # doctest: +SKIP
>>> model.recommend(users, k=10, exclude=train.to_csr())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.features.text import TextEmbedder, resolve_device
from matchwise.metrics import (
    evaluate_full_ranking,
    hit_rate_at_k,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from matchwise.models.base import InteractionSet, Recommender
from matchwise.models.two_tower_features import FeatureEncoder, SideFeatures, align_frame

try:  # safetensors comes with sentence-transformers; torch.save is the fallback
    from safetensors.torch import load_file as _st_load
    from safetensors.torch import save_file as _st_save

    HAS_SAFETENSORS = True
except ImportError:  # pragma: no cover - exercised only without safetensors
    HAS_SAFETENSORS = False

logger = logging.getLogger(__name__)

LOSSES = ("softmax", "bce")
CONFIG_FILE = "config.json"
ENCODER_FILE = "encoder.json"
FEATURES_FILE = "features.npz"
HISTORY_FILE = "history.json"
#: Seed 003's config names, accepted so its existing config files keep working.
CONFIG_ALIASES = {
    "hidden_dims": "hidden",
    "dropout_rate": "dropout",
    "learning_rate": "lr",
    "num_epochs": "epochs",
}


# --- configuration -----------------------------------------------------------------------
@dataclass
class TwoTowerConfig:
    """Every hyperparameter of the two-tower model; JSON round-trips, unknown keys refused."""

    embedding_dim: int = 128  # tower output size (the ANN vector size)
    id_dim: int = 32  # id and history embedding size (small: less overfitting)
    hidden: list[int] = field(default_factory=lambda: [512, 256])
    dropout: list[float] = field(default_factory=lambda: [0.3, 0.2])  # first layer, then rest
    lr: float = 3e-3
    weight_decay: float = 0.01
    epochs: int = 20
    batch_size: int = 2048  # large: more in-batch negatives, fewer steps
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    # training pairs seen at most, over all epochs (0: no cap): at 150,000 positives 20
    # epochs were most of a 1M-interaction pipeline; MovieLens-100K (65,000) keeps 20
    max_examples: int = 1_500_000
    loss: str = "softmax"
    temperature: float = 0.1
    # random negatives per positive; None = the loss's default (bce 2, as seed 003; softmax 1,
    # mixed into the in-batch pool: "mixed negative sampling")
    negatives: int | None = None
    logq_correction: bool = True
    full_softmax_items: int = 0  # exact softmax over all candidates up to this catalogue size
    positive_threshold: float = 0.5  # labels at or above it are positives
    use_weights: bool = True  # weight each positive by its action weight x label
    user_ids: bool = False  # per-user id embedding: off, the like history generalises better
    item_ids: bool = True  # per-candidate id embedding
    use_history: bool = True
    max_history: int = 200  # most recent liked items kept per user for the behaviour summary
    history_dropout: float = 0.25  # share of history items hidden per training step
    text_columns: list[str] | None = None  # None: inferred (long, mostly unique strings)
    text_cache_dir: str | None = None
    max_cat_dim: int = 32
    vector_dim: int = 64  # projection size of each text / image vector
    grad_clip: float = 5.0
    eval_k: int = 10
    seed: int = 42
    device: str = "auto"  # "auto" = CUDA when available, else CPU

    def __post_init__(self) -> None:
        if isinstance(self.dropout, int | float):
            self.dropout = [float(self.dropout)]
        self.hidden = [int(h) for h in self.hidden]
        self.dropout = [float(d) for d in self.dropout]
        self.validate()

    def validate(self) -> None:
        """Refuse values that would fail later, naming the setting."""
        checks: list[tuple[bool, str]] = [
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.embedding_dim >= 1, "embedding_dim must be >= 1"),
            (self.id_dim >= 1, "id_dim must be >= 1"),
            (all(h >= 1 for h in self.hidden), "hidden sizes must be >= 1"),
            (len(self.dropout) >= 1, "dropout needs at least one value"),
            (all(0 <= d < 1 for d in self.dropout), "dropout values must be in [0, 1)"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2"),
            (self.patience >= 0, "patience must be >= 0"),
            (self.max_examples >= 0, "max_examples must be >= 0"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.negatives is None or self.negatives >= 0, "negatives must be >= 0"),
            (self.max_history >= 1, "max_history must be >= 1"),
            (0 <= self.history_dropout < 1, "history_dropout must be in [0, 1)"),
            (self.eval_k >= 1, "eval_k must be >= 1"),
            (
                self.device in ("auto", "cpu") or self.device.startswith("cuda"),
                f"device must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInput(f"two-tower config: {message}")

    @property
    def n_negatives(self) -> int:
        """Random negatives per positive, after the loss-dependent default."""
        if self.negatives is not None:
            return self.negatives
        return 2 if self.loss == "bce" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwoTowerConfig:
        """Build from a mapping; an unknown key raises :class:`InvalidInput` naming it."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = CONFIG_ALIASES.get(key, key)
            if name not in known:
                raise InvalidInput(
                    f"unknown two-tower config key {key!r}; known keys: {', '.join(sorted(known))}"
                )
            values[name] = value
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"two-tower config: {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> TwoTowerConfig:
        """Read a JSON config file (seed 003's key names are accepted too)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise InvalidInput(f"cannot read two-tower config {path}: {exc}") from exc
        except ValueError as exc:
            raise InvalidInput(f"two-tower config {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"two-tower config {path} must hold a JSON object")
        return cls.from_dict(data)


# --- the network ---------------------------------------------------------------------------
def _mlp(in_dim: int, hidden: list[int], out_dim: int, dropout: list[float]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for j, size in enumerate(hidden):
        rate = dropout[min(j, len(dropout) - 1)]
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(rate)]
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class _Tower(nn.Module):
    """Id embedding + behaviour summary + side features, concatenated, through an MLP.

    A linear skip path runs beside the MLP: the id and history signals then train as fast
    as matrix factorisation, while the MLP adds feature interactions on top.
    """

    def __init__(
        self,
        n_ids: int,
        use_ids: bool,
        side: SideFeatures | None,
        history_dim: int,
        config: TwoTowerConfig,
    ) -> None:
        super().__init__()
        self.ids = nn.Embedding(n_ids, config.id_dim) if use_ids else None
        self.side = side
        in_dim = (
            (config.id_dim if self.ids is not None else 0)
            + history_dim
            + (side.out_dim if side is not None else 0)
        )
        if in_dim == 0:
            raise InvalidInput("a two-tower tower has no inputs: enable ids or give side features")
        self.mlp = _mlp(in_dim, config.hidden, config.embedding_dim, config.dropout)
        self.skip = nn.Linear(in_dim, config.embedding_dim, bias=False)
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.1)

    def forward(
        self,
        ids: torch.Tensor,
        feats: Mapping[str, torch.Tensor],
        history: torch.Tensor | None,
    ) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.ids is not None:
            parts.append(self.ids(ids))  # (batch, id_dim)
        if history is not None:
            parts.append(history)  # (batch, id_dim)
        if self.side is not None:
            parts.append(self.side(feats))  # (batch, side_dim)
        x = torch.cat(parts, dim=1)  # (batch, in_dim)
        return F.normalize(self.mlp(x) + self.skip(x), dim=1)  # (batch, embedding_dim)


class TwoTowerNet(nn.Module):
    """Both towers plus the per-entity inputs they read (features, like histories).

    Entity inputs are non-persistent buffers: they move with ``.to(device)`` but stay out
    of the checkpoints (they are saved once, in ``features.npz``).
    """

    def __init__(
        self,
        config: TwoTowerConfig,
        n_users: int,
        n_items: int,
        user_encoder: FeatureEncoder,
        item_encoder: FeatureEncoder,
        inputs: Mapping[str, np.ndarray],
        candidate_history: bool,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.use_history = config.use_history
        self.history_dropout = config.history_dropout
        self.candidate_history = candidate_history and config.use_history
        self._feature_keys: dict[str, list[str]] = {"user": [], "item": []}
        self._buffer_names: dict[str, str] = {}
        for j, (key, array) in enumerate(sorted(inputs.items())):
            side, _, name = key.partition("/")
            if side in ("user", "item"):
                self._feature_keys[side].append(name)
            self._buffer_names[key] = f"input_{j}"
            self.register_buffer(f"input_{j}", torch.from_numpy(array), persistent=False)
        if self.use_history:
            self.history = nn.Embedding(n_items, config.id_dim)
            nn.init.normal_(self.history.weight, std=0.1)
        history_dim = config.id_dim if self.use_history else 0
        user_side = SideFeatures(user_encoder, config.max_cat_dim, config.vector_dim)
        item_side = SideFeatures(item_encoder, config.max_cat_dim, config.vector_dim)
        # Without history or features a user would have no input: fall back to an id.
        user_ids = config.user_ids or not (self.use_history or user_side.out_dim)
        item_ids = config.item_ids or not (self.candidate_history or item_side.out_dim)
        self.user_tower = _Tower(
            n_users, user_ids, user_side if user_side.out_dim else None, history_dim, config
        )
        self.item_tower = _Tower(
            n_items,
            item_ids,
            item_side if item_side.out_dim else None,
            history_dim if self.candidate_history else 0,
            config,
        )
        self.bias = nn.Parameter(torch.zeros(1))  # used by the bce loss only

    def _buffer(self, key: str) -> torch.Tensor:
        return getattr(self, self._buffer_names[key])

    def _features(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self._buffer(f"{side}/{name}")[rows] for name in self._feature_keys[side]}

    def liked(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The like histories of ``rows`` flattened: ``(items, row_of_each, lengths)``."""
        offsets, values = self._buffer("hist/offsets"), self._buffer("hist/items")
        starts = offsets[rows]  # (batch,)
        lengths = offsets[rows + 1] - starts  # (batch,)
        total = int(lengths.sum())
        row_of = torch.repeat_interleave(
            torch.arange(len(rows), device=rows.device), lengths, output_size=total
        )  # (total,)
        bag_offsets = torch.cumsum(lengths, 0) - lengths  # (batch,)
        within = torch.arange(total, device=rows.device) - bag_offsets[row_of]  # (total,)
        return values[starts[row_of] + within], row_of, lengths

    def _history_mean(
        self, rows: torch.Tensor, drop_item: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Behaviour summary of ``rows``: their liked items' embeddings summed, / sqrt(count).

        ``drop_item`` (the training target) is left out of its row's history, so the model
        learns to predict unseen likes rather than to echo its input. In training, a share
        of history items (``history_dropout``) is hidden too: a denoising regulariser.
        Dividing by the square root (SVD++'s normalisation) keeps long histories informative.
        """
        unique, inverse = torch.unique(rows, return_inverse=True)  # each history once
        flat, row_of, lengths = self.liked(unique)
        keep = None
        if self.training and self.history_dropout > 0:
            keep = torch.bernoulli(
                torch.full(flat.shape, 1 - self.history_dropout, device=rows.device)
            )  # (total,)
        bag_offsets = torch.cumsum(lengths, 0) - lengths  # (n_unique,)
        summed = F.embedding_bag(
            flat, self.history.weight, bag_offsets, mode="sum", per_sample_weights=keep
        )[inverse]  # (batch, id_dim)
        if keep is None:
            count = lengths.to(summed.dtype)[inverse]  # (batch,)
        else:
            count = torch.zeros(len(unique), device=rows.device).index_add(0, row_of, keep)
            count = count[inverse]
        if drop_item is not None and len(flat):
            # find each row's target in its user's history through sorted (user, item) keys
            keys, order = torch.sort(row_of * self.n_items + flat)
            query = inverse * self.n_items + drop_item  # (batch,)
            pos = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
            present = (keys[pos] == query).to(summed.dtype)  # (batch,)
            if keep is not None:
                present = present * keep[order[pos]]
            summed = summed - self.history(drop_item) * present.unsqueeze(1)
            count = count - present
        return summed / count.clamp(min=1).sqrt().unsqueeze(1)  # (batch, id_dim)

    def encode_users(
        self, users: torch.Tensor, drop_item: torch.Tensor | None = None
    ) -> torch.Tensor:
        """User vectors ``(batch, dim)``; ``drop_item`` is hidden from each row's history."""
        history = self._history_mean(users, drop_item) if self.use_history else None
        return self.user_tower(users, self._features("user", users), history)  # (batch, dim)

    def encode_items(self, items: torch.Tensor) -> torch.Tensor:
        history = self._history_mean(items) if self.candidate_history else None
        return self.item_tower(items, self._features("item", items), history)  # (batch, dim)


# --- the recommender -----------------------------------------------------------------------
class TwoTowerRecommender(Recommender):
    """Two-tower retrieval model behind the one :class:`Recommender` interface.

    Parameters
    ----------
    config:
        A :class:`TwoTowerConfig`, or a mapping of its fields.
    progress:
        Show a rich progress bar during ``fit`` (loss and validation NDCG@10 per epoch).
    **overrides:
        Config fields to override, e.g. ``TwoTowerRecommender(epochs=5, loss="bce")``.
    """

    model_type: ClassVar[str] = "two_tower"
    serves: ClassVar[frozenset[str]] = frozenset({"warm", "hot"})
    score_scale: ClassVar[str] = "(1 + raw) / 2, raw the cosine of the user's and item's vectors"

    @classmethod
    def from_config(cls, params: dict[str, Any], progress: bool = False) -> Self:
        return cls(TwoTowerConfig.from_dict(params), progress=progress)  # names unknown keys

    def __init__(
        self,
        config: TwoTowerConfig | Mapping[str, Any] | None = None,
        *,
        progress: bool = False,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if config is None:
            config = TwoTowerConfig()
        elif not isinstance(config, TwoTowerConfig):
            config = TwoTowerConfig.from_dict(config)
        if overrides:
            config = TwoTowerConfig.from_dict({**config.to_dict(), **overrides})
        self.config: TwoTowerConfig = config
        self.progress = progress
        self.net_: TwoTowerNet | None = None
        self.user_encoder_: FeatureEncoder | None = None
        self.item_encoder_: FeatureEncoder | None = None
        self.inputs_: dict[str, np.ndarray] = {}
        self.candidate_history_: bool = False
        self.seen_: sp.csr_matrix | None = None
        self.history_: list[dict[str, Any]] = []
        self.best_state_: dict[str, torch.Tensor] | None = None
        self.latest_state_: dict[str, torch.Tensor] | None = None
        self.device_: torch.device = torch.device("cpu")
        self._item_cache: torch.Tensor | None = None

    def get_params(self) -> dict[str, Any]:
        return {"config": self.config.to_dict()}

    # --- training -----------------------------------------------------------------------
    def fit(
        self,
        train: InteractionSet,
        validation: InteractionSet | None = None,
        *,
        test: InteractionSet | None = None,
        progress: bool | None = None,
    ) -> Self:
        """Train; early-stop on ``validation`` NDCG@10; score ``test`` into training_metrics.

        ``test`` and ``progress`` are optional extras over the base interface.
        """
        cfg = self.config
        _check_universe(train, validation, "validation")
        _check_universe(train, test, "test")
        positive = train.labels >= cfg.positive_threshold
        if not positive.any():
            raise InvalidInput(
                f"the training data has no positive interactions (label >= "
                f"{cfg.positive_threshold}); a two-tower model needs some to learn from"
            )
        if train.n_items < 2:
            raise InvalidInput("a two-tower model needs at least two candidates")
        device = torch.device(resolve_device(cfg.device))
        self.device_ = device
        started = time.perf_counter()
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(cfg.seed)
            rng = np.random.default_rng(cfg.seed)
            self._prepare(train, rng)
            assert self.net_ is not None
            self._train_loop(train, validation, rng, device, progress)
        seconds = time.perf_counter() - started
        self.training_metrics.update(
            {
                "train_seconds": round(seconds, 2),
                "device": str(device),
                "n_train_interactions": len(train),
                "n_train_positives": int(positive.sum()),
                "loss": cfg.loss,
            }
        )
        if test is not None:
            exclude = None
            if validation is not None:
                exclude = _interaction_matrix(validation)
            self.training_metrics["test"] = self.evaluate(test, k=cfg.eval_k, exclude=exclude)
        logger.info("two-tower trained in %.1fs: %s", seconds, self.training_metrics)
        return self

    def _prepare(self, train: InteractionSet, rng: np.random.Generator) -> None:
        """Fit the feature encoders, encode every entity, build histories and the network."""
        cfg = self.config
        people = train.meta.get("domain") == "people"
        same_universe = train.n_users == train.n_items and np.array_equal(
            np.asarray(train.user_ids).astype(str), np.asarray(train.item_ids).astype(str)
        )
        item_source = train.item_features
        if item_source is None and people:
            item_source = train.user_features  # people as candidates: one profile frame
        user_frame = align_frame(train.user_features, train.user_ids)
        item_frame = align_frame(item_source, train.item_ids)
        self.user_encoder_ = FeatureEncoder(text_columns=cfg.text_columns).fit(user_frame)
        self.item_encoder_ = FeatureEncoder(text_columns=cfg.text_columns).fit(item_frame)
        embedder = None
        if self.user_encoder_.has_text or self.item_encoder_.has_text:
            embedder = TextEmbedder(cfg.text_cache_dir, device=str(self.device_))
        inputs: dict[str, np.ndarray] = {}
        # Loading the sentence model initialises its layers from torch's random stream, and
        # it loads only when some text is not in the cache: embedding in a stream of its
        # own keeps the network's initialisation the same on a cold and a warm cache.
        fork_devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            user_inputs = self.user_encoder_.transform(user_frame, train.n_users, embedder)
            item_inputs = self.item_encoder_.transform(item_frame, train.n_items, embedder)
        for key, array in user_inputs.items():
            inputs[f"user/{key}"] = array
        for key, array in item_inputs.items():
            inputs[f"item/{key}"] = array
        offsets, items = _like_history(train, cfg.positive_threshold, cfg.max_history, rng)
        inputs["hist/offsets"], inputs["hist/items"] = offsets, items
        self.inputs_ = inputs
        self.candidate_history_ = bool(people and same_universe and cfg.use_history)
        self.seen_ = _interaction_matrix(train)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.net_ = self._build_net()
        self.feature_names = self._feature_names()

    def _build_net(self) -> TwoTowerNet:
        assert self.user_encoder_ is not None and self.item_encoder_ is not None
        assert self.n_users_ is not None and self.n_items_ is not None
        return TwoTowerNet(
            self.config,
            self.n_users_,
            self.n_items_,
            self.user_encoder_,
            self.item_encoder_,
            self.inputs_,
            self.candidate_history_,
        )

    def _feature_names(self) -> list[str]:
        assert self.user_encoder_ is not None and self.item_encoder_ is not None
        names = []
        if self.net_ is not None and self.net_.user_tower.ids is not None:
            names += ["user.id"]
        if self.config.use_history:
            names += ["user.like_history"]
        names += self.user_encoder_.feature_names("user")
        if self.net_ is not None and self.net_.item_tower.ids is not None:
            names += ["item.id"]
        if self.candidate_history_:
            names += ["item.like_history"]
        return names + self.item_encoder_.feature_names("item")

    def _train_loop(
        self,
        train: InteractionSet,
        validation: InteractionSet | None,
        rng: np.random.Generator,
        device: torch.device,
        progress: bool | None,
    ) -> None:
        cfg = self.config
        net = self.net_
        assert net is not None
        net.to(device)
        examples = _training_examples(train, cfg, self.inputs_)
        tensors = {k: torch.from_numpy(v).to(device) for k, v in examples.items()}
        n_examples = len(examples["users"])
        counts = np.bincount(examples["items"][examples["labels"] > 0], minlength=train.n_items)
        # log of each item's share of the positives, smoothed so unseen items stay finite
        log_q = torch.from_numpy(
            np.log((counts + 1.0) / (counts.sum() + train.n_items)).astype(np.float32)
        ).to(device)
        full_softmax = cfg.loss == "softmax" and train.n_items <= cfg.full_softmax_items
        all_items = torch.arange(train.n_items, device=device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, math.ceil(n_examples / cfg.batch_size))
        epochs = planned_epochs(cfg, n_examples)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch
        )
        relevant = None
        if validation is not None:
            relevant = validation.to_csr(positive_only=True)
            if relevant.nnz == 0:
                logger.warning("validation set has no positives: training without early stopping")
                relevant = None

        self.history_ = []
        best_score, best_epoch, stale = -math.inf, 0, 0
        self.best_state_ = None
        show = self.progress if progress is None else progress
        with _progress_bar(show, epochs) as advance:
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                net.train()
                order = torch.from_numpy(rng.permutation(n_examples)).to(device)
                negatives = None
                if cfg.loss == "bce" and cfg.n_negatives:
                    negatives = torch.from_numpy(
                        rng.integers(0, train.n_items, size=(n_examples, cfg.n_negatives))
                    ).to(device)
                total, weight_sum = 0.0, 0.0
                for start in range(0, n_examples, cfg.batch_size):
                    batch = order[start : start + cfg.batch_size]
                    if cfg.loss == "softmax":
                        extra = None
                        if cfg.n_negatives and not full_softmax:
                            extra = torch.from_numpy(
                                rng.integers(0, train.n_items, size=cfg.n_negatives * len(batch))
                            ).to(device)
                        loss, w = _softmax_loss(
                            net,
                            tensors,
                            batch,
                            cfg,
                            log_q,
                            all_items if full_softmax else None,
                            extra,
                        )
                    else:
                        loss, w = _bce_loss(
                            net,
                            tensors,
                            batch,
                            cfg,
                            None if negatives is None else negatives[batch],
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    total += float(loss.detach()) * w
                    weight_sum += w
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "loss": round(total / max(weight_sum, 1e-12), 6),
                    "lr": optimizer.param_groups[0]["lr"],
                }
                if relevant is not None:
                    metrics = self._validate(relevant, cfg.eval_k)
                    record["val"] = metrics
                    score = metrics[f"ndcg@{cfg.eval_k}"]
                else:
                    score = -record["loss"]
                record["seconds"] = round(time.perf_counter() - t0, 3)
                self.history_.append(record)
                logger.debug("epoch %d: %s", epoch, record)
                if score > best_score:
                    best_score, best_epoch, stale = score, epoch, 0
                    self.best_state_ = _state_copy(net)
                else:
                    stale += 1
                advance(record)
                if relevant is not None and stale > cfg.patience:
                    logger.info("early stop at epoch %d (best %d)", epoch, best_epoch)
                    break
        self.latest_state_ = _state_copy(net)
        assert self.best_state_ is not None
        net.load_state_dict(self.best_state_)
        net.eval()
        self._item_cache = None
        self.training_metrics = {
            "best_epoch": best_epoch,
            "epochs_run": len(self.history_),
            "epochs_planned": epochs,
        }
        if relevant is not None:
            self.training_metrics[f"val_ndcg@{cfg.eval_k}"] = round(best_score, 6)
            self.training_metrics["validation"] = self.history_[best_epoch - 1]["val"]

    @torch.no_grad()
    def _validate(self, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
        """Full-ranking metrics of the current weights, training items masked."""
        assert self.net_ is not None and self.seen_ is not None
        self.net_.eval()
        self._item_cache = None
        return _full_ranking(self._user_matrix, self._items(), relevant, self.seen_, k)

    # --- scoring ------------------------------------------------------------------------
    def _check_users(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        assert self.n_users_ is not None
        if users.size and (users.min() < 0 or users.max() >= self.n_users_):
            raise InvalidInput(f"user index out of range [0, {self.n_users_})")
        return users

    @torch.no_grad()
    def _user_matrix(self, users: np.ndarray, chunk: int = 4096) -> torch.Tensor:
        """``(len(users), dim)`` user embeddings on the model's device."""
        net = self._net()
        idx = torch.from_numpy(np.asarray(users, dtype=np.int64)).to(self.device_)
        parts = [net.encode_users(idx[s : s + chunk]) for s in range(0, len(idx), chunk)]
        if not parts:
            return torch.zeros((0, self.config.embedding_dim), device=self.device_)
        return torch.cat(parts)

    @torch.no_grad()
    def _items(self, chunk: int = 4096) -> torch.Tensor:
        """All candidate embeddings ``(n_items, dim)``, computed once per set of weights."""
        if self._item_cache is None:
            net = self._net()
            idx = torch.arange(net.n_items, device=self.device_)
            self._item_cache = torch.cat(
                [net.encode_items(idx[s : s + chunk]) for s in range(0, len(idx), chunk)]
            )
        return self._item_cache

    def _net(self) -> TwoTowerNet:
        if self.net_ is None:
            raise NotFitted("two_tower model is not fitted: call fit() or load() first")
        self.net_.eval()
        return self.net_

    def user_embeddings(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), embedding_dim)`` float32 unit vectors from the user tower."""
        users = self._check_users(users)
        return self._user_matrix(users).float().cpu().numpy()

    def item_embeddings(self) -> np.ndarray:
        """``(n_items, embedding_dim)`` float32 unit vectors from the candidate tower (ANN)."""
        self._check_fitted()
        return self._items().float().cpu().numpy()

    def score(self, users: np.ndarray) -> np.ndarray:
        """Dot products of user and candidate embeddings: ``(len(users), n_items)``."""
        users = self._check_users(users)
        with torch.no_grad():
            scores = self._user_matrix(users) @ self._items().T  # (users, items)
        return scores.float().cpu().numpy()

    def unit_scores(self, scores: np.ndarray) -> np.ndarray:
        """Cosines of unit vectors, [-1, 1], as (1 + cos) / 2: 1 points the same way as
        the user, 0.5 is unrelated."""
        return np.clip((1.0 + np.asarray(scores, dtype=np.float64)) / 2.0, 0.0, 1.0)

    def evaluate(
        self, test: InteractionSet, k: int = 10, exclude: sp.spmatrix | None = None
    ) -> dict[str, float]:
        """Full-ranking metrics @k on ``test``, training items and ``exclude`` masked.

        Computed by :func:`matchwise.metrics.evaluate_full_ranking`, so the numbers and
        their names are those of every other model's report.
        """

        self._check_fitted()
        assert self.seen_ is not None and self.n_users_ is not None
        if (test.n_users, test.n_items) != (self.n_users_, self.n_items_):
            raise InvalidInput("test must share the training id universe (same user/item ids)")
        seen = self.seen_.tocoo()
        trained_on = InteractionSet(
            user_ids=test.user_ids,
            item_ids=test.item_ids,
            users=seen.row,
            items=seen.col,
            labels=np.ones(seen.nnz, dtype=np.float32),
        )
        metrics = evaluate_full_ranking(self, trained_on, test, k=k, exclude=exclude)
        return {key: round(float(v), 6) for key, v in metrics.items()}

    # --- persistence ----------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        if self.net_ is None or self.best_state_ is None:
            raise NotFitted("two_tower model is not fitted: nothing to save")
        assert self.user_encoder_ is not None and self.item_encoder_ is not None
        assert self.seen_ is not None
        _write_text(folder / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2))
        encoder = {
            "user": self.user_encoder_.to_dict(),
            "item": self.item_encoder_.to_dict(),
            "candidate_history": self.candidate_history_,
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        _write_text(folder / ENCODER_FILE, json.dumps(encoder, indent=2))
        arrays = dict(self.inputs_)
        arrays["seen/indptr"] = self.seen_.indptr.astype(np.int64)
        arrays["seen/indices"] = self.seen_.indices.astype(np.int64)
        tmp = folder / (FEATURES_FILE + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        tmp.replace(folder / FEATURES_FILE)
        _save_weights(self.best_state_, folder, "best")
        _save_weights(self.latest_state_ or self.best_state_, folder, "latest")
        _write_text(folder / HISTORY_FILE, json.dumps(self.history_, indent=2))

    def _load_state(self, folder: Path) -> None:
        for name in (ENCODER_FILE, FEATURES_FILE):
            if not (folder / name).is_file():
                raise ArtifactError(f"two-tower artifact at {folder} is missing {name}")
        try:
            encoder = json.loads((folder / ENCODER_FILE).read_text())
            self.user_encoder_ = FeatureEncoder.from_dict(encoder["user"])
            self.item_encoder_ = FeatureEncoder.from_dict(encoder["item"])
            self.candidate_history_ = bool(encoder["candidate_history"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{folder / ENCODER_FILE} is corrupt: {exc}") from exc
        try:
            with np.load(folder / FEATURES_FILE, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except Exception as exc:
            raise ArtifactError(f"{folder / FEATURES_FILE} is corrupt: {exc}") from exc
        try:
            indptr, indices = arrays.pop("seen/indptr"), arrays.pop("seen/indices")
            assert self.n_users_ is not None and self.n_items_ is not None
            self.seen_ = sp.csr_matrix(
                (np.ones(len(indices), dtype=np.float32), indices, indptr),
                shape=(self.n_users_, self.n_items_),
            )
        except (KeyError, ValueError, AssertionError) as exc:
            raise ArtifactError(f"{folder / FEATURES_FILE} is corrupt: {exc}") from exc
        self.inputs_ = arrays
        self.device_ = torch.device(resolve_device(self.config.device))
        self.net_ = self._build_net()
        state = _load_weights(folder, "best")
        try:
            self.net_.load_state_dict(state)
        except RuntimeError as exc:
            raise ArtifactError(
                f"checkpoint in {folder} does not fit the saved configuration: {exc}"
            ) from exc
        self.net_.to(self.device_).eval()
        self.best_state_ = state
        self.latest_state_ = None
        history_path = folder / HISTORY_FILE
        if history_path.is_file():
            try:
                self.history_ = json.loads(history_path.read_text())
            except ValueError:
                logger.warning("%s is not valid JSON; training history not loaded", history_path)
        self._item_cache = None

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model folder; missing, corrupt or incompatible files raise ArtifactError."""
        try:
            return super().load(path)
        except InvalidInput as exc:  # a manifest config this version cannot build
            raise ArtifactError(f"two-tower artifact at {path} is incompatible: {exc}") from exc

    @classmethod
    def load_latest(cls, path: str | Path) -> Self:
        """Load the latest (rather than the best) weights, e.g. to inspect the last epoch."""
        model = cls.load(path)
        state = _load_weights(Path(path), "latest")
        assert model.net_ is not None
        try:
            model.net_.load_state_dict(state)
        except RuntimeError as exc:
            raise ArtifactError(f"latest checkpoint in {path} does not fit: {exc}") from exc
        model.net_.to(model.device_).eval()
        model._item_cache = None
        return model


# --- training helpers --------------------------------------------------------------------
def _check_universe(train: InteractionSet, other: InteractionSet | None, name: str) -> None:
    if other is not None and (other.n_users, other.n_items) != (train.n_users, train.n_items):
        raise InvalidInput(f"{name} must share the training id universe (same user/item ids)")


def _interaction_matrix(data: InteractionSet) -> sp.csr_matrix:
    """1 wherever a user interacted with an item, whatever the label."""
    matrix = sp.csr_matrix(
        (np.ones(len(data), dtype=np.float32), (data.users, data.items)),
        shape=(data.n_users, data.n_items),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _like_history(
    train: InteractionSet, threshold: float, max_history: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the distinct liked items (the ``max_history`` most recent) as CSR arrays."""
    mask = train.labels >= threshold
    users, items = train.users[mask], train.items[mask]
    recency = _recency(train.timestamps, mask)
    if recency is None:
        recency = rng.random(len(users))  # no usable times: a seeded random subset
    # newest first within each user; the first of duplicate (user, item) pairs is kept
    order = np.lexsort((-recency, users))
    users, items = users[order], items[order]
    key = users * train.n_items + items
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first] = True
    users, items = users[keep], items[keep]
    rank = np.arange(len(users)) - np.searchsorted(users, users, side="left")
    users, items = users[rank < max_history], items[rank < max_history]
    counts = np.bincount(users, minlength=train.n_users)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets, items.astype(np.int64)


def _recency(timestamps: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """Timestamps (numbers, datetimes, tz-aware Timestamps) as float64, or None."""
    if timestamps is None:
        return None
    values = np.asarray(timestamps)[mask]
    if np.issubdtype(values.dtype, np.number):
        return values.astype(np.float64)
    try:
        times = pd.to_datetime(pd.Series(values), utc=True)
        return (times.astype("int64")).to_numpy(dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        logger.warning("timestamps are not times or numbers: history order is random")
        return None


def _training_examples(
    train: InteractionSet, cfg: TwoTowerConfig, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Aligned arrays of training pairs: users, items, labels, weights, in-history flags."""
    if cfg.loss == "softmax":
        mask = train.labels >= cfg.positive_threshold
        labels = np.ones(int(mask.sum()), dtype=np.float32)
    else:  # bce learns from every labelled pair, positives and explicit negatives alike
        mask = np.ones(len(train), dtype=bool)
        labels = train.labels.astype(np.float32)
    users, items = train.users[mask], train.items[mask]
    weights = np.ones(len(users), dtype=np.float32)
    if cfg.use_weights and train.weights is not None:
        weights = np.asarray(train.weights, dtype=np.float32)[mask]
        if cfg.loss == "softmax":
            weights = weights * train.labels[mask]
        weights = np.clip(weights, 0.0, None)
        if weights.sum() <= 0:
            weights = np.ones(len(users), dtype=np.float32)
        weights = (weights / weights.mean()).astype(np.float32)
    return {
        "users": users.astype(np.int64),
        "items": items.astype(np.int64),
        "labels": labels,
        "weights": weights,
    }


def _softmax_loss(
    net: TwoTowerNet,
    t: Mapping[str, torch.Tensor],
    batch: torch.Tensor,
    cfg: TwoTowerConfig,
    log_q: torch.Tensor,
    all_items: torch.Tensor | None,
    extra: torch.Tensor | None,
) -> tuple[torch.Tensor, float]:
    """Softmax over all candidates, or over in-batch (+ random) ones with log-Q correction."""
    users, items, weights = t["users"][batch], t["items"][batch], t["weights"][batch]
    user_vec = net.encode_users(users, items)  # (batch, dim)
    liked, row_of, _ = net.liked(users)  # the users' known positives, flattened
    if all_items is not None:
        item_vec = net.encode_items(all_items)  # (n_items, dim)
        logits = user_vec @ item_vec.T / cfg.temperature  # (batch, n_items)
        target = items
        cols = liked
    else:
        pool = items if extra is None else torch.cat([items, extra])
        candidates, inverse = torch.unique(pool, return_inverse=True)
        target = inverse[: len(items)]
        item_vec = net.encode_items(candidates)  # (n_candidates, dim)
        logits = user_vec @ item_vec.T / cfg.temperature  # (batch, n_candidates)
        if cfg.logq_correction:
            # expected draws per batch: in-batch by popularity, extra ones uniformly
            q = len(items) * log_q.exp()[candidates]
            if extra is not None:
                q = q + len(extra) / net.n_items
            logits = logits - torch.log(q).unsqueeze(0)
        position = torch.full((net.n_items,), -1, dtype=torch.long, device=logits.device)
        position[candidates] = torch.arange(len(candidates), device=logits.device)
        cols = position[liked]
        row_of, cols = row_of[cols >= 0], cols[cols >= 0]
    # A user's other known positives are not negatives: mask them, keep the target.
    rows = torch.arange(len(users), device=logits.device)
    target_logit = logits[rows, target]
    logits = logits.index_put((row_of, cols), torch.tensor(-torch.inf, device=logits.device))
    logits = logits.index_put((rows, target), target_logit)
    per_row = F.cross_entropy(logits, target, reduction="none")  # (batch,)
    return (per_row * weights).sum() / weights.sum(), float(weights.sum())


def _bce_loss(
    net: TwoTowerNet,
    t: Mapping[str, torch.Tensor],
    batch: torch.Tensor,
    cfg: TwoTowerConfig,
    negatives: torch.Tensor | None,
) -> tuple[torch.Tensor, float]:
    """Seed 003's weighted BCE: labelled pairs, plus random items labelled 0."""
    users, items = t["users"][batch], t["items"][batch]
    labels, weights = t["labels"][batch], t["weights"][batch]
    user_vec = net.encode_users(users, items)  # (batch, dim)
    item_vec = net.encode_items(items)  # (batch, dim)
    logits = (user_vec * item_vec).sum(1) / cfg.temperature + net.bias  # (batch,)
    loss = F.binary_cross_entropy_with_logits(logits, labels, weight=weights, reduction="sum")
    weight_sum = weights.sum()
    if negatives is not None:
        n_neg = negatives.shape[1]
        neg_vec = net.encode_items(negatives.reshape(-1)).view(len(batch), n_neg, -1)
        neg_logits = (user_vec.unsqueeze(1) * neg_vec).sum(2) / cfg.temperature + net.bias
        loss = loss + F.binary_cross_entropy_with_logits(
            neg_logits, torch.zeros_like(neg_logits), reduction="sum"
        )
        weight_sum = weight_sum + neg_logits.numel()
    return loss / weight_sum, float(weight_sum)


def _state_copy(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


def _full_ranking(
    user_matrix: Any,
    items: torch.Tensor,
    relevant: sp.csr_matrix,
    seen: sp.csr_matrix,
    k: int,
    chunk: int | None = None,
) -> dict[str, float]:
    """NDCG / recall / precision / hit rate / MAP @k over all candidates, ``seen`` masked.

    The per-epoch validation: :mod:`matchwise.metrics`'s definitions over top-k lists
    found from the embeddings on the model's device, in user chunks so memory stays at
    ``chunk x n_items``. Users count when they have at least one relevant item.
    """
    if chunk is None:  # about 64M scores per chunk, whatever the catalogue size
        chunk = max(1, min(4096, (1 << 26) // max(items.shape[0], 1)))
    relevant = sp.csr_matrix(relevant > 0, dtype=np.float32)
    n_rel = np.diff(relevant.indptr)
    users = np.flatnonzero(n_rel > 0)
    names = ("ndcg", "recall", "precision", "hit", "map")
    totals = dict.fromkeys(names, 0.0)
    k = min(k, items.shape[0])
    for start in range(0, len(users), chunk):
        rows = users[start : start + chunk]
        scores = user_matrix(rows) @ items.T  # (chunk, n_items)
        mask = seen[rows]
        r, c = mask.nonzero()
        if len(r):
            scores[
                torch.from_numpy(r).to(scores.device), torch.from_numpy(c).to(scores.device)
            ] = -torch.inf
        top = torch.topk(scores, k, dim=1).indices.cpu().numpy()  # (chunk, k)
        hits = np.take_along_axis(relevant[rows].toarray() > 0, top, axis=1)  # (chunk, k)
        n = n_rel[rows]
        totals["ndcg"] += float(ndcg_at_k(hits, n, k).sum())
        totals["recall"] += float(recall_at_k(hits, n, k).sum())
        totals["precision"] += float(precision_at_k(hits, k).sum())
        totals["hit"] += float(hit_rate_at_k(hits, k).sum())
        totals["map"] += float(map_at_k(hits, n, k).sum())
    count = max(len(users), 1)
    out = {f"{name}@{k}": round(totals[name] / count, 6) for name in names}
    out["users"] = len(users)
    return out


def planned_epochs(cfg: TwoTowerConfig, n_examples: int) -> int:
    """``cfg.epochs``, fewer when they would show more than ``cfg.max_examples`` pairs."""
    if not cfg.max_examples or n_examples <= 0:
        return cfg.epochs
    return max(1, min(cfg.epochs, math.ceil(cfg.max_examples / n_examples)))


@contextmanager
def _progress_bar(show: bool, epochs: int) -> Iterator[Any]:
    """A rich bar over epochs showing loss and validation NDCG@10; a no-op when off."""
    if not show:
        yield lambda record: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("two-tower"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("train", total=epochs, info="")

        def advance(record: Mapping[str, Any]) -> None:
            info = f"loss {record['loss']:.4f}"
            if "val" in record:
                ndcg = next(v for key, v in record["val"].items() if key.startswith("ndcg"))
                info += f"  val ndcg {ndcg:.4f}"
            bar.update(task, advance=1, info=info)

        yield advance


# --- checkpoint files ----------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _weights_path(folder: Path, which: str) -> Path:
    return folder / (f"{which}.safetensors" if HAS_SAFETENSORS else f"{which}.pt")


def _save_weights(state: Mapping[str, torch.Tensor], folder: Path, which: str) -> None:
    path = _weights_path(folder, which)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if HAS_SAFETENSORS:
        _st_save(tensors, str(tmp))
    else:  # pragma: no cover
        torch.save(tensors, tmp)
    tmp.replace(path)


def _load_weights(folder: Path, which: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint; missing or unreadable becomes :class:`ArtifactError`."""
    candidates = [folder / f"{which}.safetensors", folder / f"{which}.pt"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ArtifactError(f"two-tower artifact at {folder} has no {which} checkpoint")
    try:
        if path.suffix == ".safetensors":
            if not HAS_SAFETENSORS:  # pragma: no cover
                raise ArtifactError(f"{path} needs the safetensors package to load")
            return dict(_st_load(str(path), device="cpu"))
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"checkpoint {path} is corrupt or unreadable: {exc}") from exc
