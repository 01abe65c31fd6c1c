"""Speed Dating loader: the format, clear errors, and the allow-list (the benchmark is
tested in tests/bench/test_speed_dating.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from matchwise.data.speed_dating import (
    ALLOWED_COLUMNS,
    FEATURE_COLUMNS,
    INTERESTS,
    SCHEDULE_COLUMNS,
    is_forbidden,
    pre_date_view,
    read_speed_dating,
    read_speed_dating_frame,
    users_frame,
)
from matchwise.errors import InvalidInput

FIXTURE = Path(__file__).parents[1] / "fixtures" / "speed_dating_sample.csv"


def _rows() -> tuple[list[str], list[list[str]]]:
    text = FIXTURE.read_bytes().decode("latin-1")
    records = list(csv.reader(io.StringIO(text)))
    return records[0], records[1:]


def _write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def test_fixture_loads_as_people() -> None:
    raw = pd.read_csv(FIXTURE, encoding="latin-1")
    bundle = read_speed_dating(FIXTURE)
    assert bundle.domain == "people"
    assert len(bundle.users) == raw["iid"].nunique() == 54
    assert len(bundle.interactions) == len(raw) == 490
    users = bundle.users.set_index("id")
    assert users.loc["sd1", "gender"] == "woman" and users.loc["sd1", "seeking"] == ["man"]
    man = raw.loc[raw["gender"] == 1, "iid"].iloc[0]
    assert users.loc[f"sd{man}", "gender"] == "man"
    assert users.loc[f"sd{man}", "seeking"] == ["woman"]
    # interests scored 7 or more are tags
    first = raw[raw["iid"] == 1].iloc[0]
    assert sorted(users.loc["sd1", "tags"]) == sorted(c for c in INTERESTS if first[c] >= 7)
    # the survey travels as attributes; latin-1 text survives
    assert users.loc["sd1", "attributes"]["attr1_1"] == first["attr1_1"]
    fields = {a.get("field") for a in users["attributes"]}
    assert "Ingeniería Eléctrica" in fields
    # every row a like or a pass from iid to pid
    actions = bundle.interactions["action"].value_counts()
    assert actions["like"] == raw["dec"].sum() and actions["pass"] == (raw["dec"] == 0).sum()
    assert bundle.interactions["event_id"].is_unique
    assert bundle.interactions["occurred_at"].dt.tz is not None
    assert len(bundle.meta["matches"]) == raw["match"].sum() // 2
    with_events = read_speed_dating(FIXTURE, match_events=True)
    assert (with_events.interactions["action"] == "match").sum() == raw["match"].sum() // 2


def test_utf8_file_reads_the_same(tmp_path: Path) -> None:
    header, rows = _rows()
    copy = _write(tmp_path / "utf8.csv", header, rows, "utf-8")
    a, b = read_speed_dating_frame(FIXTURE), read_speed_dating_frame(copy)
    pd.testing.assert_frame_equal(a, b)


def test_numbers_with_thousands_separators_and_gaps() -> None:
    frame = read_speed_dating_frame(FIXTURE)
    raw = pd.read_csv(FIXTURE, encoding="latin-1", dtype=str, keep_default_na=False)
    assert frame["age"].isna().any()  # an empty cell is NaN, not an error
    assert frame["attr5_1"].isna().sum() > 0
    assert frame["line"].iloc[0] == 2 and frame["line"].iloc[-1] == len(raw) + 1
    assert raw["income"].str.contains(",").any()  # text columns kept as text
    assert frame["income"].str.contains(",").any()


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("age", "twenty", "'twenty' is not a number"),
        ("dec", "2", "expected 0 or 1"),
        ("gender", "", "expected 0 or 1"),
        ("iid", "", "the value is empty"),
        ("sports", "7..5", "is not a number"),
        ("pid", "3.5", "not a person number"),
    ],
)
def test_malformed_cell_names_line_and_column(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    header, rows = _rows()
    rows[40][header.index(column)] = value  # data row 41 is on line 42
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(InvalidInput) as err:
        read_speed_dating(path)
    text = str(err.value)
    assert "line 42" in text and f"column {column!r}" in text and message in text


def test_short_row_and_missing_column(tmp_path: Path) -> None:
    header, rows = _rows()
    rows[9] = rows[9][:50]
    with pytest.raises(InvalidInput, match=r"line 11, column 'sports'.*expected 195 cells"):
        read_speed_dating(_write(tmp_path / "short.csv", header, rows))
    header2, rows2 = _rows()
    keep = [i for i, h in enumerate(header2) if h != "dec"]
    with pytest.raises(InvalidInput, match=r"line 1: missing required column 'dec'"):
        read_speed_dating(
            _write(
                tmp_path / "nodec.csv",
                [header2[i] for i in keep],
                [[r[i] for i in keep] for r in rows2],
            )
        )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        read_speed_dating(empty)


def test_rows_without_partner_are_skipped(tmp_path: Path) -> None:
    header, rows = _rows()
    rows[0][header.index("pid")] = ""
    frame = read_speed_dating_frame(_write(tmp_path / "nopid.csv", header, rows))
    assert len(frame) == len(rows) - 1


def test_allow_list_has_no_forbidden_column() -> None:
    header, _ = _rows()
    during = {"attr", "sinc", "intel", "fun", "amb", "shar", "like", "prob", "met"}
    for column in ALLOWED_COLUMNS | FEATURE_COLUMNS:
        assert column not in during and column.removesuffix("_o") not in during
        assert not column.endswith(("_s", "_2", "_3", "_o"))
        assert column not in {"match_es", "you_call", "them_cal", "dec_o"}
        assert not is_forbidden(column)
    assert FEATURE_COLUMNS <= ALLOWED_COLUMNS
    assert {"dec", "match"}.isdisjoint(FEATURE_COLUMNS)  # labels are never raw features
    assert set(SCHEDULE_COLUMNS) <= ALLOWED_COLUMNS  # when a date took place: a time, and
    assert set(SCHEDULE_COLUMNS).isdisjoint(FEATURE_COLUMNS)  # never a feature
    forbidden_in_file = [c for c in header if is_forbidden(c)]
    for column in (*during, *(f"{c}_o" for c in during), "match_es", "you_call", "them_cal"):
        assert column in forbidden_in_file
    assert {"attr1_s", "satis_2", "attr1_3", "dec_o", "pf_o_att"} <= set(forbidden_in_file)
    view = pre_date_view(read_speed_dating_frame(FIXTURE))
    assert set(view.columns) <= ALLOWED_COLUMNS
    assert not any(is_forbidden(c) for c in view.columns)


def test_order_is_read_as_a_number_and_users_match_the_loader(tmp_path: Path) -> None:
    frame = read_speed_dating_frame(FIXTURE)
    raw = pd.read_csv(FIXTURE, encoding="latin-1")
    assert frame["order"].dtype.kind == "f" and (frame["order"] == raw["order"]).all()
    header, rows = _rows()
    rows[40][header.index("order")] = "third"
    with pytest.raises(InvalidInput, match=r"line 42, column 'order': 'third' is not a number"):
        read_speed_dating_frame(_write(tmp_path / "bad-order.csv", header, rows))
    users = users_frame(frame)
    pd.testing.assert_frame_equal(users, read_speed_dating(FIXTURE).users)
