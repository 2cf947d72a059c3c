"""Byte-literal tests of the pcap variants, the compressions and the editcap conversion path."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import lz4.frame
import pytest
import zstandard
from test_capture import ACK, NS, T0, col, ether, ipv4, pcap, syn_frame, tcp

from auditor.capture.formats import compression_of, container_of
from auditor.capture.packets import read_packets
from auditor.errors import CaptureError, CaptureWarning

needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")

COMPRESS = {
    "gzip": gzip.compress,
    # with checksums, as the zstd and lz4 command-line tools write them
    "zstd": lambda b: zstandard.ZstdCompressor(write_checksum=True).compress(b),
    "lz4": lambda b: lz4.frame.compress(b, block_checksum=True, content_checksum=True),
    "bzip2": lambda b: bz2.compress(b, 1),  # 100 kB blocks, so a cut file still has whole ones
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ),
}


def variant_pcap(records, magic=0xA1B2CD34, extra=8, order="<", version=(2, 4), linktype=1):
    """pcap whose records carry `extra` bytes after the standard 16-byte header."""
    out = struct.pack(order + "IHHiIII", magic, *version, 0, 0, 262144, linktype)
    for i, data in enumerate(records):
        sec, frac = divmod(T0 * NS + i * 1000, NS)
        incl, orig = len(data), len(data)
        if version < (2, 3):
            incl, orig = orig, incl
        out += struct.pack(order + "IIII", sec, frac // 1000, incl, orig)
        out += bytes(range(1, extra + 1)) + data  # non-zero filler: it must never be read as data
    return out


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


FRAMES = [syn_frame(40000 + i) for i in range(5)]


def noisy_frames(n=3000):
    """TCP segments with seeded random payloads: they compress about as real traffic does."""
    rng = random.Random(11)
    return [(i * 1000, ether(ipv4("198.18.0.10", "198.19.0.25", 6,
                                  tcp(30000 + i % 20000, 445, ACK, rng.randbytes(200)))))
            for i in range(n)]
PORTS = [40000 + i for i in range(5)]


# -- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_compression_is_told_by_magic(name):
    assert compression_of(COMPRESS[name](b"x" * 100)) == name


def test_containers_are_told_by_magic():
    assert container_of(pcap([])).container == "pcap"
    assert container_of(variant_pcap([])).detail == "modified"
    assert container_of(b"\x0a\x0d\x0d\x0a" + b"\0" * 20).container == "pcapng"
    assert container_of(b"GMBU\x00\x02" + b"\0" * 20).container == "netmon"
    assert container_of(b"RTSS\x00\x01" + b"\0" * 20).container is None  # NetMon 1.x: editcap
    assert container_of(b"\0" * 64, "trace.ETL").container == "etl"


# -- pcap variants ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_modified_pcap_records_have_24_byte_headers(tmp_path, order):
    t = read_packets([write(tmp_path, "m.pcap", variant_pcap(FRAMES, order=order))])
    assert (t.files[0].format, col(t, "src_port")) == ("pcap-modified", PORTS)
    assert col(t, "ts_ns")[1] - col(t, "ts_ns")[0] == 1000  # 1 us apart, as written


def test_suse_modified_pcap_has_28_byte_headers(tmp_path):
    t = read_packets([write(tmp_path, "s.pcap", variant_pcap(FRAMES, extra=12))])
    assert (t.files[0].format, col(t, "src_port")) == ("pcap-ss990915", PORTS)


@pytest.mark.parametrize("extra,fmt", [(0, "pcap"), (8, "pcap-ss990417"), (4, "pcap-nokia")])
def test_standard_magic_layouts_are_told_by_how_records_read(tmp_path, extra, fmt):
    data = variant_pcap(FRAMES, magic=0xA1B2C3D4, extra=extra)
    t = read_packets([write(tmp_path, "x.pcap", data)])
    assert (t.files[0].format, col(t, "src_port")) == (fmt, PORTS)


def test_pcap_before_2_3_has_the_lengths_the_other_way(tmp_path):
    data = variant_pcap([FRAMES[0]], magic=0xA1B2C3D4, extra=0, version=(2, 2))
    t = read_packets([write(tmp_path, "old.pcap", data)])
    assert col(t, "src_port") == [40000]


def test_aix_pcap_maps_interface_types_and_reads_nanoseconds(tmp_path):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 2, 0, 0, 262144, 6)  # ifType 6: Ethernet
    out += struct.pack("<IIII", T0, 5, len(FRAMES[0]), len(FRAMES[0])) + FRAMES[0]
    t = read_packets([write(tmp_path, "aix.pcap", out)])
    assert (t.files[0].format, col(t, "ts_ns")) == ("pcap-aix", [T0 * NS + 5])


def test_truncated_modified_pcap_keeps_complete_records(tmp_path):
    data = variant_pcap(FRAMES)
    with pytest.warns(CaptureWarning,
                      match=r"m\.pcap: truncated record at byte offset 336 .*kept the 4 records"):
        t = read_packets([write(tmp_path, "m.pcap", data[:-10])])
    assert col(t, "src_port") == PORTS[:4]


# -- compressions -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_each_compression_reads_like_the_plain_file(tmp_path, name):
    plain = pcap([(i * 1000, f) for i, f in enumerate(FRAMES)])
    t = read_packets([write(tmp_path, "c.bin", COMPRESS[name](plain))])
    assert (t.files[0].format, col(t, "src_port")) == (f"pcap+{name}", PORTS)


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_concatenated_members_are_read_on(tmp_path, name):
    a = pcap([(0, FRAMES[0])])
    b = a[24:]  # a second member continuing the same stream
    t = read_packets([write(tmp_path, "c.bin", COMPRESS[name](a) + COMPRESS[name](b))])
    assert col(t, "src_port") == [40000, 40000]


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_truncated_compressed_tail_keeps_complete_records_and_warns(tmp_path, name):
    data = COMPRESS[name](pcap(noisy_frames()))
    with pytest.warns(CaptureWarning) as rec:
        t = read_packets([write(tmp_path, "cut.bin", data[: len(data) * 2 // 3])])
    n = len(t.packets)
    assert 0 < n < 3000
    assert col(t, "src_port") == [30000 + i for i in range(n)]  # every record kept is whole
    text = " ".join(str(w.message) for w in rec)
    assert f"of the {name}-decompressed stream" in text and "cut.bin" in text
    assert f"kept the {n} records" in text


@pytest.mark.parametrize("name", ["zstd", "lz4", "gzip"])
def test_corrupt_compressed_frame_keeps_what_came_before(tmp_path, name):
    data = bytearray(COMPRESS[name](pcap(noisy_frames())))
    for k in range(len(data) // 2, len(data) // 2 + 64):
        data[k] ^= 0x5A
    with pytest.warns(CaptureWarning, match=r"corrupt\.bin: (corrupt|truncated|absurd)") as rec:
        t = read_packets([write(tmp_path, "corrupt.bin", bytes(data))])
    assert len(t.packets) < 3000
    assert any("byte offset" in str(w.message) for w in rec)


def test_compressed_garbage_is_one_line_naming_the_file(tmp_path):
    path = write(tmp_path, "junk.zst", COMPRESS["zstd"](b"this is not a capture" * 10))
    with pytest.raises(CaptureError, match=r"junk\.zst: .*zstd content starts with 0x74686973"):
        read_packets([path])


def test_etl_says_how_to_convert(tmp_path):
    with pytest.raises(CaptureError, match=r"trace\.etl: an ETL trace .*pktmon etl2pcap.*etl2pcapng"):
        read_packets([write(tmp_path, "trace.etl", b"\x00\x00\x01\x00" + b"\0" * 200)])


# -- formats read through editcap ---------------------------------------------------------------


@needs_editcap
@pytest.mark.parametrize("compress", [None, "gzip", "bzip2"])
def test_snoop_is_converted_by_editcap_with_one_warning(tmp_path, compress):
    plain = write(tmp_path, "p.pcap", pcap([(i * 1000, f) for i, f in enumerate(FRAMES)]))
    snoop = tmp_path / "p.snoop"
    subprocess.run(["editcap", "-F", "snoop", str(plain), str(snoop)], check=True)
    if compress:
        snoop.write_bytes(COMPRESS[compress](snoop.read_bytes()))
    with pytest.warns(CaptureWarning, match=r"p\.snoop: .* read through editcap") as rec:
        t = read_packets([snoop])
    assert len(rec) == 1
    assert col(t, "src_port") == PORTS
    assert col(t, "ts_ns") == read_packets([plain]).packets["ts_ns"].tolist()
    assert t.files[0].format.endswith("via editcap")


@needs_editcap
def test_file_nobody_reads_is_one_line_naming_it(tmp_path):
    with pytest.raises(CaptureError, match=r"noise\.bin: not a capture format auditor or tshark"):
        read_packets([write(tmp_path, "noise.bin", bytes(range(256)) * 8)])


# -- committed fixtures -----------------------------------------------------------------------

FORMATS = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps" / "formats"


def test_committed_modified_pcap_fixture():
    t = read_packets([FORMATS / "modified.pcap"])
    assert (t.files[0].format, col(t, "src_port")) == ("pcap-modified", [40000 + i for i in range(8)])


@pytest.mark.parametrize("ext,name,kept,offset", [
    ("gzip", "gzip", 1799, 341834), ("zst", "zstd", 1379, 262034), ("lz4", "lz4", 1724, 327584),
    ("bz2", "bzip2", 1176, 223464), ("xz", "xz", 1742, 331004)])
def test_committed_truncated_tails_keep_every_complete_record(ext, name, kept, offset):
    path = FORMATS / f"truncated_tail.{ext}"
    with pytest.warns(CaptureWarning) as rec:
        t = read_packets([path])
    assert [str(w.message) for w in rec] == [
        f"{path}: truncated {name} stream at byte offset {offset} of the {name}-decompressed "
        f"stream (the compressed stream ends early); kept the {kept} records before it"]
    assert col(t, "src_port") == [30000 + i for i in range(kept)]
    assert t.files[0].skipped == {f"truncated {name} stream": 1}


# -- pcapng as etl2pcapng and pktmon write it ---------------------------------------------------


def _etl2pcapng_style():
    """SHB without options; IDBs with if_name/if_description (Ethernet, raw IP, 802.11); EPBs in
    microseconds with an epb_flags option (1 in, 2 out), a comment and end-of-options, the
    lengths covering the options as etl2pcapng's writer computes them."""
    def opt(code, value):
        return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    def block(btype, body):
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for lt, name in ((1, b"Ethernet0"), (101, b"WAN Miniport (IP)"), (105, b"Wi-Fi")):
        out += block(1, struct.pack("<HHI", lt, 0, 65535) + opt(2, name)
                     + opt(3, b"adapter " + name) + struct.pack("<HH", 0, 0))
    frames = [(0, FRAMES[0]), (1, FRAMES[1][14:]), (2, b"\x80\0" + b"\0" * 30), (0, FRAMES[2])]
    for i, (iface, data) in enumerate(frames):
        us = T0 * 1_000_000 + i
        body = struct.pack("<IIIII", iface, us >> 32, us & 0xFFFFFFFF, len(data), len(data))
        body += data + b"\0" * (-len(data) % 4) + opt(2, struct.pack("<I", 1 + i % 2))
        body += opt(1, f"PID={4 + i} ProcessorNumber=0".encode()) + struct.pack("<HH", 0, 0)
        out += block(6, body)
    return out


def test_pcapng_as_etl2pcapng_writes_it(tmp_path):
    with pytest.warns(CaptureWarning, match=r"skipped 1 records \(linktype 105\)"):
        t = read_packets([write(tmp_path, "netsh.pcapng", _etl2pcapng_style())])
    f = t.files[0]
    assert (f.format, f.records, f.ip_packets, f.skipped) == ("pcapng", 4, 3, {"linktype 105": 1})
    assert col(t, "src_port") == [40000, 40001, 40002]
    assert col(t, "l3_offset") == [14, 0, 14]
    assert col(t, "ts_ns") == [T0 * NS, T0 * NS + 1000, T0 * NS + 3000]


@needs_editcap
def test_truncated_snoop_keeps_what_editcap_converted_and_says_why(tmp_path):
    plain = write(tmp_path, "p.pcap", pcap(noisy_frames(200)))
    snoop = tmp_path / "cut.snoop"
    subprocess.run(["editcap", "-F", "snoop", str(plain), str(snoop)], check=True)
    snoop.write_bytes(snoop.read_bytes()[:-100])
    with pytest.warns(CaptureWarning) as rec:
        t = read_packets([snoop])
    texts = [str(w.message) for w in rec]
    assert any("read through editcap" in m for m in texts)
    assert any(re.search(r"cut\.snoop: editcap stopped converting at byte offset \d+ of editcap's "
                         r"pcapng output \(.*cut short.*\); kept the 199 records", m) for m in texts)
    assert len(t.packets) == 199


def _inflate(data: bytes, room: int) -> tuple[bytes, int, str | None]:
    """All of a zstd stream through Inflater.read(room): (bytes, the largest read, error)."""
    import io

    from auditor.capture.compression import Inflater

    inf, out, largest = Inflater(io.BytesIO(data), "zstd"), [], 0
    while parts := inf.read(room):
        got = b"".join(parts)
        largest = max(largest, len(got))
        out.append(got)
    return b"".join(out), largest, inf.error


def test_a_zstd_bomb_inflates_a_window_at_a_time():
    # 64 MB of zeros are 2 KB of zstd (RLE blocks: 4 bytes make 128 KiB). zstandard's
    # decompressobj has no output limit, so one small feed made the whole 64 MB at once (a
    # 10 KB fuzz case of 300 MB took 690 MiB); the frame's block headers now cut the feed
    bomb = zstandard.ZstdCompressor().compress(bytes(64 << 20))
    assert len(bomb) < 4096
    got, largest, error = _inflate(bomb, 4 << 20)
    assert len(got) == 64 << 20 and not got.strip(b"\0") and error is None
    assert largest <= (4 << 20) + (256 << 10)


@pytest.mark.parametrize("room", [100_000, 16 << 20])
def test_zstd_frames_of_every_block_kind_read_whole_in_bounded_reads(room):
    rng = random.Random(5)
    noise = rng.randbytes(1 << 20)  # raw blocks
    text = b"".join(b"flow %d from 198.18.0.%d\n" % (i, i % 250) for i in range(60_000))
    frames = [
        zstandard.ZstdCompressor(write_checksum=True).compress(noise + bytes(3 << 20) + text),
        zstandard.ZstdCompressor(write_content_size=False).compress(text),
        zstandard.ZstdCompressor(level=19, write_checksum=True).compress(b""),
    ]
    streamed = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    frames.append(streamed.compress(bytes(2 << 20)) + streamed.compress(noise) + streamed.flush())
    got, largest, error = _inflate(b"".join(frames), room)
    assert error is None
    assert got == noise + bytes(3 << 20) + text + text + bytes(2 << 20) + noise
    assert largest <= room + (256 << 10)
