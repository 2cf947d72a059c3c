"""The per-file cache writes its Parquet tables a row group at a time (engine/cache.py,
`write_parquet`): an entry of several row groups loads back as exactly the partial stored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from auditor.engine import cache
from auditor.engine.fileread import read_file_partial
from auditor.options import FlowOptions, RpcOptions

PILOT = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps" / "pilot" / "pilot.pcapng"


@pytest.mark.parametrize("rows", [1, 7, 1 << 16])
def test_an_entry_in_row_groups_loads_back_as_the_partial_stored(tmp_path, monkeypatch, rows):
    monkeypatch.setattr(cache, "ROW_GROUP", rows)
    fp = read_file_partial(str(PILOT), FlowOptions(), RpcOptions())
    assert len(fp.parts) > 7 and len(fp.candidates) > 7  # several groups when rows is small
    key = cache.entry_key("0" * 64, FlowOptions(), RpcOptions())
    cache.store(tmp_path, key, fp)
    parts = tmp_path / "entries" / key / "parts.parquet"
    assert pq.ParquetFile(parts).num_row_groups == -(-len(fp.parts) // rows)
    got = cache.load(tmp_path, key, str(PILOT))
    for table in ("parts", "candidates", "quotes"):
        pd.testing.assert_frame_equal(getattr(got, table), getattr(fp, table))


def test_an_empty_table_keeps_its_columns_and_dtypes(tmp_path):
    fp = read_file_partial(str(PILOT), FlowOptions(), RpcOptions())
    empty = fp.parts.iloc[:0]
    cache.write_parquet(empty, tmp_path / "t.parquet")
    got = cache.read_parquet(tmp_path / "t.parquet")
    assert len(got) == 0
    pd.testing.assert_series_equal(got.dtypes, empty.dtypes)
