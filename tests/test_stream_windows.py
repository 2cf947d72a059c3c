"""--since/--until through the streaming engine: the same flows and counts as the packet table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor.capture.packets import read_packets
from auditor.capture.sets import CaptureSet
from auditor.engine.run import stream_flows
from auditor.flows.build import build_flows_labelled
from auditor.options import EngineOptions

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "fixtures" / "pcaps"
RING = tuple(sorted((PCAPS / "pilot" / "ring").glob("pilot_0*.pcapng")))
FIRST = [1795840851860455682, 1795840860650512275, 1795840869580822914, 1795840875373437015]
LAST = [1795840860643542120, 1795840869580807745, 1795840875372728235, 1795840897647788161]
WINDOWS = {
    "middle of two files, two left out": (FIRST[1] + 1, FIRST[2] + 1_000_000_000),
    "since only": (FIRST[0] + 5_000_000_000, None),
    "until only": (None, LAST[2] - 1_000_000_000),
}


def table_flows(captures):
    table = read_packets(captures)
    flows, _ = build_flows_labelled(table)
    return table, flows


@pytest.mark.parametrize("name", WINDOWS)
def test_window_streams_the_flows_of_the_windowed_packet_table(name):
    since, until = WINDOWS[name]
    captures = CaptureSet(RING, since, until)
    table, flows = table_flows(captures)
    got = stream_flows(captures, engine=EngineOptions(workers=1))
    assert got.report.streamed  # folded, not read into one sorted table
    pd.testing.assert_frame_equal(got.flows, flows)
    assert got.table.files == table.files  # outside_window counted per file as before
    assert got.table.left_out == table.left_out
    assert sum(f.outside_window for f in got.table.files) > 0


def test_window_on_byte_ranges_equals_one_core():
    captures = CaptureSet((PCAPS / "pilot" / "pilot.pcapng",), FIRST[1], FIRST[3])
    one = stream_flows(captures, engine=EngineOptions(workers=1))
    two = stream_flows(captures, engine=EngineOptions(workers=2, range_bytes=16 << 10))
    assert two.report.ranges >= 2
    pd.testing.assert_frame_equal(one.flows, two.flows)
    pd.testing.assert_frame_equal(one.table.packets, two.table.packets)
    assert np.array_equal(one.labels, two.labels)
    assert one.table.files == two.table.files
    _, flows = table_flows(captures)
    pd.testing.assert_frame_equal(one.flows, flows)


def test_window_keeps_icmp_quotes_of_packets_inside_it():
    edge = PCAPS / "edge" / "icmp_admin_prohibited.pcap"
    ts = read_packets([edge]).packets["ts_ns"].to_numpy()
    captures = CaptureSet((edge,), int(ts[1]), None)
    _, flows = table_flows(captures)
    got = stream_flows(captures, engine=EngineOptions(workers=1))
    pd.testing.assert_frame_equal(got.flows, flows)


def test_window_holding_no_packet_is_an_empty_flow_table():
    captures = CaptureSet(RING, LAST[3] + 10**9, None)
    with pytest.warns(UserWarning, match="no capture has packets"):
        got = stream_flows(captures, engine=EngineOptions(workers=1))
    assert got.flows.empty and len(got.table.left_out) == len(RING)
