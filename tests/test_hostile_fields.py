"""Byte-literal captures whose header fields claim what the file cannot back."""

from __future__ import annotations

import struct

import pytest
from click.testing import CliRunner

from auditor import CaptureWarning, read_packets
from auditor.cli import cli
from tests.fuzz import capbuild as cb


def _ng_with_idb_options(tmp_path, options: bytes, ts=1_700_000_000_000_000):
    pk = cb.sample_packets(__import__("random").Random(1), 3)
    cap = cb.pcapng_of(pk, idb_options=options)
    for i, p in enumerate(pk):
        cap.blocks[2 + i] = cb.epb(p, ts=ts + i)
    path = tmp_path / "odd.pcapng"
    path.write_bytes(cap.encode())
    return path


@pytest.mark.parametrize("resol", [0x1D, 0x3F, 0x7F, 0xFF, 0xE0])
def test_unusable_if_tsresol_reads_packets_and_warns_with_offset(tmp_path, resol):
    # The bug that opened issue 15: 10**(resol - 9) overflowed numpy's uint64 (exit 1).
    path = _ng_with_idb_options(tmp_path, cb.ng_option(9, bytes([resol])) + cb.ng_option(0, b""))
    with pytest.warns(CaptureWarning, match=r"unusable if_tsresol .* byte offset 28 "):
        table = read_packets([path])
    assert len(table.packets) == 3
    assert (table.packets["ts_ns"] == 0).all()


def test_odd_if_tsresol_through_the_cli_is_not_an_internal_error(tmp_path):
    path = _ng_with_idb_options(tmp_path, cb.ng_option(9, b"\x7f"))
    res = CliRunner().invoke(cli, ["flows", str(path), "--format", "csv"])
    assert res.exit_code == 0, res.stderr
    assert "internal error" not in res.stderr and "unusable if_tsresol" in res.stderr


@pytest.mark.parametrize("resol,expect_ns", [
    (0x1C, 0),  # 10^-28 s units: 10**12 of them are far below 1 ns
    (0x13, 100),  # 10^-19 s
    (0x0A, 10**11),  # 10^-10 s
    (0x89, 10**21 // 512),  # 2^-9 s
])
def test_fine_if_tsresol_still_scales(tmp_path, resol, expect_ns):
    path = _ng_with_idb_options(tmp_path, cb.ng_option(9, bytes([resol])), ts=10**12)
    assert int(read_packets([path]).packets["ts_ns"].iloc[0]) == expect_ns


def test_implausible_if_tsoffset_is_ignored_with_a_warning(tmp_path):
    opt = cb.ng_option(14, struct.pack("<q", 2**62))
    path = _ng_with_idb_options(tmp_path, opt)
    with pytest.warns(CaptureWarning, match="implausible if_tsoffset"):
        table = read_packets([path])
    assert int(table.packets["ts_ns"].iloc[0]) == 1_700_000_000_000_000 * 1000


def test_netmon_start_time_past_the_int64_range_is_ignored_with_a_warning(tmp_path):
    # found by the fuzzer: year 65535 made the start time overflow int64 (exit 1)
    cap = cb.netmon_of(cb.sample_packets(__import__("random").Random(2), 3))
    cap.start = (65535, 1, 0, 1, 0, 0, 0, 0)
    path = tmp_path / "future.cap"
    path.write_bytes(cap.encode())
    with pytest.warns(CaptureWarning, match="invalid start time"):
        table = read_packets([path])
    assert len(table.packets) == 3


def test_byte_rows_of_no_offsets_from_a_short_buffer_is_empty():
    # found by the fuzzer: an empty NetMon frame table over a buffer shorter than a header
    import numpy as np

    from auditor.capture.records import byte_rows

    assert byte_rows(np.zeros(3, np.uint8), np.zeros(0, np.int64), 20).shape == (0, 20)


def test_zip_member_failing_its_crc_keeps_the_records_before_it(tmp_path):
    # found by the fuzzer: zipfile's BadZipFile (bad CRC-32) escaped as an internal error
    import zipfile

    data = cb.pcap_of(cb.sample_packets(__import__("random").Random(4), 200)).encode()
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ring_1.pcap", data)
    raw = bytearray(path.read_bytes())
    raw[30 + len("ring_1.pcap") + len(data) - 10] ^= 0xFF  # the last record's bytes
    path.write_bytes(bytes(raw))
    res = CliRunner().invoke(cli, ["flows", str(path), "--format", "csv"])
    assert "internal error" not in res.stderr
    assert res.exit_code in (0, 2), res.stderr
    assert "corrupt archive member" in res.stderr and "Bad CRC-32" in res.stderr


def test_pcapng_block_claiming_4_gb_in_a_tar_allocates_nothing_of_it(tmp_path):
    # found by the fuzzer: the claimed length became the size of one read of the archive
    # member, and BufferedReader.read(n) allocates n bytes first (MemoryError under a cap)
    import io
    import subprocess
    import sys
    import tarfile

    pk = cb.sample_packets(__import__("random").Random(5), 3)
    cap = cb.pcapng_of(pk)
    cap.blocks[-1] = cb.Block(6, cap.blocks[-1].body, length=0xFFFFFFFC)
    data = cap.encode()
    path = tmp_path / "set.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("ring_1.pcapng")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    code = ("import resource, warnings; warnings.simplefilter('ignore');"
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY));"
            "from auditor import read_packets;"
            f"print(len(read_packets([{str(path)!r}]).packets))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # under a 3 GB address-space cap: a 4 GB read fails
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["2"]
