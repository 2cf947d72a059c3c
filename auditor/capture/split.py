"""Byte ranges of one large capture file that separate workers can read, each from a record start.

Plain (uncompressed, mapped) pcap and pcapng files are cut near chosen byte offsets at a record
boundary found from the bytes alone:
- pcap links records only forwards, so a candidate header at each byte after the offset is
  tested with a chain of the headers it leads to: every one plausible (fraction below a second,
  incl_len <= snaplen, <= orig_len and <= the record limit, a timestamp not before the file's
  first one by more than a day and not going back along the chain by more than a minute), each
  length landing exactly on the next header, `CHAIN` in a row or up to the end of the file;
- pcapng blocks carry their total length at both ends: a candidate 4-aligned block is a packet
  block whose two lengths agree, followed by a chain of such blocks (no section header or
  interface block, which a range could not know about). Every range first reads the file's
  leading section header and interface blocks (`head_end`), as each of them needs those.

A boundary found this way can still be wrong in principle (payload bytes that mimic a chain); the
reader proves it instead: the range before it must end exactly on it (the reader notes a cut
record otherwise), and the engine then reads the file in one piece. Compressed, piped, archived
or converted inputs, NetMon files and pcap variants whose length fields are ambiguous are not
split (`plan_ranges` returns None).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from auditor.capture.bytesource import MappedSource
from auditor.capture.pcap import PcapWalker
from auditor.capture.pcapng import PcapngWalker
from auditor.capture.reader import RecordReader
from auditor.capture.records import MAX_BLOCK, MAX_RECORD, byte_rows

CHAIN = 16  # consecutive consistent headers that make a candidate a boundary
SEARCH = 8 << 20  # bytes past an offset searched for a boundary before giving up on it
_STEP = 256 << 10  # candidates tested at a time
_TS_BACK_NS = 60 * 1_000_000_000  # a chain's timestamps may go back this much (reordering)
_BEFORE_FIRST_NS = 86_400 * 1_000_000_000  # ... and start this long before the file's first
_HEAD_BLOCKS = 4096  # pcapng: blocks before the first packet block we are willing to walk
_PACKET_BLOCKS = (2, 3, 6)  # obsolete, simple and enhanced packet blocks
_EPB = 6


@dataclass
class ByteRange:
    """Bytes [start, stop) of a file holding whole records; pcapng ranges also read [0, head_end)."""

    start: int
    stop: int
    head_end: int = 0  # pcapng: end of the leading section header and interface blocks
    _walker: object = field(default=None, repr=False, compare=False)
    _assumed: tuple = field(default=(), repr=False, compare=False)

    def apply(self, reader: RecordReader) -> None:
        """Make `reader.chunks()` read only this range (after the pcapng head, if any)."""
        src, walker = reader._src, reader._walker
        if not isinstance(src, MappedSource):
            raise ValueError("only a memory-mapped file can be read by byte range")
        full = src.buf
        if self.head_end:
            walker.walk(full[: self.head_end], 0, self.head_end)  # interfaces: state only
        walker.start = max(self.start, self.head_end)
        src.buf = full[: self.stop]
        self._walker, self._assumed = walker, _state(walker)  # what every later range assumes

    def state_changed(self) -> bool:
        """Whether the range held blocks a later range would have needed (pcapng SHB, IDB)."""
        return self._walker is not None and _state(self._walker) != self._assumed


def _state(walker) -> tuple:
    """The walker state a later range depends on (pcapng: sections, interfaces, byte order)."""
    if isinstance(walker, PcapngWalker):
        return (len(walker._ifaces), walker._sec_base, walker._sec_order)
    return ()


def plan_ranges(path: str, pieces: int, min_bytes: int = 1) -> list[ByteRange] | None:
    """About `pieces` ranges of at least min_bytes covering the file's records; None: unsplittable.

    One range (the whole file) when the file is too small or no boundary is found.
    """
    with RecordReader(path) as reader:
        found = _finder(reader)
        if found is None:
            return None
        finder, first, head_end = found
        size = len(reader._src.buf)
        pieces = max(1, min(pieces, (size - first) // max(min_bytes, 1)))
        cuts = [first]
        for k in range(1, pieces):
            target = first + (size - first) * k // pieces
            if target <= cuts[-1]:
                continue
            at = finder.find(target)
            if at is not None and cuts[-1] < at < size:
                cuts.append(at)
        ranges = [ByteRange(a, b, head_end) for a, b in zip(cuts, [*cuts[1:], size], strict=True)]
        del finder
        return ranges


def boundary_after(path: str, offset: int) -> int | None:
    """The first byte offset >= offset where a record seems to start (None: none found)."""
    with RecordReader(path) as reader:
        found = _finder(reader)
        if found is None:
            return None
        at = found[0].find(max(offset, found[1]))
        del found
        return at


def _finder(reader: RecordReader):
    """(boundary finder, first record offset, pcapng head end) of a splittable file, or None."""
    src, walker = reader._src, reader._walker
    if (not isinstance(src, MappedSource) or reader.compression or reader.converted_from
            or not isinstance(walker, PcapWalker | PcapngWalker)):
        return None
    buf = src.buf
    if isinstance(walker, PcapWalker):
        if walker.maybe_swapped:
            return None
        return _PcapFinder(walker, buf), walker.start, 0
    head_end = _pcapng_head_end(buf)
    if head_end is None:
        return None
    return _PcapngFinder(buf, head_end), head_end, head_end


class _PcapFinder:
    """Record boundaries of a pcap file found by chains of plausible record headers."""

    def __init__(self, walker: PcapWalker, buf: np.ndarray):
        self.buf, self.order, self.rh = buf, walker.order, walker.rec_hdr
        self.swap = walker.len_at == 12
        self.frac_max = 1_000_000_000 // walker.frac_ns
        self.frac_ns = walker.frac_ns
        snaplen = struct.unpack_from(walker.order + "I", bytes(buf[16:20]))[0]
        self.snaplen = snaplen or MAX_RECORD
        first = self._headers(np.array([walker.start], np.int64))
        self.floor = int(first[1][0]) - _BEFORE_FIRST_NS if len(buf) > walker.start + 16 else 0

    def _headers(self, pos: np.ndarray):
        """(ok, ts_ns, next position) of candidate headers at pos."""
        hdr = byte_rows(self.buf, pos, 16).view(self.order + "u4").astype(np.int64)
        sec, frac, incl, orig = hdr[:, 0], hdr[:, 1], hdr[:, 2], hdr[:, 3]
        if self.swap:
            incl, orig = orig, incl
        ok = ((frac < self.frac_max) & (incl <= self.snaplen) & (incl <= MAX_RECORD)
              & (incl <= orig) & (orig > 0) & (orig <= 128 << 20))
        return ok, sec * 1_000_000_000 + frac * self.frac_ns, pos + self.rh + incl

    def find(self, target: int) -> int | None:
        size = len(self.buf)
        for lo in range(target, min(target + SEARCH, size - self.rh), _STEP):
            pos = np.arange(lo, min(lo + _STEP, size - self.rh + 1), dtype=np.int64)
            ok, ts, nxt = self._headers(pos)
            keep = ok & (ts >= self.floor) & (nxt <= size)
            cand, last_ts, at = pos[keep], ts[keep], nxt[keep]
            alive = np.ones(len(cand), bool)
            for _ in range(CHAIN - 1):
                going = alive & (at < size)  # a chain that reached the end exactly is complete
                if not going.any():
                    break
                g = np.flatnonzero(going)
                ok, ts, nxt = self._headers(at[g])
                good = ok & (ts >= last_ts[g] - _TS_BACK_NS) & (nxt <= size)
                alive[g[~good]] = False
                last_ts[g], at[g] = ts, nxt
            if alive.any():
                return int(cand[np.argmax(alive)])
        return None


def _pcapng_head_end(buf: np.ndarray) -> int | None:
    """Offset of the first packet block after the leading SHB and IDBs (None: not found)."""
    order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(bytes(buf[8:12]))
    if order is None:
        return None
    pos, size = 0, len(buf)
    for _ in range(_HEAD_BLOCKS):
        if pos + 12 > size:
            return None
        btype, blen = struct.unpack(order + "II", bytes(buf[pos : pos + 8]))
        if btype in _PACKET_BLOCKS:
            return pos
        if blen < 12 or blen & 3 or blen > MAX_BLOCK or (btype == 0x0A0D0D0A and pos):
            return None  # damage, or a second section before any packet: read it whole
        pos += blen
    return None


class _PcapngFinder:
    """Packet-block boundaries of a pcapng file (the first section's byte order)."""

    def __init__(self, buf: np.ndarray, head_end: int):
        self.buf, self.head_end = buf, head_end
        self.order = "<" if bytes(buf[8:12]) == b"\x4d\x3c\x2b\x1a" else ">"

    def _blocks(self, pos: np.ndarray):
        """(ok, next position) of candidate packet blocks at pos."""
        size = len(self.buf)
        hdr = byte_rows(self.buf, pos, 8).view(self.order + "u4").astype(np.int64)
        btype, blen = hdr[:, 0], hdr[:, 1]
        nxt = pos + blen
        ok = (np.isin(btype, _PACKET_BLOCKS) & (blen >= 16) & ((blen & 3) == 0)
              & (blen <= MAX_BLOCK) & (nxt <= size) & ((btype != _EPB) | (blen >= 32)))
        trail = byte_rows(self.buf, np.where(ok, nxt - 4, 0), 4).view(self.order + "u4")[:, 0]
        return ok & (trail == blen), nxt

    def find(self, target: int) -> int | None:
        size = len(self.buf)
        start = max(target + (-target) % 4, self.head_end)
        for lo in range(start, min(start + SEARCH, size - 12), _STEP):
            pos = np.arange(lo, min(lo + _STEP, size - 12), 4, dtype=np.int64)
            ok, nxt = self._blocks(pos)
            cand, at = pos[ok], nxt[ok]
            alive = np.ones(len(cand), bool)
            for _ in range(CHAIN - 1):
                going = alive & (at < size)
                if not going.any():
                    break
                g = np.flatnonzero(going)
                ok, nxt = self._blocks(at[g])
                alive[g[~ok]] = False
                at[g] = nxt
            if alive.any():
                return int(cand[np.argmax(alive)])
        return None


__all__ = ["ByteRange", "boundary_after", "plan_ranges"]
