"""CSV cells: ISO times as numpy writes them, formula and control escapes found in any column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditor.render.cells import formula_safe
from auditor.render.csv_file import csv_bytes, iso_text


def _numpy_iso(values: np.ndarray) -> list[str]:
    return np.datetime_as_string(values, unit="us", timezone="UTC").tolist()


def test_iso_text_matches_numpy_on_every_day_from_1970_to_2262():
    days = np.arange(0, 106_700, dtype=np.int64) * 86_400 * 10**9
    ns = np.concatenate([days, days + 86_399_999_999_999, days + 43_200_123_456_789])
    values = ns.view("datetime64[ns]")
    assert iso_text(values).to_pylist() == _numpy_iso(values)


def test_iso_text_matches_numpy_on_a_capture_week_truncating_nanoseconds():
    rng = np.random.default_rng(7)
    ns = 1_700_000_000 * 10**9 + np.sort(rng.integers(0, 7 * 86_400 * 10**9, 5000))
    values = ns.view("datetime64[ns]")
    text = iso_text(values).to_pylist()
    assert text == _numpy_iso(values)
    assert text[0].startswith("2023-11-14T") and text[0].endswith("Z") and len(text[0]) == 27


def test_iso_text_leaves_nat_and_times_before_1970_to_numpy():
    values = np.array(["NaT", "1969-12-31T23:59:59.999999999", "2024-02-29T12:00:00"],
                      "datetime64[ns]")
    assert iso_text(values).to_pylist() == ["NaT", "1969-12-31T23:59:59.999999Z",
                                            "2024-02-29T12:00:00.000000Z"]


@pytest.mark.parametrize("cell, written", [
    ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
    ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("a\x1b[31mred", "a\\x1b[31mred"),  # C0 escape: a terminal colour sequence
    ("a\x9bb", "a\\x9bb"),  # C1 control (two bytes in UTF-8)
    ("na\u00efve =1", "na\u00efve =1"),  # a non-ASCII letter, no formula: unchanged
    ("\u00a9 2024", "\u00a9 2024"),  # 0xC2 0xA9: looked at cell by cell, not a control
])
def test_formula_safe_escapes_a_cell_anywhere_in_an_arrow_column(cell, written):
    clean = [f"host{i}.example" for i in range(50)]
    frame = pd.DataFrame({"name": pd.array(clean[:20] + [cell] + clean[20:], dtype="str"),
                          "n": np.arange(51)})
    out = formula_safe(frame)
    assert out["name"].iloc[20] == written
    assert out["name"].drop(index=20).tolist() == clean
    assert str(out["name"].dtype) == "str"


def test_formula_safe_returns_a_clean_frame_itself():
    frame = pd.DataFrame({"ip": pd.array(["198.18.0.1", "", None, "fe80::1"], dtype="str")})
    assert formula_safe(frame) is frame


def test_formula_safe_reads_a_sliced_column_from_its_own_offset():
    # a slice's Arrow buffers start before it: the risky cell outside the slice is not its
    frame = pd.DataFrame({"name": pd.array(["=bad"] + ["ok"] * 9, dtype="str")}).iloc[1:]
    assert formula_safe(frame)["name"].tolist() == ["ok"] * 9
    frame = pd.DataFrame({"name": pd.array(["ok"] * 9 + ["-1"], dtype="str")}).iloc[5:]
    assert formula_safe(frame)["name"].tolist() == ["ok"] * 4 + ["'-1"]


def test_formula_safe_checks_every_chunk_and_object_columns():
    parts = [pd.Series(["ok"] * 5, dtype="str"), pd.Series(["ok", "@x"], dtype="str")]
    joined = pd.DataFrame({"name": pd.concat(parts, ignore_index=True),
                           "note": pd.Series(["a"] * 6 + ["=1"], dtype=object)})
    out = formula_safe(joined)
    assert out["name"].tolist()[-2:] == ["ok", "'@x"]
    assert out["note"].tolist()[-1] == "'=1" and out["note"].dtype == object


def test_csv_bytes_write_times_and_escaped_names_as_to_csv_would_read_them_back():
    frame = pd.DataFrame({
        "first_seen": pd.to_datetime([1_700_000_000_123_456_789], unit="ns", utc=True),
        "capture": pd.array(["=cmd|' /C calc'!A0"], dtype="str"),
        "packets": [3],
    })
    assert csv_bytes(frame).decode().splitlines() == [
        '"first_seen","capture","packets"',
        '"2023-11-14T22:13:20.123456Z","\'=cmd|\' /C calc\'!A0",3',
    ]
