"""Safety classifier: signals, input limits, the heads on real data, persistence, corruption.

The sentence model is loaded once per session (``default_embedder`` is cached per process)
and the fast tests fit on small samples; the full SMS comparison with the TF-IDF baseline
is ``slow``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise.data.safety_corpus import (
    generate_safety_corpus,
    generate_synthetic_profiles,
    load_instagram_fake,
    load_sms_spam,
    split_by_group,
)
from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.models.safety import (
    LABELS,
    MANIFEST,
    PROFILE_MODEL,
    SIGNAL_NAMES,
    TEXT_WEIGHTS,
    SafetyClassifier,
    default_embedder,
    moderator_labels_to_frame,
    profile_features,
    text_signals,
    train_safety,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]


def _sms() -> pd.DataFrame:
    try:
        return load_sms_spam()
    except ArtifactError:
        pytest.skip("SMS Spam Collection not available")


def _instagram() -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return load_instagram_fake()
    except ArtifactError:
        pytest.skip("Instagram fake-account data not available")


def _signal(texts: list[str], name: str) -> np.ndarray:
    return text_signals(texts)[:, SIGNAL_NAMES.index(name)]


# --- pure functions --------------------------------------------------------------------------


def test_cheap_signals_fire_on_links_phones_crypto_and_money() -> None:
    spammy = [
        "claim now at www.free-prize.com",
        "call +44 7700 900123 today",
        "send 0.1 BTC to my wallet",
        "buy me a steam gift card, $100",
        "write to anna.k@example.org",
    ]
    clean = "hey, how was the hike on sunday?"
    assert _signal(spammy + [clean], "url_count").tolist() == [1, 0, 0, 0, 0, 0]
    assert _signal(spammy + [clean], "phone_count").tolist() == [0, 1, 0, 0, 0, 0]
    assert _signal(spammy + [clean], "crypto_word_count").tolist() == [0, 0, 2, 0, 0, 0]
    assert _signal(spammy + [clean], "gift_card_count")[3] == 1
    assert _signal(spammy + [clean], "money_amount_count")[3] == 1
    assert _signal(spammy + [clean], "email_count").tolist() == [0, 0, 0, 0, 1, 0]
    assert _signal(["WIN BIG NOW!!!"], "caps_ratio")[0] == 1.0
    assert _signal(["f*ck off", "fuck off", "sh1t"], "censored_word_count")[0] == 1
    assert _signal(["f*ck off", "fuck off", "sh1t"], "profanity_count")[1:].tolist() == [1, 1]
    assert _signal(["i know where you live"], "threat_count")[0] == 1


def test_repeated_message_signal_uses_the_senders_history() -> None:
    text = "Hey! How's your week going?"
    history = ["hey how's your week going", "HEY, HOW'S YOUR WEEK GOING??", "cute dog"]
    out = text_signals([text, text], [history, []])
    count, ratio = SIGNAL_NAMES.index("repeat_count_log"), SIGNAL_NAMES.index("repeat_ratio")
    assert out[0, count] == pytest.approx(np.log1p(2))
    assert out[0, ratio] == pytest.approx(2 / 3)
    assert out[1, count] == 0 and out[1, ratio] == 0


def test_profile_features_map_aliases_and_derive_fields() -> None:
    frame = profile_features(
        [
            {"profile pic": 1, "#followers": 10, "#follows": 4, "description length": 30},
            {"photo_count": 0, "bio": "hi there", "username": "ann1984", "likes": 9, "swipes": 10},
        ]
    )
    assert frame.loc[0, "has_profile_photo"] == 1
    assert frame.loc[0, "follower_follow_ratio"] == pytest.approx(2.0)
    assert frame.loc[0, "bio_length"] == 30
    assert np.isnan(frame.loc[0, "account_age_days"])
    assert frame.loc[1, "has_profile_photo"] == 0
    assert frame.loc[1, "bio_length"] == 8
    assert frame.loc[1, "username_digit_ratio"] == pytest.approx(4 / 7)
    assert frame.loc[1, "like_ratio"] == pytest.approx(0.9)
    with pytest.raises(InvalidInput, match="photo_count"):
        profile_features([{"photo_count": "many"}])


def test_synthetic_corpus_is_deterministic_and_labelled() -> None:
    a = generate_safety_corpus(200, seed=3)
    b = generate_safety_corpus(200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["category"]) == {"benign", "inappropriate", "harassment", "abusive", "scam"}
    abusive = a[a["category"] == "abusive"]
    assert (abusive["inappropriate"] == 1).all() and (abusive["harassment"] == 1).all()
    split = split_by_group(a["template_id"], seed=0, strata=a["category"])
    by_template = pd.Series(split).groupby(a["template_id"].to_numpy()).nunique()
    assert (by_template == 1).all()  # no template crosses splits


def test_moderator_labels_merge_by_majority_and_reject_unknown_labels() -> None:
    wide = moderator_labels_to_frame(
        pd.DataFrame(
            {
                "text": ["you are vile", "you are vile", "you are vile", "nice hat"],
                "label": ["harassment", "harassment", "harassment", "spam_scam"],
                "value": [1, 1, 0, True],
            }
        )
    ).set_index("text")
    assert wide.loc["you are vile", "harassment"] == 1
    assert np.isnan(wide.loc["you are vile", "spam_scam"])
    with pytest.raises(InvalidInput, match="fake_profile"):
        moderator_labels_to_frame(
            pd.DataFrame({"text": ["x"], "label": ["fake_profile"], "value": [1]})
        )


# --- the fake-profile head on real data -------------------------------------------------------


def test_fake_profile_head_learns_instagram_fakes() -> None:
    train, test = _instagram()
    model = SafetyClassifier(embed=lambda texts: np.zeros((len(texts), 4))).fit(profile_data=train)
    p = model.predict_proba(profiles=test.drop(columns=["fake"]))["fake_profile"]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test["fake"], p) > 0.8
    # a dating profile without any Instagram column still gets a probability
    dating = model.predict_proba(profiles=[{"photo_count": 4, "bio": "love hiking and dogs"}])
    assert 0.0 <= dating["fake_profile"][0] <= 1.0
    with pytest.raises(NotFitted):
        model.predict_proba(texts=["hello"])


# --- a small fitted classifier shared by the text tests ---------------------------------------


@pytest.fixture(scope="module")
def small() -> tuple[SafetyClassifier, pd.DataFrame]:
    """Fitted on ~475 texts: 225 SMS + 250 synthetic, plus the Instagram profiles."""
    sms = _sms()
    train_ins, _ = _instagram()
    rng = np.random.default_rng(0)
    ham = rng.choice(np.flatnonzero(sms["spam_scam"].to_numpy() == 0), 250, replace=False)
    spam = rng.choice(np.flatnonzero(sms["spam_scam"].to_numpy() == 1), 125, replace=False)
    fit_rows = np.concatenate([ham[:150], spam[:75]])
    held_out = sms.iloc[np.concatenate([ham[150:], spam[75:]])]
    corpus = generate_safety_corpus(250, seed=1)
    corpus["group"] = corpus["template_id"]
    text_data = pd.concat([sms.iloc[fit_rows], corpus], ignore_index=True)
    profiles = pd.concat(
        [
            train_ins,
            generate_synthetic_profiles(200, seed=1).rename(columns={"fake_profile": "fake"}),
        ],
        ignore_index=True,
    )
    model = SafetyClassifier(embed=default_embedder(), cv_folds=3)
    model.fit(text_data=text_data, profile_data=profiles)
    return model, held_out


def test_separates_obvious_spam_from_ham(small: tuple[SafetyClassifier, pd.DataFrame]) -> None:
    model, held_out = small
    p = model.predict_proba(held_out["text"].tolist())["spam_scam"]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(held_out["spam_scam"], p) > 0.95
    obvious = model.predict_proba(
        [
            "WINNER!! You have won a £1000 cash prize. Call 09061701461 to claim now!",
            "ok see you at 7, don't forget the umbrella",
        ]
    )["spam_scam"]
    assert obvious[0] > 0.5 > obvious[1]


def test_predict_proba_and_decide_cover_every_label(
    small: tuple[SafetyClassifier, pd.DataFrame],
) -> None:
    model, _ = small
    probas = model.predict_proba(
        texts=["want to grab tacos on saturday?", "send nudes"],
        profiles=[{"photo_count": 5, "account_age_days": 400}],
        histories=[[], ["send nudes", "send nudes"]],
    )
    assert set(probas) == set(LABELS)
    assert all(((p >= 0) & (p <= 1)).all() for p in probas.values())
    flags = model.decide(probas, thresholds={"spam_scam": 1.0})
    assert not flags["spam_scam"].any()
    assert model.decide({"harassment": 0.7}, {"harassment": 0.6}) == {"harassment": True}
    with pytest.raises(InvalidInput):
        model.decide({"harassment": 0.7}, {"harassment": 1.5})
    checked = model.check("hey, how are you?", profile={"photo_count": 3})
    assert set(checked["probabilities"]) == set(LABELS)
    assert all(isinstance(v, bool) for v in checked["flags"].values())


def test_too_long_empty_or_invalid_text_is_invalid_input(
    small: tuple[SafetyClassifier, pd.DataFrame],
) -> None:
    model, _ = small
    with pytest.raises(InvalidInput, match="limit"):
        model.predict_proba(["x" * 1_000_000])
    with pytest.raises(InvalidInput, match="empty"):
        model.predict_proba([""])
    with pytest.raises(InvalidInput, match="empty"):
        model.predict_proba(["   \n"])
    with pytest.raises(InvalidInput, match="UTF-8"):
        model.predict_proba([b"\xff\xfe bad"])
    with pytest.raises(InvalidInput, match="limit"):
        SafetyClassifier(max_text_chars=10).validate_texts(["eleven char"])


def test_save_load_gives_identical_probabilities(
    small: tuple[SafetyClassifier, pd.DataFrame], tmp_path: Path
) -> None:
    model, held_out = small
    texts = held_out["text"].tolist()[:20] + ["u r a l0ser, answer me!!!"]
    _, test = _instagram()
    profiles = test.drop(columns=["fake"])
    before = model.predict_proba(texts=texts, profiles=profiles)
    model.save(tmp_path / "safety")
    loaded = SafetyClassifier.load(tmp_path / "safety", embed=default_embedder())
    after = loaded.predict_proba(texts=texts, profiles=profiles)
    assert set(after) == set(before)
    for label in before:
        np.testing.assert_array_equal(after[label], before[label])
    assert loaded.thresholds == model.thresholds
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "safety").iterdir())


def test_moderator_labels_are_added_to_training(
    small: tuple[SafetyClassifier, pd.DataFrame],
) -> None:
    del small  # requested only so its texts' vectors are already in the embedder's cache
    corpus = generate_safety_corpus(250, seed=1)
    extra = pd.DataFrame(
        {
            "text": [
                "you smell like wet cardboard, troll",
                "you smell like wet cardboard, troll",
                "nobody would date a goblin like you",
                "crawl back under your bridge",
                "lovely chat, thanks",
                "see you at the climbing gym",
                "what a sweet dog",
            ],
            "label": ["harassment"] * 7,
            "value": [1, 1, 1, 1, 0, 0, 0],
        }
    )
    model = SafetyClassifier(embed=default_embedder(), cv_folds=3, use_tfidf=False)
    model.fit(text_data=corpus[["text", "inappropriate", "harassment"]], extra_labels=extra)
    assert set(model.labels) == {"inappropriate", "harassment"}
    # a head can be trained from moderator labels alone
    only = SafetyClassifier(embed=default_embedder(), cv_folds=2, use_tfidf=False).fit(
        extra_labels=extra
    )
    assert only.labels == ["harassment"]


@pytest.mark.parametrize(
    "damage", ["no_manifest", "bad_json", "truncated_npz", "bad_lgb", "bad_vocab"]
)
def test_corrupt_artifact_raises_artifact_error(
    small: tuple[SafetyClassifier, pd.DataFrame], tmp_path: Path, damage: str
) -> None:
    model, _ = small
    folder = model.save(tmp_path / "safety")
    if damage == "no_manifest":
        (folder / MANIFEST).unlink()
    elif damage == "bad_json":
        (folder / MANIFEST).write_text("{not json")
    elif damage == "truncated_npz":
        data = (folder / TEXT_WEIGHTS).read_bytes()
        (folder / TEXT_WEIGHTS).write_bytes(data[: len(data) // 2])
    elif damage == "bad_lgb":
        (folder / PROFILE_MODEL).write_text("tree\nnot a model\n")
    elif damage == "bad_vocab":
        (folder / "tfidf_vocabulary.json").write_text(json.dumps({"word": {"a": 0}}))
    with pytest.raises(ArtifactError):
        SafetyClassifier.load(folder, embed=default_embedder())


def test_missing_folder_raises_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError):
        SafetyClassifier.load(tmp_path / "nowhere")


# --- the full comparison on the SMS split -----------------------------------------------------


@pytest.mark.slow
def test_spam_head_beats_tfidf_baseline_on_sms_split() -> None:
    _sms()
    _instagram()
    from matchwise.features.text import TextEmbedder

    embedder = TextEmbedder(ROOT / "var" / "text-cache")  # shared with the benchmark
    _, metrics = train_safety(embed=embedder.embed)
    ours = metrics["labels"]["spam_scam"]["f1"]
    baseline = metrics["baseline"]["spam_scam_tfidf_logreg"]["f1"]
    assert ours >= baseline
    assert metrics["labels"]["fake_profile"]["auc"] > 0.8
