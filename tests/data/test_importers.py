"""Importers: users' own CSV/Parquet exports become DataBundle frames, or a precise error."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchwise.data.importers import (
    FileFormat,
    column_map,
    file_format,
    parse_list,
    read_interactions,
    read_items,
    read_okcupid,
    read_profiles,
    row_numbering,
    stable_event_ids,
)
from matchwise.data.synthetic import generate_people
from matchwise.errors import InvalidInput
from matchwise.schemas import ItemIn, UserIn

OKCUPID = Path("/work/shared/data/okcupid-profiles/profiles_revised.csv.zip")
COLUMNS = ["event_id", "user_id", "item_id", "target_user_id", "action", "value", "occurred_at"]


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def _none(value: object) -> object:
    if isinstance(value, list | dict):
        return value
    return None if pd.isna(value) else value


# --- interactions ---------------------------------------------------------------------------


def test_csv_with_actions_and_iso_times(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.csv",
        """
user_id,item_id,action,timestamp,session_id
u1,i1,click,2024-05-01T12:00:00Z,s1
u2,i2,Register,2024-05-01 14:00:00+02:00,
""",
    )
    frame = read_interactions(path)
    assert list(frame.columns[:7]) == COLUMNS
    assert frame["user_id"].tolist() == ["u1", "u2"]
    assert frame["item_id"].tolist() == ["i1", "i2"]
    assert frame["target_user_id"].tolist() == [None, None]
    assert frame["action"].tolist() == ["click", "register"]
    assert frame["value"].isna().all()
    assert str(frame["occurred_at"].dt.tz) == "UTC"
    assert frame["occurred_at"].tolist() == [pd.Timestamp("2024-05-01 12:00", tz="UTC")] * 2
    assert frame["session_id"].tolist() == ["s1", None]
    assert frame["event_id"].is_unique and frame["event_id"].str.startswith("ev_").all()


def test_event_ids_are_stable_and_distinct_for_identical_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "dupes.csv", "user_id,item_id,action\nu1,i1,view\nu1,i1,view\n")
    first, second = read_interactions(path), read_interactions(path)
    assert first["event_id"].tolist() == second["event_id"].tolist()
    assert first["event_id"].is_unique
    assert first["occurred_at"].isna().all()  # no time column: the store stamps arrival


def test_given_event_ids_are_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ids.csv", "event_id,user_id,item_id,action\nabc,u1,i1,view\n,u1,i2,view\n"
    )
    frame = read_interactions(path, event_id_col="event_id")
    assert frame["event_id"].iloc[0] == "abc"
    assert frame["event_id"].iloc[1].startswith("ev_")


def test_parquet_ratings_with_epoch_ms_and_integer_ids(tmp_path: Path) -> None:
    path = tmp_path / "ratings.parquet"
    pd.DataFrame(
        {
            "userId": [1, 2, 2],
            "movieId": [10, 11, 12],
            "rating": [4.5, 3.0, 1.0],
            "ts": [1_700_000_000_000, 1_700_000_100_000, 1_700_000_200_000],
        }
    ).to_parquet(path)
    frame = read_interactions(path, user_col="userId", item_col="movieId", value_col="rating")
    assert frame["user_id"].tolist() == ["1", "2", "2"]
    assert frame["item_id"].tolist() == ["10", "11", "12"]
    assert frame["action"].tolist() == ["rate"] * 3
    assert frame["value"].tolist() == [4.5, 3.0, 1.0]
    assert frame["occurred_at"].iloc[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")


def test_epoch_units_auto_and_explicit(tmp_path: Path) -> None:
    path = write(
        tmp_path / "epochs.tsv", "user_id\titem_id\taction\tts\nu1\ti1\tview\t1700000000\n"
    )
    assert read_interactions(path)["occurred_at"].iloc[0] == pd.Timestamp(
        "2023-11-14 22:13:20", tz="UTC"
    )
    ms = read_interactions(path, time_unit="ms")["occurred_at"].iloc[0]
    assert ms == pd.Timestamp(1_700_000_000, unit="ms", tz="UTC")


def test_native_parquet_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "native.parquet"
    pd.DataFrame(
        {
            "user_id": ["a"],
            "item_id": ["b"],
            "occurred_at": pd.to_datetime(["2024-01-02 03:04:05"]),
        }
    ).to_parquet(path)
    frame = read_interactions(path, default_action="view")
    assert frame["occurred_at"].iloc[0] == pd.Timestamp("2024-01-02 03:04:05", tz="UTC")
    assert frame["action"].iloc[0] == "view"


def test_gzipped_csv_and_people_swipes(tmp_path: Path) -> None:
    path = tmp_path / "swipes.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("swiper,swiped,decision,when\nu1,u2,LIKE,2024-01-01\nu2,u1,pass,2024-01-02\n")
    frame = read_interactions(
        path, user_col="swiper", target_user_col="swiped", action_col="decision", time_col="when"
    )
    assert frame["target_user_id"].tolist() == ["u2", "u1"]
    assert frame["item_id"].tolist() == [None, None]
    assert frame["action"].tolist() == ["like", "pass"]


def test_mixed_items_and_people_in_one_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.csv",
        "user_id,item_id,target_user_id,action\nu1,i1,,view\nu1,,u2,like\n",
    )
    frame = read_interactions(path, target_user_col="target_user_id")
    assert frame["item_id"].tolist() == ["i1", None]
    assert frame["target_user_id"].tolist() == [None, "u2"]


def test_generated_bundle_round_trips_through_parquet(tmp_path: Path) -> None:
    bundle = generate_people(n_users=60, n_swipes=400, seed=3)
    path = tmp_path / "swipes.parquet"
    bundle.interactions.to_parquet(path)
    frame = read_interactions(path, target_user_col="target_user_id", event_id_col="event_id")
    pd.testing.assert_frame_equal(frame, bundle.interactions, check_dtype=False)


def test_stable_event_ids_depend_on_content_and_salt() -> None:
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"], "action": ["view"] * 2})
    ids = stable_event_ids(frame)
    assert ids.is_unique
    assert ids.tolist() == stable_event_ids(frame.copy()).tolist()
    assert ids.tolist() != stable_event_ids(frame, salt="other").tolist()


# --- interaction errors ---------------------------------------------------------------------


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    return write(
        tmp_path / "good.csv",
        "user_id,item_id,action,timestamp\nu1,i1,click,2024-05-01T12:00:00Z\n",
    )


def test_missing_column_names_it_and_lists_the_available_ones(good_csv: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        read_interactions(good_csv, user_col="customer")
    message = str(err.value)
    assert "missing user column 'customer'" in message
    assert "available columns: 'user_id', 'item_id', 'action', 'timestamp'" in message
    with pytest.raises(InvalidInput, match="missing time column 'when'"):
        read_interactions(good_csv, time_col="when")
    with pytest.raises(InvalidInput, match="missing item column 'movie'"):
        read_interactions(good_csv, item_col="movie")


def test_unparseable_time_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad_time.csv",
        "user_id,item_id,action,timestamp\n"
        "u1,i1,click,2024-05-01T12:00:00Z\n"
        "u2,i2,click,2024-05-01\n"
        "u3,i3,click,yesterday\n",
    )
    with pytest.raises(InvalidInput) as err:
        read_interactions(path)
    assert "unparseable time 'yesterday' in column 'timestamp' at line 4" in str(err.value)
    assert str(path) in str(err.value)


def test_empty_time_and_wrong_unit(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "user_id,item_id,action,ts\nu1,i1,view,\n")
    with pytest.raises(InvalidInput, match="empty time in column 'ts' at line 2"):
        read_interactions(path)
    path = write(tmp_path / "u.csv", "user_id,item_id,action,ts\nu1,i1,view,2024-01-01\n")
    with pytest.raises(InvalidInput, match="time_unit='s' expects epoch numbers"):
        read_interactions(path, time_unit="s")
    with pytest.raises(InvalidInput, match="time_unit must be one of"):
        read_interactions(path, time_unit="days")


def test_empty_user_id_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "no_user.csv", "user_id,item_id,action\nu1,i1,view\n ,i2,view\n")
    with pytest.raises(InvalidInput, match="empty user id in column 'user_id' at line 3"):
        read_interactions(path)


def test_invalid_id_characters(tmp_path: Path) -> None:
    path = write(tmp_path / "space.csv", "user_id,item_id,action\nu1,item one,view\n")
    with pytest.raises(InvalidInput, match="invalid item id 'item one' .* at line 2"):
        read_interactions(path)


def test_parquet_errors_count_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pd.DataFrame(
        {"user_id": ["a", None], "item_id": ["x", "y"], "action": ["view"] * 2}
    ).to_parquet(path)
    with pytest.raises(InvalidInput, match="empty user id in column 'user_id' at row 2"):
        read_interactions(path)


@pytest.mark.parametrize("name", ["events.xlsx", "events.json", "events"])
def test_unknown_file_type(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "whatever")
    with pytest.raises(InvalidInput, match="unknown file type"):
        read_interactions(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="file not found"):
        read_interactions(tmp_path / "nope.csv")
    with pytest.raises(InvalidInput, match="the file is empty"):
        read_interactions(write(tmp_path / "empty.csv", ""))


def test_no_action_source(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.csv", "user_id,item_id\nu1,i1\n")
    with pytest.raises(InvalidInput, match="no action: give action_col, value_col"):
        read_interactions(path)
    assert read_interactions(path, default_action="Favorite")["action"].tolist() == ["favorite"]


def test_empty_action_and_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "user_id,item_id,action\nu1,i1,\n")
    with pytest.raises(InvalidInput, match="empty action in column 'action' at line 2"):
        read_interactions(path)
    path = write(tmp_path / "v.csv", "user_id,item_id,rating\nu1,i1,4\nu1,i2,five\n")
    with pytest.raises(InvalidInput, match="'rating' must be a number, got 'five' at line 3"):
        read_interactions(path)


def test_rows_must_name_exactly_one_target(tmp_path: Path) -> None:
    path = write(tmp_path / "both.csv", "user_id,item_id,target_user_id,action\nu1,i1,u2,like\n")
    with pytest.raises(InvalidInput, match="both 'item_id' and 'target_user_id' are filled"):
        read_interactions(path, target_user_col="target_user_id")
    path = write(tmp_path / "none.csv", "user_id,item_id,target_user_id,action\nu1,,,like\n")
    with pytest.raises(InvalidInput, match="neither 'item_id' nor 'target_user_id'"):
        read_interactions(path, target_user_col="target_user_id")


def test_duplicate_given_event_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dup.csv", "event_id,user_id,item_id,action\ne1,u1,i1,view\ne1,u1,i2,view\n"
    )
    with pytest.raises(InvalidInput, match="duplicate event id 'e1' at line 2 and line 3"):
        read_interactions(path, event_id_col="event_id")


# --- profiles and items ---------------------------------------------------------------------


def test_parse_list_formats() -> None:
    assert parse_list("a|b|c") == ["a", "b", "c"]
    assert parse_list("a, b") == ["a", "b"]
    assert parse_list("a; b;") == ["a", "b"]
    assert parse_list('["x y", "z"]') == ["x y", "z"]
    assert parse_list("['x', 'y']") == ["x", "y"]
    assert parse_list(["p", "p", "q"]) == ["p", "q"]
    assert parse_list(np.array(["p"])) == ["p"]
    assert parse_list(None) == [] and parse_list("") == [] and parse_list(float("nan")) == []


def test_read_profiles_maps_fields_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path / "people.csv",
        """
uid,name,sex,age,interests,looking_for,lat,lon,job,height,extra
p1,Ann,Woman,29,hiking|yoga,man,52.5,13.4,engineer,170,"{""vip"": true}"
p2,Bob,man,31.0,"[""chess"", ""wine""]","Woman,man",,,teacher,,
p3,,woman,,reading; cooking,,,,,180.5,
""",
    )
    frame = read_profiles(
        path,
        id_col="uid",
        column_map={
            "sex": "gender",
            "interests": "tags",
            "looking_for": "seeking",
            "lat": "latitude",
            "lon": "longitude",
            "extra": "attributes",
        },
    )
    assert frame["id"].tolist() == ["p1", "p2", "p3"]
    assert frame["gender"].tolist() == ["woman", "man", "woman"]
    assert frame["age"].tolist()[:2] == [29, 31] and pd.isna(frame["age"].iloc[2])
    assert frame["tags"].tolist() == [["hiking", "yoga"], ["chess", "wine"], ["reading", "cooking"]]
    assert frame["seeking"].tolist() == [["man"], ["man", "woman"], []]
    assert frame["attributes"].tolist() == [
        {"vip": True, "job": "engineer", "height": 170.0},
        {"job": "teacher"},
        {"height": 180.5},
    ]
    assert frame["name"].tolist() == ["Ann", "Bob", None]
    for row in frame.to_dict("records"):
        UserIn.model_validate({k: _none(v) for k, v in row.items()})


def test_read_profiles_parquet_with_native_lists(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "tags": [["x", "y"], []],
            "age": [30, None],
            "score": [0.5, None],
        }
    ).to_parquet(path)
    frame = read_profiles(path)
    assert frame["tags"].tolist() == [["x", "y"], []]
    assert frame["age"].tolist()[0] == 30 and pd.isna(frame["age"].iloc[1])
    assert frame["attributes"].tolist() == [{"score": 0.5}, {}]


def test_profile_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id,age\nu1,30\nu2,thirty\n")
    with pytest.raises(InvalidInput, match="'age' must be a whole number, got 'thirty' at line 3"):
        read_profiles(path)
    path = write(tmp_path / "d.csv", "id,age\nu1,30\nu1,31\n")
    with pytest.raises(InvalidInput, match="duplicate user id 'u1' at line 2 and line 3"):
        read_profiles(path)
    with pytest.raises(InvalidInput, match="missing user id column 'user'"):
        read_profiles(path, id_col="user")
    with pytest.raises(InvalidInput, match="'age' to 'shoe_size', which is not a user field"):
        read_profiles(path, column_map={"age": "shoe_size"})
    path = write(tmp_path / "j.csv", 'id,attributes\nu1,"{not json"\n')
    with pytest.raises(InvalidInput, match="'attributes' must be a JSON object at line 2"):
        read_profiles(path)


def test_read_items(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.csv",
        """
event_id,name,description,category,city,organizer,start_time,tags,capacity
ev1,Jazz night,Live jazz,music,Berlin,org1,2025-03-01T19:00:00Z,jazz|live music,100
ev2,Hack day,Code all day,tech,London,,1740855600,python,
""",
    )
    frame = read_items(
        path,
        id_col="event_id",
        column_map={
            "name": "title",
            "description": "text",
            "organizer": "owner_id",
            "start_time": "starts_at",
        },
        kind="event",
    )
    assert frame["kind"].tolist() == ["event", "event"]
    assert frame["owner_id"].tolist() == ["org1", None]
    assert frame["starts_at"].tolist() == [pd.Timestamp("2025-03-01 19:00", tz="UTC")] * 2
    assert frame["tags"].tolist() == [["jazz", "live music"], ["python"]]
    assert frame["attributes"].tolist() == [{"capacity": 100}, {}]
    for row in frame.to_dict("records"):
        record = {k: _none(v) for k, v in row.items()}
        record["starts_at"] = record["starts_at"].to_pydatetime()
        ItemIn.model_validate(record)
    with pytest.raises(
        InvalidInput, match="unparseable time 'soon' in column 'start_time' at line 3"
    ):
        bad = write(tmp_path / "bad.csv", "id,start_time\na,2025-01-01\nb,soon\n")
        read_items(bad, column_map={"start_time": "starts_at"})


# --- OkCupid --------------------------------------------------------------------------------


@pytest.mark.skipif(not OKCUPID.exists(), reason="OkCupid profiles not present")
def test_read_okcupid_real_file() -> None:
    frame = read_okcupid(OKCUPID)
    assert len(frame) == 59_946
    assert frame["id"].iloc[0] == "ok1" and frame["id"].iloc[-1] == "ok59946"
    assert frame["id"].is_unique
    assert frame["gender"].value_counts().to_dict() == {"man": 35_829, "woman": 24_117}
    seeking = frame["seeking"].map(tuple).value_counts(normalize=True)
    assert seeking[("man", "woman")] == pytest.approx(0.046, abs=0.005)
    first = frame.iloc[0]
    assert (first["age"], first["gender"], first["seeking"]) == (22, "man", ["woman"])
    attrs = first["attributes"]
    assert attrs["drinks"] == "socially" and attrs["height"] == 75.0
    assert attrs["offspring"] == "doesn\u2019t have kids, but might want them"  # unescaped
    text = json.dumps(frame["attributes"].head(5000).tolist())
    assert not re.search(r"&[a-z]+;", text)
    assert all(a.get("income", 0) >= 0 for a in frame["attributes"])
    for row in frame.sample(100, random_state=0).to_dict("records"):
        UserIn.model_validate({k: _none(v) for k, v in row.items()})


def test_read_okcupid_2015_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path / "profiles.csv",
        """
age,sex,orientation,location,essay0,essay1,drinks,income,last_online
35,f,gay,"oakland, california",I like &amp; love art.,Painting.,socially,-1,2012-06-28
41,m,bisexual,"san francisco, california",,,,50000,2012-06-29
""",
    )
    frame = read_okcupid(path, default_city="Somewhere")
    assert frame["seeking"].tolist() == [["woman"], ["man", "woman"]]
    assert frame["city"].tolist() == ["Oakland", "San Francisco"]
    assert frame["bio"].tolist() == ["I like & love art. Painting.", None]
    assert frame["attributes"].tolist() == [
        {"orientation": "gay", "drinks": "socially"},
        {"orientation": "bisexual", "income": 50000},
    ]


# --- exports as they come: event_id columns, other separators, mapped columns -------------


def test_an_event_id_column_is_not_the_dedup_id_unless_named(tmp_path: Path) -> None:
    """An events app's export: ``event_id`` is the event (the item) people registered for."""
    path = write(
        tmp_path / "registrations.csv",
        "member,event_id,action\nu1,ev1,register\nu2,ev1,register\nu3,ev1,register\n",
    )
    frame = read_interactions(path, user_col="member", item_col="event_id")
    assert frame["item_id"].tolist() == ["ev1"] * 3
    assert frame["event_id"].is_unique and frame["event_id"].str.startswith("ev_").all()
    with pytest.raises(InvalidInput, match="missing event id column 'uuid'"):
        read_interactions(path, user_col="member", item_col="event_id", event_id_col="uuid")


def test_movielens_u_data_tab_separated_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    with pytest.raises(InvalidInput, match=r"no header row.*--columns"):
        read_interactions(path)
    names = FileFormat(columns=("user_id", "item_id", "rating", "timestamp"))
    frame = read_interactions(path, file_format=names)
    assert frame["user_id"].tolist() == ["196", "186"]
    assert frame["action"].tolist() == ["rate", "rate"] and frame["value"].tolist() == [3.0, 3.0]
    assert frame["occurred_at"].iloc[0] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert row_numbering(path, names) == ("line", 1)
    bad = write(tmp_path / "bad.data", "196\t242\tthree\t881250949\n")
    with pytest.raises(InvalidInput, match="'rating' must be a number, got 'three' at line 1"):
        read_interactions(bad, file_format=names)


def test_movielens_1m_double_colon_and_lastfm_dat(tmp_path: Path) -> None:
    ratings = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    frame = read_interactions(
        ratings, file_format=FileFormat(columns=("user_id", "item_id", "rating", "ts"))
    )
    assert frame["item_id"].tolist() == ["1193", "661"] and frame["value"].tolist() == [5.0, 3.0]
    plays = write(tmp_path / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t13883\n")
    frame = read_interactions(plays, user_col="userID", item_col="artistID",
                              value_col="weight", default_action="play")  # fmt: skip
    assert frame["action"].tolist() == ["play"] and frame["value"].tolist() == [13883.0]
    text = write(tmp_path / "plays.txt", "user;artist;plays\nu1;a1;7\n")
    frame = read_interactions(text, item_col="artist", user_col="user", value_col="plays",
                              default_action="play")  # fmt: skip
    assert frame["item_id"].tolist() == ["a1"]


def test_format_and_sep_options(tmp_path: Path) -> None:
    path = write(tmp_path / "export.out", "user_id|item_id|action\nu1|i1|click\n")
    with pytest.raises(InvalidInput, match=r"unknown file type '\.out'.*--format"):
        read_interactions(path)
    frame = read_interactions(path, file_format=FileFormat("csv", "|"))
    assert frame["item_id"].tolist() == ["i1"]
    frame = read_interactions(path, file_format=file_format(None, "pipe", None))
    assert frame["action"].tolist() == ["click"]
    tabbed = write(tmp_path / "export.csv", "user_id\titem_id\taction\nu1\ti1\tclick\n")
    frame = read_interactions(tabbed, file_format=file_format("tsv", None, None))
    assert frame["item_id"].tolist() == ["i1"]
    assert read_interactions(tabbed, file_format=file_format(None, "\\t", None)).shape[0] == 1
    lines = write(tmp_path / "events.jsonl",
                  '{"user_id": "u1", "item_id": 7, "action": "click"}\n'
                  '{"user_id": "u2", "item_id": 8, "action": "cilck"}\n')  # fmt: skip
    frame = read_interactions(lines)
    assert frame["item_id"].tolist() == ["7", "8"]
    with pytest.raises(InvalidInput, match="use one of csv, tsv, jsonl, parquet"):
        file_format("xlsx", None, None)
    with pytest.raises(InvalidInput, match="--sep applies to delimited text, not to jsonl"):
        read_interactions(lines, file_format=FileFormat(sep=","))
    odd = write(tmp_path / "one.txt", "justonecolumn\nu1\n")
    with pytest.raises(InvalidInput, match="cannot tell how the columns are separated"):
        read_interactions(odd)


def test_column_map_both_ways_and_unknown_fields_listed() -> None:
    fields = ("id", "tags", "city")
    assert column_map(["interests=tags"], fields, "profile") == {"interests": "tags"}
    assert column_map(["tags=interests"], fields, "profile") == {"interests": "tags"}
    with pytest.raises(InvalidInput, match="'tgas' is not a recognised profile column; "
                       "recognised: id, tags, city"):  # fmt: skip
        column_map(["interests=tgas"], fields, "profile")
    with pytest.raises(InvalidInput, match="write COLUMN=FIELD"):
        column_map(["interests"], fields, "profile")
    with pytest.raises(InvalidInput, match="two columns are mapped onto 'tags'"):
        column_map(["a=tags", "b=tags"], fields, "profile")


def test_profiles_and_interactions_with_mapped_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv",
                 "member,interests,town\nm1,hiking|jazz,Berlin\nm2,chess,Munich\n")  # fmt: skip
    users = read_profiles(path, column_map={"member": "id", "interests": "tags", "town": "city"})
    assert users["id"].tolist() == ["m1", "m2"]
    assert users["tags"].tolist() == [["hiking", "jazz"], ["chess"]]
    assert users["city"].tolist() == ["Berlin", "Munich"]
    clicks = write(tmp_path / "clicks.csv", "who,what,verb,pos\nu1,i1,click,3\n")
    frame = read_interactions(
        clicks,
        columns={"who": "user_id", "what": "item_id", "verb": "action", "pos": "position"},
    )
    assert frame[["user_id", "item_id", "action"]].iloc[0].tolist() == ["u1", "i1", "click"]
    assert frame["position"].tolist() == [3]
