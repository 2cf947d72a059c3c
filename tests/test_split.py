"""One capture file read as byte ranges (capture.split, engine.ranges) gives what one read gives."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor.capture.packets import read_packets
from auditor.capture.reader import RecordReader
from auditor.capture.split import ByteRange, boundary_after, plan_ranges
from auditor.engine.fileread import read_file_partial
from auditor.engine.ranges import join_ranges, read_range
from auditor.engine.run import stream_flows
from auditor.flows.build import build_flows_labelled
from auditor.options import EngineOptions, FlowOptions, RpcOptions

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "fixtures" / "pcaps"
FAKE = PCAPS / "edge" / "fake_record_headers.pcap"
T0 = 1_704_067_200  # the edge fixtures' first second
REAL = [
    PCAPS / "pilot" / "pilot.pcapng",
    PCAPS / "coexist" / "coexist.pcapng",
    PCAPS / "midstream" / "midstream.pcap",
    PCAPS / "public" / "kerberos_tso.pcapng",
    PCAPS / "public" / "CVE-2020-1472_exploit_win2019.pcap",
    PCAPS / "formats" / "modified.pcap",
]
FLOWS, RPC = FlowOptions(), RpcOptions()


def record_starts(path: Path) -> set[int]:
    """Byte offsets of every record (pcap record header / pcapng block), walked from the start."""
    with RecordReader(path) as reader:
        starts = set()
        for chunk in reader.chunks():
            starts.update((chunk.data_off - chunk.head_start).tolist())
        return starts


def assert_same(one, split) -> None:
    """Partials, candidates, quotes and the file's counts of two reads of one file agree."""
    for name in ("parts", "candidates", "quotes"):
        pd.testing.assert_frame_equal(getattr(one, name).reset_index(drop=True),
                                      getattr(split, name).reset_index(drop=True))
    assert one.info == split.info
    assert (one.first_ts_ns, one.last_ts_ns, one.ordered) == (
        split.first_ts_ns, split.last_ts_ns, split.ordered)


def read_split(path: Path, ranges: list[ByteRange]):
    results = [read_range(str(path), rng, FLOWS, RPC) for rng in ranges]
    return join_ranges(results, str(path), FLOWS, RPC)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_split_read_of_real_captures_equals_one_read(path):
    ranges = plan_ranges(str(path), 6, min_bytes=256)
    assert ranges is not None and len(ranges) >= 3
    assert {r.start for r in ranges} <= record_starts(path)  # every cut is a record start
    assert ranges[-1].stop == path.stat().st_size
    joined = read_split(path, ranges)
    assert joined is not None
    assert_same(read_file_partial(str(path)), joined)


def test_split_read_of_generated_capture_equals_one_read(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from make_capture import plan_packets, write_pcap
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = tmp_path / "gen.pcap"
    write_pcap(str(path), plan_packets(20_000, np.random.default_rng(12)))
    ranges = plan_ranges(str(path), 7, min_bytes=4096)
    assert len(ranges) == 7
    joined = read_split(path, ranges)
    assert joined is not None
    one = read_file_partial(str(path), chunk_bytes=1 << 20)  # chunking does not matter either
    assert_same(one, joined)
    assert len(one.parts) > 1000 and len(one.candidates) > 100


def test_lone_fake_header_in_a_payload_is_not_taken_for_a_record():
    data = FAKE.read_bytes()
    fake = data.find(struct.pack("<II", T0, 111_111))
    assert fake > 0
    at = boundary_after(str(FAKE), fake)
    assert at is not None and at > fake and at in record_starts(FAKE)


def test_cut_at_a_fake_header_chain_is_caught_and_file_read_whole():
    data = FAKE.read_bytes()
    fake = data.find(struct.pack("<II", T0, 222_222))
    assert fake not in record_starts(FAKE)
    assert boundary_after(str(FAKE), fake) == fake  # forty fake headers in a row fool the search
    ranges = [ByteRange(24, fake), ByteRange(fake, len(data))]
    first, _ = read_range(str(FAKE), ranges[0], FLOWS, RPC)
    assert "truncated record" in first.notes  # the range before did not end on a record
    assert read_split(FAKE, ranges) is None  # so the engine reads the file in one piece


def test_fragments_split_across_ranges_are_not_joined():
    path = PCAPS / "edge" / "ipv4_fragments.pcap"
    starts = sorted(record_starts(path))
    # the first fragment in one range, the later ones in the next: their ports come from it
    ranges = [ByteRange(starts[0], starts[1]), ByteRange(starts[1], path.stat().st_size)]
    assert read_split(path, ranges) is None


def test_pcapng_range_reads_the_interfaces_first():
    path = PCAPS / "pilot" / "pilot.pcapng"
    ranges = plan_ranges(str(path), 4, min_bytes=256)
    assert ranges[0].head_end == ranges[0].start > 0  # after the SHB and IDB
    last, _ = read_range(str(path), ranges[-1], FLOWS, RPC)
    assert last.info.ip_packets > 0 and not last.info.skipped  # interface known: no bad ids


def test_compressed_and_netmon_files_are_not_split(tmp_path):
    assert plan_ranges(str(PCAPS / "formats" / "netmon23_mixed.cap"), 4) is None
    gz = tmp_path / "pilot.pcapng.gz"
    gz.write_bytes(gzip.compress((PCAPS / "pilot" / "pilot.pcapng").read_bytes()))
    assert plan_ranges(str(gz), 4) is None


@pytest.mark.parametrize("path", [PCAPS / "pilot" / "pilot.pcapng", FAKE], ids=lambda p: p.name)
def test_stream_flows_on_two_workers_splits_one_file_and_matches_one_core(caplog, path):
    # the fake capture's planned cuts include one inside its fake chain: read again whole
    one = stream_flows([path], engine=EngineOptions(workers=1))
    workers = 3 if path == FAKE else 2  # a third of the way: a cut inside the fake chain
    with caplog.at_level("INFO", logger="auditor.engine"):
        two = stream_flows([path], engine=EngineOptions(workers=workers, range_bytes=1 << 10))
    assert two.report.where == "processes" and two.report.ranges >= workers
    assert f"as {two.report.ranges} byte ranges on {workers} worker processes" in caplog.text
    assert ("read again in one piece" in caplog.text) == (path == FAKE)
    pd.testing.assert_frame_equal(one.flows, two.flows)
    assert np.array_equal(one.labels, two.labels)
    pd.testing.assert_frame_equal(one.table.packets, two.table.packets)
    assert one.table.files == two.table.files


def test_every_file_of_a_set_is_cut_into_ranges_on_every_worker():
    from auditor.engine.run import PER_CORE, _tasks

    paths = [PCAPS / "pilot" / "ring" / f"pilot_0{k}.pcapng" for k in range(3)]  # ~126 KiB
    tasks = _tasks(paths, [0, 1, 2], 2, 1 << 10)  # three files, two workers
    assert [i for i, _ in tasks] == sorted(i for i, _ in tasks)  # in set order
    assert all(rng is not None for _, rng in tasks)  # no file read whole
    assert {i for i, _ in tasks} == {0, 1, 2}
    assert len(tasks) >= 2 * PER_CORE
    for i in range(3):  # each file's ranges follow each other and cover it
        ranges = [rng for k, rng in tasks if k == i]
        assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:], strict=False))
        assert ranges[-1].stop == paths[i].stat().st_size
    assert _tasks(paths[:2], [0, 1], 2, 1 << 20) == [(0, None), (1, None)]  # under 2 MiB
    assert _tasks(paths, [0, 1, 2], 1, 1 << 10) == [(0, None), (1, None), (2, None)]
    assert [i for i, _ in _tasks(paths, [1, 2], 2, 1 << 10)] == sorted(  # only those to read
        i for i, _ in _tasks(paths, [1, 2], 2, 1 << 10))


def test_one_file_is_cut_into_as_many_ranges_as_the_workers_shares_not_one_more():
    # a file whose size is not a multiple of cores * PER_CORE: the share rounded down left a
    # seventh range for one of two workers to read alone (the 1M benchmark capture did)
    from auditor.engine.run import PER_CORE, _tasks

    path = PCAPS / "pilot" / "pilot.pcapng"
    for cores in (2, 3):
        tasks = _tasks([path], [0], cores, 1 << 10)
        assert len(tasks) == cores * PER_CORE, path.stat().st_size


def test_a_set_read_as_ranges_of_every_file_equals_one_core(caplog):
    ring = sorted((PCAPS / "pilot" / "ring").glob("*.pcapng"))[:3]  # ~126 KiB each: all cut
    one = stream_flows(ring, engine=EngineOptions(workers=1))
    with caplog.at_level("INFO", logger="auditor.engine"):
        two = stream_flows(ring, engine=EngineOptions(workers=2, range_bytes=1 << 12))
    assert two.report.where == "processes" and two.report.ranges > len(ring)
    pd.testing.assert_frame_equal(one.flows, two.flows)
    table = read_packets(ring)  # and both equal the flows of the whole packet table
    pd.testing.assert_frame_equal(build_flows_labelled(table, FLOWS)[0], two.flows)
    assert np.array_equal(one.labels, two.labels)
    pd.testing.assert_frame_equal(one.table.packets, two.table.packets)
    assert one.table.files == two.table.files


def test_a_file_read_again_whole_keeps_its_place_in_the_set(caplog, monkeypatch):
    # the fake capture's cut a third of the way, inside its fake chain: read again whole while
    # the later file of the set comes in and waits for it
    import auditor.engine.run as run

    ring = [FAKE, sorted((PCAPS / "pilot" / "ring").glob("*.pcapng"))[0]]
    one = stream_flows(ring, engine=EngineOptions(workers=1))
    ranges = plan_ranges(str(FAKE), 9, 1 << 10)  # as the one-file test above: 3 of 9 inside
    monkeypatch.setattr(run, "_tasks", lambda *_: [(0, r) for r in ranges] + [(1, None)])
    with caplog.at_level("INFO", logger="auditor.engine"):
        two = stream_flows(ring, engine=EngineOptions(workers=2))
    assert "read again in one piece" in caplog.text
    pd.testing.assert_frame_equal(one.flows, two.flows)
    assert np.array_equal(one.labels, two.labels)
    assert one.table.files == two.table.files


def test_a_joined_range_and_a_merged_file_leave_their_caller_no_frame():
    # the parent's peak is the set's store plus the file being merged: a range's or a file's
    # partial kept by the caller (its unshifted columns, on the pages it was shipped in) would
    # count twice while the next merge runs
    from auditor.engine.ranges import RangeJoin
    from auditor.engine.setmerge import SetMerger

    path = REAL[0]
    ranges = plan_ranges(str(path), 3, min_bytes=256)
    results = [read_range(str(path), rng, FLOWS, RPC) for rng in ranges]
    assert all(len(fp.parts) for fp, _ in results)
    join = RangeJoin(str(path), len(ranges), FLOWS, RPC)
    for fp, facts in results:
        assert join.add(fp, facts)
        assert fp.parts is None and fp.candidates is None
    whole = join.finish(sort=False)
    merger = SetMerger(2, FLOWS, RPC)
    other = read_file_partial(str(REAL[1]))
    merger.add(1, other)  # waits for file 0: keeps its frames until its turn
    assert other.parts is not None
    merger.add(0, whole)
    assert whole.parts is None and other.parts is None
    parts, _, _ = merger.finish()
    assert len(parts) == len(read_file_partial(str(path)).parts) + len(
        read_file_partial(str(REAL[1])).parts)


def test_a_big_set_on_one_core_is_read_by_one_worker_and_equals_reading_it_here(
        caplog, monkeypatch):
    # one core, --workers 0: a set big enough is read by one worker process, so this process
    # holds the set's merged partials and the decoding happens elsewhere; --workers 1 and a
    # small set stay in this process
    import auditor.engine.run as run

    ring = sorted((PCAPS / "pilot" / "ring").glob("*.pcapng"))[:3]
    here = stream_flows(ring, engine=EngineOptions(workers=1))
    assert here.report.where == "local"
    monkeypatch.setattr(run, "usable_cores", lambda: 1)
    assert stream_flows(ring).report.where == "local"  # under APART_BYTES
    monkeypatch.setattr(run, "APART_BYTES", sum(p.stat().st_size for p in ring))
    with caplog.at_level("INFO", logger="auditor.engine"):
        apart = stream_flows(ring)
    assert (apart.report.where, apart.report.workers, apart.report.ranges) == ("processes", 1, 0)
    assert "read 3 files on 1 worker process" in caplog.messages
    pd.testing.assert_frame_equal(here.flows, apart.flows)
    assert np.array_equal(here.labels, apart.labels)
    pd.testing.assert_frame_equal(here.table.packets, apart.table.packets)
    assert here.table.files == apart.table.files
    assert stream_flows(ring, engine=EngineOptions(workers=1)).report.where == "local"
