"""Partials are stored in the narrowest type their values fit, never too narrow: sums are exact
past 32 bits, a value that does not fit keeps the full type, and the finish reads full types."""

from __future__ import annotations

import numpy as np
import pandas as pd
from packet_factory import pkt, table

from auditor import build_flows
from auditor.flows.partial import (
    PARTIAL_COLUMNS,
    _narrowed,
    finish_flows,
    fold_chunk,
    merge_partials,
    partial_dtype,
)
from auditor.options import FlowOptions
from auditor.schema import PACKET_COLUMNS, column_names


def _partials(rows):
    tab = table(rows)
    pk = tab.packets[column_names(PACKET_COLUMNS)]
    parts, _ = fold_chunk({c: pk[c].to_numpy() for c in pk.columns},
                          np.arange(len(pk), dtype=np.int64), FlowOptions())
    return parts, tab


def test_small_values_are_stored_narrow_and_big_ones_keep_the_full_type():
    parts, _ = _partials([pkt(0, "198.18.0.1", 1025, "198.18.0.2", 80, payload=10)])
    assert parts["a_hi"].dtype == np.uint8  # IPv4: the upper half is 0
    assert parts["packets0"].dtype == np.uint8 and parts["bytes0"].dtype == np.uint8
    assert parts["pid"].dtype == np.int64 and parts["a_lo"].dtype == np.uint64
    wide = {c: parts[c].to_numpy() for c in PARTIAL_COLUMNS}
    wide["bytes0"] = np.array([5_000_000_000])
    wide["a_hi"] = np.array([2**63 + 1], np.uint64)
    big = pd.DataFrame(_narrowed(wide))
    assert big["bytes0"].dtype == np.int64 and big["bytes0"].tolist() == [5_000_000_000]
    assert big["a_hi"].dtype == np.uint64 and big["a_hi"].tolist() == [2**63 + 1]


def test_merged_sums_past_32_bits_are_exact():
    parts, _ = _partials([pkt(0, "198.18.0.1", 1025, "198.18.0.2", 80, payload=10),
                          pkt(1, "198.18.0.1", 1025, "198.18.0.2", 80, payload=10)])
    one = {c: parts[c].to_numpy() for c in PARTIAL_COLUMNS}
    halves = []
    for k in range(2):  # the flow's two halves, each of 3e9 bytes: uint32 each, not their sum
        half = {c: v.copy() for c, v in one.items()}
        half["bytes0"] = np.array([3_000_000_000] * 1)
        half["pid"] = np.array([k * 10])
        half["first_ns"] = half["last_ns"] = one["first_ns"] + k
        half["kind"] = np.array([1])  # continues whatever was open
        halves.append(pd.DataFrame(_narrowed({c: v[:1] for c, v in half.items()})))
    assert halves[0]["bytes0"].dtype == np.uint32
    merged, _, _ = merge_partials(pd.concat(halves, ignore_index=True), FlowOptions())
    assert len(merged) == 1 and merged["bytes0"].tolist() == [6_000_000_000]
    assert merged["bytes0"].dtype == np.int64


def test_the_finish_reads_full_types_whatever_the_partials_were_stored_in():
    rows = [pkt(0, "198.18.0.1", 1025, "198.18.0.2", 80, payload=10),
            pkt(1, "198.18.0.2", 80, "198.18.0.1", 1025, payload=300)]
    parts, tab = _partials(rows)
    assert any(parts[c].dtype != partial_dtype(c) for c in parts.columns)  # stored narrow
    flows, _ = finish_flows(parts, tab.files, FlowOptions(), merged=True)
    pd.testing.assert_frame_equal(flows, build_flows(tab))  # same values and column types


def test_flow_pieces_hold_the_partials_as_stored_and_compute_in_full_types():
    # the finish keeps the narrow columns (about 60 bytes a flow on the ring set: its peak)
    # and casts each gathered slice; counts past a uint8 and a uint16 must still come out whole
    from auditor.flows.partial import finish_pieces

    rows = [pkt(i, "198.18.0.1", 1025, "198.18.0.2", 80, length=1514, payload=1460)
            for i in range(300)]
    rows += [pkt(300 + i, "198.18.0.2", 80, "198.18.0.1", 1025, length=60, payload=0)
             for i in range(60)]
    parts, tab = _partials(rows)
    pieces, _ = finish_pieces(parts, tab.files, FlowOptions(), merged=True)
    for column in ("packets0", "bytes0", "payload0", "synack0", "rst0", "fin"):
        assert pieces.columns[column].dtype.itemsize < 8, column
    flows = pieces.frame()
    pd.testing.assert_frame_equal(flows, build_flows(tab))
    assert flows[["src_packets", "dst_packets"]].iloc[0].tolist() == [300, 60]
    assert int(flows["src_bytes"].iloc[0]) == 300 * 1514
