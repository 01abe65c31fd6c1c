"""``train safety`` registers like every model: one registration path, an activation verdict
under ``--activate if_better|always|never``, ``if_better`` on the held-out mean F1.

The sentence model would spend most of a minute embedding the corpora, so texts are
embedded here by a cheap deterministic stand-in (the subject is registration, not
embedding quality), and the public sets are tiny files written by the test.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchwise import registry
from matchwise.cli.app import main
from matchwise.data.safety_corpus import generate_safety_corpus, generate_synthetic_profiles
from matchwise.errors import InvalidInput
from matchwise.models import safety as safety_model
from matchwise.models.safety import LABELS, SafetyClassifier, binary_metrics
from matchwise.runtime import Runtime
from matchwise.settings import Settings
from matchwise.train.pipeline import TrainResult, register_versions
from matchwise.train.safety import selection_score, stage_classifier, train_and_register


def cheap_embed(texts: list[str]) -> np.ndarray:
    """16 numbers from each text's SHA-256: deterministic, no model to load."""
    out = np.zeros((len(texts), 16), dtype=np.float32)
    for i, text in enumerate(texts):
        digest = hashlib.sha256(str(text).encode()).digest()[:16]
        out[i] = np.frombuffer(digest, dtype=np.uint8) / 255.0
    return out


@pytest.fixture(scope="module")
def small() -> tuple[SafetyClassifier, dict[str, Any]]:
    """A classifier on a tiny synthetic corpus, with held-out figures for every label."""
    corpus = generate_safety_corpus(300, seed=2)
    corpus["group"] = corpus["template_id"]
    profiles = generate_synthetic_profiles(200, seed=2).rename(columns={"fake_profile": "fake"})
    model = SafetyClassifier(embed=cheap_embed, cv_folds=2)
    model.fit(text_data=corpus, profile_data=profiles)
    held = generate_safety_corpus(120, seed=9)
    probs = model.predict_proba(held["text"].tolist())
    labels = {label: binary_metrics(held[label].to_numpy(), probs[label], 0.5)
              for label in ("inappropriate", "spam_scam", "harassment")}  # fmt: skip
    fake = generate_synthetic_profiles(100, seed=9)
    p_fake = model.predict_proba(profiles=fake.drop(columns=["fake_profile"]))["fake_profile"]
    labels["fake_profile"] = binary_metrics(fake["fake_profile"].to_numpy(), p_fake, 0.5)
    return model, {"labels": labels, "training_seconds": {"total": 1.5}}


def scaled(metrics: dict[str, Any], factor: float) -> dict[str, Any]:
    """The same figures with every F1 times ``factor`` (a better or a worse version)."""
    out = copy.deepcopy(metrics)
    for values in out["labels"].values():
        values["f1"] = min(1.0, values["f1"] * factor)
    return out


def register(
    runtime: Runtime, classifier: SafetyClassifier, metrics: dict[str, Any], activate: str
) -> TrainResult:
    with tempfile.TemporaryDirectory() as tmp:
        pending = stage_classifier(runtime, classifier, metrics, Path(tmp), activate)
        return register_versions(runtime, [pending], actor="test")[0]


def active(runtime: Runtime) -> str | None:
    with runtime.session() as session:
        row = registry.active_version(session, "safety")
        return None if row is None else row.version


def test_selection_score_is_the_mean_f1_over_every_label() -> None:
    metrics = {"labels": {label: {"f1": 0.8} for label in LABELS}}
    assert selection_score(metrics) == pytest.approx(0.8)
    del metrics["labels"]["fake_profile"]  # a missing head counts 0
    assert selection_score(metrics) == pytest.approx(0.8 * 3 / 4)
    metrics["labels"]["spam_scam"]["f1"] = float("nan")
    assert selection_score(metrics) == pytest.approx(0.8 * 2 / 4)
    with pytest.raises(InvalidInput, match="no held-out figures"):
        selection_score({})


def test_activation_policies_follow_the_held_out_mean_f1(
    runtime: Runtime, small: tuple[SafetyClassifier, dict[str, Any]]
) -> None:
    classifier, metrics = small
    first = register(runtime, classifier, metrics, "if_better")
    assert first.activated and first.reason == "activated: no active version yet"
    assert first.registry_id is not None and first.test["spam_scam"]["f1"] >= 0
    assert active(runtime) == first.version

    worse = register(runtime, classifier, scaled(metrics, 0.5), "if_better")
    assert not worse.activated and worse.registry_id is not None
    assert worse.reason.startswith(f"kept {first.version}: held-out mean F1")
    assert active(runtime) == first.version

    better = register(runtime, classifier, scaled(metrics, 1.2), "if_better")
    assert better.activated and better.reason.startswith("activated: held-out mean F1")
    assert active(runtime) == better.version

    never = register(runtime, classifier, scaled(metrics, 1.5), "never")
    assert not never.activated and active(runtime) == better.version
    always = register(runtime, classifier, scaled(metrics, 0.1), "always")
    assert always.activated and active(runtime) == always.version

    with runtime.session() as session:  # every one registered, with what it was judged on
        rows = {r.version: r for r in registry.list_versions(session, "safety")}
    assert len(rows) == 5
    assert selection_score(rows[worse.version].metrics) == pytest.approx(
        selection_score(scaled(metrics, 0.5))
    )
    # the registered artifact is the classifier, loadable as served
    with runtime.session() as session:
        uri = registry.get_version(session, always.version).uri
    folder = registry.ArtifactStore(runtime.settings.artifact_root).fetch(uri)
    loaded = SafetyClassifier.load(folder, embed=cheap_embed)
    text = ["send me a gift card now"]
    assert np.allclose(loaded.predict_proba(text)["spam_scam"],
                       classifier.predict_proba(text)["spam_scam"])  # fmt: skip


def test_an_active_version_without_figures_is_replaced(
    runtime: Runtime, small: tuple[SafetyClassifier, dict[str, Any]]
) -> None:
    classifier, metrics = small
    store = registry.ArtifactStore(runtime.settings.artifact_root)
    with tempfile.TemporaryDirectory() as tmp, runtime.session() as session:
        folder = classifier.save(Path(tmp) / "bare")
        registry.register(session, store, "safety", folder, activate=True)  # no metrics
    result = register(runtime, classifier, metrics, "if_better")
    assert result.activated and "cannot be evaluated" in result.reason


def test_a_bad_policy_is_refused_before_training(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="if_better, always or never"):
        train_and_register(runtime, activate="sometimes")


# --- the CLI ---------------------------------------------------------------------------------
def tiny_public_sets(folder: Path) -> tuple[Path, Path]:
    """An SMS Spam Collection file and an Instagram fake-account folder, both tiny."""
    corpus = generate_safety_corpus(300, seed=4)
    sms = folder / "SMSSpamCollection"
    pairs = zip(corpus["text"], corpus["spam_scam"], strict=True)
    lines = [f"{'spam' if spam else 'ham'}\t{text}" for text, spam in pairs]
    sms.write_text("\n".join(lines) + "\n")
    instagram = folder / "instagram"
    instagram.mkdir()
    rng = np.random.default_rng(4)
    _accounts(rng, 160).to_csv(instagram / "train.csv", index=False)
    _accounts(rng, 60).to_csv(instagram / "test.csv", index=False)
    return sms, instagram


def _accounts(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Instagram-like accounts, every other one fake: fewer photos, posts and followers."""
    fake = np.arange(n) % 2 == 1

    def either(if_fake: np.ndarray, if_genuine: np.ndarray) -> np.ndarray:
        return np.where(fake, if_fake, if_genuine)

    return pd.DataFrame(
        {
            "profile pic": either(rng.random(n) < 0.3, rng.random(n) < 0.9).astype(int),
            "nums/length username": either(rng.uniform(0.2, 0.6, n), rng.uniform(0, 0.2, n)),
            "fullname words": rng.integers(0, 3, n),
            "nums/length fullname": np.zeros(n),
            "name==username": np.zeros(n, dtype=int),
            "description length": either(rng.integers(0, 20, n), rng.integers(10, 120, n)),
            "external URL": (rng.random(n) < 0.2).astype(int),
            "private": (rng.random(n) < 0.4).astype(int),
            "#posts": either(rng.integers(0, 10, n), rng.integers(5, 400, n)),
            "#followers": either(rng.integers(0, 60, n), rng.integers(50, 3000, n)),
            "#follows": rng.integers(10, 1500, n),
            "fake": fake.astype(int),
        }
    )


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_train_safety_has_the_activate_option_and_output_of_every_model(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MATCHWISE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MATCHWISE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MATCHWISE_CONFIG", raising=False)
    embedder: Callable[[], Callable[[list[str]], np.ndarray]] = lambda: cheap_embed  # noqa: E731
    monkeypatch.setattr(safety_model, "default_embedder", embedder)
    sms, instagram = tiny_public_sets(tmp_path)
    common = ["train", "safety", "--sms", str(sms), "--instagram", str(instagram)]

    assert run([*common, "--activate", "sometimes"]) == 2
    assert "if_better, always or never" in capsys.readouterr().err

    assert run([*common, "--json"]) == 0  # if_better, nothing active yet
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"model", "version", "dataset", "validation", "test", "train_seconds",
            "registry_id", "activated", "reason", "report"} <= set(out)  # fmt: skip
    assert out["model"] == "safety" and out["activated"] is True
    assert out["reason"] == "activated: no active version yet"
    assert set(out["test"]) == set(LABELS)
    assert out["selection"]["held-out mean F1"] == pytest.approx(
        np.mean([out["test"][label]["f1"] for label in LABELS])
    )

    assert run([*common, "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert dry["registry_id"] is None and dry["activated"] is False
    assert dry["reason"] == "dry run: nothing written to the store"

    assert run([*common, "--activate", "never"]) == 0
    text = capsys.readouterr().out
    assert "held-out mean F1" in text and "registered, not activated (policy: never)" in text
    runtime = Runtime.open(Settings(database_url=sqlite_url), migrate=False)
    with runtime.session() as session:
        rows = registry.list_versions(session, "safety")
        assert len(rows) == 2  # the dry run registered nothing
        row = registry.active_version(session, "safety")
        assert row is not None and row.version == out["version"]
    runtime.close()
