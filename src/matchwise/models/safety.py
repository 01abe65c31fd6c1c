"""Multi-label safety classifier (seed 001): inappropriate, spam/scam, harassment, fake profile.

Why this shape:

* **Text heads** (``inappropriate``, ``spam_scam``, ``harassment``) see a message through
  two eyes. A logistic regression over sentence embeddings (all-MiniLM-L6-v2) plus cheap
  hand-made signals reads meaning ("that concert was sick" is praise); the signals catch
  what embeddings blur (links, phone numbers, money and crypto words, ALL CAPS, a message
  pasted to many matches). A TF-IDF word + character n-gram logistic regression catches
  spelling (leetspeak, censored swear words, SMS short codes). A stacking logistic
  regression fitted on *out-of-fold* scores of both combines them, which is also Platt
  calibration, so the outputs are probabilities and one threshold per label means the same
  thing over time.
* **Fake-profile head**: LightGBM over account and behaviour features. A mapping layer
  (:func:`profile_features`) turns whatever the caller has (dating-app aggregates, the
  Instagram fake-account columns) into one canonical feature table; absent features are
  NaN, and training masks features at random so the trees learn where a missing value goes.
* **Persistence without pickle**: weights in ``.npz`` (``allow_pickle=False``), TF-IDF
  vocabularies in JSON, the LightGBM booster as its text dump, settings in
  ``manifest.json``. A missing or corrupt file raises :class:`ArtifactError`.

The embedding function is injected (any callable ``list[str] -> (n, d) array``), so tests,
batch jobs and the API can share one loaded model and its cache.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matchwise.data.safety_corpus import (
    generate_safety_corpus,
    generate_synthetic_profiles,
    load_instagram_fake,
    load_sms_spam,
    split_by_group,
)
from matchwise.errors import ArtifactError, InvalidInput, NotFitted
from matchwise.features.text import TextEmbedder
from matchwise.models.base import json_default

logger = logging.getLogger(__name__)

TEXT_LABELS: tuple[str, ...] = ("inappropriate", "spam_scam", "harassment")
PROFILE_LABEL = "fake_profile"
LABELS: tuple[str, ...] = (*TEXT_LABELS, PROFILE_LABEL)
DEFAULT_THRESHOLDS: dict[str, float] = dict.fromkeys(LABELS, 0.5)
DEFAULT_MAX_TEXT_CHARS = 10_000
MAX_HISTORY = 200  # messages of a sender's history looked at per text
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TEXT_WEIGHTS = "text_heads.npz"
TFIDF_VOCAB = "tfidf_vocabulary.json"
PROFILE_MODEL = "fake_profile.lgb.txt"

EmbedFn = Callable[[list[str]], np.ndarray]


# --- cheap text signals --------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|ly|me|xyz|info|biz|uk|ru|top"
    r"|site|online|club|link|live|app|gl|cc|tk|to|us|ws)\b(?:/\S*)?",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{5,}\d(?![\w])")
_DIGIT_RUN = re.compile(r"\d{5,}")
_MONEY_AMOUNT = re.compile(
    r"[£$€¥₹]\s?\d[\d,.]*|\b\d[\d,.]*\s?(?:£|\$|€|usd|gbp|eur|pounds?|dollars?|bucks|p)\b",
    re.IGNORECASE,
)
_GIFT_CARD = re.compile(r"gift\s*-?\s*cards?|\b(?:itunes|steam|google\s*play|amazon)\s+cards?")
_REPEAT_CHARS = re.compile(r"(.)\1{2,}")
_SPACED = re.compile(r"\b(?:\w[ .]){2,}\w\b")
_TOKEN = re.compile(r"[a-z0-9@$*']+")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_LEET = str.maketrans(
    {"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"}
)


def _words(text: str) -> frozenset[str]:
    """A lexicon from a space-separated string (keeps long word lists readable)."""
    return frozenset(text.split())


_MONEY_WORDS = _words(
    "cash prize prizes won win winner winning claim reward bonus credit credits loan loans "
    "invest investing investment profit profits returns payment pay paid fee fees allowance "
    "money paypal venmo cashapp zelle wire transfer bank account deposit refund voucher "
    "vouchers lend debt"
)
_CRYPTO_WORDS = _words(
    "bitcoin btc crypto cryptocurrency eth ethereum usdt tether binance wallet forex trading "
    "trader nft coin coins blockchain mining"
)
_URGENCY_WORDS = _words(
    "urgent urgently now immediately asap today expires expire expired limited hurry final "
    "last quick quickly act tonight guaranteed"
)
_OFFPLATFORM_WORDS = _words(
    "whatsapp telegram kik snapchat snap hangouts signal wechat viber skype line"
)
_CTA_WORDS = _words(
    "call txt text reply click visit claim send subscribe stop unsubscribe verify confirm "
    "register signup join dial"
)
_FREE_WORDS = _words("free freemsg gratis offer offers deal selected congratulations congrats")
_PROFANITY = _words(
    "fuck fucking fucker fucked motherfucker shit shitty bullshit bitch bitches slut whore "
    "cunt dick dickhead cock pussy asshole bastard twat wanker prick piss"
)
_SEXUAL = _words(
    "sex sexy sext sexting nude nudes naked horny dtf hookup anal boobs tits cock dick cum "
    "bang smash nsfw blowjob bj orgasm kinky naughty hard inches bed"
)
_INSULTS = _words(
    "idiot loser stupid ugly fat moron freak creep pathetic worthless disgusting hideous gross "
    "psycho pig clown dumb trash nobody useless waste"
)
_SECOND_PERSON = _words("you your you're youre yourself u ur ya yours")
_THREAT = re.compile(
    r"\b(?:kill (?:yo)?u(?:rself)?|kys|hurt (?:yo)?u|find (?:yo)?u|where (?:yo)?u (?:live|work)"
    r"|watch (?:your|ur) back|regret|ruin (?:your|ur) life|expose (?:yo)?u|make (?:yo)?u pay"
    r"|outside (?:your|ur)|(?:i'?ll|gonna) (?:get|fuck|find|hurt) (?:yo)?u|die\b"
    r"|something bad happens|send your (?:photos|pics))",
)
_EMOJI_CATEGORIES = frozenset({"So", "Sk"})

SIGNAL_NAMES: tuple[str, ...] = (
    "chars_log",
    "tokens_log",
    "url_count",
    "email_count",
    "phone_count",
    "digit_run_count",
    "money_amount_count",
    "money_word_count",
    "crypto_word_count",
    "gift_card_count",
    "urgency_word_count",
    "offplatform_word_count",
    "call_to_action_count",
    "free_word_count",
    "caps_ratio",
    "exclamation_count",
    "question_count",
    "punctuation_ratio",
    "repeated_char_runs",
    "digit_ratio",
    "emoji_count",
    "profanity_count",
    "censored_word_count",
    "sexual_word_count",
    "insult_count",
    "threat_count",
    "second_person_ratio",
    "repeat_count_log",
    "repeat_ratio",
)


def _normalise(text: str) -> str:
    """Lower case, letters from leetspeak, spaced-out words joined: what lexicons match on."""
    text = _SPACED.sub(lambda m: re.sub(r"[ .]", "", m.group(0)), text.lower())
    return text.translate(_LEET)


def _canonical(text: str) -> str:
    """A message's identity for repeat detection: case, punctuation and spacing ignored."""
    return _NON_ALNUM.sub(" ", text.lower()).strip()


@functools.lru_cache(maxsize=4096)
def _censored_matches(token: str) -> bool:
    """``f*ck``, ``sh*t``, ``b***h``: a starred token that fits a swear word."""
    pattern = re.escape(token).replace(r"\*", ".")
    return any(
        len(word) == len(token) and re.fullmatch(pattern, word) is not None for word in _PROFANITY
    )


def _repeat_stats(text: str, history: Sequence[str] | None) -> tuple[float, float]:
    if not history:
        return 0.0, 0.0
    own = _canonical(text)
    own_tokens = set(own.split())
    count = 0
    recent = list(history)[-MAX_HISTORY:]
    for other in recent:
        if not isinstance(other, str):
            continue
        canon = _canonical(other)
        if canon == own:
            count += 1
            continue
        tokens = set(canon.split())
        union = own_tokens | tokens
        if union and len(own_tokens & tokens) / len(union) >= 0.8:
            count += 1
    return math.log1p(count), count / len(recent)


def _signals_one(text: str, history: Sequence[str] | None) -> list[float]:
    lower = text.lower()
    norm = _normalise(text)
    tokens = _TOKEN.findall(lower)
    norm_tokens = [t.strip("'*") for t in _TOKEN.findall(norm)]
    n_tokens = max(len(tokens), 1)
    letters = [c for c in text if c.isalpha()]
    n_chars = max(len(text), 1)
    without_email = _EMAIL.sub(" ", text)
    phones = [p for p in _PHONE.findall(text) if sum(c.isdigit() for c in p) >= 7]
    token_set = norm_tokens
    profanity = sum(1 for t in token_set if t in _PROFANITY or t.startswith(("fuck", "shit")))
    censored = sum(1 for t in tokens if "*" in t and _censored_matches(t.strip("'")))
    second = sum(1 for t in tokens if t in _SECOND_PERSON)
    repeat_log, repeat_ratio = _repeat_stats(text, history)
    return [
        math.log1p(len(text)),
        math.log1p(len(tokens)),
        float(len(_URL.findall(without_email))),
        float(len(_EMAIL.findall(text))),
        float(len(phones)),
        float(len(_DIGIT_RUN.findall(text))),
        float(len(_MONEY_AMOUNT.findall(text))),
        float(sum(t in _MONEY_WORDS for t in tokens)),
        float(sum(t in _CRYPTO_WORDS for t in tokens)),
        float(len(_GIFT_CARD.findall(lower))),
        float(sum(t in _URGENCY_WORDS for t in tokens)),
        float(sum(t in _OFFPLATFORM_WORDS for t in tokens)),
        float(sum(t in _CTA_WORDS for t in tokens)),
        float(sum(t in _FREE_WORDS for t in tokens)),
        sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 4 else 0.0,
        math.log1p(text.count("!")),
        math.log1p(text.count("?")),
        sum(1 for c in text if unicodedata.category(c).startswith("P")) / n_chars,
        float(len(_REPEAT_CHARS.findall(lower))),
        sum(c.isdigit() for c in text) / n_chars,
        float(sum(1 for c in text if unicodedata.category(c) in _EMOJI_CATEGORIES)),
        float(profanity),
        float(censored),
        float(sum(t in _SEXUAL for t in token_set)),
        float(sum(t in _INSULTS for t in token_set)),
        float(len(_THREAT.findall(norm))),
        second / n_tokens,
        repeat_log,
        repeat_ratio,
    ]


def text_signals(
    texts: Sequence[str], histories: Sequence[Sequence[str] | None] | None = None
) -> np.ndarray:
    """Hand-made features per text, columns :data:`SIGNAL_NAMES`: ``(n, len(SIGNAL_NAMES))``.

    ``histories[i]`` are other messages by the sender of ``texts[i]`` (may be empty); the
    last two columns measure how often this exact message was already sent.
    """
    if histories is not None and len(histories) != len(texts):
        raise InvalidInput("histories must have one entry (possibly empty) per text")
    rows = [
        _signals_one(text, histories[i] if histories is not None else None)
        for i, text in enumerate(texts)
    ]
    return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(SIGNAL_NAMES))


# --- profile features ----------------------------------------------------------------------

PROFILE_FEATURES: tuple[str, ...] = (
    "account_age_days",
    "bio_length",
    "photo_count",
    "has_profile_photo",
    "like_ratio",
    "messages_per_hour",
    "reports_received",
    "username_digit_ratio",
    "fullname_words",
    "fullname_digit_ratio",
    "name_equals_username",
    "has_external_url",
    "is_private",
    "posts_count",
    "followers_count",
    "follows_count",
    "follower_follow_ratio",
)

# other spellings of canonical features: the Instagram fake-account table and common names
PROFILE_ALIASES: dict[str, str] = {
    "profile pic": "has_profile_photo",
    "nums/length username": "username_digit_ratio",
    "fullname words": "fullname_words",
    "nums/length fullname": "fullname_digit_ratio",
    "name==username": "name_equals_username",
    "description length": "bio_length",
    "external URL": "has_external_url",
    "private": "is_private",
    "#posts": "posts_count",
    "#followers": "followers_count",
    "#follows": "follows_count",
    "photos": "photo_count",
    "n_photos": "photo_count",
    "reports": "reports_received",
    "n_reports": "reports_received",
    "age_days": "account_age_days",
}
_INSTAGRAM_ONLY = (
    "fullname_words",
    "fullname_digit_ratio",
    "name_equals_username",
    "is_private",
    "posts_count",
    "followers_count",
    "follows_count",
    "follower_follow_ratio",
)


def _digit_ratio(value: Any) -> float:
    if not isinstance(value, str) or not value:
        return math.nan
    return sum(c.isdigit() for c in value) / len(value)


def profile_features(profiles: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Canonical fake-profile features (columns :data:`PROFILE_FEATURES`, float, NaN = unknown).

    Takes canonical names, the aliases in :data:`PROFILE_ALIASES`, or raw fields it can
    derive from: ``bio`` (text) → bio length, ``username`` → digit ratio,
    ``likes`` + ``swipes`` → like ratio, ``photo_count`` → has-profile-photo.
    Unknown columns are ignored; a known column with non-numeric values is an error.
    """
    frame = profiles if isinstance(profiles, pd.DataFrame) else pd.DataFrame(list(profiles))
    frame = frame.copy()
    for alias, name in PROFILE_ALIASES.items():
        if alias in frame.columns:  # rows from several sources may carry both spellings
            alias_values = frame.pop(alias)
            frame[name] = frame[name].fillna(alias_values) if name in frame else alias_values
    out = pd.DataFrame(index=frame.index)
    for name in PROFILE_FEATURES:
        if name in frame.columns:
            column = frame[name]
            if column.dtype == bool:
                column = column.astype(float)
            numeric = pd.to_numeric(column, errors="coerce")
            bad = numeric.isna() & column.notna()
            if bad.any():
                raise InvalidInput(
                    f"profile feature {name!r} must be numeric; got {column[bad].iloc[0]!r}"
                )
            out[name] = numeric.astype(float)
        else:
            out[name] = np.nan
    if "bio" in frame.columns:
        derived = frame["bio"].map(lambda b: float(len(b)) if isinstance(b, str) else math.nan)
        out["bio_length"] = out["bio_length"].fillna(derived)
    if "username" in frame.columns:
        out["username_digit_ratio"] = out["username_digit_ratio"].fillna(
            frame["username"].map(_digit_ratio)
        )
    if {"likes", "swipes"} <= set(frame.columns):
        likes = pd.to_numeric(frame["likes"], errors="coerce")
        swipes = pd.to_numeric(frame["swipes"], errors="coerce")
        out["like_ratio"] = out["like_ratio"].fillna(likes / swipes.where(swipes > 0))
    out["has_profile_photo"] = out["has_profile_photo"].fillna(
        (out["photo_count"] > 0).astype(float).where(out["photo_count"].notna())
    )
    ratio = out["followers_count"] / (out["follows_count"] + 1.0)
    out["follower_follow_ratio"] = out["follower_follow_ratio"].fillna(ratio)
    return out[list(PROFILE_FEATURES)].astype(float)


# --- embeddings ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def default_embedder() -> EmbedFn:
    """The project's cached all-MiniLM-L6-v2 embedder (one per process, loaded lazily)."""

    return TextEmbedder(None).embed


# --- text head building blocks -------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


@dataclass
class _Linear:
    """A standardised linear scorer: ``((x - mean) / scale) @ coef + intercept``."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def decision(self, x: np.ndarray | sp.spmatrix) -> np.ndarray:
        if self.mean is not None and self.scale is not None:
            x = (np.asarray(x) - self.mean) / self.scale
        return np.asarray(x @ self.coef).ravel() + self.intercept


def _fit_linear(
    x: np.ndarray | sp.spmatrix, y: np.ndarray, c: float, standardise: bool, seed: int
) -> _Linear:
    from sklearn.linear_model import LogisticRegression

    mean = scale = None
    if standardise:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-9] = 1.0  # a constant column contributes nothing, not NaN
        x = (x - mean) / scale
    model = LogisticRegression(C=c, max_iter=3000, solver="liblinear", random_state=seed)
    model.fit(x, y)
    return _Linear(model.coef_.ravel().astype(np.float64), float(model.intercept_[0]), mean, scale)


class _Tfidf:
    """Word (1-2) and character (2-5, within word bounds) TF-IDF, exportable without pickle."""

    PARAMS: ClassVar[dict[str, dict[str, Any]]] = {
        "word": {
            "analyzer": "word",
            "ngram_range": (1, 2),
            "min_df": 2,
            "sublinear_tf": True,
            "lowercase": True,
            "token_pattern": r"(?u)\b\w+\b",
            "max_features": 50_000,
            "dtype": np.float64,
        },
        "char": {
            "analyzer": "char_wb",
            "ngram_range": (2, 5),
            "min_df": 2,
            "sublinear_tf": True,
            "lowercase": True,
            "max_features": 100_000,
            "dtype": np.float64,
        },
    }

    def __init__(self) -> None:
        self.vectorizers: dict[str, Any] = {}

    def fit(self, texts: Sequence[str]) -> _Tfidf:
        from sklearn.feature_extraction.text import TfidfVectorizer

        for name, params in self.PARAMS.items():
            self.vectorizers[name] = TfidfVectorizer(**params).fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        parts = [self.vectorizers[name].transform(texts) for name in self.PARAMS]
        return sp.hstack(parts, format="csr")

    @property
    def n_features(self) -> int:
        return sum(len(v.vocabulary_) for v in self.vectorizers.values())

    def export(self) -> tuple[dict[str, dict[str, int]], dict[str, np.ndarray]]:
        vocab = {
            name: {k: int(i) for k, i in v.vocabulary_.items()}
            for name, v in self.vectorizers.items()
        }
        idf = {f"idf.{name}": v.idf_.astype(np.float64) for name, v in self.vectorizers.items()}
        return vocab, idf

    @classmethod
    def restore(cls, vocab: dict[str, dict[str, int]], arrays: Mapping[str, np.ndarray]) -> _Tfidf:
        from sklearn.feature_extraction.text import TfidfVectorizer

        out = cls()
        for name, params in cls.PARAMS.items():
            if name not in vocab or f"idf.{name}" not in arrays:
                raise ArtifactError(f"TF-IDF part {name!r} is missing from the artifact")
            idf = np.asarray(arrays[f"idf.{name}"], dtype=np.float64)
            if len(idf) != len(vocab[name]):
                raise ArtifactError(f"TF-IDF part {name!r}: vocabulary and idf sizes differ")
            vectorizer = TfidfVectorizer(**params)
            vectorizer.vocabulary_ = dict(vocab[name])
            vectorizer.idf_ = idf
            out.vectorizers[name] = vectorizer
        return out


@dataclass
class _TextHead:
    """One label: dense LR, optional TF-IDF LR, and the stacking (calibrating) LR over both."""

    dense: _Linear
    tfidf: _Linear | None
    meta: _Linear

    def proba(self, dense_x: np.ndarray, tfidf_x: sp.csr_matrix | None) -> np.ndarray:
        z = [self.dense.decision(dense_x)]
        if self.tfidf is not None:
            if tfidf_x is None:
                raise ArtifactError("this head needs TF-IDF features but the model has none")
            z.append(self.tfidf.decision(tfidf_x))
        return _sigmoid(self.meta.decision(np.column_stack(z)))


def _fit_text_head(
    dense_x: np.ndarray,
    tfidf_x: sp.csr_matrix | None,
    y: np.ndarray,
    c_dense: float,
    c_tfidf: float,
    folds: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> _TextHead:
    """Out-of-fold scores of the base models train the stacker (honest calibration).

    Folds keep each ``group`` (a template, a duplicated message) on one side, otherwise
    the TF-IDF model would look better out-of-fold than it is on new phrasings.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if groups is None:
        groups = np.arange(len(y))
    folds = min(folds, len(np.unique(groups[y == 1])), len(np.unique(groups[y == 0])))
    if folds < 2:
        raise InvalidInput(
            "a safety head needs at least two distinct positive and two distinct negative texts"
        )
    oof = np.zeros((len(y), 1 if tfidf_x is None else 2))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_idx, out_idx in splitter.split(dense_x, y, groups):
        oof[out_idx, 0] = _fit_linear(dense_x[fit_idx], y[fit_idx], c_dense, True, seed).decision(
            dense_x[out_idx]
        )
        if tfidf_x is not None:
            oof[out_idx, 1] = _fit_linear(
                tfidf_x[fit_idx], y[fit_idx], c_tfidf, False, seed
            ).decision(tfidf_x[out_idx])
    meta = _fit_linear(oof, y, 100.0, False, seed)
    dense = _fit_linear(dense_x, y, c_dense, True, seed)
    tfidf = _fit_linear(tfidf_x, y, c_tfidf, False, seed) if tfidf_x is not None else None
    return _TextHead(dense, tfidf, meta)


# --- the classifier ------------------------------------------------------------------------


def _as_label_frame(frame: pd.DataFrame | None) -> pd.DataFrame:
    """Validate a wide text frame: ``text`` plus any label columns (NaN = not labelled)."""
    if frame is None:
        return pd.DataFrame(columns=["text", *TEXT_LABELS, "history", "group"])
    if "text" not in frame.columns:
        raise InvalidInput("text training data needs a 'text' column")
    out = pd.DataFrame({"text": frame["text"]})
    for label in TEXT_LABELS:
        try:
            out[label] = pd.to_numeric(frame[label], errors="raise") if label in frame else np.nan
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"label column {label!r} must be 0/1 or empty: {exc}") from exc
    history = frame["history"] if "history" in frame else pd.Series([None] * len(frame))
    out["history"] = list(history)
    groups = frame["group"] if "group" in frame else pd.Series([None] * len(frame))
    out["group"] = [None if pd.isna(g) else str(g) for g in groups]
    return out


def moderator_labels_to_frame(labels: pd.DataFrame) -> pd.DataFrame:
    """Long moderator labels (``text``, ``label``, ``value``) → one wide row per text.

    Several moderators on one text/label are merged by majority; a tie counts as
    unsafe (the safer error for a moderation queue).
    """
    missing = {"text", "label", "value"} - set(labels.columns)
    if missing:
        raise InvalidInput(f"moderator labels need columns text, label, value; missing {missing}")
    unknown = set(labels["label"]) - set(TEXT_LABELS)
    if unknown:
        raise InvalidInput(
            f"moderator text labels must be one of {TEXT_LABELS}, got {sorted(unknown)}; "
            "fake-profile labels go with profile features to fit(profile_data=...)"
        )
    try:
        values = labels["value"].astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"moderator label values must be 0/1 or true/false: {exc}") from exc
    if not values.isin([0.0, 1.0]).all():
        raise InvalidInput("moderator label values must be 0/1 or true/false")
    long = labels.assign(value=values)
    wide = long.pivot_table(index="text", columns="label", values="value", aggfunc="mean")
    wide = (wide >= 0.5).astype(float).where(wide.notna())
    return wide.reset_index()


class SafetyClassifier:
    """Multi-label safety classifier; see the module docstring for the design.

    ``predict_proba`` returns calibrated probabilities per label; ``decide`` turns them into
    flags with per-label thresholds (defaults tuned on validation data by
    :func:`train_safety`, overridable per call or in the constructor).
    """

    model_type: ClassVar[str] = "safety"

    def __init__(
        self,
        embed: EmbedFn | None = None,
        thresholds: Mapping[str, float] | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        use_tfidf: bool = True,
        c_dense: float = 0.1,
        c_tfidf: float = 10.0,
        cv_folds: int = 5,
        missing_augment_rate: float = 0.3,
        lgb_params: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self._embed = embed
        self.thresholds: dict[str, float] = dict(DEFAULT_THRESHOLDS)
        if thresholds:
            self.set_thresholds(thresholds)
        if max_text_chars <= 0:
            raise InvalidInput("max_text_chars must be positive")
        self.max_text_chars = int(max_text_chars)
        self.use_tfidf = bool(use_tfidf)
        self.c_dense = float(c_dense)
        self.c_tfidf = float(c_tfidf)
        self.cv_folds = int(cv_folds)
        self.missing_augment_rate = float(missing_augment_rate)
        self.lgb_params = dict(lgb_params or {})
        self.seed = int(seed)
        self.version = "unversioned"
        self.training_metrics: dict[str, Any] = {}
        self.embedding_dim_: int | None = None
        self.text_heads_: dict[str, _TextHead] = {}
        self.tfidf_: _Tfidf | None = None
        self.profile_booster_: Any = None

    # --- configuration ------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f"embedding[{self.embedding_dim_}]", *SIGNAL_NAMES, *PROFILE_FEATURES]

    @property
    def labels(self) -> list[str]:
        """Labels this instance can score (heads that are fitted)."""
        out = [label for label in TEXT_LABELS if label in self.text_heads_]
        return [*out, PROFILE_LABEL] if self.profile_booster_ is not None else out

    def set_thresholds(self, thresholds: Mapping[str, float]) -> None:
        for label, value in thresholds.items():
            if label not in LABELS:
                raise InvalidInput(f"unknown safety label {label!r}; known: {LABELS}")
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidInput(f"threshold for {label!r} must be in [0, 1], got {value}")
            self.thresholds[label] = float(value)

    def get_params(self) -> dict[str, Any]:
        return {
            "max_text_chars": self.max_text_chars,
            "use_tfidf": self.use_tfidf,
            "c_dense": self.c_dense,
            "c_tfidf": self.c_tfidf,
            "cv_folds": self.cv_folds,
            "missing_augment_rate": self.missing_augment_rate,
            "lgb_params": self.lgb_params,
            "seed": self.seed,
        }

    @property
    def embed(self) -> EmbedFn:
        if self._embed is None:
            self._embed = default_embedder()
        return self._embed

    @embed.setter
    def embed(self, value: EmbedFn) -> None:
        self._embed = value

    # --- input checks -------------------------------------------------------------------
    def validate_texts(self, texts: str | bytes | Sequence[str | bytes]) -> list[str]:
        """Non-empty UTF-8 strings of at most ``max_text_chars``; anything else: InvalidInput."""
        if isinstance(texts, str | bytes):
            texts = [texts]
        out = []
        for i, text in enumerate(texts):
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInput(f"text #{i} is not valid UTF-8: {exc.reason}") from exc
            if not isinstance(text, str):
                raise InvalidInput(f"text #{i} must be a string, got {type(text).__name__}")
            if len(text) > self.max_text_chars:
                raise InvalidInput(
                    f"text #{i} has {len(text):,} characters; the limit is {self.max_text_chars:,}"
                )
            if not text.strip():
                raise InvalidInput(f"text #{i} is empty; nothing to classify")
            out.append(text)
        return out

    def _embed_checked(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.embed(texts), dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ArtifactError(
                f"the embedder returned shape {vectors.shape} for {len(texts)} texts"
            )
        if self.embedding_dim_ is not None and vectors.shape[1] != self.embedding_dim_:
            raise ArtifactError(
                f"the embedder gives {vectors.shape[1]}-dim vectors; this model was trained on "
                f"{self.embedding_dim_}"
            )
        return vectors

    def _dense(
        self, texts: list[str], histories: Sequence[Sequence[str] | None] | None
    ) -> np.ndarray:
        return np.hstack([self._embed_checked(texts), text_signals(texts, histories)])

    # --- training -----------------------------------------------------------------------
    def fit(
        self,
        text_data: pd.DataFrame | None = None,
        profile_data: pd.DataFrame | None = None,
        extra_labels: pd.DataFrame | None = None,
    ) -> Self:
        """Train the heads the data has labels for.

        ``text_data``: ``text`` plus 0/1 columns among :data:`TEXT_LABELS` (NaN = unknown)
        and an optional ``history`` column (lists of the sender's other messages).
        ``profile_data``: raw profile columns (see :func:`profile_features`) plus a
        ``fake_profile`` (or ``fake``) 0/1 column. ``extra_labels``: moderator labels in long
        form (``text``, ``label``, ``value``), appended to the text training data.
        Text data replaces every text head; profile data replaces the fake-profile head, so
        the two can be fitted in separate calls.
        """
        start = time.perf_counter()
        frames = [_as_label_frame(text_data)] if text_data is not None else []
        if extra_labels is not None and len(extra_labels):
            frames.append(_as_label_frame(moderator_labels_to_frame(extra_labels)))
        if frames:
            self._fit_text(pd.concat(frames, ignore_index=True))
        if profile_data is not None:
            self._fit_profiles(profile_data)
        if not frames and profile_data is None:
            raise InvalidInput("fit() needs text_data, extra_labels or profile_data")
        logger.info(
            "safety classifier fitted in %.1f s (heads: %s)",
            time.perf_counter() - start,
            self.labels,
        )
        return self

    def _fit_text(self, frame: pd.DataFrame) -> None:
        texts = self.validate_texts(frame["text"].tolist())
        histories = [
            list(h) if isinstance(h, list | tuple | np.ndarray) else None for h in frame["history"]
        ]
        groups = np.array(
            [
                f"group:{g}" if isinstance(g, str) else f"text:{_canonical(t)}"
                for g, t in zip(frame["group"], texts, strict=True)
            ]
        )
        dense_x = self._dense(texts, histories)
        self.text_heads_ = {}  # the heads share one TF-IDF vocabulary: refit them together
        self.tfidf_ = None
        self.embedding_dim_ = dense_x.shape[1] - len(SIGNAL_NAMES)
        tfidf_x = None
        if self.use_tfidf:
            self.tfidf_ = _Tfidf().fit(texts)
            tfidf_x = self.tfidf_.transform(texts)
        for label in TEXT_LABELS:
            known = frame[label].notna().to_numpy()
            if not known.any():
                continue
            y = frame.loc[known, label].to_numpy(dtype=np.float64)
            if not np.isin(y, (0.0, 1.0)).all():
                raise InvalidInput(f"label {label!r} must be 0/1 (or NaN for unknown)")
            rows = np.flatnonzero(known)
            self.text_heads_[label] = _fit_text_head(
                dense_x[rows],
                tfidf_x[rows] if tfidf_x is not None else None,
                y.astype(int),
                self.c_dense,
                self.c_tfidf,
                self.cv_folds,
                self.seed,
                groups[rows],
            )
            logger.info("safety head %s: %d rows, %d positive", label, len(y), int(y.sum()))

    def _lgb_params(self) -> dict[str, Any]:
        params = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 10,
            "feature_fraction": 0.9,
            "lambda_l2": 1.0,
            "num_threads": 1,  # OpenMP threads are far slower than one on small data
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.seed,
            "verbosity": -1,
        }
        params.update(self.lgb_params)
        return params

    def _fit_profiles(self, data: pd.DataFrame) -> None:
        import lightgbm as lgb

        label_column = (
            PROFILE_LABEL if PROFILE_LABEL in data else "fake" if "fake" in data else None
        )
        if label_column is None:
            raise InvalidInput("profile training data needs a 'fake_profile' (or 'fake') column")
        y = pd.to_numeric(data[label_column], errors="raise").to_numpy(dtype=np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            raise InvalidInput("fake_profile labels must be 0/1")
        if min(y.sum(), len(y) - y.sum()) < 5:
            raise InvalidInput("the fake-profile head needs at least 5 fake and 5 genuine profiles")
        x = profile_features(data.drop(columns=[label_column])).to_numpy(dtype=np.float64)
        params = self._lgb_params()
        names = list(PROFILE_FEATURES)
        cv = lgb.cv(
            params,
            lgb.Dataset(x, y, feature_name=names, free_raw_data=False),
            num_boost_round=1000,
            nfold=min(5, int(min(y.sum(), len(y) - y.sum()))),
            stratified=True,
            seed=self.seed,
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        rounds = max(10, len(next(iter(cv.values()))))  # type: ignore[arg-type]
        if self.missing_augment_rate > 0:  # copies with features blanked: learn where NaN goes
            rng = np.random.default_rng(self.seed)
            masked = x.copy()
            masked[rng.random(x.shape) < self.missing_augment_rate] = np.nan
            x, y = np.vstack([x, masked]), np.concatenate([y, y])
        self.profile_booster_ = lgb.train(
            params, lgb.Dataset(x, y, feature_name=names), num_boost_round=rounds
        )
        logger.info("fake-profile head: %d rows, %d boosting rounds", len(y), rounds)

    # --- scoring ------------------------------------------------------------------------
    def predict_proba(
        self,
        texts: str | Sequence[str] | None = None,
        profiles: pd.DataFrame | Iterable[Mapping[str, Any]] | None = None,
        histories: Sequence[Sequence[str] | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Probabilities per label: text labels (one per text) and/or ``fake_profile``."""
        out: dict[str, np.ndarray] = {}
        if texts is not None:
            if not self.text_heads_:
                raise NotFitted("the safety text heads are not fitted: call fit() or load()")
            checked = self.validate_texts(texts)
            dense_x = self._dense(checked, histories)
            tfidf_x = self.tfidf_.transform(checked) if self.tfidf_ is not None else None
            for label, head in self.text_heads_.items():
                out[label] = head.proba(dense_x, tfidf_x)
        if profiles is not None:
            if self.profile_booster_ is None:
                raise NotFitted("the fake-profile head is not fitted: call fit() or load()")
            x = profile_features(profiles).to_numpy(dtype=np.float64)
            out[PROFILE_LABEL] = np.asarray(self.profile_booster_.predict(x), dtype=np.float64)
        return out

    def decide(
        self,
        probas: Mapping[str, np.ndarray | float],
        thresholds: Mapping[str, float] | None = None,
    ) -> dict[str, np.ndarray | bool]:
        """Flags per label: probability ≥ threshold (per-call ``thresholds`` override)."""
        limits = dict(self.thresholds)
        for label, value in (thresholds or {}).items():
            if label not in LABELS or not 0.0 <= float(value) <= 1.0:
                raise InvalidInput(f"bad threshold {label!r}={value!r}")
            limits[label] = float(value)
        out: dict[str, np.ndarray | bool] = {}
        for label, p in probas.items():
            if label not in limits:
                raise InvalidInput(f"unknown safety label {label!r}")
            flags = np.asarray(p) >= limits[label]
            out[label] = bool(flags) if flags.ndim == 0 else flags
        return out

    def check(
        self,
        text: str | None = None,
        profile: Mapping[str, Any] | None = None,
        history: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """One text and/or profile → ``{"probabilities": {...}, "flags": {...}}`` (for API/CLI)."""
        if text is None and profile is None:
            raise InvalidInput("give a text, a profile, or both")
        probas = self.predict_proba(
            texts=[text] if text is not None else None,
            profiles=[dict(profile)] if profile is not None else None,
            histories=[list(history)] if history is not None and text is not None else None,
        )
        scalars = {label: float(p[0]) for label, p in probas.items()}
        flags = self.decide(scalars, thresholds)
        return {"probabilities": scalars, "flags": {k: bool(v) for k, v in flags.items()}}

    # --- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model folder (JSON, npz without pickle, LightGBM text)."""
        if not self.labels:
            raise NotFitted("nothing to save: the safety classifier is not fitted")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for label, head in self.text_heads_.items():
            parts = {"dense": head.dense, "meta": head.meta}
            if head.tfidf is not None:
                parts["tfidf"] = head.tfidf
            for part, linear in parts.items():
                arrays[f"{label}.{part}.coef"] = linear.coef
                arrays[f"{label}.{part}.intercept"] = np.array([linear.intercept])
                if linear.mean is not None and linear.scale is not None:
                    arrays[f"{label}.{part}.mean"] = linear.mean
                    arrays[f"{label}.{part}.scale"] = linear.scale
        if self.tfidf_ is not None:
            vocab, idf = self.tfidf_.export()
            arrays.update(idf)
            (folder / TFIDF_VOCAB).write_text(json.dumps(vocab, ensure_ascii=False))
        if arrays:
            np.savez(folder / TEXT_WEIGHTS, **arrays)  # type: ignore[arg-type]
        if self.profile_booster_ is not None:
            (folder / PROFILE_MODEL).write_text(self.profile_booster_.model_to_string())
        manifest = {
            "model_type": self.model_type,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "labels": self.labels,
            "text_heads": {
                label: {"tfidf": head.tfidf is not None} for label, head in self.text_heads_.items()
            },
            "thresholds": self.thresholds,
            "params": self.get_params(),
            "embedding_dim": self.embedding_dim_,
            "signal_names": list(SIGNAL_NAMES),
            "profile_features": list(PROFILE_FEATURES),
            "feature_names": self.feature_names,
            "training_metrics": self.training_metrics,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=json_default))
        return folder

    @classmethod
    def load(cls, path: str | Path, embed: EmbedFn | None = None) -> SafetyClassifier:
        """Read a folder written by :meth:`save`; missing or corrupt files raise ArtifactError."""
        folder = Path(path)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            if not isinstance(manifest, dict):
                raise ValueError("manifest is not a JSON object")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"safety model at {folder}: unreadable {MANIFEST}: {exc}") from exc
        if manifest.get("model_type") != cls.model_type:
            raise ArtifactError(
                f"{folder} holds a {manifest.get('model_type')!r} model, not safety"
            )
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(f"{folder}: unsupported format {manifest.get('format_version')!r}")
        if list(manifest.get("signal_names", [])) != list(SIGNAL_NAMES) and manifest.get(
            "text_heads"
        ):
            raise ArtifactError(f"{folder}: text signals differ from this matchwise version")
        if list(manifest.get("profile_features", [])) != list(PROFILE_FEATURES):
            raise ArtifactError(f"{folder}: profile features differ from this matchwise version")
        try:
            model = cls(embed=embed, **manifest.get("params", {}))
            model.set_thresholds(manifest.get("thresholds", {}))
            model.version = str(manifest.get("version", "unversioned"))
            model.training_metrics = dict(manifest.get("training_metrics", {}))
            model.embedding_dim_ = manifest.get("embedding_dim")
            model._load_text(folder, manifest.get("text_heads", {}))
            if PROFILE_LABEL in manifest.get("labels", []):
                model._load_profile(folder)
        except ArtifactError:
            raise
        except Exception as exc:  # any parse failure of a state file means corruption
            raise ArtifactError(f"safety model at {folder} is corrupt: {exc}") from exc
        return model

    def _load_text(self, folder: Path, heads: Mapping[str, Mapping[str, bool]]) -> None:
        if not heads:
            return
        with np.load(folder / TEXT_WEIGHTS, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        if any(spec.get("tfidf") for spec in heads.values()):
            vocab = json.loads((folder / TFIDF_VOCAB).read_text(encoding="utf-8"))
            self.tfidf_ = _Tfidf.restore(vocab, arrays)
        n_dense = int(self.embedding_dim_ or 0) + len(SIGNAL_NAMES)
        for label, spec in heads.items():
            if label not in TEXT_LABELS:
                raise ArtifactError(f"unknown text head {label!r}")

            def part(name: str, label: str = label) -> _Linear:
                key = f"{label}.{name}"
                mean = arrays.get(f"{key}.mean")
                scale = arrays.get(f"{key}.scale")
                return _Linear(
                    np.asarray(arrays[f"{key}.coef"], dtype=np.float64),
                    float(arrays[f"{key}.intercept"][0]),
                    None if mean is None else np.asarray(mean, dtype=np.float64),
                    None if scale is None else np.asarray(scale, dtype=np.float64),
                )

            dense = part("dense")
            tfidf = part("tfidf") if spec.get("tfidf") else None
            meta = part("meta")
            if len(dense.coef) != n_dense or dense.mean is None or len(dense.mean) != n_dense:
                raise ArtifactError(f"head {label!r}: dense weights have the wrong size")
            if tfidf is not None and (
                self.tfidf_ is None or len(tfidf.coef) != self.tfidf_.n_features
            ):
                raise ArtifactError(f"head {label!r}: TF-IDF weights have the wrong size")
            if len(meta.coef) != (2 if tfidf is not None else 1):
                raise ArtifactError(f"head {label!r}: stacking weights have the wrong size")
            if not all(
                np.isfinite(p.coef).all() for p in (dense, meta, *([tfidf] if tfidf else []))
            ):
                raise ArtifactError(f"head {label!r}: weights are not finite")
            self.text_heads_[label] = _TextHead(dense, tfidf, meta)

    def _load_profile(self, folder: Path) -> None:
        import lightgbm as lgb

        text = (folder / PROFILE_MODEL).read_text()
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ArtifactError(f"fake-profile model in {folder} is corrupt: {exc}") from exc
        if booster.num_feature() != len(PROFILE_FEATURES):
            raise ArtifactError("fake-profile model has the wrong number of features")
        self.profile_booster_ = booster


# --- evaluation and the training recipe -----------------------------------------------------


class _Memo:
    """Remembers vectors by text, so training embeds each text once whatever the embedder."""

    def __init__(self, embed: EmbedFn) -> None:
        self.embed = embed
        self.vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            new = np.asarray(self.embed(missing))
            self.vectors.update(zip(missing, new, strict=True))
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 0))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 at ``threshold``, ROC AUC and average precision."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, p)) if both else float("nan"),
        "threshold": float(threshold),
        "n": int(len(y)),
        "n_positive": int(y.sum()),
    }


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising F1 (midpoint between neighbouring scores, for stability)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(np.asarray(y).astype(int), p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
    if not len(thresholds):
        return 0.5
    lower = thresholds[best - 1] if best > 0 else 0.0
    return float((thresholds[best] + lower) / 2) if best > 0 else float(thresholds[best])


def _stratified_split(
    y: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=fractions[2], stratify=y, random_state=seed)
    val_share = fractions[1] / (fractions[0] + fractions[1])
    train, val = train_test_split(rest, test_size=val_share, stratify=y[rest], random_state=seed)
    out = np.empty(len(y), dtype=object)
    out[train], out[val], out[test] = "train", "val", "test"
    return out.astype(str)


def tfidf_baseline(
    train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str]
) -> np.ndarray:
    """The plain scikit-learn baseline: default TfidfVectorizer + LogisticRegression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer()
    model = LogisticRegression(max_iter=1000)
    model.fit(vectorizer.fit_transform(train_texts), train_y)
    return model.predict_proba(vectorizer.transform(test_texts))[:, 1]


def train_safety(
    sms_path: str | Path | None = None,
    instagram_dir: str | Path | None = None,
    extra_labels: pd.DataFrame | None = None,
    extra_profiles: pd.DataFrame | None = None,
    embed: EmbedFn | None = None,
    synthetic_n: int = 3000,
    synthetic_profiles_n: int = 1000,
    include_synthetic_scams: bool = True,
    seed: int = 0,
    **classifier_params: Any,
) -> tuple[SafetyClassifier, dict[str, Any]]:
    """Train every head on the standard data and measure it on held-out splits.

    * ``spam_scam``: SMS Spam Collection, stratified 64/16/20 train/val/test, plus the
      synthetic dating-scam messages (train split only). The threshold is tuned for F1 on
      the SMS validation split; the figure that counts is on the SMS test split, next to a
      plain TF-IDF + LogisticRegression baseline trained on all non-test SMS rows.
    * ``inappropriate``/``harassment``: the synthetic corpus split *by template*, so the
      test rows are phrasings the model never saw (scores are still optimistic: synthetic).
    * ``fake_profile``: the Instagram train/test files (plus synthetic dating-app profiles
      in training), scored on the Instagram test file.
    * ``extra_labels`` (moderator labels, long form) and ``extra_profiles`` are added to
      training only.
    """

    started = time.perf_counter()
    timings: dict[str, float] = {}
    sms = load_sms_spam(sms_path)
    sms["history"] = [None] * len(sms)
    sms["split"] = _stratified_split(sms["spam_scam"].to_numpy(), (0.64, 0.16, 0.20), seed)
    corpus = generate_safety_corpus(synthetic_n, seed=seed)
    corpus["split"] = split_by_group(corpus["template_id"], seed=seed, strata=corpus["category"])
    if not include_synthetic_scams:
        corpus["spam_scam"] = np.nan
    insta_train, insta_test = load_instagram_fake(instagram_dir)

    base_embed = embed if embed is not None else default_embedder()
    memo = _Memo(base_embed)
    classifier = SafetyClassifier(embed=memo, seed=seed, **classifier_params)
    t = time.perf_counter()
    memo(list(dict.fromkeys([*sms["text"], *corpus["text"]])))  # every text embedded once
    timings["embedding"] = time.perf_counter() - t

    corpus["group"] = corpus["template_id"]
    text_cols = ["text", *TEXT_LABELS, "history", "group"]
    train_text = pd.concat(
        [
            sms.loc[sms["split"] == "train"].reindex(columns=text_cols),
            corpus.loc[corpus["split"] == "train", text_cols],
        ],
        ignore_index=True,
    )
    profile_train = pd.concat(
        [
            insta_train,
            generate_synthetic_profiles(synthetic_profiles_n, seed=seed).rename(
                columns={PROFILE_LABEL: "fake"}
            )
            if synthetic_profiles_n
            else None,
            extra_profiles.rename(columns={PROFILE_LABEL: "fake"})
            if extra_profiles is not None
            else None,
        ],
        ignore_index=True,
    )
    t = time.perf_counter()
    classifier.fit(text_data=train_text, extra_labels=extra_labels)
    timings["text_heads"] = time.perf_counter() - t
    t = time.perf_counter()
    classifier.fit(profile_data=profile_train)
    timings["fake_profile"] = time.perf_counter() - t

    # thresholds: F1-optimal on validation rows only
    sms_val = sms[sms["split"] == "val"]
    syn_val = corpus[corpus["split"] == "val"]
    thresholds = {
        "spam_scam": best_f1_threshold(
            sms_val["spam_scam"].to_numpy(),
            classifier.predict_proba(sms_val["text"].tolist())["spam_scam"],
        )
    }
    syn_val_p = classifier.predict_proba(
        syn_val["text"].tolist(), histories=list(syn_val["history"])
    )
    for label in ("inappropriate", "harassment"):
        thresholds[label] = best_f1_threshold(syn_val[label].to_numpy(), syn_val_p[label])
    classifier.set_thresholds(thresholds)

    # held-out figures
    metrics: dict[str, Any] = {"labels": {}, "baseline": {}, "extra": {}}
    sms_test = sms[sms["split"] == "test"]
    sms_p = classifier.predict_proba(sms_test["text"].tolist())["spam_scam"]
    y_sms = sms_test["spam_scam"].to_numpy()
    metrics["labels"]["spam_scam"] = {
        **binary_metrics(y_sms, sms_p, classifier.thresholds["spam_scam"]),
        "data": "SMS Spam Collection, stratified 20% test split (real)",
    }
    syn_test = corpus[corpus["split"] == "test"]
    syn_p = classifier.predict_proba(syn_test["text"].tolist(), histories=list(syn_test["history"]))
    for label in ("inappropriate", "harassment"):
        metrics["labels"][label] = {
            **binary_metrics(
                syn_test[label].to_numpy(), syn_p[label], classifier.thresholds[label]
            ),
            "data": "synthetic corpus, test split by unseen template (synthetic, optimistic)",
        }
    if include_synthetic_scams:
        metrics["extra"]["spam_scam_synthetic_dating_scams"] = {
            **binary_metrics(
                syn_test["spam_scam"].to_numpy(),
                syn_p["spam_scam"],
                classifier.thresholds["spam_scam"],
            ),
            "data": "synthetic corpus, test split by unseen template (synthetic)",
        }
    y_insta = insta_test["fake"].to_numpy()
    insta_p = classifier.predict_proba(profiles=insta_test.drop(columns=["fake"]))[PROFILE_LABEL]
    metrics["labels"][PROFILE_LABEL] = {
        **binary_metrics(y_insta, insta_p, classifier.thresholds[PROFILE_LABEL]),
        "data": "Instagram fake/genuine accounts, provided test.csv (real)",
    }
    reduced = profile_features(insta_test.drop(columns=["fake"]))
    reduced[list(_INSTAGRAM_ONLY)] = np.nan
    metrics["extra"]["fake_profile_instagram_dating_fields_only"] = {
        **binary_metrics(
            y_insta,
            classifier.predict_proba(profiles=reduced)[PROFILE_LABEL],
            classifier.thresholds[PROFILE_LABEL],
        ),
        "data": "Instagram test.csv with only fields a dating app has (photo, username, bio, url)",
    }

    # the baseline, on the same SMS split
    sms_fit = sms[sms["split"] != "test"]
    base_p = tfidf_baseline(
        sms_fit["text"].tolist(), sms_fit["spam_scam"].to_numpy(), sms_test["text"].tolist()
    )
    metrics["baseline"]["spam_scam_tfidf_logreg"] = {
        **binary_metrics(y_sms, base_p, 0.5),
        "data": "same SMS test split; default TfidfVectorizer + LogisticRegression, "
        "trained on train+val, threshold 0.5",
    }
    sms_train = sms[sms["split"] == "train"]
    base_val = tfidf_baseline(
        sms_train["text"].tolist(), sms_train["spam_scam"].to_numpy(), sms_val["text"].tolist()
    )
    base_thr = best_f1_threshold(sms_val["spam_scam"].to_numpy(), base_val)
    base_tuned = tfidf_baseline(
        sms_train["text"].tolist(), sms_train["spam_scam"].to_numpy(), sms_test["text"].tolist()
    )
    metrics["baseline"]["spam_scam_tfidf_logreg_tuned_threshold"] = {
        **binary_metrics(y_sms, base_tuned, base_thr),
        "data": "same split; baseline trained on train, F1 threshold tuned on val",
    }
    metrics["spam_f1_minus_baseline_f1"] = (
        metrics["labels"]["spam_scam"]["f1"] - metrics["baseline"]["spam_scam_tfidf_logreg"]["f1"]
    )
    timings["total"] = time.perf_counter() - started
    metrics["training_seconds"] = timings
    metrics["thresholds"] = dict(classifier.thresholds)
    metrics["n_train"] = {
        "sms": int((sms["split"] == "train").sum()),
        "synthetic_texts": int((corpus["split"] == "train").sum()),
        "moderator_labels": 0 if extra_labels is None else len(extra_labels),
        "profiles": len(profile_train),
    }
    classifier.training_metrics = metrics
    classifier.embed = base_embed  # drop the training memo, keep the caller's embedder
    return classifier, metrics
