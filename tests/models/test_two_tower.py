"""Two-tower model: learns a planted answer, is deterministic, round-trips, fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.models.base import InteractionSet
from matchwise.models.two_tower import (
    TwoTowerConfig,
    TwoTowerRecommender,
    _full_ranking,
    planned_epochs,
)

# Tiny sizes keep every fit well under a second on one CPU thread.
FAST: dict[str, Any] = {
    "hidden": [32],
    "embedding_dim": 16,
    "id_dim": 8,
    "batch_size": 64,
    "epochs": 25,
    "patience": 25,
    "lr": 0.01,
    "device": "cpu",
}
N_GROUPS = 4


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def planted(
    n_users: int = 48, n_items: int = 40, seed: int = 0
) -> tuple[InteractionSet, InteractionSet, InteractionSet]:
    """Users like items of their own group (``id % 4``); the known answer for held-out likes.

    Items of group 0 are also liked by a few users of other groups, so popularity prefers
    them for everyone and is wrong for three users in four.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, float]] = []
    for u in range(n_users):
        own = [i for i in range(n_items) if i % N_GROUPS == u % N_GROUPS]
        for i in rng.choice(own, size=8, replace=False):
            rows.append((u, int(i), 1.0))
        if u % N_GROUPS:
            group0 = [i for i in range(n_items) if i % N_GROUPS == 0]
            for i in rng.choice(group0, size=2, replace=False):
                rows.append((u, int(i), 1.0))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "label"])
    frame["user_id"] = "u" + frame["user_id"].astype(str)
    frame["item_id"] = "i" + frame["item_id"].astype(str)
    user_ids = np.array([f"u{u}" for u in range(n_users)])
    item_ids = np.array([f"i{i}" for i in range(n_items)])
    full = InteractionSet.from_frame(frame, user_ids, item_ids)
    # hold out two own-group likes per user for test and one for validation
    part = np.zeros(len(full), dtype=int)
    for u in range(n_users):
        own = np.flatnonzero((full.users == u) & (full.items % N_GROUPS == u % N_GROUPS))
        picked = rng.choice(own, size=3, replace=False)
        part[picked[:2]] = 2
        part[picked[2]] = 1
    return full.subset(part == 0), full.subset(part == 1), full.subset(part == 2)


def popularity_ndcg(train: InteractionSet, test: InteractionSet) -> float:
    """The baseline to beat, on the same full-ranking protocol as the model."""
    counts = torch.from_numpy(np.bincount(train.items, minlength=train.n_items)).float()
    metrics = _full_ranking(
        lambda rows: torch.ones(len(rows), 1),
        counts.unsqueeze(1),
        test.to_csr(positive_only=True),
        train.to_csr(),
        10,
    )
    return metrics["ndcg@10"]


@pytest.fixture(scope="module")
def data() -> tuple[InteractionSet, InteractionSet, InteractionSet]:
    return planted()


@pytest.fixture(scope="module")
def fitted(data: tuple[InteractionSet, ...]) -> TwoTowerRecommender:
    train, valid, test = data
    return TwoTowerRecommender(**FAST).fit(train, valid, test=test)


def test_learns_planted_preferences_and_beats_popularity(
    fitted: TwoTowerRecommender, data: tuple[InteractionSet, ...]
) -> None:
    train, _, test = data
    metrics = fitted.training_metrics["test"]
    baseline = popularity_ndcg(train, test)
    assert metrics["ndcg@10"] > baseline + 0.2
    assert metrics["hit@10"] > 0.9
    # the top recommendations come from the user's own group
    top, _ = fitted.recommend(np.arange(train.n_users), k=3, exclude=train.to_csr())
    own = top % N_GROUPS == (np.arange(train.n_users) % N_GROUPS)[:, None]
    assert own.mean() > 0.75


def test_training_records_history_and_metrics(fitted: TwoTowerRecommender) -> None:
    history = fitted.history_
    assert history and {"epoch", "loss", "lr", "seconds", "val"} <= history[0].keys()
    assert "ndcg@10" in history[0]["val"]
    metrics = fitted.training_metrics
    assert metrics["best_epoch"] >= 1
    assert metrics["val_ndcg@10"] == max(h["val"]["ndcg@10"] for h in history)
    assert "item.id" in fitted.feature_names
    assert "user.like_history" in fitted.feature_names


def test_embeddings_are_unit_vectors_and_score_is_their_dot(
    fitted: TwoTowerRecommender,
) -> None:
    users = np.array([0, 5, 7])
    user_vecs = fitted.user_embeddings(users)
    item_vecs = fitted.item_embeddings()
    assert user_vecs.shape == (3, 16) and item_vecs.shape == (40, 16)
    np.testing.assert_allclose(np.linalg.norm(item_vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fitted.score(users), user_vecs @ item_vecs.T, atol=1e-5)
    with pytest.raises(InvalidInput):
        fitted.score(np.array([10_000]))


def test_deterministic_with_a_seed(data: tuple[InteractionSet, ...]) -> None:
    train, valid, _ = data
    config = {**FAST, "epochs": 4}
    a = TwoTowerRecommender(**config).fit(train, valid).score(np.arange(train.n_users))
    b = TwoTowerRecommender(**config).fit(train, valid).score(np.arange(train.n_users))
    np.testing.assert_array_equal(a, b)
    c = TwoTowerRecommender(**{**config, "seed": 7}).fit(train, valid)
    assert not np.array_equal(a, c.score(np.arange(train.n_users)))


def test_save_then_load_gives_identical_scores(fitted: TwoTowerRecommender, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "tt")
    for name in (
        "manifest.json",
        "config.json",
        "encoder.json",
        "features.npz",
        "history.json",
        "best.safetensors",
        "latest.safetensors",
    ):
        assert (folder / name).is_file(), name
    loaded = TwoTowerRecommender.load(folder)
    users = np.arange(fitted.n_users_ or 0)
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    assert loaded.training_metrics["test"] == fitted.training_metrics["test"]
    assert loaded.config == fitted.config
    assert len(loaded.history_) == len(fitted.history_)
    assert json.loads((folder / "config.json").read_text())["loss"] == "softmax"
    latest = TwoTowerRecommender.load_latest(folder)
    assert latest.score(users[:2]).shape == (2, 40)


def test_missing_or_corrupt_artifacts_raise_artifact_error(
    fitted: TwoTowerRecommender, tmp_path: Path
) -> None:
    folder = fitted.save(tmp_path / "tt")
    (folder / "best.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="best.safetensors"):
        TwoTowerRecommender.load(folder)
    (folder / "best.safetensors").unlink()
    with pytest.raises(ArtifactError, match="no best checkpoint"):
        TwoTowerRecommender.load(folder)

    folder = fitted.save(tmp_path / "tt2")
    (folder / "features.npz").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="features.npz"):
        TwoTowerRecommender.load(folder)
    (folder / "features.npz").unlink()
    with pytest.raises(ArtifactError, match="missing features.npz"):
        TwoTowerRecommender.load(folder)

    folder = fitted.save(tmp_path / "tt3")
    (folder / "encoder.json").write_text("{")
    with pytest.raises(ArtifactError, match="encoder.json"):
        TwoTowerRecommender.load(folder)
    with pytest.raises(ArtifactError):
        TwoTowerRecommender.load(tmp_path / "nowhere")

    folder = fitted.save(tmp_path / "tt4")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["params"]["config"]["from_the_future"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="from_the_future"):
        TwoTowerRecommender.load(folder)


def test_config_rejects_unknown_keys_and_accepts_seed_names(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 3, "hidden_layers": [64]}))
    with pytest.raises(InvalidInput, match="hidden_layers"):
        TwoTowerConfig.from_json(path)
    with pytest.raises(InvalidInput, match="bogus"):
        TwoTowerRecommender(bogus=1)
    with pytest.raises(InvalidInput, match="loss"):
        TwoTowerConfig(loss="hinge")
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        TwoTowerConfig.from_json(path)
    # seed 003's own config file keeps working
    path.write_text(
        json.dumps(
            {
                "embedding_dim": 256,
                "hidden_dims": [1024, 512, 256],
                "dropout_rate": 0.4,
                "learning_rate": 0.0005,
                "batch_size": 128,
                "num_epochs": 100,
            }
        )
    )
    config = TwoTowerConfig.from_json(path)
    assert config.hidden == [1024, 512, 256] and config.dropout == [0.4]
    assert config.lr == 0.0005 and config.epochs == 100
    assert TwoTowerConfig.from_dict(config.to_dict()) == config


def test_no_positive_interactions_is_invalid_input(data: tuple[InteractionSet, ...]) -> None:
    train = data[0]
    negatives = InteractionSet(
        user_ids=train.user_ids,
        item_ids=train.item_ids,
        users=train.users,
        items=train.items,
        labels=np.zeros(len(train), dtype=np.float32),
    )
    with pytest.raises(InvalidInput, match="no positive interactions"):
        TwoTowerRecommender(**FAST).fit(negatives)


def test_unfitted_model_refuses_to_score() -> None:
    with pytest.raises(NotFitted):
        TwoTowerRecommender(**FAST).score(np.array([0]))


def test_bce_loss_learns_too(data: tuple[InteractionSet, ...]) -> None:
    train, valid, test = data
    model = TwoTowerRecommender(**{**FAST, "loss": "bce", "negatives": 2})
    model.fit(train, valid, test=test)
    assert model.training_metrics["test"]["ndcg@10"] > popularity_ndcg(train, test) + 0.1


def test_in_batch_softmax_with_mixed_negatives_learns(data: tuple[InteractionSet, ...]) -> None:
    train, valid, test = data
    model = TwoTowerRecommender(**{**FAST, "full_softmax_items": 0, "negatives": 1})
    model.fit(train, valid, test=test)
    assert model.training_metrics["test"]["ndcg@10"] > popularity_ndcg(train, test) + 0.1


def test_cuda_without_a_gpu_is_invalid_input(data: tuple[InteractionSet, ...]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InvalidInput, match="CUDA"):
        TwoTowerRecommender(**{**FAST, "device": "cuda"}).fit(data[0])


# --- people domain and the fused dual encoder ------------------------------------------------
def people(n: int = 40, seed: int = 0, image_rate: float = 0.5) -> InteractionSet:
    """People liking people of the same (planted) community; profiles with every modality."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"p{i}" for i in range(n)])
    community = np.arange(n) % N_GROUPS
    images: list[Any] = [
        rng.normal(size=8).astype(np.float32) + community[i] if rng.random() < image_rate else None
        for i in range(n)
    ]
    profiles = pd.DataFrame(
        {
            "id": ids,
            "age": rng.integers(20, 50, size=n),
            "city": [["oslo", "rome", "lima", "kyiv"][c] for c in community],
            "tags": [["music", f"sport{c}"] for c in community],
            "image_embedding": images,
            "email": [f"{i}@x.org" for i in ids],
        }
    )
    rows = []
    for a in range(n):
        same = [b for b in range(n) if b != a and community[b] == community[a]]
        for b in rng.choice(same, size=5, replace=False):
            rows.append((ids[a], ids[b], 1.0))
        other = [b for b in range(n) if community[b] != community[a]]
        rows.append((ids[a], ids[rng.choice(other)], 0.0))  # a pass
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "label"])
    return InteractionSet.from_frame(
        frame, ids, ids, user_features=profiles, meta={"domain": "people"}
    )


def test_people_domain_with_partly_missing_images(tmp_path: Path) -> None:
    data = people(image_rate=0.5)
    model = TwoTowerRecommender(**FAST).fit(data)
    names = model.feature_names
    assert "user.image_embedding" in names and "item.image_embedding" in names
    assert "item.like_history" in names  # candidates are people with their own likes
    assert "user.email" not in names
    scores = model.score(np.arange(data.n_users))
    assert scores.shape == (40, 40) and np.isfinite(scores).all()
    loaded = TwoTowerRecommender.load(model.save(tmp_path / "people"))
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))


@pytest.mark.parametrize("image_rate", [0.0, 1.0])
def test_people_domain_with_no_images_or_all_images(image_rate: float) -> None:
    data = people(image_rate=image_rate)
    model = TwoTowerRecommender(**{**FAST, "epochs": 3}).fit(data)
    assert np.isfinite(model.score(np.arange(data.n_users))).all()
    assert ("user.image_embedding" in model.feature_names) == (image_rate > 0)


def test_text_column_is_embedded_through_the_text_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matchwise.features import text

    calls: list[int] = []

    def fake_encode(self: text.TextEmbedder, texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        rng = np.random.default_rng(len(texts))
        vectors = rng.normal(size=(len(texts), text.EMBEDDING_DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    monkeypatch.setattr(text.TextEmbedder, "_encode", fake_encode)
    data = people(image_rate=0.5)  # the fused dual encoder: bio + image + behaviour
    assert data.user_features is not None
    bios = [f"I love community {i % 4} things" if i % 5 else "" for i in range(data.n_users)]
    data.user_features["bio"] = bios
    config = {**FAST, "epochs": 2, "text_columns": ["bio"], "text_cache_dir": str(tmp_path)}
    first = TwoTowerRecommender(**config).fit(data)
    assert {"user.bio", "user.image_embedding", "user.like_history"} <= set(first.feature_names)
    assert calls == [4]  # four distinct non-empty bios, embedded once for both towers
    TwoTowerRecommender(**config).fit(data)
    assert calls == [4]  # the second training reads the disk cache


def test_progress_bar_runs(data: tuple[InteractionSet, ...]) -> None:
    train, valid, _ = data
    model = TwoTowerRecommender(**{**FAST, "epochs": 2}, progress=True).fit(train, valid)
    assert len(model.history_) == 2


@pytest.mark.parametrize(
    "times",
    [
        np.array([1, 5, 3, 2, 9]),
        pd.to_datetime([1, 5, 3, 2, 9], unit="D", utc=True).to_numpy(),
        np.array(list(pd.to_datetime([1, 5, 3, 2, 9], unit="D", utc=True)), dtype=object),
    ],
)
def test_like_history_keeps_the_most_recent_distinct_likes(times: np.ndarray) -> None:
    from matchwise.models.two_tower import _like_history

    data = InteractionSet(
        user_ids=np.array(["a", "b"]),
        item_ids=np.array(["x", "y", "z", "w"]),
        users=np.array([0, 0, 0, 0, 1]),
        items=np.array([0, 1, 2, 1, 3]),
        labels=np.array([1.0, 1.0, 1.0, 1.0, 0.0]),
        timestamps=times,
    )
    offsets, items = _like_history(data, 0.5, 2, np.random.default_rng(0))
    assert offsets.tolist() == [0, 2, 2]  # user b has only a pass: no history
    assert items.tolist() == [1, 2]  # y (times 5 and 2, once), then z (3); x (1) is cut


def test_feature_encoder_kinds_unknown_bucket_and_json_round_trip() -> None:
    from matchwise.models.two_tower_features import UNKNOWN, FeatureEncoder, align_frame

    train = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "age": [30, 40, 50],
            "city": ["oslo", "oslo", "rome"],
            "tags": [["x"], ["x", "y"], []],
            "photo": [np.ones(3), None, np.zeros(3)],
            "verified": [True, False, True],
            "email": ["a@x", "b@x", "c@x"],
        }
    )
    encoder = FeatureEncoder(min_count=1).fit(train)
    kinds = {c.name: c.kind for c in encoder.columns}
    assert kinds == {
        "age": "numeric",
        "city": "categorical",
        "tags": "multi",
        "photo": "vector",
        "verified": "numeric",
    }
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    new = align_frame(
        pd.DataFrame({"id": ["b", "z"], "city": ["lima", "oslo"], "tags": [["q"], ["y"]]}),
        np.array(["z", "b", "nobody"]),
    )
    encoded = restored.transform(new, 3)
    assert encoded["cat"][:, 0].tolist() == [2, UNKNOWN, 0]  # oslo, unseen lima, missing
    assert encoded["multi:tags"][1, 0] == UNKNOWN
    assert encoded["mask:photo"].tolist() == [0.0, 0.0, 0.0]  # no photos in the new frame
    assert np.isfinite(encoded["num"]).all()


def test_epochs_are_sized_to_the_data() -> None:
    """Issue 16: at most ``max_examples`` training pairs over all epochs, so 150,000
    positives train 10 epochs, not 20; MovieLens-100K's 65,000 keep all 20."""
    config = TwoTowerConfig(epochs=20, max_examples=1_500_000)
    assert planned_epochs(config, 65_000) == 20
    assert planned_epochs(config, 154_000) == 10
    assert planned_epochs(config, 5_000_000) == 1
    assert planned_epochs(TwoTowerConfig(epochs=20, max_examples=0), 5_000_000) == 20
    with pytest.raises(InvalidInput, match="max_examples"):
        TwoTowerConfig(max_examples=-1)
