"""Capture sets: folders, globs, several files, zip and tar archives, and --since/--until."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zstandard
from click.testing import CliRunner

from auditor import build_flows
from auditor.capture import packets as packets_module
from auditor.capture.packets import read_packets, write_packets
from auditor.capture.reader import RecordReader
from auditor.capture.sets import CaptureSet, probe
from auditor.cli import cli
from auditor.errors import CaptureError, CaptureWarning

ROOT = Path(__file__).resolve().parent.parent
RING = sorted((ROOT / "fixtures" / "pcaps" / "pilot" / "ring").glob("pilot_0*.pcapng"))
# each ring file's first and last packet times (capinfos), ns since the epoch
FIRST = [1795840851860455682, 1795840860650512275, 1795840869580822914, 1795840875373437015]
LAST = [1795840860643542120, 1795840869580807745, 1795840875372728235, 1795840897647788161]


def flows_of(table):
    return build_flows(table).drop(columns=["capture", "flow_id"])


@pytest.fixture(scope="module")
def whole():
    return flows_of(read_packets(RING))


def names(table):
    return [f.name for f in table.files]


def test_zip_members_are_read_in_place_in_time_order(tmp_path, whole):
    path = tmp_path / "ring.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in reversed(RING):  # added newest first, and renamed so names do not help
            zf.write(p, f"part-{'abcd'[3 - RING.index(p)]}.pcapng")
    t = read_packets([path])
    assert names(t) == ["part-d.pcapng", "part-c.pcapng", "part-b.pcapng", "part-a.pcapng"]
    assert [f.first_ts_ns for f in t.files] == FIRST
    assert {f.member for f in t.files} == {"part-a.pcapng", "part-b.pcapng", "part-c.pcapng",
                                           "part-d.pcapng"}
    assert flows_of(t).equals(whole)
    assert list(tmp_path.iterdir()) == [path]  # nothing unpacked beside it


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz"])
def test_tar_archives_read_like_the_folder(tmp_path, whole, mode):
    path = tmp_path / "ring.tar"
    with tarfile.open(path, mode) as tf:
        for p in RING:
            tf.add(p, p.name)
    t = read_packets([path])
    assert names(t) == [p.name for p in RING]
    assert flows_of(t).equals(whole)


def test_compressed_members_inside_an_archive(tmp_path, whole):
    path = tmp_path / "ring.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in RING:
            zf.writestr(p.name + ".zst", zstandard.ZstdCompressor().compress(p.read_bytes()))
    t = read_packets([path])
    assert {f.format for f in t.files} == {"pcapng+zstd"}
    assert flows_of(t).equals(whole)


def test_a_member_that_is_not_a_capture_is_skipped_with_a_warning(tmp_path, whole):
    path = tmp_path / "ring.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README.txt", "ring buffer of the pilot\n")
        for p in RING:
            zf.write(p, p.name)
    with pytest.warns(CaptureWarning, match=r"ring\.zip!README\.txt: not a capture format .* "
                      r"at byte offset 0.*; skipped that member"):
        t = read_packets([path])
    assert [(f.name, f.skipped) for f in t.files if f.records == 0] == [
        ("README.txt", {"not a capture": 1})]
    assert flows_of(t).equals(whole)


def test_glob_pattern_and_scrambled_files_are_read_in_time_order(whole):
    pattern = str(RING[0].parent / "pilot_0[0-3].pcapng")
    assert names(read_packets([pattern])) == [p.name for p in RING]
    t = read_packets([RING[2], RING[0], RING[3], RING[1]])
    assert names(t) == [p.name for p in RING]
    assert flows_of(t).equals(whole)


def test_glob_matching_nothing_is_one_line():
    with pytest.raises(CaptureError, match=r"nothing_\*\.pcap: the pattern matches no files"):
        read_packets(["nothing_*.pcap"])


def test_probe_finds_first_and_last_timestamps_without_reading_the_files():
    spans = [probe(packets_module.CaptureSource(str(p))) for p in RING]
    assert [s.first_ns for s in spans] == FIRST
    assert [s.last_ns for s in spans] == LAST


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
@pytest.mark.parametrize("fmt,suffix", [("pcap", "pcap"), ("modpcap", "pcap"), ("netmon2", "cap")])
def test_probe_reads_the_last_timestamp_of_pcap_and_netmon_from_the_end(tmp_path, fmt, suffix):
    out = tmp_path / f"x.{suffix}"
    subprocess.run(["editcap", "-F", fmt, str(RING[1]), str(out)], check=True)
    span = probe(packets_module.CaptureSource(str(out)))
    assert abs(span.first_ns - FIRST[1]) < 1000 and abs(span.last_ns - LAST[1]) < 2000  # us files


@pytest.fixture
def opened(monkeypatch):
    """The captures read_packets opens to read (probes open them only to peek)."""
    seen = []

    class Spy(RecordReader):
        def __init__(self, source, archives=None):
            seen.append(Path(source.path).name)
            super().__init__(source, archives)

    monkeypatch.setattr(packets_module, "RecordReader", Spy)
    return seen


def test_since_until_skips_files_outside_the_window_unread(opened):
    since, until = FIRST[1] + 1, FIRST[2] + 1_000_000_000
    t = read_packets(CaptureSet(tuple(RING), since, until))
    assert opened == ["pilot_01.pcapng", "pilot_02.pcapng"]
    assert [Path(p).name for p in t.left_out] == ["pilot_00.pcapng", "pilot_03.pcapng"]
    ts = t.packets["ts_ns"].to_numpy()
    assert ts.min() >= since and ts.max() <= until
    kept = np.asarray([f.ip_packets - f.outside_window for f in t.files])
    assert kept.sum() == len(ts) and t.files[0].outside_window == 1  # the file's first packet


def test_window_keeps_icmp_errors_pointing_at_their_packets():
    edge = ROOT / "fixtures" / "pcaps" / "edge" / "icmp_admin_prohibited.pcap"
    t = read_packets([edge])
    ts = t.packets["ts_ns"].to_numpy()
    w = read_packets([edge], since_ns=int(ts[1]))
    assert len(w.packets) == len(t.packets) - (ts < ts[1]).sum()
    for e in w.icmp_errors.itertuples():
        assert w.packets["proto"].iloc[e.packet_index] in (1, 58)


def test_cli_since_until_on_a_folder():
    res = CliRunner().invoke(cli, ["flows", str(RING[0].parent), "--since", "2026-11-28T04:41:10Z",
                                   "--until", "2026-11-28 04:41:14"])
    assert res.exit_code == 0, res.output
    assert "from 1 file(s): pilot_02.pcapng" in res.output
    assert "3 file(s) wholly outside --since/--until not read" in res.output
    bad = CliRunner().invoke(cli, ["flows", str(RING[0]), "--since", "yesterday"])
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output


def test_archive_members_are_skipped_by_until_and_filtered_by_since(tmp_path, opened):
    # a member's last timestamp would need it inflated to its end: only --until can skip it
    path = tmp_path / "ring.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in RING:
            zf.write(p, p.name)
    t = read_packets([path], since_ns=FIRST[1], until_ns=LAST[1])
    assert [Path(p).name for p in t.left_out] == ["ring.zip!pilot_02.pcapng",
                                                  "ring.zip!pilot_03.pcapng"]
    assert [f.name for f in t.files] == ["pilot_00.pcapng", "pilot_01.pcapng"]
    assert t.files[0].outside_window == t.files[0].ip_packets
    assert len(t.packets) == t.files[1].ip_packets


def test_packets_of_an_archive_member_can_be_written_back(tmp_path):
    path = tmp_path / "ring.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(RING[0], RING[0].name)
    t = read_packets([path])
    buf = io.BytesIO()
    assert write_packets(t, np.arange(5), buf) == 5
    assert read_packets([RING[0]]).packets["src_port"].iloc[:5].tolist() == \
        t.packets["src_port"].iloc[:5].tolist()
