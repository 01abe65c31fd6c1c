"""The Speed Dating Experiment (Fisman & Iyengar, 2006): the loader.

The public CSV has one row per person per partner met that evening: ``iid`` (the person),
``pid`` (the partner's iid), ``wave`` (the evening), ``order`` (the how-manieth date of
the evening it was for ``iid``), demographics, 17 interest scores, a sign-up survey, the
decision ``dec`` (1 = wants to see the partner again), the partner's ``dec_o`` and
``match`` (both said yes). It also holds what was recorded *during* each date (ratings of
the partner) and *after* the event (follow-up surveys, calls, dates).

Loading (:func:`read_speed_dating`): people become users (id ``sd{iid}``, gender 0 →
woman, 1 → man, seeking the other gender, interests scored 7 or more as tags, the sign-up
survey as attributes); every row becomes a ``like`` (dec = 1) or ``pass`` (dec = 0) from
``iid`` to ``pid``; mutual likes are the matches (``match``; ``meta["matches"]`` lists them
and, with ``match_events``, ``match`` interactions are added). Files may be UTF-8 or
latin-1; numbers may be empty or carry thousands separators (``"69,487.00"``). A malformed
cell raises :class:`~matchwise.errors.InvalidInput` naming the line and the column.

Only what is known before a date may be a feature: :data:`ALLOWED_COLUMNS` is the explicit
allow-list, and :func:`pre_date_view` is the only door through which feature code sees
the file. The ratings given during the date and everything recorded afterwards would be
cheating. The benchmark that uses it is :mod:`matchwise.bench.speed_dating`.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matchwise.data.bundle import DataBundle
from matchwise.errors import InvalidInput

__all__ = [
    "ALLOWED_COLUMNS",
    "ATTRIBUTES5",
    "ATTRIBUTES6",
    "DEMOGRAPHIC_COLUMNS",
    "FEATURE_COLUMNS",
    "INTERESTS",
    "LABEL_COLUMNS",
    "SCHEDULE_COLUMNS",
    "SURVEY_COLUMNS",
    "is_forbidden",
    "normalised_prefs",
    "person_table",
    "pre_date_view",
    "read_speed_dating",
    "read_speed_dating_frame",
    "users_frame",
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
#: When the date took place: ``order`` is the how-manieth date of the evening it was for
#: ``iid`` (fixed by the seating plan before anyone met). A time, never a feature.
SCHEDULE_COLUMNS: tuple[str, ...] = ("order",)
#: Labels: ``dec`` of *training* pairs is also a feature (popularity, selectivity).
LABEL_COLUMNS: tuple[str, ...] = ("dec", "match")
#: Everything feature code may read: known before the date (plus keys and labels).
ALLOWED_COLUMNS: frozenset[str] = frozenset(
    KEY_COLUMNS
    + SCHEDULE_COLUMNS
    + LABEL_COLUMNS
    + DEMOGRAPHIC_COLUMNS
    + INTERESTS
    + SURVEY_COLUMNS
    + PAIR_COLUMNS
)
#: The raw columns the benchmark's models turn into features (a subset of the allow-list).
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
    users = users_frame(frame)
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


def users_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One user per person (id ``sd{iid}``), as :func:`read_speed_dating` stores them:
    gender, seeking the other gender, age, interests scored 7 or more as tags, the sign-up
    survey (and ``field`` where the frame has it) as attributes."""
    persons = person_table(pre_date_view(frame))
    text = frame.drop_duplicates("iid").set_index("iid")
    ids = np.array([f"sd{int(i)}" for i in persons.index], dtype=object)
    woman = persons["gender"].to_numpy() == 0
    interests = persons[[c for c in INTERESTS if c in persons]].to_numpy(dtype=np.float64)
    names = [c for c in INTERESTS if c in persons]
    tags = [[names[k] for k in np.flatnonzero(row >= 7)] for row in np.nan_to_num(interests)]
    survey = [
        c for c in (*DEMOGRAPHIC_COLUMNS, *SURVEY_COLUMNS, *INTERESTS, "wave") if c in persons
    ]
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
    return users


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


def person_table(view: pd.DataFrame) -> pd.DataFrame:
    """One row per person (index iid): the first non-empty value of each personal column."""
    personal = [c for c in (*DEMOGRAPHIC_COLUMNS, *INTERESTS, *SURVEY_COLUMNS, "wave") if c in view]
    people = view.groupby("iid", sort=True)[personal].first()
    # partners who never appear as a chooser still need a row
    missing = np.setdiff1d(view["pid"].unique(), people.index.to_numpy())
    if len(missing):
        people = pd.concat([people, pd.DataFrame(index=pd.Index(missing, name="iid"))])
        people = people.sort_index()
    return people


def normalised_prefs(people: pd.DataFrame, block: str, names: Iterable[str]) -> np.ndarray:
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
