"""Side features for the two-tower model: fit an encoder on profiles, turn rows into tensors.

A profile frame (users, items, or people as candidates) holds columns of mixed kinds. The
encoder infers each column's kind once, on training data, and stores what it learned
(vocabularies, means, vector sizes) as plain JSON, so an artifact never needs pickle:

- ``categorical``: one string per row -> an embedding; unseen values -> an "unknown" bucket.
- ``multi``: a list of strings per row (tags, hobbies, seeking) -> the mean of embeddings.
- ``numeric``: numbers, booleans, datetimes -> standardised, missing -> the mean.
- ``vector``: a precomputed vector per row (a text or image embedding) -> a projection; a
  missing vector uses a learned "missing" embedding instead (seed 001's optional image).
- ``text``: free text (bios) -> sentence embeddings (:mod:`matchwise.features.text`), then
  treated like ``vector`` (empty text counts as missing).

:class:`SideFeatures` is the matching ``nn.Module``: encoded rows in, one dense vector out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from matchwise.errors import ArtifactError, InvalidInput
from matchwise.features.text import EMBEDDING_DIM, TextEmbedder

logger = logging.getLogger(__name__)

Kind = Literal["categorical", "multi", "numeric", "vector", "text"]
KINDS: tuple[str, ...] = ("categorical", "multi", "numeric", "vector", "text")

#: Columns that identify a row rather than describe it: never features.
ID_LIKE_COLUMNS: frozenset[str] = frozenset(
    {"id", "user_id", "item_id", "owner_id", "name", "email", "event_id", "phone"}
)
PAD, UNKNOWN = 0, 1  # category index 0 = missing/padding, 1 = unseen value, 2.. = vocabulary
MAX_TAGS = 32  # per row, for "multi" columns
NUMERIC_CLIP = 5.0  # standardised values are clipped to +-5 so one outlier cannot dominate


@dataclass
class ColumnSpec:
    """What the encoder learned about one column."""

    name: str
    kind: Kind
    vocab: list[str] = field(default_factory=list)
    mean: float = 0.0
    std: float = 1.0
    dim: int = 0

    @property
    def cardinality(self) -> int:
        """Embedding rows needed: padding, unknown, then the vocabulary."""
        return len(self.vocab) + 2


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def _sample(series: pd.Series, n: int = 200) -> list[Any]:
    return [v for v in series.head(5000).tolist() if not _is_missing(v)][:n]


def _infer_kind(name: str, series: pd.Series, text_columns: Sequence[str] | None) -> Kind | None:
    """A column's kind from its dtype and a sample of values; None means "not a feature"."""
    if text_columns is not None and name in text_columns:
        return "text"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "numeric"
    values = _sample(series)
    if not values:
        return None
    first = values[0]
    if isinstance(first, dict):
        return None
    if isinstance(first, list | tuple | set | frozenset | np.ndarray):
        inner = [x for v in values for x in (list(v) if not isinstance(v, np.ndarray) else v)]
        if isinstance(first, np.ndarray) and first.dtype.kind in "fiu":
            return "vector"
        if inner and all(isinstance(x, int | float | np.number) for x in inner[:50]):
            return "vector"
        return "multi"
    if isinstance(first, str):
        if text_columns is None:
            # Free text (bios, descriptions): long, and mostly different from row to row.
            lengths = [len(v) for v in values if isinstance(v, str)]
            unique_ratio = len(set(values)) / len(values)
            if lengths and np.mean(lengths) >= 25 and unique_ratio >= 0.5:
                return "text"
        return "categorical"
    if isinstance(first, int | float | np.number):
        return "numeric"
    return None


def _numeric_values(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = pd.to_datetime(series, utc=True)
        days = (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)
        return days.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _vector_rows(series: pd.Series, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` float32 values and ``(n,)`` float32 presence mask (wrong size = missing)."""
    out = np.zeros((len(series), dim), dtype=np.float32)
    mask = np.zeros(len(series), dtype=np.float32)
    for row, value in enumerate(series.tolist()):
        if not isinstance(value, list | tuple | np.ndarray) and _is_missing(value):
            continue
        try:
            vec = np.asarray(value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            continue
        if vec.shape == (dim,) and np.isfinite(vec).all():
            out[row] = vec
            mask[row] = 1.0
    return out, mask


class FeatureEncoder:
    """Learns column kinds, vocabularies and scales from a training frame; JSON round-trips.

    Parameters
    ----------
    text_columns:
        Columns of free text to embed; None infers them (long, mostly unique strings).
    exclude:
        Columns never used (ids, names, emails are excluded always).
    min_count:
        Category values seen fewer times than this map to "unknown".
    max_vocab:
        At most this many values per categorical column (the most frequent).
    """

    def __init__(
        self,
        text_columns: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
        min_count: int = 2,
        max_vocab: int = 10_000,
    ) -> None:
        self.text_columns = None if text_columns is None else list(text_columns)
        self.exclude = sorted(set(exclude))
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.columns: list[ColumnSpec] = []

    # --- fitting ------------------------------------------------------------
    def fit(self, frame: pd.DataFrame | None) -> FeatureEncoder:
        """Infer each column's kind and statistics; an empty or None frame means no features."""
        self.columns = []
        if frame is None or frame.empty:
            return self
        skip = ID_LIKE_COLUMNS | set(self.exclude)
        for name in frame.columns:
            if not isinstance(name, str) or name in skip:
                continue
            series = frame[name]
            kind = _infer_kind(name, series, self.text_columns)
            if kind is None:
                logger.debug("column %r is not a usable feature; skipped", name)
                continue
            spec = ColumnSpec(name=name, kind=kind)
            if kind == "categorical":
                counts = Counter(str(v) for v in series.tolist() if not _is_missing(v))
                spec.vocab = self._vocab(counts)
                if not spec.vocab:
                    continue  # every value unique (an id in disguise): nothing to learn
            elif kind == "multi":
                counts = Counter(str(x) for v in series.tolist() if not _is_missing(v) for x in v)
                spec.vocab = self._vocab(counts)
                if not spec.vocab:
                    continue
            elif kind == "numeric":
                values = _numeric_values(series)
                finite = values[np.isfinite(values)]
                if finite.size == 0:
                    continue
                spec.mean = float(finite.mean())
                std = float(finite.std())
                spec.std = std if std > 1e-12 else 1.0
            elif kind == "vector":
                first = _sample(series, 1)
                spec.dim = int(np.asarray(first[0]).reshape(-1).shape[0])
                if spec.dim == 0:
                    continue
            elif kind == "text":
                spec.dim = EMBEDDING_DIM
            self.columns.append(spec)
        logger.info(
            "feature encoder: %s",
            ", ".join(f"{c.name}:{c.kind}" for c in self.columns) or "no side features",
        )
        return self

    def _vocab(self, counts: Counter[str]) -> list[str]:
        kept = [(v, c) for v, c in counts.items() if c >= self.min_count]
        kept.sort(key=lambda vc: (-vc[1], vc[0]))
        return [v for v, _ in kept[: self.max_vocab]]

    # --- encoding -------------------------------------------------------------
    @property
    def has_text(self) -> bool:
        return any(c.kind == "text" for c in self.columns)

    def transform(
        self, frame: pd.DataFrame | None, n_rows: int, embedder: Any = None
    ) -> dict[str, np.ndarray]:
        """Encode ``n_rows`` rows into named arrays (see :func:`encoded_shapes`).

        A column missing from ``frame`` (or no frame) encodes as "missing" everywhere.
        ``embedder`` (a :class:`~matchwise.features.text.TextEmbedder`) is needed only for
        text columns.
        """
        if frame is not None and len(frame) != n_rows:
            raise InvalidInput(f"feature frame has {len(frame)} rows, expected {n_rows}")
        out: dict[str, np.ndarray] = {}
        cats, nums = [], []
        for spec in self.columns:
            series = (
                frame[spec.name]
                if frame is not None and spec.name in frame.columns
                else pd.Series([None] * n_rows, dtype=object)
            )
            if spec.kind == "categorical":
                index = {v: i + 2 for i, v in enumerate(spec.vocab)}
                cats.append(
                    np.array(
                        [PAD if _is_missing(v) else index.get(str(v), UNKNOWN) for v in series],
                        dtype=np.int64,
                    )
                )
            elif spec.kind == "multi":
                index = {v: i + 2 for i, v in enumerate(spec.vocab)}
                rows = [
                    [] if _is_missing(v) else [index.get(str(x), UNKNOWN) for x in v][:MAX_TAGS]
                    for v in series
                ]
                width = max([len(r) for r in rows] + [1])
                padded = np.zeros((n_rows, width), dtype=np.int64)
                for i, r in enumerate(rows):
                    padded[i, : len(r)] = r
                out[f"multi:{spec.name}"] = padded
            elif spec.kind == "numeric":
                values = (_numeric_values(series) - spec.mean) / spec.std
                values = np.where(np.isfinite(values), values, 0.0)
                nums.append(np.clip(values, -NUMERIC_CLIP, NUMERIC_CLIP).astype(np.float32))
            elif spec.kind == "vector":
                out[f"vec:{spec.name}"], out[f"mask:{spec.name}"] = _vector_rows(series, spec.dim)
            elif spec.kind == "text":
                if embedder is None:
                    embedder = TextEmbedder(None)
                texts = [None if _is_missing(v) else str(v) for v in series]
                vectors = embedder.embed(texts)
                out[f"vec:{spec.name}"] = vectors
                out[f"mask:{spec.name}"] = (np.abs(vectors).sum(axis=1) > 0).astype(np.float32)
        if cats:
            out["cat"] = np.stack(cats, axis=1)
        if nums:
            out["num"] = np.stack(nums, axis=1)
        return out

    # --- persistence ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "text_columns": self.text_columns,
            "exclude": self.exclude,
            "min_count": self.min_count,
            "max_vocab": self.max_vocab,
            "columns": [asdict(c) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        try:
            encoder = cls(
                text_columns=data.get("text_columns"),
                exclude=data.get("exclude", ()),
                min_count=int(data.get("min_count", 2)),
                max_vocab=int(data.get("max_vocab", 10_000)),
            )
            encoder.columns = [ColumnSpec(**c) for c in data.get("columns", [])]
        except (TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"feature encoder description is corrupt: {exc}") from exc
        for c in encoder.columns:
            if c.kind not in KINDS:
                raise ArtifactError(f"feature encoder names an unknown column kind {c.kind!r}")
        return encoder

    def feature_names(self, prefix: str) -> list[str]:
        return [f"{prefix}.{c.name}" for c in self.columns]


def align_frame(frame: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame | None:
    """Rows of ``frame`` in dense-index order: by an ``id`` column, an integer index, or position.

    ``InteractionSet`` says side features are "indexed by dense index"; callers also pass
    profile frames with an ``id`` column, so both are accepted. Absent rows become missing.
    """
    if frame is None:
        return None
    n = len(ids)
    if "id" in frame.columns:
        keyed = frame.drop_duplicates("id", keep="last").set_index("id")
        keyed.index = pd.Index(keyed.index.astype(str))
        wanted = pd.Index(np.asarray(ids).astype(str))
        if keyed.index.isin(wanted).any():
            return keyed.reindex(wanted).reset_index(drop=True)  # absent ids: NaN rows
    if pd.api.types.is_integer_dtype(frame.index) and not isinstance(frame.index, pd.RangeIndex):
        return frame.reindex(range(n)).reset_index(drop=True)
    if len(frame) == n:
        return frame.reset_index(drop=True)
    if isinstance(frame.index, pd.RangeIndex):
        return frame.reindex(range(n)).reset_index(drop=True)
    raise InvalidInput(
        f"cannot align a feature frame of {len(frame)} rows with {n} ids: give it an 'id' "
        "column or index it by dense index"
    )


def _category_dim(cardinality: int, cap: int) -> int:
    """fastai's rule of thumb for an embedding size, capped."""
    return int(min(cap, max(4, round(1.6 * cardinality**0.56))))


class SideFeatures(nn.Module):
    """Encoded side features of a batch of rows -> one ``(batch, out_dim)`` vector."""

    def __init__(self, encoder: FeatureEncoder, max_cat_dim: int = 32, vector_dim: int = 64):
        super().__init__()
        self.cat_specs = [c for c in encoder.columns if c.kind == "categorical"]
        self.multi_specs = [c for c in encoder.columns if c.kind == "multi"]
        self.vec_specs = [c for c in encoder.columns if c.kind in ("vector", "text")]
        self.n_numeric = sum(1 for c in encoder.columns if c.kind == "numeric")
        self.cat_embeddings = nn.ModuleList(
            nn.Embedding(c.cardinality, _category_dim(c.cardinality, max_cat_dim))
            for c in self.cat_specs
        )
        self.multi_embeddings = nn.ModuleList(
            nn.Embedding(c.cardinality, _category_dim(c.cardinality, max_cat_dim), padding_idx=PAD)
            for c in self.multi_specs
        )
        self.vec_projections = nn.ModuleList(nn.Linear(c.dim, vector_dim) for c in self.vec_specs)
        # One learned stand-in per vector column for rows whose vector is missing.
        self.vec_missing = nn.Parameter(torch.zeros(len(self.vec_specs), vector_dim))
        cat_dims = [_category_dim(c.cardinality, max_cat_dim) for c in self.cat_specs]
        multi_dims = [_category_dim(c.cardinality, max_cat_dim) for c in self.multi_specs]
        self.out_dim = (
            sum(cat_dims) + sum(multi_dims) + vector_dim * len(self.vec_specs) + self.n_numeric
        )

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.cat_specs:
            cat = feats["cat"]  # (batch, n_cat)
            parts += [emb(cat[:, j]) for j, emb in enumerate(self.cat_embeddings)]
        for spec, emb in zip(self.multi_specs, self.multi_embeddings, strict=True):
            tags = feats[f"multi:{spec.name}"]  # (batch, max_tags)
            count = (tags != PAD).sum(dim=1, keepdim=True).clamp(min=1)  # (batch, 1)
            parts.append(emb(tags).sum(dim=1) / count)  # (batch, dim)
        for j, (spec, proj) in enumerate(zip(self.vec_specs, self.vec_projections, strict=True)):
            vec = feats[f"vec:{spec.name}"]  # (batch, dim_in)
            present = feats[f"mask:{spec.name}"].unsqueeze(1)  # (batch, 1)
            parts.append(present * proj(vec) + (1 - present) * self.vec_missing[j])
        if self.n_numeric:
            parts.append(feats["num"])  # (batch, n_numeric)
        return torch.cat(parts, dim=1)  # (batch, out_dim)
