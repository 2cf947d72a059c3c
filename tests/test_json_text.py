"""records_json writes the text json.dumps writes of records(), whatever the columns hold."""

import json

import numpy as np
import pandas as pd
import pytest

from auditor.render.json_tables import records, records_json
from auditor.schema import RULE_STATUS_COLUMNS, Column

ODD_TEXT = ["plain", "", None, "\"quoted\" \\ back", "tab\there\nnew", "é ü 中 \u2028 \x00 \x1f",
            "a\", \"b"]
N = len(ODD_TEXT)
COLUMNS = (
    Column("text", "str", "", "text with escapes, NA and unicode"),
    Column("code", "str", "", "few distinct values"),
    Column("count", "int64", "", "integers"),
    Column("big", "uint64", "", "unsigned beyond int64"),
    Column("port", "Int64", "", "nullable integers"),
    Column("ok", "bool", "", "booleans"),
    Column("maybe", "boolean", "", "nullable booleans"),
    Column("ratio", "float64", "", "floats with NaN"),
    Column("when", "datetime64[ns, UTC]", "", "times with NaT"),
    Column("roles", "object", "", "plain Python values, lists among them"),
    Column("ports", "str", "", "a list column", ","),
)


def odd_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "text": pd.array(ODD_TEXT, dtype="string"),
        "code": pd.array(["x", "y", "x", None, "y", "x", "x"], dtype="string"),
        "count": np.array([0, -1, 2**40, 7, 7, 3, -2**63], dtype=np.int64),
        "big": np.array([2**64 - 1, 0, 1, 2, 3, 4, 5], dtype=np.uint64),
        "port": pd.array([443, None, 135, 443, None, 0, 65535], dtype="Int64"),
        "ok": [True, False, True, True, False, False, True],
        "maybe": pd.array([True, None, False, True, True, None, False], dtype="boolean"),
        "ratio": [0.5, np.nan, 1e300, -0.0, 1 / 3, 2.0, np.nan],
        "when": pd.to_datetime(["2024-01-01T00:00:00.5Z", None, "2024-01-02T00:00:00.000001Z",
                                "1999-12-31T23:59:59Z", None, "2024-01-01T00:00:00Z",
                                "2038-01-19T03:14:08Z"], utc=True, format="ISO8601"),
        "roles": ["client", None, ["a", "b"], 3, True, "\"q\"", ("t", 1)],
        "ports": ["135,rpc-dynamic", "", None, "443", " 80 , 8080 ", "x,\"y\"", "1-2"],
        "extra": [1, "two", None, 4.5, False, [6], "seven"],  # in no schema: plain values
    })


@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_records_json_is_json_dumps_of_the_records_for_every_kind_of_column(chunk_rows):
    frame = odd_frame()
    fields = [c.name for c in COLUMNS] + ["extra"]
    expected = json.dumps(records(frame, COLUMNS, fields), ensure_ascii=False)
    assert records_json(frame, COLUMNS, fields, chunk_rows=chunk_rows) == expected
    assert json.loads(expected)[3]["text"] == "\"quoted\" \\ back"  # the case is a real one
    assert json.loads(expected)[0]["ports"] == [135, "rpc-dynamic"]


def test_records_json_of_a_rule_table_with_list_columns():
    frame = pd.DataFrame({
        "id": pd.array(["R1", "R2"], dtype="string"), "source": ["client;hub", ""],
        "ports": ["135,rpc-dynamic", "25"], "flows": np.array([3, 0]),
    })
    expected = json.dumps(records(frame, RULE_STATUS_COLUMNS), ensure_ascii=False)
    assert records_json(frame, RULE_STATUS_COLUMNS) == expected
    assert '"ports": [135, "rpc-dynamic"]' in expected


def test_records_json_of_rows_without_a_known_column_and_of_no_rows():
    frame = odd_frame()
    assert records_json(frame, COLUMNS, ["absent"]) == json.dumps([{}] * N)
    assert records_json(frame.iloc[0:0], COLUMNS) == "[]"
    assert records_json(None, COLUMNS) == "[]"
