"""A big compressed NetMon file is read twice, streamed, and reads as inflating it whole does."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from auditor.capture import bytesource, netmon
from auditor.capture.bytesource import CaptureSource
from auditor.capture.packets import read_packets
from auditor.capture.reader import RecordReader
from auditor.capture.sets import probe
from auditor.errors import CaptureError

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "make_formats", ROOT / "fixtures" / "pcaps" / "formats" / "make_formats.py")
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)


def frames(n, media=mf.ETHERNET):
    return [(i * 1000, media, mf.ether(mf.segment(40000 + i % 20000, 445, flags=0x02)))
            for i in range(n)]


def _read(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_packets([path])
    return table, [str(w.message) for w in caught]


def both(monkeypatch, path):
    """(read inflated whole, read streamed): the packets, files and warnings of each, and the
    largest window the streamed read held."""
    whole = _read(path)
    monkeypatch.setattr(netmon, "IN_MEMORY", 256)
    monkeypatch.setattr(bytesource, "WINDOW", 1024)  # the pump's pieces: the window slides
    held = []
    walk = netmon.NetmonWalker._walk_streamed

    def watched(self, budget):
        held.append(len(self._r._src.buf))
        return walk(self, budget)

    monkeypatch.setattr(netmon.NetmonWalker, "_walk_streamed", watched)
    streamed = _read(path)
    return whole, streamed, held


def same(whole, streamed):
    (t1, w1), (t2, w2) = whole, streamed
    assert t2.packets.equals(t1.packets)
    assert [(f.records, f.ip_packets, f.skipped, f.first_ts_ns, f.last_ts_ns) for f in t2.files] \
        == [(f.records, f.ip_packets, f.skipped, f.first_ts_ns, f.last_ts_ns) for f in t1.files]
    assert w2 == w1


@pytest.mark.parametrize("minor", [1, 3])
def test_big_gzipped_netmon_is_streamed_and_reads_as_inflated_whole(tmp_path, monkeypatch,
                                                                    minor):
    data = mf.netmon2(frames(600), minor=minor, gap=3)
    path = tmp_path / "big.cap.gz"
    path.write_bytes(gzip.compress(data))
    whole, streamed, held = both(monkeypatch, path)
    same(whole, streamed)
    assert len(streamed[0].packets) == 600
    assert held and max(held) < len(data) // 4  # a window, never the whole file


def test_big_zipped_netmon_member_is_streamed_and_reads_as_inflated_whole(tmp_path,
                                                                          monkeypatch):
    path = tmp_path / "caps.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("server1.cap", mf.netmon2(frames(500)))
    whole, streamed, held = both(monkeypatch, path)
    same(whole, streamed)
    assert len(streamed[0].packets) == 500 and held


def test_table_out_of_file_order_is_read_whole_as_before(tmp_path, monkeypatch):
    order = [*range(100, 300), *range(100)]
    path = tmp_path / "n.cap.gz"
    path.write_bytes(gzip.compress(mf.netmon2(frames(300), order=order)))
    whole, streamed, held = both(monkeypatch, path)
    same(whole, streamed)
    assert not held  # never streamed


@pytest.mark.parametrize("entry, caplen", [(299, None), (None, 300_000)])
def test_a_bad_frame_stops_the_streamed_read_where_the_whole_read_stops(tmp_path, monkeypatch,
                                                                       entry, caplen):
    data = bytearray(mf.netmon2(frames(300)))
    table_off = struct.unpack_from("<I", data, 24)[0]
    if entry is not None:  # the last table entry points past the end of the file
        struct.pack_into("<I", data, table_off + 4 * entry, len(data) + 5000)
    else:  # frame 200 claims an absurd captured length
        at = struct.unpack_from("<I", data, table_off + 4 * 200)[0]
        struct.pack_into("<I", data, at + 12, caplen)
    path = tmp_path / "n.cap.gz"
    path.write_bytes(gzip.compress(bytes(data)))
    whole, streamed, held = both(monkeypatch, path)
    same(whole, streamed)
    assert held and len(streamed[0].packets) == (299 if entry is not None else 200)
    assert any("kept the" in w for w in streamed[1])


def test_streamed_read_stops_at_the_last_frame(tmp_path, monkeypatch):
    # a capture, then 80 MB of zeros that no frame points into: neither read inflates them (a
    # read through them would pull 80 MB, more than the three windows allowed below)
    data = mf.netmon2(frames(50)) + bytes(80 << 20)
    path = tmp_path / "n.cap.gz"
    path.write_bytes(gzip.compress(data))
    monkeypatch.setattr(netmon, "IN_MEMORY", 256)
    pulled = []
    read = bytesource.StreamSource.read

    def counted(self, room):
        parts = read(self, room)
        pulled.append(sum(len(p) for p in parts))
        return parts

    monkeypatch.setattr(bytesource.StreamSource, "read", counted)
    table, notes = _read(path)
    assert len(table.packets) == 50 and not notes
    # the pump reads ahead at most two 16 MiB windows; the first read keeps none of them
    assert sum(pulled) < 3 * bytesource.WINDOW


def test_streamed_netmon_span_is_the_whole_reads(tmp_path, monkeypatch):
    path = tmp_path / "n.cap.gz"
    path.write_bytes(gzip.compress(mf.netmon2(frames(400))))
    whole = probe(CaptureSource(str(path)))
    monkeypatch.setattr(netmon, "IN_MEMORY", 256)
    with RecordReader(str(path)) as reader:
        assert reader._walker.streamed
    assert probe(CaptureSource(str(path))) == whole
    assert whole.last_ns == whole.first_ns + 399 * 1000 * 1000


def test_inflating_too_far_is_refused_only_when_the_table_needs_the_whole_file(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(netmon, "IN_MEMORY", 100)
    monkeypatch.setattr(netmon, "MAX_INFLATED", 200)
    path = tmp_path / "n.cap.gz"
    path.write_bytes(gzip.compress(mf.netmon2(frames(8))))
    assert len(read_packets([path]).packets) == 8  # in file order: streamed, however big
    path.write_bytes(gzip.compress(mf.netmon2(frames(8), order=[1, 0, *range(2, 8)])))
    with pytest.raises(CaptureError, match=r"n\.cap\.gz: NetMon file inflates past 0 MiB \(at "
                       r"byte offset 200 of the stream\), and its frame table is missing or not in "
                       r"file order; decompress it first"):
        read_packets([path])


@pytest.mark.skipif(__import__("shutil").which("editcap") is None, reason="editcap not installed")
def test_wiresharks_netmon_writer_streamed_as_inflated_whole(tmp_path, monkeypatch):
    """A NetMon 2.x file written by Wireshark's own writer (editcap -F netmon2) of the pilot
    capture: zipped, streamed through a small window, it reads as inflated whole."""
    import subprocess

    cap = tmp_path / "pilot.cap"
    subprocess.run(["editcap", "-F", "netmon2", str(ROOT / "fixtures" / "pcaps" / "pilot" /
                                                     "pilot.pcapng"), str(cap)], check=True)
    path = tmp_path / "pilot.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(cap, "pilot.cap")
    whole, streamed, held = both(monkeypatch, path)
    same(whole, streamed)
    assert len(streamed[0].packets) > 1000 and max(held) < cap.stat().st_size // 4


def test_a_frame_table_longer_than_max_table_is_not_kept_by_a_first_read(tmp_path, monkeypatch):
    # a header claiming a huge table (a bomb of zeros would fill it): the file is read whole,
    # never a table of that length collected from the stream
    monkeypatch.setattr(netmon, "MAX_TABLE", 64)
    path = tmp_path / "n.cap.gz"
    path.write_bytes(gzip.compress(mf.netmon2(frames(300))))
    whole, streamed, held = both(monkeypatch, path)
    same(whole, streamed)
    assert not held and len(streamed[0].packets) == 300
