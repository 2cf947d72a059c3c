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


def _store_of_random_traffic(seed: int, chunks: int = 8):
    """A store fed random traffic (port reuse: SYN/FIN/RST on few ports) chunk by chunk, so that
    it holds several segments with dead rows; and the packet table of the same traffic."""
    from packet_factory import random_traffic, table

    from auditor.flows.partial import fold_chunk
    from auditor.options import FlowOptions, RpcOptions
    from auditor.schema import PACKET_COLUMNS, column_names

    rng = np.random.default_rng(seed)
    flags = [0x02, 0x12, 0x10, 0x11, 0x04, 0x14, 0]
    tab = table(random_traffic(rng, 400, 4, [1025, 1026, 135, 80], [6, 6, 6, 17], flags,
                               seq=True))
    options = FlowOptions(tcp_idle_timeout_s=5, udp_idle_timeout_s=3)
    store = partstore.PartialStore(options, RpcOptions(), prune=False)
    pk = tab.packets[column_names(PACKET_COLUMNS)]
    cuts = [0, *sorted(rng.choice(np.arange(1, len(pk)), chunks - 1, replace=False)), len(pk)]
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = pk.iloc[lo:hi]
        cols = {c: chunk[c].to_numpy() for c in chunk.columns}
        parts, _ = fold_chunk(cols, np.arange(lo, hi, dtype=np.int64), options)
        store.add(parts, fileread.empty_candidates())
    return store, tab, options


def test_a_stores_segments_hold_one_array_per_column_not_a_frame():
    # a frame per merge and per rewrite, built and taken apart again, was most of the cost of a
    # set of small files; the merges' results are checked by the other tests here
    store, _, _ = _store_of_random_traffic(3)
    assert len(store.segments) > 1
    for seg in store.segments:
        assert isinstance(seg.columns, dict) and not hasattr(seg, "parts")
        assert all(type(a) is np.ndarray for a in seg.columns.values())


@pytest.mark.parametrize("seed", [3, 4, 5])
@pytest.mark.parametrize("grouped", [False, True])
def test_a_finish_of_several_segments_with_dead_rows_gives_the_flows_of_the_whole_table(
        seed, grouped):
    from auditor import build_flows
    from auditor.flows.partial import finish_flows
    from auditor.flows.pieces import PARTIAL_INPUTS

    store, tab, options = _store_of_random_traffic(seed)
    assert len(store.segments) > 1 and any(not s.alive.all() for s in store.segments)
    expected = build_flows(tab, options)
    parts, _ = store.finish(grouped=grouped, columns=PARTIAL_INPUTS if grouped else None)
    assert not store.segments and list(parts.columns) == (
        PARTIAL_INPUTS if grouped else list(partstore.empty_partials().columns))
    flows, _ = finish_flows(parts, tab.files, options, merged=True)
    pd.testing.assert_frame_equal(flows, expected)


def test_a_finish_drops_each_segments_column_as_soon_as_it_is_copied(monkeypatch):
    import weakref

    store, _, _ = _store_of_random_traffic(6)

    def owner(a):  # the array that owns a column's memory
        while isinstance(a.base, np.ndarray):
            a = a.base
        return a

    refs = {c: [weakref.ref(owner(seg.columns[c])) for seg in store.segments]
            for c in ("pid", "a_hi", "closed_tail")}
    seen = []

    def after_each_column():  # _fill hands back each column's pages: note what is still alive
        seen.append({c: sum(r() is not None for r in rs) for c, rs in refs.items()})

    monkeypatch.setattr(partstore, "give_back_memory", after_each_column)
    monkeypatch.setattr(partstore, "TRIM_BYTES", 0)  # a trim after every column
    store.finish()
    order = list(partstore.empty_partials().columns)
    assert seen[0] == {"pid": 0, "a_hi": len(refs["a_hi"]), "closed_tail": len(refs["a_hi"])}
    assert seen[order.index("a_hi")]["a_hi"] == 0 < seen[order.index("a_hi")]["closed_tail"]
    assert seen[-1] == {"pid": 0, "a_hi": 0, "closed_tail": 0}


def test_a_finish_of_segments_of_different_column_types_takes_the_concatenations_types():
    from auditor.options import FlowOptions, RpcOptions

    store = partstore.PartialStore(FlowOptions(), RpcOptions(), prune=False)
    empty = partstore.empty_partials()
    a = pd.DataFrame({c: np.zeros(2, empty[c].dtype) for c in empty.columns})
    a["a_lo"], a["pid"] = np.arange(2, dtype=np.uint64), [0, 1]
    b = a.copy()
    b["a_lo"], b["pid"] = np.arange(2, 4, dtype=np.uint64), [2, 3]
    b["file_index"] = np.array([70000, 70001], np.int64)  # (e.g. a rebased or an older entry)
    a["file_index"] = a["file_index"].astype(np.uint16)
    store.add(a, fileread.empty_candidates(), merged=True)
    store.add(b, fileread.empty_candidates(), merged=True)
    parts, _ = store.finish()
    assert parts["file_index"].dtype == np.int64
    assert parts["file_index"].tolist() == [0, 0, 70000, 70001]


@pytest.mark.parametrize("name", ["icmp_admin_prohibited.pcap", "icmp6_unreachable.pcap"])
def test_a_set_with_icmp_errors_keeps_what_refusals_read_and_one_without_leaves_it_out(
        tmp_path, name, monkeypatch):
    from auditor import build_flows, write_packets
    from auditor.engine import setmerge
    from auditor.flows.pieces import REFUSAL_INPUTS

    table = read_packets([PCAPS / "edge" / name])
    halves = [tmp_path / "a.pcap", tmp_path / "b.pcap"]  # one refused flow in each, in time order
    write_packets(table, np.arange(2), halves[0])
    write_packets(table, np.arange(2, 4), halves[1])
    finished = []
    finish = setmerge.SetMerger.finish

    def noted(self):
        frames = finish(self)
        finished.append(list(frames[0].columns))
        return frames

    monkeypatch.setattr(setmerge.SetMerger, "finish", noted)
    got = stream_flows(halves, engine=EngineOptions(workers=1))
    want = build_flows(read_packets(halves))
    assert want["state"].tolist().count("rejected") == 2
    pd.testing.assert_frame_equal(got.flows, want)
    assert set(REFUSAL_INPUTS) <= set(finished[-1])
    ring = sorted((PCAPS / "pilot" / "ring").glob("*.pcapng"))[:2]  # no ICMP error
    got = stream_flows(ring, engine=EngineOptions(workers=1))
    pd.testing.assert_frame_equal(got.flows, build_flows(read_packets(ring)))
    assert not set(REFUSAL_INPUTS) & set(finished[-1])
