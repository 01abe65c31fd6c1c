"""Text embeddings: meaning is captured, the cache spares the model, empty text is harmless."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from matchwise.errors import InvalidInput
from matchwise.features.text import (
    EMBEDDING_DIM,
    TextEmbedder,
    cosine_similarity_matrix,
    load_sentence_model,
    resolve_device,
    text_key,
)


def _fake_encoder(embedder: TextEmbedder) -> list[list[str]]:
    """Replace the model with a deterministic stand-in and record what it is asked."""
    seen: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        embedder.model_calls += 1
        rng = np.random.default_rng([len(t) for t in texts])
        vectors = rng.normal(size=(len(texts), EMBEDDING_DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    embedder._encode = encode  # type: ignore[method-assign]
    return seen


@pytest.mark.slow  # loads the real sentence model (about 5 s)
def test_similar_sentences_are_closer_than_unrelated(tmp_path: Path) -> None:
    embedder = TextEmbedder(tmp_path)
    vectors = embedder.embed(
        [
            "I love hiking in the mountains on weekends",
            "Trekking and climbing outdoors is my passion",
            "The quarterly tax report is due on Friday",
        ]
    )
    assert vectors.shape == (3, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = cosine_similarity_matrix(vectors, vectors)
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert sims[0, 1] > sims[1, 2] + 0.2


def test_cache_hit_does_not_call_the_model_again(tmp_path: Path) -> None:
    first = TextEmbedder(tmp_path)
    seen = _fake_encoder(first)
    a = first.embed(["alpha", "beta", "alpha"])
    assert seen == [["alpha", "beta"]]  # duplicates inside a call are embedded once
    np.testing.assert_array_equal(a[0], a[2])

    first.embed(["beta", "alpha"])
    assert first.model_calls == 1  # in-memory hit

    second = TextEmbedder(tmp_path)  # a new process would see only the disk cache
    seen2 = _fake_encoder(second)
    b = second.embed(["alpha", "gamma", "beta"])
    assert seen2 == [["gamma"]]  # only the new text reaches the model
    np.testing.assert_array_equal(b[0], a[0])
    np.testing.assert_array_equal(b[2], a[1])


def test_empty_and_missing_texts_are_zero_vectors(tmp_path: Path) -> None:
    embedder = TextEmbedder(tmp_path)
    seen = _fake_encoder(embedder)
    vectors = embedder.embed([None, "", "   ", float("nan"), "hello"])
    assert vectors.shape == (5, EMBEDDING_DIM)
    assert not vectors[:4].any()
    assert np.linalg.norm(vectors[4]) == pytest.approx(1.0, abs=1e-5)
    assert seen == [["hello"]]
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)
    assert embedder.embed([None]).shape == (1, EMBEDDING_DIM)
    assert embedder.model_calls == 1


def test_memory_only_cache_and_bad_input() -> None:
    embedder = TextEmbedder(None)
    _fake_encoder(embedder)
    embedder.embed(["x"])
    embedder.embed(["x"])
    assert embedder.model_calls == 1
    with pytest.raises(InvalidInput):
        embedder.embed("not a list")  # type: ignore[arg-type]


def test_key_depends_on_model_and_text() -> None:
    assert text_key("a") != text_key("b")
    assert text_key("a", "model-1") != text_key("a", "model-2")


def test_cosine_similarity_matrix_handles_zero_rows() -> None:
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    sims = cosine_similarity_matrix(a, b)
    assert sims.shape == (2, 3)
    np.testing.assert_allclose(sims[0], [1.0, 0.0, np.sqrt(0.5)], atol=1e-6)
    assert not sims[1].any()
    with pytest.raises(InvalidInput):
        cosine_similarity_matrix(np.ones((1, 2)), np.ones((1, 3)))


# --- one device rule for the sentence model and the two-tower model ---------------------------
def test_resolve_device_auto_picks_what_torch_sees_and_passes_named_devices() -> None:
    gpu = torch.cuda.is_available()
    assert resolve_device(None) == resolve_device("auto") == ("cuda" if gpu else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("mps") == "mps"  # not ours to judge: torch says when it is used
    if gpu:
        assert resolve_device("cuda") == "cuda"
        assert resolve_device("cuda:0") == "cuda:0"


def test_cuda_without_a_gpu_is_refused_before_any_model_loads() -> None:
    """The embedder once passed "cuda" through to torch; now both callers refuse it alike."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    for device in ("cuda", "cuda:1"):
        with pytest.raises(InvalidInput, match="CUDA is not available"):
            resolve_device(device)
    with pytest.raises(InvalidInput, match="CUDA is not available"):
        load_sentence_model("cuda")
