"""Read any of the three MovieLens folder layouts (100K, 1M, latest/25M/32M) into a DataBundle.

The layout is recognised from the file names. Ids stay the dataset's own ("1", "2", ...),
ratings become ``rate`` interactions whose ``value`` is the rating, and genres become item
tags. Files are parsed by pandas' C reader (``::`` separators are rewritten to one byte
first), so ML-100K loads in a fraction of a second; a malformed file is re-scanned line by
line only to name the first bad line.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from matchwise.data.bundle import DataBundle
from matchwise.errors import InvalidInput

__all__ = ["LAYOUTS", "detect_layout", "ratings_frame", "read_movielens"]

log = logging.getLogger(__name__)

#: The files each layout needs, keyed by layout name.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "latest": ("ratings.csv", "movies.csv"),
}

GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

#: Genre markers that mean "no genre" rather than a genre.
NO_GENRE = frozenset({"unknown", "(no genres listed)"})

OCCUPATIONS_1M = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

AGE_GROUPS_1M = {
    1: "Under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}

_UNIT_SEPARATOR = "\x1f"  # stands in for "::" so the C parser can read 1M files


@dataclass(frozen=True)
class _FileSpec:
    """How one MovieLens file is laid out, enough to parse it and to explain a bad line."""

    name: str
    sep: str
    columns: tuple[str, ...]
    numeric: dict[str, str] = field(default_factory=dict)
    #: never empty; the last column is always among them, so a short line shows as a gap
    required: tuple[str, ...] = ()
    header: tuple[str, ...] | None = None  # the expected header line, if the file has one
    encoding: str = "latin-1"


_RATING_COLUMNS = ("user", "item", "rating", "ts")
_RATING_TYPES = {"user": "int64", "item": "int64", "rating": "float64", "ts": "int64"}

_SPECS: dict[str, _FileSpec] = {
    "u.data": _FileSpec("u.data", "\t", _RATING_COLUMNS, _RATING_TYPES, _RATING_COLUMNS),
    "u.item": _FileSpec(
        "u.item",
        "|",
        ("id", "title", "release_date", "video_release", "url", *[f"g{i}" for i in range(19)]),
        {"id": "int64", **{f"g{i}": "int64" for i in range(19)}},
        ("id", *[f"g{i}" for i in range(19)]),
    ),
    "u.user": _FileSpec(
        "u.user",
        "|",
        ("id", "age", "gender", "occupation", "zip"),
        {"id": "int64", "age": "int64"},
        ("id", "age", "gender", "zip"),
    ),
    "ratings.dat": _FileSpec("ratings.dat", "::", _RATING_COLUMNS, _RATING_TYPES, _RATING_COLUMNS),
    "movies.dat": _FileSpec(
        "movies.dat", "::", ("id", "title", "genres"), {"id": "int64"}, ("id", "title", "genres")
    ),
    "users.dat": _FileSpec(
        "users.dat",
        "::",
        ("id", "gender", "age", "occupation", "zip"),
        {"id": "int64", "age": "int64", "occupation": "int64"},
        ("id", "gender", "age", "occupation", "zip"),
    ),
    "ratings.csv": _FileSpec(
        "ratings.csv",
        ",",
        _RATING_COLUMNS,
        _RATING_TYPES,
        _RATING_COLUMNS,
        header=("userId", "movieId", "rating", "timestamp"),
        encoding="utf-8",
    ),
    "movies.csv": _FileSpec(
        "movies.csv",
        ",",
        ("id", "title", "genres"),
        {"id": "int64"},
        ("id", "title", "genres"),
        header=("movieId", "title", "genres"),
        encoding="utf-8",
    ),
}


# --- layout detection ---------------------------------------------------------------------------
def detect_layout(path: str | Path) -> tuple[str, Path]:
    """The layout name and the folder holding its files (``path`` or its only matching child)."""
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidInput(f"MovieLens folder {folder} does not exist or is not a folder")
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        for layout, files in LAYOUTS.items():
            if (candidate / files[0]).is_file():
                missing = [name for name in files if not (candidate / name).is_file()]
                if missing:
                    raise InvalidInput(
                        f"{candidate} looks like MovieLens {layout} but lacks {', '.join(missing)}"
                        f" (expected {', '.join(files)})"
                    )
                return layout, candidate
    expected = "; ".join(f"{layout}: {', '.join(files)}" for layout, files in LAYOUTS.items())
    raise InvalidInput(f"{folder} holds no MovieLens data set; expected one of [{expected}]")


# --- parsing ----------------------------------------------------------------------------------
def _read(folder: Path, name: str) -> pd.DataFrame:
    """Parse one file by its spec; any malformed line raises InvalidInput naming it."""
    spec = _SPECS[name]
    path = folder / name
    if spec.header is not None:
        with path.open(encoding=spec.encoding, newline="") as handle:
            first = next(csv.reader(handle), [])
        if tuple(cell.strip() for cell in first) != spec.header:
            raise InvalidInput(
                f"{path}, line 1: expected the header {','.join(spec.header)!r}, "
                f"found {','.join(first)!r}"
            )
    options: dict[str, object] = {
        "header": 0 if spec.header is not None else None,
        "names": list(spec.columns),
        "dtype": {c: spec.numeric.get(c, "str") for c in spec.columns},
        "engine": "c",
        "keep_default_na": False,
        "na_values": [""],
    }
    if spec.header is None:
        options["quoting"] = csv.QUOTE_NONE
    try:
        if spec.sep == "::":
            text = path.read_text(encoding=spec.encoding).replace("::", _UNIT_SEPARATOR)
            frame = pd.read_csv(io.StringIO(text), sep=_UNIT_SEPARATOR, **options)  # type: ignore[arg-type]
        else:
            frame = pd.read_csv(path, sep=spec.sep, encoding=spec.encoding, **options)  # type: ignore[arg-type]
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(_locate_bad_line(path, spec) or f"{path} is malformed: {exc}") from exc
    if len(spec.required) and frame[list(spec.required)].isna().to_numpy().any():
        raise InvalidInput(_locate_bad_line(path, spec) or f"{path} has missing fields")
    return frame


def _locate_bad_line(path: Path, spec: _FileSpec) -> str | None:
    """Scan the file line by line (the slow path, only after pandas failed) for the first fault."""
    converters: dict[str, Callable[[str], object]] = {
        c: (float if kind.startswith("float") else int) for c, kind in spec.numeric.items()
    }
    position = {c: i for i, c in enumerate(spec.columns)}
    try:
        with path.open(encoding=spec.encoding, newline="") as handle:
            if spec.header is not None:
                reader = csv.reader(handle)
                rows = ((reader.line_num, row) for row in reader)
            else:
                rows = (
                    (number, line.rstrip("\r\n").split(spec.sep))
                    for number, line in enumerate(handle, start=1)
                )
            for number, row in rows:
                if spec.header is not None and number == 1:
                    continue
                if not any(cell.strip() for cell in row):
                    continue  # blank lines are skipped, as pandas skips them
                if len(row) != len(spec.columns):
                    return (
                        f"{path}, line {number}: expected {len(spec.columns)} fields "
                        f"separated by {spec.sep!r}, found {len(row)}"
                    )
                for column in spec.required:
                    if not row[position[column]].strip():
                        return f"{path}, line {number}: field {column!r} is empty"
                for column, convert in converters.items():
                    value = row[position[column]]
                    if column not in spec.required and not value.strip():
                        continue
                    try:
                        convert(value)
                    except ValueError:
                        return f"{path}, line {number}: field {column!r} is not a number: {value!r}"
    except UnicodeDecodeError as exc:
        return f"{path}: not valid {spec.encoding} text ({exc})"
    return None


def _genre_names_100k(folder: Path) -> list[str]:
    """Genre names by flag position, from u.genre when present (``name|index`` lines)."""
    path = folder / "u.genre"
    if not path.is_file():
        return list(GENRES_100K)
    names = dict(enumerate(GENRES_100K))
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        name, _, index = line.rpartition("|")
        try:
            names[int(index)] = name
        except ValueError as exc:
            raise InvalidInput(
                f"{path}, line {number}: expected 'name|index', got {line!r}"
            ) from exc
    return [names[i] for i in sorted(names)]


def _tags(genres: list[list[str]]) -> tuple[list[list[str]], list[str | None]]:
    tags = [[g for g in row if g and g not in NO_GENRE] for row in genres]
    return tags, [row[0] if row else None for row in tags]


def _interactions(ratings: pd.DataFrame) -> pd.DataFrame:
    users = ratings["user"].astype(str)
    items = ratings["item"].astype(str)
    ts = ratings["ts"].astype("int64")
    return pd.DataFrame(
        {
            "event_id": "ml-" + users + "-" + items + "-" + ts.astype(str),
            "user_id": users,
            "action": "rate",
            "item_id": items,
            "target_user_id": None,
            "value": ratings["rating"].astype("float64"),
            "occurred_at": pd.to_datetime(ts, unit="s", utc=True),
        }
    )


def _items(ids: pd.Series, titles: pd.Series, genres: list[list[str]]) -> pd.DataFrame:
    tags, category = _tags(genres)
    return pd.DataFrame(
        {
            "id": ids.astype(str).to_numpy(),
            "kind": "movie",
            "title": titles.to_numpy(),
            "category": category,
            "tags": tags,
        }
    )


def _read_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read(folder, "u.data")
    raw_items = _read(folder, "u.item")
    raw_users = _read(folder, "u.user")
    names = _genre_names_100k(folder)
    flags = raw_items[[f"g{i}" for i in range(19)]].to_numpy() > 0
    genres = [[names[j] for j in np.flatnonzero(row)] for row in flags]
    items = _items(raw_items["id"], raw_items["title"], genres)
    released = pd.to_datetime(raw_items["release_date"], format="%d-%b-%Y", errors="coerce")
    items["attributes"] = [
        {k: v for k, v in (("release_date", d), ("imdb_url", u)) if isinstance(v, str) and v}
        for d, u in zip(
            released.dt.strftime("%Y-%m-%d").tolist(), raw_items["url"].tolist(), strict=True
        )
    ]
    users = pd.DataFrame(
        {
            "id": raw_users["id"].astype(str).to_numpy(),
            "age": raw_users["age"].astype("Int64").to_numpy(),
            "gender": raw_users["gender"].str.lower().to_numpy(),
            "attributes": [
                {"occupation": o, "zip": z}
                for o, z in zip(raw_users["occupation"], raw_users["zip"], strict=True)
            ],
        }
    )
    return users, items, _interactions(ratings)


def _read_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read(folder, "ratings.dat")
    raw_items = _read(folder, "movies.dat")
    raw_users = _read(folder, "users.dat")
    items = _items(raw_items["id"], raw_items["title"], _split_genres(raw_items["genres"]))
    items["attributes"] = [{} for _ in range(len(items))]
    ages = raw_users["age"].to_numpy()
    occupations = raw_users["occupation"].to_numpy()
    users = pd.DataFrame(
        {
            "id": raw_users["id"].astype(str).to_numpy(),
            # the 1M age is a bucket's lower bound; "1" means under 18, so no usable age
            "age": pd.array([int(a) if a >= 18 else pd.NA for a in ages], dtype="Int64"),
            "gender": raw_users["gender"].str.lower().to_numpy(),
            "attributes": [
                {
                    "occupation": OCCUPATIONS_1M[o] if 0 <= o < len(OCCUPATIONS_1M) else str(o),
                    "zip": z,
                    "age_group": AGE_GROUPS_1M.get(int(a), str(a)),
                }
                for o, z, a in zip(occupations, raw_users["zip"], ages, strict=True)
            ],
        }
    )
    return users, items, _interactions(ratings)


def _read_latest(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read(folder, "ratings.csv")
    raw_items = _read(folder, "movies.csv")
    items = _items(raw_items["id"], raw_items["title"], _split_genres(raw_items["genres"]))
    items["attributes"] = [{} for _ in range(len(items))]
    ids = pd.unique(ratings["user"])
    users = pd.DataFrame(
        {
            "id": np.sort(ids).astype(str),
            "age": pd.array([pd.NA] * len(ids), dtype="Int64"),
            "gender": [None] * len(ids),
            "attributes": [{} for _ in range(len(ids))],
        }
    )
    return users, items, _interactions(ratings)


def _split_genres(genres: pd.Series) -> list[list[str]]:
    return [g.split("|") if isinstance(g, str) else [] for g in genres.tolist()]


_READERS = {"100k": _read_100k, "1m": _read_1m, "latest": _read_latest}


def read_movielens(path: str | Path) -> DataBundle:
    """Read a MovieLens folder (100K, 1M or latest layout) into a :class:`DataBundle`.

    Raises :class:`InvalidInput` naming the folder and the expected files when no layout
    matches, or naming the file and line number of the first malformed line.
    """
    layout, folder = detect_layout(path)
    users, items, interactions = _READERS[layout](folder)
    if interactions["event_id"].duplicated().any():
        duplicated = interactions.loc[interactions["event_id"].duplicated(), "event_id"].iloc[0]
        raise InvalidInput(f"{folder} rates one movie twice at one time: {duplicated}")
    log.info(
        "read MovieLens %s from %s: %d users, %d items, %d ratings",
        layout,
        folder,
        len(users),
        len(items),
        len(interactions),
    )
    return DataBundle(
        users=users,
        items=items,
        interactions=interactions,
        name=folder.name,
        domain="items",
        meta={"source": "movielens", "layout": layout, "path": str(folder)},
    )


def ratings_frame(bundle: DataBundle) -> pd.DataFrame:
    """The bundle's ratings as an interaction frame for splits and models.

    Columns ``user_id, item_id, rating, label, timestamp`` (Unix seconds); ``label`` is 1
    for every rating: which ratings count as positives is the protocol's choice
    (``recbole_split`` keeps ratings >= 3).
    """
    rates = bundle.interactions
    rates = rates.loc[rates["action"] == "rate"]
    occurred = pd.to_datetime(rates["occurred_at"], utc=True)
    seconds = (occurred - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return pd.DataFrame(
        {
            "user_id": rates["user_id"].to_numpy(),
            "item_id": rates["item_id"].to_numpy(),
            "rating": rates["value"].to_numpy(dtype=np.float64),
            "label": np.ones(len(rates), dtype=np.float32),
            "timestamp": seconds.to_numpy(dtype=np.int64),
        }
    )
