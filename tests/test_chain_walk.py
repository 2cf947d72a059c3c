"""The vectorised record walk (capture.chain) gives exactly what the record-by-record walk gives.

The guesses of record starts decide only the speed: these tests make them fail on purpose
(fake headers in payloads, damage, truncation, records from tiny to jumbo) and compare the
offsets, end, status and need of every chunk with the plain loop's, on every repo capture.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from auditor.capture import chain, pcap
from auditor.capture.reader import RecordReader
from auditor.capture.records import RecordChunk

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for p in (ROOT / "fixtures").rglob("*")
                  if p.suffix in (".pcap", ".pcapng", ".cap") and p.is_file())
T0 = 1_704_067_200


@pytest.fixture
def tiny_segments(monkeypatch):
    """Segments of a few hundred bytes, so small captures take the vectorised path too."""
    monkeypatch.setattr(chain, "SEGMENT_FLOOR", 96)
    monkeypatch.setattr(chain, "SEGMENT_RECORDS", 3)
    monkeypatch.setattr(chain, "MIN_SEGMENT", 32)
    monkeypatch.setattr(chain, "WINDOW_FLOOR", 16)
    monkeypatch.setattr(chain, "PROBE_HOPS", 4)
    monkeypatch.setattr(chain, "MIN_GUESSED", 0.0)


def plain_only(step, pos, lim, plain, *args, **kwargs):
    """chain.walk as the plain loop alone: the reference."""
    return plain(pos)


def chunk_facts(chunk: RecordChunk) -> tuple:
    return (chunk.first_index, chunk.data_off.tolist(), chunk.caplen.tolist(),
            chunk.origlen.tolist(), chunk.ts_ns.tolist(), np.asarray(chunk.linktype).tolist(),
            np.asarray(chunk.head_start).tolist(), chunk.head.tobytes())


def read_all(path: Path, budget: int) -> tuple:
    """Every chunk's facts and the reader's end state, reading with `budget`-byte chunks."""
    with RecordReader(path) as reader:
        chunks = [chunk_facts(c) for c in reader.chunks(budget)]
        return (chunks, reader.records, dict(reader.skipped), dict(reader.notes), reader._pos,
                reader._need, reader.first_ts_ns, reader.last_ts_ns)


def same_as_plain(path: Path, budget: int, monkeypatch) -> None:
    fast = read_all(path, budget)
    with monkeypatch.context() as m:
        m.setattr(chain, "walk", plain_only)
        slow = read_all(path, budget)
    assert fast == slow


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_repo_capture_walks_as_record_by_record(path, tiny_segments, monkeypatch):
    for budget in (1 << 30, 2048):
        same_as_plain(path, budget, monkeypatch)


@pytest.mark.parametrize("path", CAPTURES[::3], ids=lambda p: p.name)
def test_careless_guesses_change_nothing_but_time(path, tiny_segments, monkeypatch):
    # every sieve hit is a guess (no plausibility, no hops): many are wrong, so segments are
    # walked again, and some chunks end in the plain loop (one round allowed)
    guess = chain.guess_starts

    def careless(sieve, plausible, step, pos, lim, segment, window, hops=3):
        return guess(sieve, lambda at: np.ones(len(at), bool), step, pos, lim, segment,
                     window, hops=0)

    monkeypatch.setattr(chain, "guess_starts", careless)
    monkeypatch.setattr(chain, "MAX_ROUNDS", 1)
    monkeypatch.setattr(chain, "MAX_WRONG", 1.0)
    same_as_plain(path, 1 << 30, monkeypatch)


def records(sizes, rng, fake_every=0) -> bytes:
    """A little-endian microsecond pcap with records of these captured sizes."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, 1)]
    for k, size in enumerate(sizes):
        body = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        if fake_every and k % fake_every == 0 and size >= 40:
            # a plausible header (and a chain of them) inside the payload
            for at in range(0, size - 16, 20):
                body[at : at + 16] = struct.pack("<IIII", T0, 5, 4, 60)
        out.append(struct.pack("<IIII", T0 + k // 1000, k % 1_000_000, size, size + 4) + body)
    return b"".join(out)


def offsets_both_ways(data: bytes, pos: int, lim: int) -> None:
    buf = np.frombuffer(data, np.uint8)
    u32 = chain.u32_everywhere(buf, "<")

    def step(at):
        return at + 16 + u32[at + 8]

    def plausible(at):
        return (u32[at + 4] < 1_000_000) & (u32[at + 8] <= u32[at + 12])

    def sieve(first, width):
        return chain.byte_matches(buf, first, width, 3, T0 >> 24, T0 >> 24)

    def plain(at):
        offs, end = pcap._plain_walk(buf, at, lim, 16, 8, "<", False)
        return offs, end, False

    want = plain(pos)
    got = chain.walk(step, pos, lim, plain, sieve, plausible)
    assert got[0].tolist() == want[0] and got[1:] == want[1:]
    # and with every guess of every segment start, right or wrong
    for seg in (50, 333, 4096):
        starts = chain.guess_starts(sieve, plausible, step, pos, lim, seg, seg // 2, hops=0)
        got = chain.follow(step, pos, lim, starts, plain, max_rounds=3)
        assert got[0].tolist() == want[0] and got[1:] == want[1:]


@pytest.mark.parametrize("seed", range(6))
def test_generated_records_walk_as_record_by_record(seed, tiny_segments):
    rng = np.random.default_rng(seed)
    kind = seed % 3
    if kind == 0:  # tiny and empty records
        sizes = rng.integers(0, 60, 3000)
    elif kind == 1:  # jumbo ones among ordinary ones
        sizes = np.where(rng.random(400) < 0.1, rng.integers(9000, 65_000, 400),
                         rng.integers(40, 1515, 400))
    else:  # fake record headers inside many payloads
        sizes = rng.integers(40, 900, 1500)
    data = records(sizes.tolist(), rng, fake_every=3 if kind == 2 else 0)
    size = len(data)
    for pos, lim in ((24, size - 16), (24, size // 3), (24, 24)):
        offsets_both_ways(data, pos, lim)
    # damaged: random bytes overwritten, then the walk runs wherever they send it
    bad = bytearray(data)
    for at in rng.integers(24, size - 4, 20):
        bad[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
    offsets_both_ways(bytes(bad), 24, size - 16)
    # truncated mid-record
    cut = data[: size * 2 // 3 + 7]
    offsets_both_ways(cut, 24, len(cut) - 16)


def test_damaged_and_truncated_captures_read_as_record_by_record(tmp_path, tiny_segments,
                                                                  monkeypatch):
    rng = np.random.default_rng(4)
    data = records(rng.integers(30, 1500, 800).tolist(), rng, fake_every=5)
    for name, blob in (("cut.pcap", data[: len(data) // 2 + 3]),
                       ("absurd.pcap", data[:5000] + struct.pack("<IIII", T0, 0, 1 << 30, 1 << 30)
                        + data[5016:])):
        path = tmp_path / name
        path.write_bytes(blob)
        for budget in (1 << 30, 3000):
            same_as_plain(path, budget, monkeypatch)


def test_netmon_without_its_frame_table_walks_as_frame_by_frame(tmp_path, tiny_segments,
                                                                 monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "make_formats", ROOT / "fixtures" / "pcaps" / "formats" / "make_formats.py")
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    rng = np.random.default_rng(9)
    frames = [(k * 1000, mf.ETHERNET, mf.ether(mf.segment(50000 + k, 445, bytes(int(n)))))
              for k, n in enumerate(rng.integers(0, 1400, 300))]
    data = mf.netmon2(frames)
    path = tmp_path / "n.cap"
    path.write_bytes(data[: len(data) - 4 * len(frames) - 30])  # no table, last frame cut
    same_as_plain(path, 1 << 30, monkeypatch)
    with RecordReader(path) as reader:
        assert sum(len(c.data_off) for c in reader.chunks()) == len(frames) - 1


def test_small_segments_take_the_numpy_path_and_walk_wrong_guesses_again(tiny_segments,
                                                                         monkeypatch):
    calls = {"follow": 0, "lockstep": 0}
    for name in calls:
        real = getattr(chain, "_" + name if name == "lockstep" else name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(chain, "_" + name if name == "lockstep" else name, counted)
    monkeypatch.setattr(chain, "MAX_WRONG", 1.0)  # however many are wrong: walk them again
    monkeypatch.setattr(chain, "guess_starts", lambda sieve, plausible, step, pos, lim, seg,
                        win, hops=3: sieve(np.arange(pos + seg, lim + 1 - win, seg), win))
    same_as_plain(ROOT / "fixtures" / "pcaps" / "edge" / "fake_record_headers.pcap", 2048,
                  monkeypatch)
    assert calls["follow"] >= 5 and calls["lockstep"] > calls["follow"]


def test_a_chunk_holds_a_bounded_number_of_records_however_small_they_are(tmp_path):
    # hand-made (no real tool writes these): 700k records with no data, 16 bytes each. Per-record
    # arrays, not file bytes, take the memory: a 32 MiB chunk would be two million rows of them
    from auditor.capture import records

    n = 700_000
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    recs = np.zeros((n, 4), "<u4")
    recs[:, 0] = 1_700_000_000 + np.arange(n) // 1000
    path = tmp_path / "empty_records.pcap"
    path.write_bytes(hdr + recs.tobytes())
    with RecordReader(path) as reader:
        sizes = [len(c.data_off) for c in reader.chunks()]
    assert sum(sizes) == n
    assert len(sizes) > 2 and max(sizes) <= records.MAX_CHUNK_RECORDS


def test_a_netmon_frame_table_is_walked_in_full_sized_chunks(tmp_path):
    # NetMon is walked by frame-table entries: the reader's position does not move per record,
    # so a chunk's size must come from its records. Before, every chunk after the first held
    # 4 frames (a 200 KB file of 50k frames took 14 s). The file is written by editcap.
    import shutil
    import subprocess

    if shutil.which("editcap") is None:
        pytest.skip("editcap is not installed")
    from auditor.capture import records

    n = 40_000
    frame = bytes.fromhex("00155d010203 00155d040506 0800") + bytes(46)
    recs = b"".join(struct.pack("<IIII", 1_700_000_000 + i // 1000, i % 1000 * 1000, 60, 60)
                    + frame for i in range(n))
    src = tmp_path / "frames.pcap"
    src.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + recs)
    cap = tmp_path / "frames.cap"
    subprocess.run(["editcap", "-F", "netmon2", str(src), str(cap)], check=True)
    with RecordReader(cap) as reader:
        sizes = [len(c.data_off) for c in reader.chunks()]
        assert reader.format.startswith("netmon2")
    assert sum(sizes) == n
    assert len(sizes) <= 3 and max(sizes) <= records.MAX_CHUNK_RECORDS
