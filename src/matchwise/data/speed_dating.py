"""The Speed Dating Experiment (Fisman & Iyengar, 2006): loader and reciprocal benchmark.

The public CSV has one row per person per partner met that evening: ``iid`` (the person),
``pid`` (the partner's iid), ``wave``, demographics, 17 interest scores, a sign-up survey,
the decision ``dec`` (1 = wants to see the partner again), the partner's ``dec_o`` and
``match`` (both said yes). It also holds what was recorded *during* each date (ratings of
the partner) and *after* the event (follow-up surveys, calls, dates).

Loading (:func:`read_speed_dating`): people become users (id ``sd{iid}``, gender 0 →
woman, 1 → man, seeking the other gender, interests scored 7 or more as tags, the sign-up
survey as attributes); every row becomes a ``like`` (dec = 1) or ``pass`` (dec = 0) from
``iid`` to ``pid``; mutual likes are the matches (``match``; ``meta["matches"]`` lists them
and, with ``match_events``, ``match`` interactions are added). Files may be UTF-8 or
latin-1; numbers may be empty or carry thousands separators (``"69,487.00"``). A malformed
cell raises :class:`~matchwise.errors.InvalidInput` naming the line and the column.

Benchmark (:func:`run_speed_dating_benchmark`): hold out 20% of *pairs* (both directions
together, seeded), learn P(a says yes to b) from the other pairs, and report decision AUC,
match AUC and NDCG@5 for random, popularity, one-sided and reciprocal scoring. Only what
is known before a date may be a feature: :data:`ALLOWED_COLUMNS` is the explicit
allow-list, and :func:`pre_date_view` is the only door through which feature code sees
the file. The ratings given during the date and everything recorded afterwards would be
cheating.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matchwise.data.bundle import DataBundle
from matchwise.errors import InvalidInput
from matchwise.features.people import reciprocal_score
from matchwise.metrics import auc, grouped_ndcg
from matchwise.models.reciprocal import fit_logistic

__all__ = [
    "ALLOWED_COLUMNS",
    "FEATURE_COLUMNS",
    "INTERESTS",
    "LABEL_COLUMNS",
    "SpeedDatingModel",
    "is_forbidden",
    "pair_features",
    "pre_date_view",
    "read_speed_dating",
    "read_speed_dating_frame",
    "run_speed_dating_benchmark",
]

log = logging.getLogger(__name__)

INTERESTS: tuple[str, ...] = (
    "sports", "tvsports", "exercise", "dining", "museums", "art", "hiking", "gaming",
    "clubbing", "reading", "tv", "theater", "movies", "concerts", "music", "shopping", "yoga",
)  # fmt: skip
ATTRIBUTES6: tuple[str, ...] = ("attr", "sinc", "intel", "fun", "amb", "shar")
ATTRIBUTES5: tuple[str, ...] = ("attr", "sinc", "intel", "fun", "amb")
#: The sign-up survey: what you look for (1_1), what others of your sex look for (4_1),
#: what the other sex looks for (2_1), how you rate yourself (3_1), how others rate you (5_1).
SURVEY_COLUMNS: tuple[str, ...] = (
    tuple(f"{a}1_1" for a in ATTRIBUTES6)
    + tuple(f"{a}4_1" for a in ATTRIBUTES6)
    + tuple(f"{a}2_1" for a in ATTRIBUTES6)
    + tuple(f"{a}3_1" for a in ATTRIBUTES5)
    + tuple(f"{a}5_1" for a in ATTRIBUTES5)
)
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = (
    "gender", "age", "race", "field_cd", "career_c", "goal", "date", "go_out", "imprace",
    "imprelig",
)  # fmt: skip
PAIR_COLUMNS: tuple[str, ...] = ("int_corr", "samerace")
KEY_COLUMNS: tuple[str, ...] = ("iid", "pid", "wave")
#: Labels: ``dec`` of *training* pairs is also a feature (popularity, selectivity).
LABEL_COLUMNS: tuple[str, ...] = ("dec", "match")
#: Everything feature code may read: known before the date (plus keys and labels).
ALLOWED_COLUMNS: frozenset[str] = frozenset(
    KEY_COLUMNS + LABEL_COLUMNS + DEMOGRAPHIC_COLUMNS + INTERESTS + SURVEY_COLUMNS + PAIR_COLUMNS
)
#: The raw columns the benchmark's model turns into features (a subset of the allow-list).
FEATURE_COLUMNS: frozenset[str] = frozenset(
    DEMOGRAPHIC_COLUMNS + INTERESTS + SURVEY_COLUMNS + PAIR_COLUMNS
)
#: During-date ratings and their partner twins, and after-event columns: never features.
DURING_DATE: tuple[str, ...] = ATTRIBUTES6 + ("like", "prob", "met")
_FORBIDDEN_PATTERN = re.compile(
    r"^(?:(?:attr|sinc|intel|fun|amb|shar|like|prob|met)(?:_o)?|match_es|dec_o|you_call|"
    r"them_cal|.*_s|.*_2|.*_3|.*_o|pf_o_.*)$"
)
REQUIRED_COLUMNS: tuple[str, ...] = ("iid", "pid", "gender", "dec")
TEXT_COLUMNS: frozenset[str] = frozenset({"field", "undergra", "from", "career"})
_NUMBER = re.compile(r"^(?=.*\d)[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d*)?(?:[eE][+-]?\d+)?$")


def is_forbidden(column: str) -> bool:
    """True for columns recorded during or after the dates (and partner-side copies)."""
    return bool(_FORBIDDEN_PATTERN.match(column)) and column not in ALLOWED_COLUMNS


# --- reading ------------------------------------------------------------------------------
def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the file: {exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.info("%s is not UTF-8; reading it as latin-1", path)
        return data.decode("latin-1")


def read_speed_dating_frame(path: str | Path) -> pd.DataFrame:
    """The CSV as a frame: used columns numeric (NaN where empty), the rest as text.

    Adds ``line`` (the row's line number in the file, header = 1). Rows without a partner
    (``pid`` empty, a known gap of the real file) are dropped with a warning.
    """
    p = Path(path)
    reader = csv.reader(io.StringIO(_decode(p), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInput(f"{p}: the file is empty") from None
    for column in REQUIRED_COLUMNS:
        if column not in header:
            raise InvalidInput(f"{p}: line 1: missing required column {column!r}")
    rows: list[list[str]] = []
    lines: list[int] = []
    for record in reader:
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != len(header):
            column = header[len(record)] if len(record) < len(header) else "(extra cells)"
            raise InvalidInput(
                f"{p}: line {line}, column {column!r}: expected {len(header)} cells, "
                f"found {len(record)}"
            )
        rows.append(record)
        lines.append(line)
    if not rows:
        raise InvalidInput(f"{p}: no data rows")
    if len(set(header)) != len(header):
        twice = next(h for h in header if header.count(h) > 1)
        raise InvalidInput(f"{p}: line 1, column {twice!r}: the column appears twice")
    cells = np.char.strip(np.asarray(rows, dtype=str))
    text = pd.DataFrame(cells, columns=header, dtype=object)
    line_array = np.asarray(lines, dtype=np.int64)
    numeric = [j for j, c in enumerate(header) if c in ALLOWED_COLUMNS]
    values = _numbers(cells[:, numeric], [header[j] for j in numeric], line_array, p)
    columns: dict[str, Any] = {"line": line_array}
    for j, column in enumerate(header):
        # the columns matchwise reads are validated numbers; the rest stay text
        columns[column] = values[:, numeric.index(j)] if j in numeric else text[column]
    frame = pd.DataFrame(columns)
    for column in ("iid", "dec"):
        missing = frame[column].isna().to_numpy()
        if missing.any():
            line = int(frame["line"].iloc[int(np.flatnonzero(missing)[0])])
            raise InvalidInput(f"{p}: line {line}, column {column!r}: the value is empty")
    for column, allowed in (("gender", {0, 1}), ("dec", {0, 1}), ("match", {0, 1})):
        if column not in frame:
            continue
        values = frame[column]
        bad = values.notna().to_numpy() & ~values.isin(list(allowed)).to_numpy()
        if column == "gender":
            bad |= values.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInput(
                f"{p}: line {int(frame['line'].iloc[i])}, column {column!r}: expected 0 or 1, "
                f"got {text[column].iloc[i]!r}"
            )
    for column in ("iid", "pid", "wave"):
        if column in frame:
            values = frame[column].dropna()
            bad_index = values.index[(values != np.floor(values)) | (values < 0)]
            if len(bad_index):
                i = int(bad_index[0])
                raise InvalidInput(
                    f"{p}: line {int(frame['line'].iloc[i])}, column {column!r}: "
                    f"{text[column].iloc[i]!r} is not a person number"
                )
    no_partner = frame["pid"].isna().to_numpy()
    if no_partner.any():
        log.warning("%s: %d rows have no partner (pid empty) and are skipped", p, no_partner.sum())
        frame = frame[~no_partner].reset_index(drop=True)
    duplicated = frame.duplicated(["iid", "pid"], keep="first").to_numpy()
    if duplicated.any():
        line = int(frame["line"].iloc[int(np.flatnonzero(duplicated)[0])])
        raise InvalidInput(f"{p}: line {line}, column 'pid': the pair (iid, pid) appears twice")
    for column in ("iid", "pid"):
        frame[column] = frame[column].astype(np.int64)
    frame["dec"] = frame["dec"].astype(np.int64)
    return frame


def _numbers(cells: np.ndarray, names: list[str], lines: np.ndarray, path: Path) -> np.ndarray:
    """A block of cells to floats: empty → NaN, ``"1,070.00"`` → 1070; a bad cell names its
    line and column (the first one in file order)."""
    out = np.full(cells.shape, np.nan)
    filled = (cells != "") & ~np.isin(np.char.lower(cells), ["nan", "na"])
    cleaned = np.char.replace(cells, ",", "")
    try:
        parsed = cleaned[filled].astype(np.float64)
        if not np.isfinite(parsed).all():
            raise ValueError("not finite")
        out[filled] = parsed
        return out
    except ValueError:
        pass
    for i, j in zip(*np.nonzero(filled), strict=True):  # row-major: file order
        if not _NUMBER.fullmatch(str(cells[i, j])):
            raise InvalidInput(
                f"{path}: line {int(lines[i])}, column {names[j]!r}: "
                f"{str(cells[i, j])!r} is not a number"
            )
    raise InvalidInput(f"{path}: a numeric column holds a value that is not a finite number")


def read_speed_dating(path: str | Path, *, match_events: bool = False) -> DataBundle:
    """The Speed Dating CSV as a people-domain :class:`DataBundle`."""
    p = Path(path)
    frame = read_speed_dating_frame(p)
    persons = _person_table(pre_date_view(frame))
    text = frame.drop_duplicates("iid").set_index("iid")
    ids = np.array([f"sd{int(i)}" for i in persons.index], dtype=object)
    woman = persons["gender"].to_numpy() == 0
    interests = persons[[c for c in INTERESTS if c in persons]].to_numpy(dtype=np.float64)
    names = [c for c in INTERESTS if c in persons]
    tags = [[names[k] for k in np.flatnonzero(row >= 7)] for row in np.nan_to_num(interests)]
    survey = [c for c in (*DEMOGRAPHIC_COLUMNS, *SURVEY_COLUMNS, "wave") if c in persons]
    attributes = []
    for iid, row in persons[survey].iterrows():
        attrs: dict[str, Any] = {
            k: (int(v) if float(v).is_integer() else float(v))
            for k, v in row.items()
            if k not in ("gender", "age") and pd.notna(v)
        }
        field = text["field"].get(iid) if "field" in text else None
        if isinstance(field, str) and field:
            attrs["field"] = field
        attributes.append(attrs)
    users = pd.DataFrame(
        {
            "id": ids,
            "age": persons["age"].to_numpy() if "age" in persons else np.nan,
            "gender": np.where(woman, "woman", "man").astype(object),
            "seeking": [["man"] if w else ["woman"] for w in woman],
            "tags": tags,
            "attributes": attributes,
        }
    )
    # no timestamps in the file: waves a week apart, meetings a few minutes apart, in order
    order = frame["order"] if "order" in frame else pd.Series(np.zeros(len(frame)))
    minutes = pd.to_numeric(order, errors="coerce").fillna(0).to_numpy() * 4
    wave = frame["wave"].fillna(0).to_numpy() if "wave" in frame else np.zeros(len(frame))
    start = pd.Timestamp("2002-10-01T19:00:00Z")
    occurred = start + pd.to_timedelta(wave * 7 * 1440 + minutes, unit="min")
    actor = "sd" + frame["iid"].astype(str)
    target = "sd" + frame["pid"].astype(str)
    interactions = pd.DataFrame(
        {
            "event_id": (
                "sd:" + frame["iid"].astype(str) + ":" + frame["pid"].astype(str)
            ).to_numpy(),
            "user_id": actor.to_numpy(),
            "item_id": None,
            "target_user_id": target.to_numpy(),
            "action": np.where(frame["dec"].to_numpy() == 1, "like", "pass").astype(object),
            "value": np.nan,
            "occurred_at": pd.Series(occurred).astype("datetime64[ns, UTC]"),
        }
    )
    matched = frame[(frame.get("match", pd.Series(0, index=frame.index)) == 1)]
    pairs = matched[matched["iid"] < matched["pid"]]
    matches = pd.DataFrame(
        {
            "user_a_id": "sd" + pairs["iid"].astype(str),
            "user_b_id": "sd" + pairs["pid"].astype(str),
        }
    ).reset_index(drop=True)
    _check_matches(frame)
    if match_events and len(pairs):
        times = occurred[matched.index[matched["iid"] < matched["pid"]]]
        extra = pd.DataFrame(
            {
                "event_id": (
                    "sd-match:" + pairs["iid"].astype(str) + ":" + pairs["pid"].astype(str)
                ).to_numpy(),
                "user_id": matches["user_a_id"].to_numpy(),
                "item_id": None,
                "target_user_id": matches["user_b_id"].to_numpy(),
                "action": "match",
                "value": np.nan,
                "occurred_at": pd.Series(times + pd.Timedelta(hours=3)).astype(
                    "datetime64[ns, UTC]"
                ),
            }
        )
        interactions = pd.concat([interactions, extra], ignore_index=True)
    for column in ("event_id", "user_id", "item_id", "target_user_id", "action"):
        interactions[column] = interactions[column].astype(object)  # as the generators do
    return DataBundle(
        users=users,
        items=_no_items(),
        interactions=interactions,
        name=f"speed-dating-{p.stem}",
        domain="people",
        meta={
            "source": str(p),
            "matches": matches,
            "waves": sorted(int(w) for w in frame["wave"].dropna().unique())
            if "wave" in frame
            else [],
        },
    )


def _no_items() -> pd.DataFrame:
    """The people domain has no items: an empty frame with the contract's columns."""
    text = ("id", "kind", "title", "text", "category", "city", "owner_id", "tags", "attributes")
    return pd.DataFrame(
        {c: pd.Series(dtype=object) for c in text}
        | {"starts_at": pd.Series(dtype="datetime64[ns, UTC]")}
    )


def _check_matches(frame: pd.DataFrame) -> None:
    """``match`` should equal dec AND the partner's dec; say so when it does not."""
    if "match" not in frame:
        return
    decided = frame.set_index(["iid", "pid"])["dec"]
    reverse = decided.reindex(list(zip(frame["pid"], frame["iid"], strict=True))).to_numpy()
    implied = (frame["dec"].to_numpy() == 1) & (reverse == 1)
    known = ~np.isnan(reverse) & frame["match"].notna().to_numpy()
    disagree = known & (implied != (frame["match"].to_numpy() == 1))
    if disagree.any():
        log.warning("%d rows have a match flag that differs from both decisions", disagree.sum())


# --- pre-date features --------------------------------------------------------------------
def pre_date_view(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the allow-listed columns: the one way feature code may see the data."""
    return frame[[c for c in frame.columns if c in ALLOWED_COLUMNS]].copy()


def _person_table(view: pd.DataFrame) -> pd.DataFrame:
    """One row per person (index iid): the first non-empty value of each personal column."""
    personal = [c for c in (*DEMOGRAPHIC_COLUMNS, *INTERESTS, *SURVEY_COLUMNS, "wave") if c in view]
    people = view.groupby("iid", sort=True)[personal].first()
    # partners who never appear as a chooser still need a row
    missing = np.setdiff1d(view["pid"].unique(), people.index.to_numpy())
    if len(missing):
        people = pd.concat([people, pd.DataFrame(index=pd.Index(missing, name="iid"))])
        people = people.sort_index()
    return people


def _normalised_prefs(people: pd.DataFrame, block: str, names: Iterable[str]) -> np.ndarray:
    """A survey block as shares summing to 1 (waves 6-9 used a 1-10 scale, not 100 points)."""
    cols = [f"{a}{block}" for a in names]
    values = np.column_stack(
        [
            people[c].to_numpy(np.float64) if c in people else np.full(len(people), np.nan)
            for c in cols
        ]
    )
    total = np.nansum(values, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, values / total, np.nan)
    return shares


@dataclass
class _Context:
    """Person-level arrays and training-pair decision counts, by dense person index."""

    index: pd.Index
    people: pd.DataFrame
    prefs: np.ndarray  # (n, 6) shares of 1_1
    self_rating: np.ndarray  # (n, 5) 3_1 in attr, sinc, intel, fun, amb order
    interests: np.ndarray  # (n, 17) centred per person
    yes_given: np.ndarray
    n_given: np.ndarray
    yes_received: np.ndarray
    n_received: np.ndarray


def _context(view: pd.DataFrame, train_rows: np.ndarray) -> _Context:
    people = _person_table(view)
    index = pd.Index(people.index)
    n = len(index)
    prefs = _normalised_prefs(people, "1_1", ATTRIBUTES6)
    self_rating = np.column_stack(
        [
            people[f"{a}3_1"].to_numpy(np.float64) if f"{a}3_1" in people else np.full(n, np.nan)
            for a in ATTRIBUTES5
        ]
    )
    raw = np.column_stack(
        [people[c].to_numpy(np.float64) if c in people else np.full(n, np.nan) for c in INTERESTS]
    )
    centred = raw - np.nanmean(raw, axis=1, keepdims=True) if n else raw
    train = view.iloc[train_rows]
    a = index.get_indexer(train["iid"])
    b = index.get_indexer(train["pid"])
    dec = train["dec"].to_numpy(np.float64)
    return _Context(
        index=index,
        people=people,
        prefs=prefs,
        self_rating=self_rating,
        interests=np.nan_to_num(centred),
        yes_given=np.bincount(a, weights=dec, minlength=n),
        n_given=np.bincount(a, minlength=n).astype(np.float64),
        yes_received=np.bincount(b, weights=dec, minlength=n),
        n_received=np.bincount(b, minlength=n).astype(np.float64),
    )


def _col(people: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    if name not in people:
        return np.full(len(rows), np.nan)
    return people[name].to_numpy(np.float64)[rows]


def pair_features(
    ctx: _Context,
    chooser: np.ndarray,
    partner: np.ndarray,
    int_corr: np.ndarray,
    samerace: np.ndarray,
    own_decision: np.ndarray | None = None,
) -> pd.DataFrame:
    """Features of "does ``chooser`` say yes to ``partner``", vectorised over pairs.

    ``own_decision`` (training rows only) is taken out of the popularity and selectivity
    counts, so a training row never sees its own label (leave-one-out).
    """
    p = ctx.people
    yes_given, n_given = ctx.yes_given[chooser], ctx.n_given[chooser]
    yes_recv, n_recv = ctx.yes_received[partner], ctx.n_received[partner]
    if own_decision is not None:
        yes_given, n_given = yes_given - own_decision, n_given - 1
        yes_recv, n_recv = yes_recv - own_decision, n_recv - 1
    selectivity = (yes_given + 1.0) / (n_given + 2.0)
    popularity = (yes_recv + 1.0) / (n_recv + 2.0)
    partner_selectivity = (ctx.yes_given[partner] + 1.0) / (ctx.n_given[partner] + 2.0)
    age_c, age_p = _col(p, "age", chooser), _col(p, "age", partner)
    a_int, b_int = ctx.interests[chooser], ctx.interests[partner]
    norms = np.linalg.norm(a_int, axis=1) * np.linalg.norm(b_int, axis=1)
    interest_cos = np.divide(
        (a_int * b_int).sum(axis=1), norms, out=np.zeros(len(chooser)), where=norms > 0
    )
    prefs = ctx.prefs[chooser]  # attr sinc intel fun amb shar
    partner_self = ctx.self_rating[partner]  # attr sinc intel fun amb
    pref_fit = np.nansum(prefs[:, :5] * partner_self, axis=1)
    imprace = _col(p, "imprace", chooser)
    features = {
        "chooser_gender": _col(p, "gender", chooser),
        "chooser_age": age_c,
        "chooser_imprace": imprace,
        "chooser_imprelig": _col(p, "imprelig", chooser),
        "chooser_goal": _col(p, "goal", chooser),
        "chooser_date": _col(p, "date", chooser),
        "chooser_go_out": _col(p, "go_out", chooser),
        "chooser_selectivity": selectivity,
        "chooser_seen": n_given,
        "partner_age": age_p,
        "partner_popularity": popularity,
        "partner_selectivity": partner_selectivity,
        "age_gap": age_p - age_c,
        "abs_age_gap": np.abs(age_p - age_c),
        "int_corr": int_corr,
        "samerace": samerace,
        "samerace_x_imprace": samerace * imprace,
        "same_goal": (_col(p, "goal", chooser) == _col(p, "goal", partner)).astype(float),
        "same_field": (_col(p, "field_cd", chooser) == _col(p, "field_cd", partner)).astype(float),
        "interest_cosine": interest_cos,
        "pref_fit": pref_fit,
        "popularity_x_attr_pref": popularity * np.nan_to_num(prefs[:, 0], nan=1 / 6),
    }
    for k, name in enumerate(ATTRIBUTES6):
        features[f"chooser_pref_{name}"] = prefs[:, k]
    for k, name in enumerate(ATTRIBUTES5):
        features[f"partner_self_{name}"] = partner_self[:, k]
        features[f"chooser_self_{name}"] = ctx.self_rating[chooser, k]
    return pd.DataFrame(features)


class SpeedDatingModel:
    """P(a says yes to b) from pre-date features: L2 logistic regression on standardised,
    median-imputed features, or LightGBM when there are enough training rows
    (``kind="auto"``: 2,000 or more; one thread, seeded)."""

    def __init__(self, kind: str = "auto", seed: int = 42, l2: float = 10.0) -> None:
        if kind not in ("auto", "logistic", "lightgbm"):
            raise InvalidInput(f"unknown speed-dating model {kind!r}; use auto, logistic, lightgbm")
        self.kind = kind
        self.seed = seed
        self.l2 = float(l2)
        self.model_: Any = None
        self.mean_: np.ndarray = np.zeros(0)
        self.std_: np.ndarray = np.ones(0)
        self.columns_: list[str] = []
        self.medians_: pd.Series | None = None
        self.kind_: str = kind

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> SpeedDatingModel:
        self.columns_ = list(X.columns)
        self.kind_ = (
            self.kind if self.kind != "auto" else ("lightgbm" if len(X) >= 2000 else "logistic")
        )
        if len(np.unique(y)) < 2:
            raise InvalidInput("the training pairs hold only one kind of decision")
        if self.kind_ == "lightgbm":
            import lightgbm as lgb

            self.model_ = lgb.LGBMClassifier(
                n_estimators=300,
                learning_rate=0.03,
                num_leaves=15,
                min_child_samples=30,
                subsample=0.8,
                subsample_freq=1,
                colsample_bytree=0.8,
                reg_lambda=5.0,
                n_jobs=1,
                random_state=self.seed,
                verbose=-1,
            ).fit(X.to_numpy(np.float64), y)
        else:
            self.medians_ = X.median().fillna(0.0)
            filled = X.fillna(self.medians_).to_numpy(np.float64)
            self.mean_, std = filled.mean(axis=0), filled.std(axis=0)
            self.std_ = np.where(std > 1e-12, std, 1.0)
            self.model_ = fit_logistic((filled - self.mean_) / self.std_, y, l2=self.l2)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.model_ is None:
            raise InvalidInput("the speed-dating model is not fitted")
        X = X[self.columns_]
        if self.kind_ == "logistic":
            assert self.medians_ is not None
            filled = X.fillna(self.medians_).to_numpy(np.float64)
            coef, intercept = self.model_
            logits = ((filled - self.mean_) / self.std_) @ coef + intercept
            return 0.5 * (1.0 + np.tanh(0.5 * logits))
        return np.asarray(self.model_.predict_proba(X.to_numpy(np.float64))[:, 1])


# --- benchmark ----------------------------------------------------------------------------
def _holdout_pairs(frame: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """True for rows whose unordered pair is held out (both directions together)."""
    lo = np.minimum(frame["iid"].to_numpy(), frame["pid"].to_numpy())
    hi = np.maximum(frame["iid"].to_numpy(), frame["pid"].to_numpy())
    keys = lo * 1_000_003 + hi
    unique = np.unique(keys)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(share * len(unique))))
    held = rng.choice(unique, size=n_test, replace=False)
    return np.isin(keys, held)


def run_speed_dating_benchmark(
    path: str | Path,
    seed: int = 42,
    *,
    test_share: float = 0.2,
    model: str = "auto",
    k: int = 5,
    details: bool = False,
) -> dict[str, Any]:
    """Hold out ``test_share`` of pairs and score random, popularity, one-sided, reciprocal.

    Returns ``{"dataset": name, "results": {scorer: {"decision_auc", "match_auc",
    "ndcg@5"}}}`` (``details`` adds sizes and the model kind). Decision AUC is over held-out
    rows (a person's ``dec``); match AUC over held-out rows too (each pair once per
    direction, label ``match``); NDCG@5 ranks each person's held-out partners with
    mutual matches as the relevant ones, averaged over people with at least one.
    """
    p = Path(path)
    frame = read_speed_dating_frame(p)
    view = pre_date_view(frame)  # nothing outside the allow-list from here on
    if "match" not in view:
        raise InvalidInput(f"{p}: the benchmark needs the 'match' column")
    held = _holdout_pairs(view, test_share, seed)
    if held.all() or not held.any():
        raise InvalidInput(f"{p}: too few pairs to hold out {test_share:.0%} of them")
    train_rows = np.flatnonzero(~held)
    test_rows = np.flatnonzero(held)
    ctx = _context(view, train_rows)
    chooser = ctx.index.get_indexer(view["iid"])
    partner = ctx.index.get_indexer(view["pid"])
    int_corr = (
        view["int_corr"].to_numpy(np.float64) if "int_corr" in view else np.full(len(view), np.nan)
    )
    samerace = (
        view["samerace"].to_numpy(np.float64) if "samerace" in view else np.full(len(view), np.nan)
    )
    dec = view["dec"].to_numpy(np.int64)
    tr = train_rows
    X_train = pair_features(ctx, chooser[tr], partner[tr], int_corr[tr], samerace[tr], dec[tr])
    one_sided = SpeedDatingModel(model, seed).fit(X_train, dec[tr])

    te = test_rows
    forward = pair_features(ctx, chooser[te], partner[te], int_corr[te], samerace[te])
    backward = pair_features(ctx, partner[te], chooser[te], int_corr[te], samerace[te])
    p_ab = one_sided.predict(forward)
    p_ba = one_sided.predict(backward)
    rng = np.random.default_rng(seed)
    scores = {
        "random": rng.random(len(te)),
        "popularity": forward["partner_popularity"].to_numpy(),
        "one_sided": p_ab,
        "reciprocal": reciprocal_score(p_ab, p_ba, "harmonic"),
    }
    match = view["match"].to_numpy(np.float64)[te] == 1
    decision = dec[te] == 1
    groups = chooser[te]
    results: dict[str, dict[str, float]] = {}
    for name, s in scores.items():
        results[name] = {
            "decision_auc": round(auc(decision, s), 4)
            if 0 < decision.sum() < len(te)
            else float("nan"),
            "match_auc": round(auc(match, s), 4) if 0 < match.sum() < len(te) else float("nan"),
            f"ndcg@{k}": round(grouped_ndcg(groups, s, match, k).mean, 4),
        }
    out: dict[str, Any] = {"dataset": p.stem, "results": results}
    if details:
        out["details"] = {
            "rows": len(view),
            "people": len(ctx.index),
            "train_rows": len(tr),
            "test_rows": len(te),
            "test_matches": int(match.sum() // 2),
            "model": one_sided.kind_,
            "features": list(X_train.columns),
        }
    log.info("speed dating benchmark on %s: %s", p.name, results)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m matchwise.data.speed_dating FILE [--seed N]``: the benchmark as JSON."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="Speed Dating reciprocal benchmark")
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default="auto", choices=["auto", "logistic", "lightgbm"])
    args = parser.parse_args(argv)
    result = run_speed_dating_benchmark(args.path, seed=args.seed, model=args.model)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
