"""Features of "does a say yes to b" from both people's profiles, vectorised over pairs.

What a dating app knows before two people meet: each one's age, gender, tags and the
sign-up answers kept in their profile's ``attributes`` (the Speed Dating survey's names:
``attr1_1`` … what you look for, ``attr3_1`` … how you rate yourself, ``imprace``,
``race``, ``goal``, ``field_cd``, interest scores ``sports`` … ``yoga``). A profile without
some of them gets missing values (the model imputes the training median), so the same
features serve a generic app (age gap, shared tags) and a survey-rich one.

The pair features follow what the speed-dating literature and the earlier survey model
found to matter: the chooser's stated preference weights times the partner's
self-ratings, the age gap, same race times how much race matters to the chooser, shared
interests (correlation of the interest scores, overlap of tags), same goal and field,
plus the chooser's own answers (how the chooser's choosiness shrinks towards people like
them) and the partner's self-ratings (the same for how desired the partner is).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

ATTRIBUTES6: tuple[str, ...] = ("attr", "sinc", "intel", "fun", "amb", "shar")
ATTRIBUTES5: tuple[str, ...] = ATTRIBUTES6[:5]
INTERESTS: tuple[str, ...] = (
    "sports", "tvsports", "exercise", "dining", "museums", "art", "hiking", "gaming",
    "clubbing", "reading", "tv", "theater", "movies", "concerts", "music", "shopping", "yoga",
)  # fmt: skip
#: Numeric answers read from ``attributes`` (missing: NaN).
PERSONAL: tuple[str, ...] = ("imprace", "imprelig", "goal", "date", "go_out", "race", "field_cd")
#: Every answer as given, for the tree model that reads both people's raw answers: the
#: personal ones, career, the five survey blocks (what you look for, what your sex looks
#: for, what the other sex looks for, how you rate yourself, how others rate you) and the
#: interest scores.
ANSWERS: tuple[str, ...] = (
    *PERSONAL, "career_c",
    *(f"{a}{block}" for block in ("1_1", "4_1", "2_1") for a in ATTRIBUTES6),
    *(f"{a}{block}" for block in ("3_1", "5_1") for a in ATTRIBUTES5),
    *INTERESTS,
)  # fmt: skip
PAIR_FEATURES: tuple[str, ...] = (
    "chooser_gender", "chooser_age", "chooser_imprace", "chooser_imprelig", "chooser_goal",
    "chooser_date", "chooser_go_out", "partner_age", "age_gap", "abs_age_gap", "samerace",
    "samerace_x_imprace", "same_goal", "same_field", "interest_cosine", "shared_tags",
    "pref_fit",
    *(f"chooser_pref_{a}" for a in ATTRIBUTES6),
    *(f"partner_self_{a}" for a in ATTRIBUTES5),
    *(f"chooser_self_{a}" for a in ATTRIBUTES5),
)  # fmt: skip


@dataclass
class PairProfiles:
    """Per-person arrays the pair features read, in one row order (dense person index)."""

    gender: np.ndarray  # 1 man, 0 woman, NaN otherwise (the survey's coding)
    age: np.ndarray
    personal: np.ndarray  # (n, len(PERSONAL))
    prefs: np.ndarray  # (n, 6) shares of what the person looks for (x1_1), NaN if none
    self_rating: np.ndarray  # (n, 5) x3_1
    interests: np.ndarray  # (n, 17) centred per person, 0 where unknown
    tags: sp.csr_matrix  # (n, vocabulary) 0/1
    answers: np.ndarray  # (n, len(ANSWERS)) as given, NaN where missing

    def __len__(self) -> int:
        return len(self.age)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> PairProfiles:
        """From a profiles frame (``age``, ``gender``, ``tags``, ``attributes``; any missing)."""
        n = len(frame)
        attrs = [_as_dict(a) for a in _column(frame, "attributes", n)]

        def answers(keys: tuple[str, ...] | list[str]) -> np.ndarray:
            return np.array([[_number(a.get(k)) for k in keys] for a in attrs],
                            dtype=np.float64).reshape(n, len(keys))  # fmt: skip

        gender = np.array([1.0 if g == "man" else 0.0 if g == "woman" else np.nan
                           for g in _column(frame, "gender", n)])  # fmt: skip
        age = np.array([_number(v) for v in _column(frame, "age", n)], dtype=np.float64)
        raw_prefs = answers([f"{a}1_1" for a in ATTRIBUTES6])
        total = np.nansum(raw_prefs, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            prefs = np.where(total > 0, raw_prefs / total, np.nan)  # 100 points or 1-10
        raw = answers(INTERESTS)
        with warnings.catch_warnings():  # a person without interest scores: all NaN, then 0
            warnings.simplefilter("ignore", RuntimeWarning)
            centred = raw - np.nanmean(raw, axis=1, keepdims=True) if n else raw
        tag_lists = [list(t) if isinstance(t, list | tuple | np.ndarray) else []
                     for t in _column(frame, "tags", n)]  # fmt: skip
        vocabulary = {t: j for j, t in enumerate(sorted({str(t) for ts in tag_lists for t in ts}))}
        rows = [i for i, ts in enumerate(tag_lists) for _ in set(map(str, ts))]
        cols = [vocabulary[t] for ts in tag_lists for t in set(map(str, ts))]
        tags = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocabulary)))
        return cls(
            gender=gender,
            age=age,
            personal=answers(PERSONAL),
            prefs=prefs,
            self_rating=answers([f"{a}3_1" for a in ATTRIBUTES5]),
            interests=np.nan_to_num(centred),
            tags=tags,
            answers=answers(ANSWERS),
        )


def pair_feature_matrix(
    profiles: PairProfiles, chooser: np.ndarray, partner: np.ndarray
) -> np.ndarray:
    """``(len(chooser), len(PAIR_FEATURES))``: the features of "chooser says yes to partner"
    (NaN where an answer is missing)."""
    c = np.asarray(chooser, dtype=np.int64)
    p = np.asarray(partner, dtype=np.int64)
    personal = {name: profiles.personal[:, j] for j, name in enumerate(PERSONAL)}

    def same(name: str) -> np.ndarray:
        mine, theirs = personal[name][c], personal[name][p]
        return np.where(np.isnan(mine) | np.isnan(theirs), np.nan, (mine == theirs) * 1.0)

    age_c, age_p = profiles.age[c], profiles.age[p]
    a_int, b_int = profiles.interests[c], profiles.interests[p]
    norms = np.linalg.norm(a_int, axis=1) * np.linalg.norm(b_int, axis=1)
    cosine = np.divide((a_int * b_int).sum(axis=1), norms, out=np.full(len(c), np.nan),
                       where=norms > 0)  # fmt: skip
    tags_c, tags_p = profiles.tags[c], profiles.tags[p]
    both = np.asarray(tags_c.multiply(tags_p).sum(axis=1)).ravel()
    either = np.asarray(tags_c.sum(axis=1)).ravel() + np.asarray(tags_p.sum(axis=1)).ravel() - both
    jaccard = np.divide(both, either, out=np.zeros(len(c)), where=either > 0)
    prefs = profiles.prefs[c]
    partner_self = profiles.self_rating[p]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        products = prefs[:, :5] * partner_self
        pref_fit = np.where(np.isnan(products).all(axis=1), np.nan, np.nansum(products, axis=1))
    samerace = same("race")
    imprace = personal["imprace"][c]
    columns = [
        profiles.gender[c], age_c, imprace, personal["imprelig"][c], personal["goal"][c],
        personal["date"][c], personal["go_out"][c], age_p, age_p - age_c, np.abs(age_p - age_c),
        samerace, samerace * imprace, same("goal"), same("field_cd"), cosine, jaccard, pref_fit,
        *prefs.T, *partner_self.T, *profiles.self_rating[c].T,
    ]  # fmt: skip
    return np.column_stack(columns) if len(c) else np.zeros((0, len(PAIR_FEATURES)))


def answer_matrix(profiles: PairProfiles, chooser: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Both people's raw answers side by side (gender, age, :data:`ANSWERS`; chooser
    first): ``(len(chooser), 2 * (2 + len(ANSWERS)))``, NaN where missing."""
    c = np.asarray(chooser, dtype=np.int64)
    p = np.asarray(partner, dtype=np.int64)
    return np.column_stack([profiles.gender[c], profiles.age[c], profiles.answers[c],
                            profiles.gender[p], profiles.age[p], profiles.answers[p]])  # fmt: skip


def _column(frame: pd.DataFrame, name: str, n: int) -> list[Any]:
    return frame[name].tolist() if name in frame.columns else [None] * n


def _as_dict(value: Any) -> dict[str, Any]:
    """A profile's attributes: a dict, or its JSON text (as a Parquet snapshot may hold)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return np.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan
    return number if np.isfinite(number) else np.nan
