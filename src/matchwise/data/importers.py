"""Import a user's own exports (CSV, TSV and other delimited text, JSON lines, Parquet)
into DataBundle frames.

Real users arrive with files from their app's database, not with our schema, so every
reader maps their column names onto the wire contract and fails early with an error that
names the file, the column and the line, instead of letting a bad row surface later.
Profiles and items go through the API's own models (``UserIn``, ``ItemIn``): a file is
accepted only when every row would be accepted by ``POST /v1/users`` or ``/v1/items``.
"""

from __future__ import annotations

import bz2
import gzip
import html
import json
import lzma
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError

from matchwise.errors import InvalidInput
from matchwise.schemas import Event, ItemIn, UserIn

_ID_RE = r"^[A-Za-z0-9_.:@\-]+$"
_ID_MAX = 64
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz", ".zip")
_TSV_SUFFIXES = (".tsv", ".tsv.gz", ".tab")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
#: Delimited text whose separator is read off its first line (MovieLens ``u.data`` and
#: ``ratings.dat``, Last.fm's ``.dat`` and ``.txt`` exports).
_SNIFFED_SUFFIXES = (".dat", ".txt", ".data", ".dat.gz", ".txt.gz")
#: Separators tried on a sniffed file's first line, in this order.
_SNIFFED_SEPARATORS = ("::", "\t", ",", ";", "|")
_SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_OPENERS: dict[str, Callable[..., IO[str]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
TIME_CANDIDATES = ("occurred_at", "timestamp", "time", "ts", "datetime", "created_at", "date")
_OPTIONAL_INTERACTION_COLS = ("position", "duration_ms", "session_id")
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}

INTERACTION_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "target_user_id",
    "action",
    "value",
    "occurred_at",
)
#: The columns ``load interactions`` recognises (``--map FIELD=COLUMN`` maps onto these).
INTERACTION_FIELDS = (*INTERACTION_COLUMNS, *_OPTIONAL_INTERACTION_COLS)

FileFormatName = Literal["csv", "tsv", "jsonl", "parquet"]
FILE_FORMATS: tuple[str, ...] = get_args(FileFormatName)


@dataclass(frozen=True)
class FileFormat:
    """How to read an export when its name does not say: the format, the separator of a
    delimited file (``"\\t"``, ``"::"``), and the column names of a file without a header."""

    name: FileFormatName | None = None
    sep: str | None = None
    columns: tuple[str, ...] | None = None


def file_format(name: str | None, sep: str | None, columns: str | None) -> FileFormat:
    """A :class:`FileFormat` from command-line text: ``--format``, ``--sep`` and
    ``--columns a,b,c``; an unknown format names the known ones."""
    if name is not None and name.lower() not in FILE_FORMATS:
        raise InvalidInput(f"--format {name!r}: use one of {', '.join(FILE_FORMATS)}")
    names = None
    if columns is not None:
        names = tuple(c.strip() for c in columns.split(","))
        if not all(names) or len(set(names)) != len(names):
            raise InvalidInput(f"--columns {columns!r}: give distinct, non-empty names: a,b,c")
    kind = cast(FileFormatName | None, name.lower() if name else None)
    return FileFormat(kind, sep, names)


@dataclass(frozen=True)
class _Layout:
    """A file's resolved layout: ``kind`` is parquet, jsonl, csv (delimited with a header
    row) or headless (delimited, names given)."""

    kind: str
    sep: str = ","
    columns: tuple[str, ...] | None = None


# --- shared helpers ------------------------------------------------------------------------


def stable_event_ids(frame: pd.DataFrame, salt: str = "") -> pd.Series:
    """Deterministic event ids from (user, target, action, time, row position).

    The same file imported twice yields the same ids, so the store's de-duplication by
    event id makes re-imports idempotent; the row position keeps identical rows distinct.
    """
    n = len(frame)
    if n == 0:
        return pd.Series([], dtype=object, index=frame.index)
    cols = ("user_id", "item_id", "target_user_id", "action", "occurred_at")
    parts = pd.DataFrame({c: frame[c].reset_index(drop=True) for c in cols if c in frame.columns})
    parts["_row"] = np.arange(n, dtype=np.int64)
    h = pd.util.hash_pandas_object(parts, index=False).to_numpy(dtype=np.uint64)
    salt_h = pd.util.hash_array(np.array([salt], dtype=object))[0]
    with np.errstate(over="ignore"):
        z = h ^ np.uint64(salt_h)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return pd.Series([f"ev_{x:016x}" for x in z.tolist()], dtype=object, index=frame.index)


def _separator(sep: str) -> str:
    """``--sep`` as given on a command line: ``tab`` or a typed ``\\t`` mean a tab."""
    if not sep:
        raise InvalidInput("--sep must not be empty")
    return _SEPARATOR_NAMES.get(sep.lower(), sep)


def _first_line(path: Path) -> str:
    """The first line of a text file (decompressed when its name says so)."""
    opener = _OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.readline()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}") from exc


def _sniff_separator(path: Path) -> str:
    line = _first_line(path)
    for sep in _SNIFFED_SEPARATORS:
        if sep in line:
            return sep
    raise InvalidInput(
        f"{path}: cannot tell how the columns are separated; give --sep (e.g. --sep tab "
        "or --sep '::') or --format csv|tsv"
    )


def _layout(path: Path, file_format: FileFormat | None) -> _Layout:
    """The format from ``file_format`` or the file name, the separator from ``--sep``,
    the format, or (``.dat``/``.txt``/``.data``) the file's first line."""
    given = file_format or FileFormat()
    if given.name is not None and given.name not in FILE_FORMATS:
        raise InvalidInput(f"unknown format {given.name!r}; use {', '.join(FILE_FORMATS)}")
    name = path.name.lower()
    kind: str | None = given.name
    if kind is None:
        if name.endswith(_PARQUET_SUFFIXES):
            kind = "parquet"
        elif name.endswith(_JSONL_SUFFIXES):
            kind = "jsonl"
        elif name.endswith(_TSV_SUFFIXES):
            kind = "tsv"
        elif name.endswith(_CSV_SUFFIXES) or given.sep is not None:
            kind = "csv"
        elif name.endswith(_SNIFFED_SUFFIXES):
            kind = "sniff"
        else:
            suffix = "".join(path.suffixes) or "(none)"
            raise InvalidInput(
                f"{path}: unknown file type {suffix!r}; use .csv, .tsv, .jsonl, .parquet, "
                f"or say how to read it with --format {'|'.join(FILE_FORMATS)} (and --sep)"
            )
    if kind in ("parquet", "jsonl"):
        if given.sep is not None:
            raise InvalidInput(f"--sep applies to delimited text, not to {kind}")
        if given.columns is not None:
            raise InvalidInput(f"--columns applies to delimited text, not to {kind}")
        return _Layout(kind)
    if not path.exists():
        raise InvalidInput(f"{path}: file not found")
    if given.sep is not None:
        sep = _separator(given.sep)
    elif kind == "sniff":
        sep = _sniff_separator(path)
    else:
        sep = "\t" if kind == "tsv" else ","
    if given.columns is not None:
        return _Layout("headless", sep, given.columns)
    return _Layout("csv", sep)


def _read_table(
    path: str | Path, file_format: FileFormat | None = None
) -> tuple[pd.DataFrame, str, Path]:
    """Read a table keeping text as text (empty cells as ''), so ids never become floats."""
    p = Path(path)
    layout = _layout(p, file_format)
    if not p.exists():
        raise InvalidInput(f"{p}: file not found")
    try:
        if layout.kind == "parquet":
            frame = pd.read_parquet(p)
        elif layout.kind == "jsonl":
            frame = pd.read_json(p, lines=True, dtype=False, convert_dates=False)
        else:
            frame = pd.read_csv(
                p,
                sep=re.escape(layout.sep) if len(layout.sep) > 1 else layout.sep,
                engine="python" if len(layout.sep) > 1 else "c",
                header=None if layout.columns is not None else "infer",
                names=list(layout.columns) if layout.columns is not None else None,
                dtype=str,
                keep_default_na=False,
                na_values=[],
            )
    except pd.errors.EmptyDataError as exc:
        raise InvalidInput(f"{p}: the file is empty (no header row)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        kind = "csv" if layout.kind == "headless" else layout.kind
        raise InvalidInput(f"{p}: cannot read as {kind}: {str(exc).strip()}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.reset_index(drop=True), layout.kind, p


#: How a person finds a data row, by kind of file: (unit, number of the first data row).
#: A delimited file's header is line 1; JSON lines and header-less files start at line 1.
_NUMBERING = {"parquet": ("row", 1), "jsonl": ("line", 1), "headless": ("line", 1)}


def _where(kind: str, row: int) -> str:
    """Human position of a data row: CSV line numbers count the header as line 1."""
    unit, first = _NUMBERING.get(kind, ("line", 2))
    return f"{unit} {row + first}"


def row_numbering(path: str | Path, file_format: FileFormat | None = None) -> tuple[str, int]:
    """How a person finds a data row of ``path``: ``("line", 2)`` for CSV/TSV, whose header
    is line 1, ``("row", 1)`` for Parquet, ``("line", 1)`` for JSON lines and header-less
    files. Row position 0 is then "line 2", "row 1" or "line 1"."""
    return _NUMBERING.get(_layout(Path(path), file_format).kind, ("line", 2))


def column_map(pairs: Iterable[str], recognised: Iterable[str], what: str) -> dict[str, str]:
    """``--map`` options (``COLUMN=FIELD``, e.g. ``interests=tags``) as {column: field}.

    ``FIELD=COLUMN`` is read the same way when only its left side is a recognised field
    (``tags=interests``). A field that is not recognised is refused, listing those that are.
    """
    fields = tuple(recognised)
    out: dict[str, str] = {}
    for pair in pairs:
        left, sep, right = (part.strip() for part in pair.partition("="))
        if not sep or not left or not right:
            raise InvalidInput(f"--map {pair!r}: write COLUMN=FIELD, e.g. --map interests=tags")
        column, field = (right, left) if left in fields and right not in fields else (left, right)
        if field not in fields:
            raise InvalidInput(
                f"--map {pair}: {field!r} is not a recognised {what} column; recognised: "
                f"{', '.join(fields)}"
            )
        if field in out.values():
            raise InvalidInput(f"--map: two columns are mapped onto {field!r}")
        out[column] = field
    return out


def _require(frame: pd.DataFrame, column: str, path: Path, role: str) -> None:
    if column not in frame.columns:
        available = ", ".join(repr(c) for c in frame.columns) or "(none)"
        headless = any(_looks_like_data(c) for c in frame.columns)
        hint = (
            "; the file seems to have no header row: name its columns with --columns "
            "(e.g. --columns user_id,item_id,rating,timestamp)"
            if headless
            else ""
        )
        raise InvalidInput(
            f"{path}: missing {role} column {column!r}; available columns: {available}{hint}"
        )


def _looks_like_data(name: object) -> bool:
    """A header cell that is a number: the first row was data, not names."""
    try:
        float(str(name))
    except ValueError:
        return False
    return True


def _blank(series: pd.Series) -> np.ndarray:
    """True where a cell is missing or only whitespace."""
    missing = series.isna().to_numpy()
    text = series.astype(object).where(~missing, "").astype(str).str.strip()
    return missing | (text == "").to_numpy()


def _as_text(series: pd.Series) -> pd.Series:
    """Cells as stripped strings; integral floats (a Parquet id column with NaN) lose '.0'."""
    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        if len(whole) and (whole == np.floor(whole)).all():
            series = series.astype("Int64")
    missing = series.isna().to_numpy()
    values = [
        None if gone else (str(v).strip() or None)
        for v, gone in zip(series.tolist(), missing, strict=True)
    ]
    return pd.Series(values, index=series.index, dtype=object)


def _ids(
    series: pd.Series, path: Path, kind: str, what: str, column: str, *, allow_empty: bool = False
) -> pd.Series:
    """Validate an id column against the wire contract's id pattern."""
    text = _as_text(series)
    blank = _blank(text)
    if blank.any() and not allow_empty:
        row = int(np.flatnonzero(blank)[0])
        raise InvalidInput(f"{path}: empty {what} in column {column!r} at {_where(kind, row)}")
    filled = text[~blank].astype(str)
    bad = ~(filled.str.fullmatch(_ID_RE) & (filled.str.len() <= _ID_MAX))
    if bad.any():
        row = int(filled.index[np.flatnonzero(bad.to_numpy())[0]])
        raise InvalidInput(
            f"{path}: invalid {what} {text.iloc[row]!r} in column {column!r} at "
            f"{_where(kind, row)}: ids are 1-64 characters of letters, digits and _.:@-"
        )
    return text.where(~pd.Series(blank, index=text.index), None).astype(object)


def _parse_times(
    series: pd.Series, path: Path, kind: str, column: str, unit: str | None
) -> pd.Series:
    """ISO strings or epoch numbers (seconds/ms/us/ns, guessed from magnitude) to UTC.

    Error positions use the series' index, which is the row position in the file.
    """
    if unit is not None and unit not in _UNIT_SECONDS:
        raise InvalidInput(f"time_unit must be one of {', '.join(_UNIT_SECONDS)}, got {unit!r}")

    def fail(pos: int, why: str) -> InvalidInput:
        row = int(series.index[pos])
        return InvalidInput(
            f"{path}: unparseable time {series.iloc[pos]!r} in column {column!r} at "
            f"{_where(kind, row)}: {why}"
        )

    blank = _blank(series)
    if blank.any():
        row = int(series.index[np.flatnonzero(blank)[0]])
        raise InvalidInput(f"{path}: empty time in column {column!r} at {_where(kind, row)}")
    if pd.api.types.is_datetime64_any_dtype(series):
        out = pd.to_datetime(series)
        return out.dt.tz_localize("UTC") if out.dt.tz is None else out.dt.tz_convert("UTC")
    numbers = pd.to_numeric(series, errors="coerce")
    is_num = numbers.notna().to_numpy()
    if unit is not None and not is_num.all():
        raise fail(int(np.flatnonzero(~is_num)[0]), f"time_unit={unit!r} expects epoch numbers")
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    if is_num.any():
        values = numbers.to_numpy(dtype=float)[is_num]
        chosen = unit or _guess_unit(values)
        ns = np.round(values * _UNIT_SECONDS[chosen] * 1e9).astype(np.int64)
        out[is_num] = pd.Series(ns.astype("datetime64[ns]")).dt.tz_localize("UTC").to_numpy()
    if (~is_num).any():
        text = series[~is_num].astype(str).str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(~is_num)[np.flatnonzero(bad)[0]])
            raise fail(pos, "use ISO 8601 (2024-05-01T12:00:00Z) or epoch seconds/ms")
        out[~is_num] = parsed.to_numpy()
    return out


def _guess_unit(values: np.ndarray) -> str:
    """Epoch unit from magnitude: 1.7e9 is seconds, 1.7e12 ms, 1.7e15 us, 1.7e18 ns."""
    size = float(np.nanmedian(np.abs(values))) if len(values) else 0.0
    if size < 1e11:
        return "s"
    if size < 1e14:
        return "ms"
    if size < 1e17:
        return "us"
    return "ns"


def _numbers(
    series: pd.Series, path: Path, kind: str, column: str, *, integer: bool = False
) -> pd.Series:
    """Numbers with blanks as missing; a non-number names its line."""
    blank = _blank(series)
    values = pd.to_numeric(series.where(~blank, None), errors="coerce")
    bad = values.isna().to_numpy() & ~blank
    if integer and not bad.any():
        frac = values.notna().to_numpy() & (values.fillna(0) != np.floor(values.fillna(0)))
        bad = bad | frac.to_numpy() if isinstance(frac, pd.Series) else bad | frac
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        want = "a whole number" if integer else "a number"
        raise InvalidInput(
            f"{path}: {column!r} must be {want}, got {series.iloc[row]!r} at {_where(kind, row)}"
        )
    return values.round().astype("Int64") if integer else values.astype(float)


def parse_list(value: Any) -> list[str]:
    """A list cell: a real list, a JSON list, or text split on '|', ';' or ','."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        items = [str(v) for v in value]
    else:
        text = str(value).strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError:
                loaded = None
            if isinstance(loaded, list):
                return [s for s in (str(v).strip() for v in loaded) if s]
            text = text.strip("[]")
        sep = "|" if "|" in text else ";" if ";" in text else ","
        items = text.split(sep)
    out: list[str] = []
    for item in items:
        s = item.strip().strip("'\"").strip()
        if s and s not in out:
            out.append(s)
    return out


def _parse_json_dict(value: Any, path: Path, kind: str, column: str, row: int) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value).strip()
    if not text:
        return {}
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path}: {column!r} must be a JSON object at {_where(kind, row)}: {exc.msg}"
        ) from exc
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{path}: {column!r} must be a JSON object at {_where(kind, row)}")
    return loaded


def _plain(value: Any) -> Any:
    """numpy scalars to Python, for JSON attributes."""
    return value.item() if isinstance(value, np.generic) else value


def _attribute_column(series: pd.Series) -> list[Any]:
    """Attribute values: numbers where a whole text column is numeric, else text; blanks None."""
    blank = _blank(series)
    values = [None if b else _plain(v) for v, b in zip(series.tolist(), blank, strict=True)]
    filled = [v for v in values if v is not None]
    if filled and all(isinstance(v, str) for v in filled):
        numbers = pd.to_numeric(pd.Series(filled, dtype=object), errors="coerce")
        if numbers.notna().all():
            whole = bool((numbers == np.floor(numbers)).all())
            convert = (lambda v: int(float(v))) if whole else (lambda v: float(v))
            values = [None if v is None else convert(v) for v in values]
    elif filled:
        values = [None if v is None else (v.strip() if isinstance(v, str) else v) for v in values]
    return [v.strip() if isinstance(v, str) else v for v in values]


# --- interactions --------------------------------------------------------------------------


def read_interactions(
    path: str | Path,
    user_col: str = "user_id",
    item_col: str | None = "item_id",
    target_user_col: str | None = None,
    action_col: str | None = None,
    value_col: str | None = None,
    time_col: str | None = None,
    default_action: str | None = None,
    time_unit: str | None = None,
    event_id_col: str | None = None,
    file_format: FileFormat | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """An interactions frame (DataBundle shape) from a CSV/TSV/JSON lines/Parquet export.

    The action comes from ``action_col`` (or an ``action`` column), else ``value_col``
    (or a ``rating``/``value`` column) makes every row a ``rate`` with that value, else
    ``default_action`` applies to every row. ``target_user_col`` makes rows people-to-people;
    with both target columns, each row must fill exactly one. Times may be ISO strings or
    epoch numbers (unit guessed unless ``time_unit``); without a time column
    ``occurred_at`` is NaT and ``ingest.write_bundle`` stamps every such row with the load
    time (one time for the whole load), as the API stamps events sent without a timestamp.
    Event ids come from ``event_id_col`` only when it is given (a column that happens to
    be called ``event_id`` may be an event in the app's sense, an item); otherwise they are
    a stable hash (time-less rows included), so re-importing a file is idempotent: its rows
    are skipped as duplicates. ``columns`` ({file column: field}, see
    :func:`column_map`) names the columns of any of :data:`INTERACTION_FIELDS`, as the
    ``*_col`` arguments do.
    """
    frame, kind, p = _read_table(path, file_format)
    named = {field: column for column, field in (columns or {}).items()}
    user_col = named.get("user_id", user_col)
    item_col = named.get("item_id", item_col)
    target_user_col = named.get("target_user_id", target_user_col)
    action_col = named.get("action", action_col)
    value_col = named.get("value", value_col)
    time_col = named.get("occurred_at", time_col)
    event_id_col = named.get("event_id", event_id_col)
    if event_id_col is not None:
        _require(frame, event_id_col, p, "event id")
    _require(frame, user_col, p, "user")
    use_item = item_col is not None and (item_col in frame.columns or target_user_col is None)
    if item_col is not None and use_item:
        _require(frame, item_col, p, "item")
    if target_user_col is not None:
        _require(frame, target_user_col, p, "target user")

    if action_col is None and value_col is None and default_action is None:
        if "action" in frame.columns:
            action_col = "action"
        else:
            value_col = next((c for c in ("rating", "value") if c in frame.columns), None)
            if value_col is None:
                available = ", ".join(repr(c) for c in frame.columns)
                raise InvalidInput(
                    f"{p}: no action: give action_col, value_col (actions become 'rate') or "
                    f"default_action; available columns: {available}"
                )
    if action_col is not None:
        _require(frame, action_col, p, "action")
    if value_col is not None:
        _require(frame, value_col, p, "value")
    if time_col is not None:
        _require(frame, time_col, p, "time")
    else:
        time_col = next((c for c in TIME_CANDIDATES if c in frame.columns), None)

    n = len(frame)
    users = _ids(frame[user_col], p, kind, "user id", user_col)
    none = pd.Series([None] * n, dtype=object)
    items = (
        _ids(frame[item_col], p, kind, "item id", item_col, allow_empty=target_user_col is not None)
        if use_item and item_col is not None
        else none
    )
    targets = (
        _ids(
            frame[target_user_col], p, kind, "target user id", target_user_col, allow_empty=use_item
        )
        if target_user_col is not None
        else none
    )
    has_item, has_target = items.notna().to_numpy(), targets.notna().to_numpy()
    if use_item and target_user_col is not None:
        both, neither = has_item & has_target, ~has_item & ~has_target
        if both.any():
            row = int(np.flatnonzero(both)[0])
            raise InvalidInput(
                f"{p}: both {item_col!r} and {target_user_col!r} are filled at "
                f"{_where(kind, row)}; a row acts on an item or on a user, not both"
            )
        if neither.any():
            row = int(np.flatnonzero(neither)[0])
            raise InvalidInput(
                f"{p}: neither {item_col!r} nor {target_user_col!r} is filled at "
                f"{_where(kind, row)}"
            )

    values = (
        _numbers(frame[value_col], p, kind, value_col)
        if value_col is not None
        else pd.Series(np.full(n, np.nan))
    )
    if action_col is not None:
        actions = _as_text(frame[action_col])
        blank = _blank(actions)
        if blank.any():
            row = int(np.flatnonzero(blank)[0])
            raise InvalidInput(f"{p}: empty action in column {action_col!r} at {_where(kind, row)}")
        actions = actions.astype(str).str.lower()
    elif value_col is not None:
        actions = pd.Series(["rate"] * n, dtype=object)
        if default_action is not None:
            actions[:] = default_action.strip().lower()
        missing = values.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise InvalidInput(f"{p}: empty value in column {value_col!r} at {_where(kind, row)}")
    else:
        assert default_action is not None
        actions = pd.Series([default_action.strip().lower()] * n, dtype=object)

    if time_col is not None:
        times = _parse_times(frame[time_col], p, kind, time_col, time_unit)
    else:
        times = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")

    out = pd.DataFrame(
        {
            "event_id": pd.Series([None] * n, dtype=object),
            "user_id": pd.Series(users.to_numpy(), dtype=object),
            "item_id": pd.Series(items.to_numpy(), dtype=object),
            "target_user_id": pd.Series(targets.to_numpy(), dtype=object),
            "action": pd.Series(actions.to_numpy(dtype=object), dtype=object),
            "value": values.to_numpy(dtype=float),
            "occurred_at": times.reset_index(drop=True),
        }
    )
    hashed = stable_event_ids(out, salt=p.name)
    if event_id_col is not None:
        given = _as_text(frame[event_id_col])
        if (given.str.len() > 128).any():
            row = int(np.flatnonzero((given.str.len() > 128).to_numpy())[0])
            raise InvalidInput(f"{p}: event id longer than 128 characters at {_where(kind, row)}")
        blank = _blank(given)
        out["event_id"] = given.where(~pd.Series(blank), hashed).astype(object)
        dup = out["event_id"].duplicated(keep=False).to_numpy() & ~blank
        if dup.any():
            rows = np.flatnonzero(dup)[:2]
            raise InvalidInput(
                f"{p}: duplicate event id {out['event_id'].iloc[rows[0]]!r} at "
                f"{_where(kind, int(rows[0]))} and {_where(kind, int(rows[1]))}"
            )
    else:
        out["event_id"] = hashed
    for field in _OPTIONAL_INTERACTION_COLS:
        col = named.get(field, field)
        if col in frame.columns:
            if field == "session_id":
                out[field] = pd.Series(_as_text(frame[col]).tolist(), dtype=object)
            else:
                out[field] = _numbers(frame[col], p, kind, col, integer=True).array
        elif field in named:
            _require(frame, col, p, field.replace("_", " "))
    return out


# --- profiles and items --------------------------------------------------------------------


_LIST_FIELDS = {"tags", "seeking"}
_INT_FIELDS = {"age", "age_min", "age_max"}
_FLOAT_FIELDS = {"max_distance_km", "latitude", "longitude"}
_TIME_FIELDS = {"starts_at"}
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _flags(series: pd.Series, path: Path, kind: str, column: str) -> list[bool]:
    """Yes/no cells as booleans, a blank cell as yes (the API's default for ``active``).

    Anything else names its line: a typo must not silently switch a profile off or on.
    """
    flags = []
    for row, value in enumerate(_as_text(series).tolist()):
        text = None if value is None else str(value).lower()
        if text is None or text in _TRUE:
            flags.append(True)
        elif text in _FALSE:
            flags.append(False)
        else:
            raise InvalidInput(
                f"{path}: {_where(kind, row)}, column {column!r}: expected yes/no, "
                f"true/false or 1/0 (got {value!r})"
            )
    return flags


def _cell(value: Any) -> Any:
    """A frame cell as the API would receive it: missing as None, numpy/pandas as Python."""
    if isinstance(value, list | dict):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row_problem(
    exc: ValidationError,
    model: type[BaseModel],
    path: Path,
    kind: str,
    row: int,
    column_of: Callable[[str], str],
) -> str:
    """The model's first complaint about a row, as ``FILE: line N, column 'C': what``.

    A complaint about several fields (``age_min must be <= age_max``) names their columns.
    """
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if loc and loc[0] in model.model_fields:
        inner = "".join(f"[{part}]" for part in loc[1:])
        return (
            f"{path}: {_where(kind, row)}, column {column_of(loc[0])!r}: {message}"
            f"{' at ' + loc[0] + inner if inner else ''} (got {_short(error.get('input'))})"
        )
    fields = [f for f in model.model_fields if re.search(rf"\b{re.escape(f)}\b", message)]
    if not fields:
        return f"{path}: {_where(kind, row)}: {message}"
    label = "column" if len(fields) == 1 else "columns"
    columns = ", ".join(repr(column_of(f)) for f in fields)
    return f"{path}: {_where(kind, row)}, {label} {columns}: {message}"


def _validated(
    frame: pd.DataFrame,
    model: type[BaseModel],
    path: Path,
    kind: str,
    column_of: Callable[[str], str],
) -> pd.DataFrame:
    """Every row through the API's model; the frame of what the model made of them.

    The file is refused at its first bad row, so a load is all or nothing, and what is
    stored is what ``POST /v1/users`` or ``/v1/items`` would have stored (normalised the same
    way). Only the file's own columns come back: a reload never blanks fields it omits.
    """
    columns = list(frame.columns)
    cells = [frame[c].tolist() for c in columns]
    rows: list[dict[str, Any]] = []
    for row, line in enumerate(zip(*cells, strict=True)):
        record = {c: _cell(v) for c, v in zip(columns, line, strict=True)}
        try:
            checked = model.model_validate(record)
        except ValidationError as exc:
            raise InvalidInput(_row_problem(exc, model, path, kind, row, column_of)) from exc
        rows.append(checked.model_dump(include=set(columns)))
    out: dict[str, Any] = {}
    for c in columns:
        values = [r[c] for r in rows]
        if c in _INT_FIELDS:
            out[c] = pd.array(values, dtype="Int64")
        elif c in _FLOAT_FIELDS:
            out[c] = pd.Series([np.nan if v is None else v for v in values], dtype=float)
        elif c in _TIME_FIELDS:
            out[c] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        else:
            out[c] = pd.Series(values, dtype=object)
    return pd.DataFrame(out, columns=columns)


def _read_entities(
    path: str | Path,
    fields: tuple[str, ...],
    id_col: str,
    column_map: Mapping[str, str] | None,
    what: str,
    file_format: FileFormat | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str, Path, list[str]]:
    """Map source columns onto contract fields; return (mapped, source, kind, path, extras)."""
    frame, kind, p = _read_table(path, file_format)
    _require(frame, id_col, p, f"{what} id")
    mapping = {k: v for k, v in (column_map or {}).items() if v != "id"}
    for source, target in mapping.items():
        _require(frame, source, p, f"mapped ({source!r} -> {target!r})")
        if target not in fields:
            raise InvalidInput(
                f"column_map maps {source!r} to {target!r}, which is not a {what} field; "
                f"fields: {', '.join(fields)}"
            )
    mapping[id_col] = "id"
    for col in frame.columns:
        if col not in mapping and col in fields and col not in mapping.values():
            mapping[col] = col
    extras = [c for c in frame.columns if c not in mapping]
    mapped = pd.DataFrame(index=frame.index)
    for source, target in mapping.items():
        mapped[target] = frame[source]
    ids = _ids(frame[id_col], p, kind, f"{what} id", id_col)
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(ids == ids[np.flatnonzero(dup)[0]])[:2]
        raise InvalidInput(
            f"{p}: duplicate {what} id {ids.iloc[rows[0]]!r} at {_where(kind, int(rows[0]))} "
            f"and {_where(kind, int(rows[1]))}"
        )
    mapped["id"] = ids
    return mapped, frame, kind, p, extras


def _convert_fields(
    mapped: pd.DataFrame,
    source: pd.DataFrame,
    kind: str,
    p: Path,
    extras: list[str],
    column_of: Callable[[str], str],
) -> pd.DataFrame:
    """Type each mapped field; unmapped columns become the ``attributes`` dict."""
    out = pd.DataFrame({"id": pd.Series(mapped["id"].to_numpy(dtype=object), dtype=object)})
    for field in mapped.columns:
        if field == "id":
            continue
        col, series = column_of(field), mapped[field]
        if field in _LIST_FIELDS:
            lists = [parse_list(v) for v in series.tolist()]
            if field == "seeking":
                lists = [sorted({v.lower() for v in vals}) for vals in lists]
            out[field] = pd.Series(lists, dtype=object)
        elif field in _INT_FIELDS:
            out[field] = _numbers(series, p, kind, col, integer=True).array
        elif field in _FLOAT_FIELDS:
            out[field] = _numbers(series, p, kind, col).to_numpy()
        elif field in _TIME_FIELDS:
            blank = _blank(series)
            times = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
            if (~blank).any():
                times[~blank] = _parse_times(series[~blank], p, kind, col, None)
            out[field] = times.reset_index(drop=True)
        elif field == "birth_date":
            blank = _blank(series)
            dates = pd.to_datetime(series.where(~blank, None), errors="coerce")
            bad = dates.isna().to_numpy() & ~blank
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InvalidInput(
                    f"{p}: unparseable date {series.iloc[row]!r} in column {col!r} at "
                    f"{_where(kind, row)}"
                )
            out[field] = [None if pd.isna(d) else d.date() for d in dates]
        elif field == "attributes":
            out[field] = [
                _parse_json_dict(v, p, kind, col, r) for r, v in enumerate(series.tolist())
            ]
        elif field == "active":
            out[field] = pd.Series(_flags(series, p, kind, col), dtype=object)
        elif field == "owner_id":
            owners = _ids(series, p, kind, "owner id", col, allow_empty=True)
            out[field] = pd.Series(owners.tolist(), dtype=object)
        else:
            text = _as_text(series)
            if field == "gender":
                text = text.str.lower()
            blank = _blank(text)
            out[field] = pd.Series(
                [None if b else v for v, b in zip(text.tolist(), blank, strict=True)],
                dtype=object,
            )
    extra_cols = {c: _attribute_column(source[c]) for c in extras}
    base = out["attributes"].tolist() if "attributes" in out else [{} for _ in range(len(out))]
    attributes = []
    for r, attrs in enumerate(base):
        merged = dict(attrs)
        for c, values in extra_cols.items():
            v = values[r]
            if v is not None:
                merged[c] = v
        attributes.append(merged)
    out["attributes"] = pd.Series(attributes, dtype=object)
    return out


#: The columns ``load profiles`` recognises; any other column becomes an attribute.
PROFILE_FIELDS = tuple(f for f in UserIn.model_fields if f != "photo_embeddings")
#: The columns ``load items`` recognises; any other column becomes an attribute.
ITEM_FIELDS = tuple(ItemIn.model_fields)


def _id_column(column_map: Mapping[str, str] | None, id_col: str) -> str:
    """The id column: the one mapped onto ``id``, else ``id_col``."""
    return next((k for k, v in (column_map or {}).items() if v == "id"), id_col)


def read_profiles(
    path: str | Path,
    id_col: str = "id",
    column_map: Mapping[str, str] | None = None,
    file_format: FileFormat | None = None,
) -> pd.DataFrame:
    """A users frame from a profile export.

    Columns named like ``UserIn`` fields are taken as they are; ``column_map`` maps other
    source columns to fields (``{"sex": "gender", "interests": "tags"}``); whatever is left
    goes into ``attributes``. List fields accept real lists, JSON lists, "a|b|c" or "a,b".
    Every row must pass ``UserIn``, as ``POST /v1/users`` requires: the first that does not
    refuses the file with its line and column (``people.csv: line 3, column 'age': ...``).
    """
    fields = PROFILE_FIELDS
    id_col = _id_column(column_map, id_col)
    mapped, source, kind, p, extras = _read_entities(
        path, fields, id_col, column_map, "user", file_format
    )
    reverse = {v: k for k, v in (column_map or {}).items()} | {"id": id_col}

    def column_of(field: str) -> str:
        return reverse.get(field, field)

    out = _convert_fields(mapped, source, kind, p, extras, column_of)
    return _validated(out[[f for f in fields if f in out.columns]], UserIn, p, kind, column_of)


def read_items(
    path: str | Path,
    id_col: str = "id",
    column_map: Mapping[str, str] | None = None,
    kind: str | None = None,
    file_format: FileFormat | None = None,
) -> pd.DataFrame:
    """An items frame from an export; like ``read_profiles`` but for ``ItemIn`` fields.

    ``kind`` fills the item kind where the file has no ``kind`` column (default ``item``).
    Every row must pass ``ItemIn``, as ``POST /v1/items`` requires.
    """
    fields = ITEM_FIELDS
    id_col = _id_column(column_map, id_col)
    mapped, source, file_kind, p, extras = _read_entities(
        path, fields, id_col, column_map, "item", file_format
    )
    reverse = {v: k for k, v in (column_map or {}).items()} | {"id": id_col}

    def column_of(field: str) -> str:
        return reverse.get(field, field)

    out = _convert_fields(mapped, source, file_kind, p, extras, column_of)
    if "kind" not in out.columns:
        out["kind"] = pd.Series([kind or "item"] * len(out), dtype=object)
    elif kind is not None:
        out["kind"] = pd.Series([k or kind for k in out["kind"].tolist()], dtype=object)
    out = out[[f for f in fields if f in out.columns]]
    return _validated(out, ItemIn, p, file_kind, column_of)


# --- OkCupid -------------------------------------------------------------------------------

_OKCUPID_GENDER = {"m": "man", "f": "woman"}


def _okcupid_seeking(sex: str | None, orientation: str | None) -> list[str]:
    gender = _OKCUPID_GENDER.get(sex or "")
    if gender is None:
        return []
    if orientation == "bisexual":
        return ["man", "woman"]
    if orientation == "gay":
        return [gender]
    if orientation == "straight":
        return ["woman" if gender == "man" else "man"]
    return []


def read_okcupid(path: str | Path, default_city: str | None = None) -> pd.DataFrame:
    """The OkCupid profiles (Kim & Escobedo-Land; zip or CSV) as a users frame.

    Ids are ``ok1``, ``ok2``, ... in file order; sex m/f becomes gender man/woman;
    orientation with sex gives ``seeking``; ``location`` (2015 release only) gives the city;
    essays (2015 release only) are joined into the bio; every other field, with HTML
    entities unescaped and ``income`` -1 ("rather not say") dropped, goes into ``attributes``.
    The 2021 release has no location (all profiles are near San Francisco): pass
    ``default_city`` to fill it.
    """
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{p}: file not found")
    if not p.name.lower().endswith((".csv", ".zip", ".csv.gz")):
        raise InvalidInput(f"{p}: unknown file type; expected the OkCupid .csv or .csv.zip")
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise InvalidInput(f"{p}: cannot read the OkCupid profiles: {exc}") from exc
    for col in ("age", "sex", "orientation"):
        _require(frame, col, p, "OkCupid")
    n = len(frame)
    cells: dict[str, np.ndarray] = {}
    for col in frame.columns:
        codes, uniques = pd.factorize(frame[col])
        cleaned = np.array(
            [html.unescape(u).strip() or None for u in uniques] + [None], dtype=object
        )
        cells[col] = cleaned[codes]  # code -1 (missing) picks the trailing None
    ages = _numbers(pd.Series(cells["age"]), p, "csv", "age", integer=True)
    sex, orientation = cells["sex"], cells["orientation"]
    essays = sorted(
        (c for c in frame.columns if re.fullmatch(r"essay\d+", c)), key=lambda c: int(c[5:])
    )
    attr_cols = [
        c
        for c in frame.columns
        if c not in ("age", "sex", "location", "last_online") and c not in essays
    ]
    numeric = {"height": float, "income": int}
    attributes: list[dict[str, Any]] = []
    for r in range(n):
        attrs: dict[str, Any] = {}
        for c in attr_cols:
            v = cells[c][r]
            if v is None:
                continue
            if c in numeric:
                try:
                    num = numeric[c](float(v))
                except ValueError:
                    continue
                if c == "income" and num < 0:
                    continue
                attrs[c] = num
            else:
                attrs[c] = v
        attributes.append(attrs)
    city: list[str | None] = [default_city] * n
    if "location" in frame.columns:
        city = [
            default_city if v is None else v.split(",")[0].strip().title()
            for v in cells["location"]
        ]
    bios: list[str | None] = [None] * n
    if essays:
        bios = [
            " ".join(cells[c][r] for c in essays if cells[c][r] is not None)[:5000] or None
            for r in range(n)
        ]
    return pd.DataFrame(
        {
            "id": pd.Series([f"ok{k + 1}" for k in range(n)], dtype=object),
            "age": ages.array,
            "gender": pd.Series([_OKCUPID_GENDER.get(s or "") for s in sex], dtype=object),
            "seeking": pd.Series(
                [_okcupid_seeking(s, o) for s, o in zip(sex, orientation, strict=True)],
                dtype=object,
            ),
            "city": pd.Series(city, dtype=object),
            "bio": pd.Series(bios, dtype=object),
            "tags": pd.Series([[] for _ in range(n)], dtype=object),
            "attributes": pd.Series(attributes, dtype=object),
        }
    )


# --- events --------------------------------------------------------------------------------

#: The union's tags pydantic puts in an error's location: noise for a person.
_EVENT_TAGS = frozenset({"interaction", "impression", "swipe_batch", "match"})
_EVENTS = TypeAdapter(Event)


def _event_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    parts = [str(p) for p in error["loc"] if str(p) not in _EVENT_TAGS]
    field = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts).lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{field + ': ' if field else ''}{message}{extra}"


def read_events(path: str | Path) -> tuple[list[Event], list[str]]:
    """Events as ``POST /v1/events`` takes them, from a JSON lines file (one event a line)
    or a JSON file (a list, or the request body ``{"events": [...]}``); with where each
    one is (``events.jsonl: line 3``) for messages. The first event the API would refuse
    refuses the file, naming its line and field."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{p}: file not found")
    name = p.name.lower()
    opener = _OPENERS.get(p.suffix.lower(), open)
    try:
        with opener(p, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{p}: cannot read: {exc}") from exc
    raw: list[tuple[str, Any]] = []
    if name.endswith(_JSONL_SUFFIXES):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw.append((f"{p}: line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{p}: line {number}: not JSON: {exc.msg}") from exc
    elif name.endswith((".json", ".json.gz")):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{p}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from exc
        if isinstance(loaded, dict) and isinstance(loaded.get("events"), list):
            loaded = loaded["events"]
        if not isinstance(loaded, list):
            raise InvalidInput(f'{p}: expected a list of events or {{"events": [...]}}')
        raw = [(f"{p}: events[{i}]", event) for i, event in enumerate(loaded)]
    else:
        suffix = "".join(p.suffixes) or "(none)"
        raise InvalidInput(f"{p}: unknown file type {suffix!r}; events come as .jsonl or .json")
    if not raw:
        raise InvalidInput(f"{p}: no events in the file")
    events: list[Event] = []
    for where, value in raw:
        try:
            events.append(_EVENTS.validate_python(value))
        except ValidationError as exc:
            raise InvalidInput(f"{where}: {_event_problem(exc)}") from exc
    return events, [where for where, _ in raw]
