"""The streaming engine: flows from partial aggregates equal build_flows, on any chunking, core
count, cache state or Dask cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from packet_factory import pkt, random_traffic, table

from auditor import build_flows, build_flows_labelled, read_packets
from auditor.dissect.select import select_name_rows, select_rpc_rows
from auditor.engine import cache as cache_mod
from auditor.engine.run import stream_flows
from auditor.flows.partial import finish_flows, fold_chunk, merge_partials
from auditor.options import EngineOptions, FlowOptions
from auditor.schema import PACKET_COLUMNS, column_names

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "fixtures" / "pcaps"
RING = PCAPS / "pilot" / "ring"
PILOT = PCAPS / "pilot" / "pilot.pcapng"
CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.is_file()
                  and p.suffix in (".pcap", ".pcapng", ".cap", ".gz") and "truncated" not in p.name)
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def one_core(paths, **kw):
    return stream_flows(paths, engine=EngineOptions(workers=1, **kw))


@pytest.mark.filterwarnings("ignore::auditor.CaptureWarning")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_streamed_flows_equal_the_packet_table_flows_for_any_chunk_size(path):
    expected = build_flows(read_packets([path]))
    for chunk_bytes in (None, 2048):
        got = one_core([path], chunk_bytes=chunk_bytes)
        pd.testing.assert_frame_equal(got.flows, expected)
        assert got.report.streamed


def _fold(pk: pd.DataFrame, cuts, options):
    cols = {c: pk[c].to_numpy() for c in pk.columns}
    parts = []
    for lo, hi in zip([0, *cuts], [*cuts, len(pk)], strict=True):
        part, _ = fold_chunk({c: a[lo:hi] for c, a in cols.items()},
                             np.arange(lo, hi, dtype=np.int64), options)
        parts.append(part)
    return parts


def test_partials_merge_associatively_into_the_flows_of_random_traffic():
    rng = np.random.default_rng(12)
    options = FlowOptions(tcp_idle_timeout_s=5, udp_idle_timeout_s=3)
    flags = [SYN, SYN | ACK, ACK, FIN | ACK, RST, RST | ACK, 0]
    for _ in range(20):
        rows = random_traffic(rng, 300, 3, [1025, 1026, 135, 80], [6, 6, 6, 17], flags, seq=True)
        tab = table(rows)
        expected = build_flows(tab, options)
        pk = tab.packets[column_names(PACKET_COLUMNS)]
        cuts = sorted(rng.choice(np.arange(1, len(pk)), size=6, replace=False).tolist())
        parts = _fold(pk, cuts, options)
        # merge in two different groupings: ((p0 p1 p2)(p3 ...)) and all at once
        left, _, _ = merge_partials(pd.concat(parts[:3], ignore_index=True), options)
        right, _, _ = merge_partials(pd.concat(parts[3:], ignore_index=True), options)
        for merged in (pd.concat([left, right], ignore_index=True),
                       pd.concat(parts, ignore_index=True)):
            flows, _ = finish_flows(merged, tab.files, options)
            pd.testing.assert_frame_equal(flows, expected)


def test_syn_retry_across_a_chunk_boundary_stays_one_flow_and_a_new_syn_after_fin_splits():
    c, s = "198.18.0.1", "198.18.0.2"
    rows = [pkt(0, c, 1025, s, 135, flags=SYN, tcp_seq=7), pkt(1, s, 135, c, 1025, flags=RST | ACK),
            pkt(2, c, 1025, s, 135, flags=SYN, tcp_seq=7),  # a retry: same flow
            pkt(3, s, 135, c, 1025, flags=RST | ACK),
            pkt(4, c, 1025, s, 135, flags=SYN, tcp_seq=99)]  # a new connection on the same port
    tab = table(rows)
    pk = tab.packets[column_names(PACKET_COLUMNS)]
    options = FlowOptions()
    for cut in range(1, len(pk)):
        flows, _ = finish_flows(pd.concat(_fold(pk, [cut], options)), tab.files, options)
        assert flows["src_packets"].tolist() == [2, 1]
        pd.testing.assert_frame_equal(flows, build_flows(tab))


def test_several_worker_processes_give_exactly_the_one_core_flows_and_candidates():
    serial = one_core([RING])
    parallel = stream_flows([RING], engine=EngineOptions(workers=2))
    assert parallel.report.where == "processes" and parallel.report.workers == 2
    pd.testing.assert_frame_equal(parallel.flows, serial.flows)
    pd.testing.assert_frame_equal(parallel.table.packets, serial.table.packets)
    assert (parallel.labels == serial.labels).all()
    pd.testing.assert_frame_equal(serial.flows, build_flows(read_packets([RING])))


DISCOVERY = [PILOT, *sorted((PCAPS / "rpc").glob("*.pcap")),
             *sorted((PCAPS / "public").glob("dcerpc*")), PCAPS / "public" / "smtp.pcap",
             PCAPS / "public" / "kerberos.pcap", PCAPS / "names" / "names.pcap"]


@pytest.mark.parametrize("path", DISCOVERY, ids=lambda p: p.name)
def test_candidate_packets_give_discovery_the_same_packets_as_the_whole_table(path):
    full = read_packets([path])
    flows, labels = build_flows_labelled(full)
    got = one_core([path], chunk_bytes=4096)

    def records(tab, rows):
        return tab.packets.iloc[rows][["file_index", "record_index"]].to_numpy().tolist()

    for select in (select_rpc_rows, select_name_rows):
        want = records(full, select(full, flows, labels))
        assert records(got.table, select(got.table, got.flows, got.labels)) == want
    assert len(got.table.packets) <= len(full.packets)


def test_packets_out_of_time_order_across_chunks_fall_back_to_a_full_sort(tmp_path):
    scapy = pytest.importorskip("scapy.all")
    pkts = []
    for i, t in enumerate([10, 11, 12, 1, 2, 3]):  # the second half is older
        p = scapy.Ether() / scapy.IP(src="198.18.0.1", dst="198.18.0.2") / scapy.UDP(
            sport=1025 + i % 2, dport=53) / (b"x" * 200)
        p.time = t
        pkts.append(p)
    path = tmp_path / "unsorted.pcap"
    scapy.wrpcap(str(path), pkts)
    got = one_core([path], chunk_bytes=600)
    assert not got.report.streamed
    pd.testing.assert_frame_equal(got.flows, build_flows(read_packets([path])))


def test_a_cached_reaudit_does_not_read_the_capture(tmp_path, monkeypatch):
    first = one_core([RING], cache_dir=str(tmp_path))
    assert first.report.cached == 0

    def no_reading(*args, **kwargs):
        raise AssertionError("the capture was read again")

    monkeypatch.setattr("auditor.engine.run.read_file_partial", no_reading)
    monkeypatch.setattr("auditor.engine.cache.hashlib.file_digest", no_reading)
    again = one_core([RING], cache_dir=str(tmp_path))
    assert again.report.cached == 4
    pd.testing.assert_frame_equal(again.flows, first.flows)
    pd.testing.assert_frame_equal(again.table.packets, first.table.packets)


def test_a_changed_file_or_option_never_reuses_a_stale_cache_entry(tmp_path):
    cache = tmp_path / "cache"
    ring = tmp_path / "ring"
    shutil.copytree(RING, ring)
    one_core([ring], cache_dir=str(cache))
    # another flow option: a new entry for every file
    other = stream_flows([ring], FlowOptions(tcp_idle_timeout_s=1),
                         engine=EngineOptions(workers=1, cache_dir=str(cache)))
    assert other.report.cached == 0
    # one file replaced by another capture's bytes: only that one is read again
    victim = sorted(ring.iterdir())[1]
    victim.write_bytes((PCAPS / "edge" / "syn_retry_after_rst.pcap").read_bytes())
    got = one_core([ring], cache_dir=str(cache))
    assert got.report.cached == 3
    pd.testing.assert_frame_equal(got.flows, build_flows(read_packets([ring])))


def test_a_cache_key_names_content_and_versions(tmp_path):
    digest = cache_mod.content_hash(PILOT, tmp_path)
    from auditor.options import RpcOptions

    assert cache_mod.entry_key(digest, FlowOptions(), RpcOptions()) != cache_mod.entry_key(
        digest, FlowOptions(udp_idle_timeout_s=1), RpcOptions())
    assert cache_mod.default_cache_dir().name == "auditor"


@pytest.mark.tshark
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_dask_cluster_gives_exactly_the_local_flows_and_findings(dask_cluster):
    from auditor import audit_captures, load_catalogue, load_inventory
    from auditor.options import PipelineOptions

    address = dask_cluster.scheduler_address
    local = one_core([RING])
    remote = stream_flows([RING], engine=EngineOptions(scheduler=address))
    assert remote.report.where == "dask" and remote.report.files == 4
    assert 1 <= remote.report.workers <= 2
    assert "Dask workers" in remote.report.line()
    pd.testing.assert_frame_equal(remote.flows, local.flows)
    inventory, catalogue = load_inventory(PCAPS / "pilot" / "inventory.yaml"), load_catalogue()
    here = audit_captures([RING], inventory, catalogue)
    there = audit_captures([RING], inventory, catalogue,
                           PipelineOptions(engine=EngineOptions(scheduler=address)))
    pd.testing.assert_frame_equal(there.findings, here.findings)
    pd.testing.assert_frame_equal(there.rpc, here.rpc)


def test_reading_makes_the_c_librarys_allocator_arrows_default_pool():
    # the flow table's pieces are made in threads: mimalloc, pyarrow's default, keeps the pages
    # each thread frees (engine/pages.py)
    import os
    import subprocess
    import sys

    script = ("import pyarrow as pa\nfrom auditor.engine.run import stream_flows\n"
              "print(pa.default_memory_pool().backend_name)\n"
              f"stream_flows([{str(PCAPS / 'pilot' / 'pilot.pcapng')!r}])\n"
              "print(pa.default_memory_pool().backend_name)\n")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    got = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    assert got[-1] == "system"
    assert got[0] != "system"  # what pyarrow chose on its own: the call changed it
