"""Files that overlap in time (several servers recording at once) and archive members stream:
folded merged by time, they give exactly the flows of one sorted table of all their packets."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor import audit_captures
from auditor.capture.packets import read_packets
from auditor.capture.reader import RecordReader
from auditor.capture.sets import CaptureSet, Span, expand_sources, plan, spans_of
from auditor.catalogue.loader import load_catalogue
from auditor.engine.interleave import NotStreamable, fold_interleaved, overlapping
from auditor.engine.run import stream_flows
from auditor.flows.build import build_flows_labelled
from auditor.inventory.roles import load_inventory
from auditor.options import EngineOptions

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "fixtures" / "pcaps"
PILOT = PCAPS / "pilot" / "pilot.pcapng"
RING = tuple(sorted((PCAPS / "pilot" / "ring").glob("pilot_0*.pcapng")))
# the pilot recording cut into one capture per server, as a pilot records them, all at once;
# each packet goes to one file only (the first server it involves), so together they hold the
# recording's packets exactly once
SERVERS = {"mbx1": "ip.addr==198.18.1.21",
           "cas1": "ip.addr==198.18.1.31 and !(ip.addr==198.18.1.21)",
           "hub1": "ip.addr==198.18.1.41 and !(ip.addr==198.18.1.21 or ip.addr==198.18.1.31)",
           "rest": "!(ip.addr==198.18.1.21 or ip.addr==198.18.1.31 or ip.addr==198.18.1.41)"}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> list[Path]:
    """The pilot recording cut into one overlapping file per server (tshark -Y ... -w)."""
    where = tmp_path_factory.mktemp("servers")
    out = []
    for name, shown in SERVERS.items():
        path = where / f"{name}.pcapng"
        subprocess.run(["tshark", "-r", str(PILOT), "-Y", shown, "-w", str(path)], check=True,
                       capture_output=True)
        out.append(path)
    return out


def assert_same_as_sorted_table(captures, got) -> None:
    """Flows, file facts and every candidate packet's flow as one sorted table gives them."""
    table = read_packets(captures)
    flows, labels = build_flows_labelled(table)
    pd.testing.assert_frame_equal(got.flows, flows)
    assert got.table.files == table.files
    assert got.table.left_out == table.left_out
    key = ["file_index", "record_index"]
    mine = got.table.packets.assign(flow=got.labels)
    theirs = table.packets.assign(flow=labels)
    both = mine.merge(theirs, on=key, how="left", suffixes=("", "_table"), validate="1:1")
    assert len(both) == len(mine) > 0
    for column in ["flow", *[c for c in mine.columns if c not in key and c != "flow"]]:
        assert np.array_equal(both[column].to_numpy(), both[f"{column}_table"].to_numpy()), column


@needs_tshark
@pytest.mark.parametrize("chunk_bytes", [None, 4096])
def test_overlapping_server_captures_stream_to_the_sorted_tables_flows(servers, chunk_bytes):
    sources, _ = plan(expand_sources(servers), None, None)
    assert overlapping(sources, spans_of(sources))  # they do: otherwise this tests nothing
    got = stream_flows(servers, engine=EngineOptions(workers=1, chunk_bytes=chunk_bytes))
    assert got.report.streamed
    assert_same_as_sorted_table(servers, got)
    assert len(got.flows) > 200 and set(got.flows["capture"]) == {p.name for p in servers}


@needs_tshark
def test_overlapping_captures_with_a_window_stream_to_the_windowed_table(servers):
    ts = read_packets(servers).packets["ts_ns"].to_numpy()
    captures = CaptureSet(tuple(servers), int(ts[len(ts) // 4]), int(ts[3 * len(ts) // 4]))
    got = stream_flows(captures, engine=EngineOptions(workers=1, chunk_bytes=8192))
    assert got.report.streamed and sum(f.outside_window for f in got.table.files) > 0
    assert_same_as_sorted_table(captures, got)


@needs_tshark
def test_an_audit_of_overlapping_captures_equals_the_audit_of_the_sorted_table(servers):
    inventory = load_inventory(PCAPS / "pilot" / "inventory.yaml")
    catalogue = load_catalogue()
    streamed = audit_captures(servers, inventory, catalogue)
    sorted_table = audit_captures([PILOT], inventory, catalogue)  # the same packets, one file
    assert len(streamed.findings) == len(sorted_table.findings) > 0
    key = ["kind", "src_ip", "dst_ip", "proto", "dst_port", "severity"]
    pd.testing.assert_frame_equal(streamed.findings[key], sorted_table.findings[key])
    rpc = ["server_ip", "port", "proto", "interface", "evidence", "advertised", "used"]
    assert len(streamed.rpc) > 0
    pd.testing.assert_frame_equal(streamed.rpc[rpc], sorted_table.rpc[rpc])


def test_archive_members_stream_one_at_a_time(tmp_path, monkeypatch):
    """A zipped ring is read member after member: never two readers open at once."""
    archive = tmp_path / "ring.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in RING:
            z.write(path, path.name)
    open_now, most = [0], [0]
    real_init, real_close = RecordReader.__init__, RecordReader.close

    def counting_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        self._counted = True

    def counting_close(self):
        if getattr(self, "_counted", False):
            open_now[0] -= 1
            self._counted = False
        real_close(self)

    monkeypatch.setattr(RecordReader, "__init__", counting_init)
    monkeypatch.setattr(RecordReader, "close", counting_close)
    sources, _ = plan(expand_sources([archive]), None, None)
    open_now[0] = most[0] = 0  # plan's probes are done
    parts = fold_interleaved(sources)
    assert most[0] == 1 and len(parts) == len(RING)
    monkeypatch.undo()
    got = stream_flows([archive], engine=EngineOptions(workers=1))
    assert got.report.streamed
    assert_same_as_sorted_table([archive], got)


@pytest.mark.filterwarnings("ignore:.*skipped 1 records .unsupported NetMon media type")
def test_an_archive_of_one_member_is_opened_once(tmp_path, monkeypatch):
    """One zipped NetMon file: read once, not probed for its span first (a NetMon member is
    read whole to find its frame table, so the probe read it twice: 794 MiB for 300 MB)."""
    archive = tmp_path / "one.zip"
    netmon = PCAPS / "formats" / "netmon23_mixed.cap"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(netmon, netmon.name)
    opened = []
    real_init = RecordReader.__init__

    def counting_init(self, *args, **kwargs):
        opened.append(args[0] if args else kwargs.get("source"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(RecordReader, "__init__", counting_init)
    got = stream_flows([archive], engine=EngineOptions(workers=1))
    monkeypatch.undo()
    assert len(opened) == 1
    assert got.report.streamed
    assert_same_as_sorted_table([archive], got)
    plain = stream_flows([netmon], engine=EngineOptions(workers=1)).flows
    assert len(got.flows) == len(plain) > 0


def test_a_file_going_back_in_time_is_read_as_one_sorted_table(tmp_path):
    """Exactness is checked: a file whose packets go back in time cannot be merged chunk by
    chunk, so the engine falls back to the sorted table (and still gives its flows)."""
    back = tmp_path / "back.pcapng"
    with open(back, "wb") as out:  # the ring's last file, then its first: time goes back
        subprocess.run(["mergecap", "-a", "-w", "-", str(RING[3]), str(RING[0])], stdout=out,
                       check=True)
    with pytest.raises(NotStreamable, match="goes back in time"):
        fold_interleaved(expand_sources([back]), chunk_bytes=4096)
    captures = [back, RING[1]]
    sources, _ = plan(expand_sources(captures), None, None)
    with pytest.raises(NotStreamable, match="back in time|starts before packets already folded"):
        fold_interleaved(sources, chunk_bytes=4096)
    got = stream_flows(captures, engine=EngineOptions(workers=1, chunk_bytes=4096))
    assert not got.report.streamed
    assert_same_as_sorted_table(captures, got)


def test_compressed_tar_members_that_overlap_fall_back_exactly(tmp_path, servers):
    """Members of a compressed tar have no cheap first timestamp: they open one after the
    other, and one that starts before packets already folded sends the set to the sorted table."""
    archive = tmp_path / "servers.tgz"
    with tarfile.open(archive, "w:gz") as t:
        for path in servers:
            t.add(path, path.name)
    got = stream_flows([archive], engine=EngineOptions(workers=1))
    assert not got.report.streamed
    assert_same_as_sorted_table([archive], got)


def test_a_member_that_is_no_capture_is_skipped_with_a_warning(tmp_path):
    archive = tmp_path / "ring.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(RING[0], RING[0].name)
        z.writestr("README.txt", "not a capture\n")
        z.write(RING[1], RING[1].name)
    with pytest.warns(UserWarning, match="skipped that member"):
        got = stream_flows([archive], engine=EngineOptions(workers=1))
    assert got.report.streamed
    with pytest.warns(UserWarning, match="skipped that member"):
        assert_same_as_sorted_table([archive], got)


def test_overlap_is_told_from_the_files_first_and_last_timestamps():
    ring, _ = plan(expand_sources(RING), None, None)
    spans = spans_of(ring)
    assert not overlapping(ring, spans)
    late = {**spans, ring[1]: Span(spans[ring[0]].last_ns - 1, spans[ring[1]].last_ns)}
    assert overlapping(ring, late)  # the second starts before the first ends


@pytest.mark.parametrize("chunk_bytes", [None, 256])
def test_untimed_records_borrow_their_own_files_time_when_files_overlap(tmp_path, chunk_bytes):
    """pcapng simple packet blocks carry no time: in a merged stream each takes the time of the
    record before it in its own file, as the sorted table gives it, however the chunks fall."""
    from test_capture import ACK, T0, epb, ether, idb, ipv4, shb, spb, tcp

    def frame(sport, body):
        return ether(ipv4("198.18.0.10", "198.19.0.25", 6, tcp(sport, 25, ACK, body)))

    def capture(name, sport, times):  # None: a simple packet block
        data = shb() + idb(1)
        for k, us in enumerate(times):
            f = frame(sport, b"DATA%03d" % k)
            data += spb(f, len(f)) if us is None else epb(0, T0 * 1_000_000 + us, f)
        path = tmp_path / name
        path.write_bytes(data)
        return path

    files = [capture("a.pcapng", 50000, [10, None, None, 30, None, 60]),
             capture("b.pcapng", 50001, [15, None, 25, None, None, 40, None])]
    sources, _ = plan(expand_sources(files), None, None)
    assert overlapping(sources, spans_of(sources))
    got = stream_flows(files, engine=EngineOptions(workers=1, chunk_bytes=chunk_bytes))
    assert got.report.streamed
    assert_same_as_sorted_table(files, got)
    table = read_packets(files)
    assert len(table.packets) == 13 and got.flows["src_packets"].sum() == 13
