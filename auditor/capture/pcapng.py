"""pcapng: sections in either byte order, interfaces with their own link type and resolution.

Enhanced, simple and obsolete packet blocks are records; other blocks (name resolution, statistics,
decryption secrets, custom blocks, which pktmon and etl2pcapng also write, with comments and flags
as options) are stepped over. A chunk never spans sections, since the byte order may change.
"""

from __future__ import annotations

import struct
import sys

import numpy as np

from auditor.capture import chain
from auditor.capture.records import (
    BAD,
    BAD_INTERFACE,
    FULL,
    HEAD_BYTES,
    MAX_BLOCK,
    MAX_RECORD,
    MAX_TSOFFSET,
    MORE,
    NO_TS,
    SECTION,
    RecordChunk,
    byte_rows,
)
from auditor.errors import CaptureError

_SHB, _IDB, _OPB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
_NATIVE = "<" if sys.byteorder == "little" else ">"


class PcapngWalker:
    """Cuts a pcapng stream into RecordChunks; `reader` holds the position and the skip notes."""

    format = "pcapng"
    start = 0

    def __init__(self, reader, head: bytes):
        if head[8:12] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
            raise CaptureError(f"{reader.path}: not a pcapng file (bad byte-order magic at "
                               "byte offset 8)")
        self._r = reader
        self._ifaces: list[tuple[int, int, int, int]] = []  # linktype, snaplen, tsresol, offset
        self._sec_base = 0
        self._sec_order = "<"

    def walk(self, buf: np.ndarray, pos: int, budget: int):
        """Walk blocks from pos (in buf); return (chunk or None, status)."""
        r = self._r
        runs: list[np.ndarray] = []  # offsets of the packet blocks, run by run
        found = 0
        size = len(buf)
        lim = min(size - 12, pos + budget)
        status = None
        r._need = 64
        with memoryview(buf) as mv:
            unpack = struct.Struct(self._sec_order + "II").unpack_from
            while pos <= lim:
                btype, blen = unpack(mv, pos)
                if btype != _IDB and btype != _SHB:
                    # the blocks that need nothing but stepping over (most of them), with numpy
                    # (not for the block this loop reads anyway: 100k interface blocks in a row
                    # would each pay for a numpy walk that stops at once)
                    run, pos = self._run(buf, pos, lim)
                    if len(run):
                        runs.append(run)
                        found += len(run)
                    if pos > lim:
                        break
                    btype, blen = unpack(mv, pos)
                if btype == _SHB:
                    if found:  # a chunk never spans sections: the byte order may change
                        status = SECTION
                        break
                    order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(
                        bytes(mv[pos + 8 : pos + 12]))
                    if order is None:
                        r._stop("corrupt block", r._src.base + pos,
                                   "bad section byte-order magic", r.records)
                        status = BAD
                        break
                    if order != self._sec_order:
                        self._sec_order = order
                        unpack = struct.Struct(order + "II").unpack_from
                    blen = unpack(mv, pos)[1]
                if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                    r._stop("corrupt block", r._src.base + pos, f"block length {blen}",
                               r.records + found)
                    status = BAD
                    break
                if pos + blen > size:
                    r._need = blen
                    status = MORE
                    break
                if btype == _EPB or btype == _SPB or btype == _OPB:
                    runs.append(np.array([pos], np.int64))
                    found += 1
                elif btype == _IDB:
                    self._interface(mv, pos, blen)
                elif btype == _SHB:
                    self._sec_base = len(self._ifaces)
                pos += blen
        offs = np.concatenate(runs) if runs else np.zeros(0, np.int64)
        if status is None:
            status = FULL if pos <= size - 12 else MORE
        if pos > size:  # an enhanced packet block at the end runs past the buffer
            pos, offs = int(offs[-1]), offs[:-1]
            # untrusted: a stream window is grown to it, so no more than a block can be
            r._need = min(int(buf[pos + 4 : pos + 8].view(self._sec_order + "u4")[0]), MAX_BLOCK)
            status = MORE
        r._pos = r._src.base + pos
        if not len(offs):
            return None, status
        return self._ng_chunk(buf, offs, status)

    def _run(self, buf: np.ndarray, pos: int, lim: int) -> tuple[np.ndarray, int]:
        """The packet blocks of the run of plain blocks from pos, and the offset after the run.

        A plain block is one the walk only steps over (or takes as a packet): not a section
        or interface block, its length sound and inside buf. In native byte order an enhanced
        packet block of 32 bytes or more counts whatever its length (it is checked later,
        with its trailing copy), as it always has.
        """
        order, size = self._sec_order, len(buf)
        u32 = chain.u32_everywhere(buf, order)

        def step(at):
            return at + u32[at + 4]

        def stop(at):
            btype, blen = u32[at], u32[at + 4]
            odd = (btype != _EPB) | (blen < 32) | ((blen & 3) != 0)  # all but the usual block
            if order != _NATIVE:
                odd |= (blen > MAX_BLOCK) | (at + blen > size)
            if not odd.any():
                return odd
            at, btype, blen = at[odd], btype[odd], blen[odd].astype(np.int64)
            plain = ((blen & 3) == 0) & (blen >= 12) & (blen <= MAX_BLOCK) & (at + blen <= size)
            odd[odd] = ~(plain & (btype != _SHB) & (btype != _IDB))
            return odd

        def plausible(at):  # an enhanced packet block whose trailing length agrees
            blen = u32[at + 4].astype(np.int64)
            ok = (u32[at] == _EPB) & (blen >= 32) & ((blen & 3) == 0) & (at + blen <= size)
            ok[ok] = u32[at[ok] + blen[ok] - 4] == blen[ok]
            return ok

        kind_at = 0 if order == "<" else 3

        def sieve(first, width):
            at = chain.byte_matches(buf, first, width, kind_at, _EPB, _EPB)
            return at[(at - pos) & 3 == 0]

        def plain(at):
            return _plain_run(buf, at, lim, order)

        blocks, end, _ = chain.walk(step, pos, lim, plain, sieve, plausible, stop)
        blocks = np.asarray(blocks, np.int64)
        if len(blocks):
            kind = u32[blocks]
            packet = (kind == _EPB) | (kind == _SPB) | (kind == _OPB)
            if not packet.all():
                blocks = blocks[packet]
        return blocks, end

    def _interface(self, mv: memoryview, pos: int, blen: int) -> None:
        order = self._sec_order
        linktype, _, snaplen = struct.unpack_from(order + "HHI", mv, pos + 8)
        tsresol, tsoffset = 6, 0
        opt, end = pos + 16, pos + blen - 4
        while opt + 4 <= end:
            code, length = struct.unpack_from(order + "HH", mv, opt)
            if code == 0:
                break
            if code == 9 and length >= 1:
                tsresol = mv[opt + 4]
            elif code == 14 and length >= 8:
                tsoffset = struct.unpack_from(order + "q", mv, opt + 4)[0]
            opt += 4 + ((length + 3) & ~3)
        r = self._r
        if abs(tsoffset) > MAX_TSOFFSET:  # its nanoseconds would not fit the int64 timestamps
            r._ignore("implausible if_tsoffset", pos, f"if_tsoffset {tsoffset} s ignored")
            tsoffset = 0
        if not _resolution_ok(tsresol):
            r._ignore("unusable if_tsresol", pos,
                      f"if_tsresol 0x{tsresol:02x} is finer than a 64-bit count can reach "
                      "in whole ns; this interface's timestamps are read as 0")
        self._ifaces.append((linktype, snaplen, tsresol, tsoffset))

    def _ng_chunk(self, buf: np.ndarray, off: np.ndarray, status: int):
        r = self._r
        order = self._sec_order
        rec = byte_rows(buf, off, 28 + HEAD_BYTES)
        hdr = rec.view(order + "u4")[:, :7].astype(np.int64)
        btype, blen = hdr[:, 0], hdr[:, 1]
        spb = btype == _SPB
        opb = btype == _OPB
        iface = hdr[:, 2].copy()
        if opb.any():  # OPB: 16-bit interface id, then a 16-bit drops count
            iface[opb] = iface[opb] & 0xFFFF if order == "<" else iface[opb] >> 16
        iface[spb] = 0  # SPB: always the section's first interface
        caplen, origlen = hdr[:, 5].copy(), hdr[:, 6].copy()
        data_off = off + 28
        head_start = np.full(len(off), 28, np.int64)
        bad = caplen > blen - 32
        if spb.any():
            snap0 = self._ifaces[self._sec_base][1] if len(self._ifaces) > self._sec_base else 0
            room = blen[spb] - 16
            origlen[spb] = hdr[spb, 2]
            caplen[spb] = np.minimum(origlen[spb], room if not snap0 else np.minimum(room, snap0))
            data_off[spb] = off[spb] + 12
            head_start[spb] = 12
            bad[spb] = False
        trailer = byte_rows(buf, off + blen - 4, 4).view(order + "u4")[:, 0]
        bad |= (trailer != blen) | (caplen > MAX_RECORD)
        if bad.any():
            k = int(np.argmax(bad))
            r._pos = r._src.base + int(off[k])
            r._stop("corrupt block", r._pos, "packet block lengths do not agree",
                       r.records + k)
            status = BAD
            off, iface, caplen, origlen, data_off, hdr, spb, rec, head_start = (
                a[:k] for a in (off, iface, caplen, origlen, data_off, hdr, spb, rec, head_start))
            if k == 0:
                return None, status
        n_sec = len(self._ifaces) - self._sec_base
        known = iface < n_sec
        gid = np.where(known, iface + self._sec_base, 0)
        linktype = np.full(len(off), BAD_INTERFACE, np.int64)
        ts = np.full(len(off), NO_TS, np.int64)
        raw = (hdr[:, 3] << 32) | hdr[:, 4]
        for g in np.unique(gid[known]):
            m = known & (gid == g)
            lt, _, resol, tsoff = self._ifaces[g]
            linktype[m] = lt
            stamped = m & ~spb
            ts[stamped] = _scale_ts(raw[stamped].astype(np.uint64), resol) + tsoff * 1_000_000_000
        single = bool((linktype == linktype[0]).all())
        chunk = RecordChunk(
            buf=buf, data_off=data_off, caplen=caplen, origlen=origlen.astype(np.uint32),
            ts_ns=ts, linktype=int(linktype[0]) if single else linktype,
            first_index=r.records, head=rec,
            head_start=28 if not spb.any() else head_start,
        )
        return chunk, status



def _plain_run(buf: np.ndarray, pos: int, lim: int, order: str):
    """PcapngWalker._run block by block: (offsets of the plain blocks, end, stopped).

    The fallback for input whose block starts cannot be guessed, and the tests' reference.
    """
    offs: list[int] = []
    append = offs.append
    size, native = len(buf), order == _NATIVE
    with memoryview(buf) as mv:
        unpack = struct.Struct(order + "II").unpack_from
        while pos <= lim:
            btype, blen = unpack(mv, pos)
            if not (native and btype == _EPB and blen >= 32 and not blen & 3) and (
                    btype == _SHB or btype == _IDB or blen < 12 or blen & 3
                    or blen > MAX_BLOCK or pos + blen > size):
                return offs, pos, True
            append(pos)
            pos += blen
    return offs, pos, False


def _resolution_ok(resol: int) -> bool:
    """Whether a 64-bit timestamp in units of if_tsresol can say anything in whole ns."""
    return resol <= 9 + 19 if not resol & 0x80 else (resol & 0x7F) < 96


def _scale_ts(raw: np.ndarray, resol: int) -> np.ndarray:
    """Convert pcapng timestamp units (if_tsresol) to int64 nanoseconds."""
    if resol & 0x80:  # units of 2**-k seconds
        k = resol & 0x7F
        if not _resolution_ok(resol):  # 2**-k s with k >= 96: every timestamp rounds to 0 ns
            return np.zeros(len(raw), np.int64)
        if k > 32:  # drop sub-nanosecond bits first so the products below fit 64 bits
            raw, k = raw >> np.uint64(k - 32), 32
        whole = (raw >> np.uint64(k)) * np.uint64(1_000_000_000)
        frac = ((raw & np.uint64((1 << k) - 1)) * np.uint64(1_000_000_000)) >> np.uint64(k)
        return (whole + frac).astype(np.int64)
    if resol <= 9:
        return raw.astype(np.int64) * 10 ** (9 - resol)
    if not _resolution_ok(resol):  # 10**(resol-9) > 2**64: every timestamp rounds to 0 ns
        return np.zeros(len(raw), np.int64)
    return (raw // np.uint64(10 ** (resol - 9))).astype(np.int64)


def last_ts(walker: PcapngWalker, buf: np.ndarray) -> int | None:
    """Timestamp of the last enhanced packet block, walking back by the trailing lengths.

    Uses the interfaces the walker has read (the first section's); None when the last blocks
    do not chain back cleanly or name an interface it does not know.
    """
    order = walker._sec_order
    end = len(buf)
    for _ in range(64):
        if end < 12 + 28:
            return None
        blen = int(buf[end - 4 : end].view(order + "u4")[0])
        start = end - blen
        if blen < 12 or blen & 3 or start < 0:
            return None
        btype, lead = (int(x) for x in buf[start : start + 8].view(order + "u4"))
        if lead != blen:
            return None
        if btype == _SHB:
            return None
        if btype == _EPB and blen >= 32:
            iface, hi, lo = (int(x) for x in buf[start + 8 : start + 20].view(order + "u4"))
            if iface >= len(walker._ifaces) - walker._sec_base:
                return None
            _, _, resol, tsoff = walker._ifaces[walker._sec_base + iface]
            raw = np.array([(hi << 32) | lo], np.uint64)
            return int(_scale_ts(raw, resol)[0]) + tsoff * 1_000_000_000
        end = start
    return None
