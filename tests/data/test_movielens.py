"""The MovieLens reader on all three layouts: real 100K, hand-written 1M and latest fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from matchwise.data.movielens import ratings_frame, read_movielens
from matchwise.errors import InvalidInput
from tests.conftest import MOVIELENS_100K as ML_100K

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _check_interactions(frame: pd.DataFrame) -> None:
    assert (frame["action"] == "rate").all()
    assert frame["event_id"].is_unique
    assert frame["target_user_id"].isna().all()
    assert frame["item_id"].notna().all()
    assert str(frame["occurred_at"].dt.tz) == "UTC"
    assert frame["value"].dtype == "float64"


@pytest.mark.skipif(not ML_100K.is_dir(), reason="MovieLens 100K is not on this machine")
def test_reads_100k() -> None:
    """Every rating, user and film of the real file, with its fields (how fast it reads
    is a benchmark's business, not a test's)."""
    bundle = read_movielens(ML_100K)
    assert bundle.meta["layout"] == "100k"
    assert len(bundle.interactions) == 100_000
    assert len(bundle.users) == 943 and len(bundle.items) == 1682
    assert bundle.interactions["user_id"].nunique() == 943
    assert bundle.interactions["item_id"].nunique() == 1682
    _check_interactions(bundle.interactions)
    first = bundle.interactions.iloc[0]
    assert (first.user_id, first.item_id, first.value) == ("196", "242", 3.0)
    assert first.event_id == "ml-196-242-881250949"
    assert first.occurred_at == pd.Timestamp(881250949, unit="s", tz="UTC")
    user = bundle.users.set_index("id").loc["1"]
    assert (user.age, user.gender) == (24, "m")
    assert user.attributes == {"occupation": "technician", "zip": "85711"}
    toy_story = bundle.items.set_index("id").loc["1"]
    assert toy_story.title == "Toy Story (1995)" and toy_story.kind == "movie"
    assert toy_story.tags == ["Animation", "Children's", "Comedy"]
    assert toy_story.category == "Animation"


def test_reads_1m_layout() -> None:
    bundle = read_movielens(FIXTURES / "movielens-1m")
    assert bundle.meta["layout"] == "1m"
    assert len(bundle.interactions) == 13 and len(bundle.users) == 5 and len(bundle.items) == 6
    _check_interactions(bundle.interactions)
    users = bundle.users.set_index("id")
    assert users.loc["1", "gender"] == "f"
    assert pd.isna(users.loc["1", "age"])  # "1" is the under-18 bucket
    assert users.loc["1", "attributes"]["age_group"] == "Under 18"
    assert users.loc["2", "age"] == 56
    assert users.loc["2", "attributes"]["occupation"] == "self-employed"
    assert users.loc["4", "attributes"]["zip"] == "02460"  # leading zero kept
    items = bundle.items.set_index("id")
    assert items.loc["2355", "title"] == "Bug's Life, A (1998)"
    assert items.loc["2355", "tags"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["73", "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    rating = bundle.interactions.set_index("event_id").loc["ml-3-1193-978297039"]
    assert (rating.user_id, rating.item_id, rating.value) == ("3", "1193", 1.0)


def test_reads_latest_layout() -> None:
    bundle = read_movielens(FIXTURES / "movielens-latest")
    assert bundle.meta["layout"] == "latest"
    assert len(bundle.interactions) == 12 and len(bundle.items) == 5
    assert sorted(bundle.users["id"]) == ["1", "2", "3", "4", "5"]
    assert bundle.users["gender"].isna().all()
    _check_interactions(bundle.interactions)
    assert bundle.interactions["value"].tolist()[3] == 3.5
    items = bundle.items.set_index("id")
    assert items.loc["11", "title"] == "American President, The (1995)"
    assert items.loc["200000", "title"] == 'Café "Noir" (2020)'
    assert items.loc["200000", "tags"] == [] and pd.isna(items.loc["200000", "category"])
    assert items.loc["6", "category"] == "Action"


def test_ratings_frame() -> None:
    frame = ratings_frame(read_movielens(FIXTURES / "movielens-latest"))
    assert list(frame.columns) == ["user_id", "item_id", "rating", "label", "timestamp"]
    assert frame["timestamp"].iloc[0] == 964982703
    assert (frame["label"] == 1.0).all()


def test_finds_the_layout_in_the_only_child_folder(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "movielens-1m", tmp_path / "ml-1m")
    assert read_movielens(tmp_path).meta["layout"] == "1m"


def test_unknown_folder_names_expected_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match="u.data") as info:
        read_movielens(tmp_path)
    assert str(tmp_path) in str(info.value) and "ratings.csv" in str(info.value)
    with pytest.raises(InvalidInput, match="does not exist"):
        read_movielens(tmp_path / "missing")


def test_incomplete_layout_names_missing_file(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "movielens-latest" / "ratings.csv", tmp_path)
    with pytest.raises(InvalidInput, match="movies.csv"):
        read_movielens(tmp_path)


@pytest.mark.parametrize(
    ("name", "line", "bad", "message"),
    [
        ("ratings.dat", 4, "2::1193::four::978298413", "not a number"),
        ("ratings.dat", 2, "1::661::3", "expected 4 fields"),
        ("ratings.dat", 5, "2::3408::4::978298792::9", "expected 4 fields"),
        ("users.dat", 3, "3::M::25::15", "expected 5 fields"),
    ],
)
def test_malformed_line_is_named(
    tmp_path: Path, name: str, line: int, bad: str, message: str
) -> None:
    folder = tmp_path / "ml"
    shutil.copytree(FIXTURES / "movielens-1m", folder)
    lines = (folder / name).read_text(encoding="latin-1").splitlines()
    lines[line - 1] = bad
    (folder / name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(InvalidInput, match=message) as info:
        read_movielens(folder)
    assert f"{name}, line {line}" in str(info.value)


def test_malformed_csv_line_and_header(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    shutil.copytree(FIXTURES / "movielens-latest", folder)
    path = folder / "ratings.csv"
    lines = path.read_text().splitlines()
    lines[3] = "1,6,,964982224"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=r"ratings.csv, line 4: field 'rating' is empty"):
        read_movielens(folder)
    lines[0] = "user,movie,rating,timestamp"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=r"ratings.csv, line 1: expected the header"):
        read_movielens(folder)
