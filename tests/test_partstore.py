"""The partial store: merging only the conversations a chunk touches gives exactly what merging
everything gives (flows, candidate packets, discovery's picks), however often it merges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor import build_flows_labelled, read_packets
from auditor.dissect.select import select_name_rows, select_rpc_rows
from auditor.engine import fileread, partstore
from auditor.engine.run import stream_flows
from auditor.options import EngineOptions

PCAPS = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
CASES = [PCAPS / "pilot" / "pilot.pcapng", PCAPS / "rpc" / "rpc_scenario_day1.pcap",
         PCAPS / "public" / "smtp.pcap", PCAPS / "pilot" / "ring"]


@pytest.mark.filterwarnings("ignore::auditor.CaptureWarning")
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_merging_a_few_partials_at_a_time_gives_the_flows_and_picks_of_the_whole_table(
        path, monkeypatch):
    monkeypatch.setattr(fileread, "MERGE_ROWS", 3)  # merge after nearly every chunk
    monkeypatch.setattr(partstore, "MAX_SEGMENTS", 4)  # and combine segments often
    full = read_packets([path])
    flows, labels = build_flows_labelled(full)
    got = stream_flows([path], engine=EngineOptions(workers=1, chunk_bytes=2048))
    pd.testing.assert_frame_equal(got.flows, flows)

    def records(tab, rows):
        return tab.packets.iloc[rows][["file_index", "record_index"]].to_numpy().tolist()

    for select in (select_rpc_rows, select_name_rows):
        want = records(full, select(full, flows, labels))
        assert records(got.table, select(got.table, got.flows, got.labels)) == want


def test_a_merge_takes_out_only_the_touched_conversations():
    parts = pd.DataFrame({k: np.arange(6, dtype=np.uint64) % 3 for k in partstore.KEY})
    parts["pid"] = np.arange(6)
    empty = fileread.empty_candidates()
    seg = partstore._Segment(parts, empty)
    got = seg.take(partstore.key_hash(parts.iloc[[1]]))
    assert got is not None and got[0]["pid"].tolist() == [1, 4]  # both rows of key 1
    assert seg.live == 4 and seg.take(partstore.key_hash(parts.iloc[[4]])) is None  # dead now
    assert seg.compact()[0]["pid"].tolist() == [0, 2, 3, 5]
