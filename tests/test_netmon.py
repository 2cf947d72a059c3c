"""NetMon 2.x: the frame table, per-frame media types and timestamps, and damaged files."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from auditor.capture.packets import read_packets
from auditor.errors import CaptureError, CaptureWarning

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "fixtures" / "pcaps" / "formats"
_spec = importlib.util.spec_from_file_location("make_formats", FORMATS / "make_formats.py")
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)
T0_NS = mf.T0 * 1_000_000_000


def read(tmp_path, data, name="n.cap"):
    path = tmp_path / name
    path.write_bytes(data)
    return read_packets([path])


def syn(port):
    return mf.segment(port, 445, flags=0x02)


def frames(n=4, media=mf.ETHERNET):
    return [(i * 1000, media, mf.ether(syn(50000 + i))) for i in range(n)]


def col(t, name):
    return t.packets[name].tolist()


def test_committed_fixture_reads_every_media_type_in_frame_table_order():
    with pytest.warns(CaptureWarning, match="unsupported NetMon media type"):
        t = read_packets([FORMATS / "netmon23_mixed.cap"])
    f = t.files[0]
    assert (f.format, f.records, f.ip_packets, f.non_ip) == ("netmon2.3", 6, 4, 1)
    assert f.skipped == {"unsupported NetMon media type": 1}  # the 802.11 beacon
    assert col(t, "src_port") == [50000, 50001, 50002, 445]
    assert col(t, "l3_offset") == [14, 0, 16, 14]  # Ethernet, raw IP, Linux cooked, Ethernet
    assert col(t, "record_index") == [0, 1, 2, 4]  # table order: frame 5 is listed before 4
    assert col(t, "ts_ns") == [T0_NS + k * 1_000_000 for k in (0, 1, 2, 5)]


@pytest.mark.parametrize("minor", [0, 1, 2, 3])
def test_every_minor_version_has_its_trailer(tmp_path, minor):
    t = read(tmp_path, mf.netmon2(frames(), minor=minor))
    assert (t.files[0].format, col(t, "src_port")) == (f"netmon2.{minor}", [50000, 50001, 50002,
                                                                             50003])
    assert col(t, "ts_ns")[1] == T0_NS + 1_000_000


def test_before_2_3_times_are_the_header_start_plus_each_delta(tmp_path):
    t = read(tmp_path, mf.netmon2(frames(2), minor=2, start=(2024, 1, 1, 0, 0, 1, 500)))
    assert col(t, "ts_ns") == [T0_NS + 1_500_000_000, T0_NS + 1_501_000_000]


def test_2_3_utc_filetime_wins_over_the_delta(tmp_path):
    ft = mf.FILETIME_1970 + (mf.T0 + 60) * 10_000_000
    t = read(tmp_path, mf.netmon2([(5, mf.ETHERNET, mf.ether(syn(1)), ft)], minor=3))
    assert col(t, "ts_ns") == [T0_NS + 60 * 1_000_000_000]


@pytest.mark.parametrize("media,l3", [(0, 14), (1, 14), (7, 0), (8, 0), (9, 0), (0xE001, 14),
                                      (0xE065, 0), (0xE071, 16)])
def test_media_types_that_carry_ip(tmp_path, media, l3):
    data = syn(1) if l3 == 0 else mf.sll(syn(1)) if l3 == 16 else mf.ether(syn(1))
    t = read(tmp_path, mf.netmon2([(0, media, data)], minor=1))
    assert (col(t, "src_port"), col(t, "l3_offset")) == ([1], [l3])


@pytest.mark.parametrize("media", [0xFFE0, 0xFFFB, 0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF])
def test_netmon_own_records_are_counted_as_not_ip(tmp_path, media):
    t = read(tmp_path, mf.netmon2([(0, media, b"\0" * 40), *frames(1)], minor=2))
    assert (t.files[0].records, t.files[0].non_ip, t.files[0].skipped) == (2, 1, {})


def test_media_without_a_decoder_is_skipped_not_dropped(tmp_path):
    with pytest.warns(CaptureWarning, match=r"skipped 1 records \(unsupported NetMon media type\)"):
        t = read(tmp_path, mf.netmon2([(0, mf.WIFI, b"\x80" + b"\0" * 40), *frames(1)], minor=1))
    assert t.files[0].skipped == {"unsupported NetMon media type": 1}


def test_frame_table_order_and_holes_are_followed(tmp_path):
    t = read(tmp_path, mf.netmon2(frames(3), order=[2, 0, 1], gap=5))
    assert col(t, "record_index") == [1, 2, 0]  # sorted by time; record 0 is the third frame
    assert col(t, "src_port") == [50000, 50001, 50002]


def test_frame_table_entry_past_the_end_keeps_the_frames_before(tmp_path):
    data = bytearray(mf.netmon2(frames(4)))
    table_off = struct.unpack_from("<I", data, 24)[0]
    struct.pack_into("<I", data, table_off + 8, 10_000_000)  # third entry points past the end
    with pytest.warns(CaptureWarning, match=rf"n\.cap: frame past the end of the file at byte "
                      rf"offset 10000000 \(frame table entry 2 at byte offset {table_off + 8}"
                      r".*kept the 2 records"):
        t = read(tmp_path, bytes(data))
    assert col(t, "src_port") == [50000, 50001]


def test_truncated_file_without_its_table_is_walked_frame_by_frame(tmp_path):
    data = mf.netmon2(frames(4))
    cut = data[: len(data) - 16 - 30]  # the table and part of the last frame are gone
    with pytest.warns(CaptureWarning, match=r"n\.cap: frame table missing at byte offset \d+ "
                      r"\(the file ends at byte \d+.*kept the 3 records"):
        t = read(tmp_path, cut)
    assert col(t, "src_port") == [50000, 50001, 50002]


def test_truncated_header_is_one_line_with_the_offset(tmp_path):
    with pytest.raises(CaptureError, match=r"n\.cap: truncated NetMon file header \(40 bytes at "
                       r"offset 0, 128 needed\)"):
        read(tmp_path, mf.netmon2(frames(1))[:40])


def test_frame_table_length_not_a_multiple_of_four_is_one_line(tmp_path):
    with pytest.raises(CaptureError, match=r"n\.cap: frame table length 7 at byte offset 28"):
        read(tmp_path, mf.netmon2(frames(1), table_len=7))


def test_compressed_netmon_reads_like_the_plain_file(tmp_path):
    import gzip

    import zstandard

    plain = mf.netmon2(frames(3))
    for data in (gzip.compress(plain), zstandard.ZstdCompressor().compress(plain)):
        t = read(tmp_path, data, "n.cap.x")
        assert col(t, "src_port") == [50000, 50001, 50002]
