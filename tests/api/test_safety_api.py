"""Safety in the product: classify over HTTP, scan profiles, hide flagged ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from matchwise import registry
from matchwise.api import create_app
from matchwise.data.safety_corpus import generate_safety_corpus, generate_synthetic_profiles
from matchwise.ingest.profiles import upsert_users
from matchwise.jobs.worker import Worker
from matchwise.models.safety import SafetyClassifier, default_embedder
from matchwise.ops.auth import create_key
from matchwise.runtime import Runtime
from matchwise.schemas import UserIn
from matchwise.serve.recommend import recommend
from tests.utils.factories import people_fixture

SCAM_BIO = (
    "Investment manager. Send me a gift card or bitcoin to 1BoatSLRHtKNngkdXEeobR76b53LETtpyT "
    "and I double it, whatsapp +44 7700 900123 http://quick-profit.example now!!!"
)


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small classifier on the synthetic corpus only (the product's own generator)."""
    corpus = generate_safety_corpus(400, seed=2)
    corpus["group"] = corpus["template_id"]
    profiles = generate_synthetic_profiles(300, seed=2).rename(columns={"fake_profile": "fake"})
    model = SafetyClassifier(embed=default_embedder(), cv_folds=3)
    model.fit(text_data=corpus, profile_data=profiles)
    return model.save(tmp_path_factory.mktemp("safety") / "model")


@pytest.fixture
def client(runtime: Runtime, classifier_folder: Path) -> Iterator[TestClient]:
    store = registry.ArtifactStore(runtime.settings.artifact_root)
    with runtime.session() as s:
        upsert_users(s, people_fixture())
        registry.register(s, store, "safety", classifier_folder, activate=True)
        key, _ = create_key(s, "admin")
    with TestClient(create_app(runtime=runtime)) as c:
        c.headers["X-API-Key"] = key
        yield c


def test_classify_text_and_profile(client: TestClient) -> None:
    r = client.post("/v1/safety/classify", json={"text": SCAM_BIO})
    assert r.status_code == 200
    body = r.json()
    assert body["probabilities"]["spam_scam"] > 0.5 and body["flags"]["spam_scam"] is True
    calm = client.post("/v1/safety/classify", json={"text": "Love hiking and board games"})
    assert calm.json()["flags"]["spam_scam"] is False
    both = client.post("/v1/safety/classify", json={"text": "hi", "profile_id": "alice"}).json()
    assert set(both["probabilities"]) >= {"spam_scam", "harassment", "fake_profile"}
    body = {"text": "Love hiking and board games", "thresholds": {"spam_scam": 0.0}}
    strict = client.post("/v1/safety/classify", json=body).json()
    assert strict["flags"]["spam_scam"] is True


def test_bad_texts_are_clear_4xx(client: TestClient) -> None:
    huge = client.post("/v1/safety/classify", json={"text": "x" * 1_000_000})
    assert huge.status_code == 422 and huge.json()["message"].startswith("text:")
    broken = client.post(
        "/v1/safety/classify",
        content=b'{"text": "caf\\xe9 \xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= broken.status_code < 500 and "Traceback" not in broken.text
    empty = client.post("/v1/safety/classify", json={})
    assert empty.status_code == 422 and "give a text" in empty.json()["message"]
    unknown = client.post("/v1/safety/classify", json={"profile_id": "ghost"})
    assert unknown.status_code == 404


def test_new_scammy_profile_is_scanned_and_hidden(client: TestClient, runtime: Runtime) -> None:
    scammer = UserIn(id="scammer", gender="man", seeking=["woman"], age=33, city="Berlin",
                     latitude=52.5, longitude=13.4, bio=SCAM_BIO, tags=["hiking"])  # fmt: skip
    r = client.post("/v1/users", json={"users": [scammer.model_dump(mode="json")]})
    assert r.status_code == 200
    done = Worker(runtime, kinds=["safety_scan"]).run_once()  # the scan the upsert queued
    assert done is not None and done.job_type == "safety_scan" and done.status == "done"
    assert done.result["flagged"] == 1
    with runtime.session() as s:
        ids = {x.candidate_id for x in recommend(runtime, s, "alice", limit=50,
                                                 kind="user").recommendations}  # fmt: skip
    assert "scammer" not in ids and "bob" in ids
    flags = client.get("/v1/admin/moderation").json()
    assert flags[0]["user_id"] == "scammer" and flags[0]["source"] == "classifier"


def test_moderator_labels_are_stored(client: TestClient, runtime: Runtime) -> None:
    label = {"text": "you are worthless", "label": "harassment", "value": True}
    r = client.post("/v1/admin/safety/labels", json=label)
    assert r.status_code == 200
    from matchwise.ops.safety import moderator_labels

    with runtime.session() as s:
        frame = moderator_labels(s)
    assert frame.to_dict("records") == [
        {"text": "you are worthless", "label": "harassment", "value": True}
    ]
    bad = client.post("/v1/admin/safety/labels", json={"text": "x", "label": "rude",
                                                        "value": True})  # fmt: skip
    assert bad.status_code == 422


def test_profile_features_from_the_store(runtime: Runtime) -> None:
    from matchwise.ops.safety import profile_features

    with runtime.session() as s:
        upsert_users(s, people_fixture())
        frame = profile_features(s, ["alice", "bob"])
    assert isinstance(frame, pd.DataFrame) and set(frame["id"]) == {"alice", "bob"}
    assert (frame["reports_received"] == 0).all()
