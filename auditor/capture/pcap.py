"""Classic pcap and the variants tshark reads that differ only in record-header layout.

Standard (us) and nanosecond pcap in either byte order; the "modified" pcap of Alexey Kuznetsov's
patches (magic a1b2cd34: 24-byte records, or SuSE 6.3's 28), Red Hat 6.1's 24-byte records under
the standard magic, Nokia's 20-byte ones, AIX (nanoseconds, RFC 1573 interface types) and IXIA's
longer file header. As Wireshark does, the layout is chosen by how well the first three records
read under each candidate. Each record header says where the next starts; `chain` follows them
with numpy (the record-by-record loop is its reference and fallback), and every field is then
read with numpy over the chunk.
"""

from __future__ import annotations

import struct
import sys

import numpy as np

from auditor.capture import chain
from auditor.capture.formats import PCAP_MAGICS
from auditor.capture.records import BAD, FULL, HEAD_BYTES, MAX_RECORD, MORE, RecordChunk, byte_rows
from auditor.errors import CaptureError

_NATIVE = "<" if sys.byteorder == "little" else ">"
# family -> candidate (format name, record header bytes), in Wireshark's order of preference
_LAYOUTS = {
    "standard": (("pcap", 16), ("pcap-ss990417", 24), ("pcap-nokia", 20)),
    "modified": (("pcap-modified", 24), ("pcap-ss990915", 28)),
    "nsec": (("pcap-ns", 16),),
    "ixia": (("pcap-ixia", 16),),
}
_AIX_LINKTYPES = {6: 1, 9: 6, 15: 10, 24: 0}  # RFC 1573 ifType -> LINKTYPE_
_TRY_RECORDS = 3
_GUESS_SECONDS = 7 * 86400  # a guessed record start's time is within this of the chunk's first
_U32 = 0xFFFF_FFFF


class PcapWalker:
    """Cuts a pcap stream into RecordChunks; `reader` holds the position and the skip notes."""

    def __init__(self, reader, head: bytes):
        order, frac_ns, family = PCAP_MAGICS[head[:4]]
        self._r = reader
        self.order = order
        self.frac_ns = frac_ns
        self.start = 28 if family == "ixia" else 24
        if len(head) < self.start:
            raise CaptureError(f"{reader.path}: truncated pcap file header "
                               f"({len(head)} bytes at offset 0, {self.start} needed)")
        major, minor, _, _, snaplen, network = struct.unpack_from(order + "HHiIII", head, 4)
        self.snaplen = snaplen
        self.linktype = network & 0x03FFFFFF  # upper bits may carry the FCS length
        # Before format 2.3 the two length fields came the other way round.
        self.len_at = 12 if (major, minor) < (2, 3) or major == 543 else 8
        self.maybe_swapped = (major, minor) == (2, 3)
        if family == "standard" and (major, minor) == (2, 2) and network in _AIX_LINKTYPES:
            self.format, self.rec_hdr = "pcap-aix", 16
            self.linktype, self.frac_ns = _AIX_LINKTYPES[network], 1
        else:
            layouts = _LAYOUTS[family]
            if len(layouts) > 1:
                buf = reader._src.buf
                # As Wireshark: the first layout under which the first records read cleanly;
                # if none does, the family's usual one (so damage keeps the usual layout).
                clean = [ly for i, ly in enumerate(layouts) if self._clean(buf, ly[1], snaplen, i > 0)]
                layouts = clean or layouts
            self.format, self.rec_hdr = layouts[0]

    def _clean(self, buf: np.ndarray, size: int, snaplen: int, strict: bool) -> bool:
        """Whether the first records (or all, if fewer) read cleanly with `size`-byte headers.

        `strict` (an unusual layout) also refuses empty records, so the zeros of a damaged
        standard file do not pass for another layout.
        """
        pos, frac_max = self.start, 1_000_000_000 // self.frac_ns
        data = bytes(buf[: self.start + _TRY_RECORDS * (size + MAX_RECORD)])
        for _ in range(_TRY_RECORDS):
            if pos == len(data):
                return True  # the file ends cleanly: fewer records than tried
            if pos + size > len(data):
                return False
            _, frac, incl, orig = struct.unpack_from(self.order + "IIII", data, pos)
            if self.len_at == 12:
                incl, orig = orig, incl
            if (frac >= frac_max or incl > MAX_RECORD or orig > 128 << 20
                    or (snaplen and incl > snaplen) or incl > orig or (strict and incl == 0)):
                return False
            pos += size + incl
            if pos > len(data):
                return False
        return True

    def walk(self, buf: np.ndarray, pos: int, budget: int):
        """Walk records from pos (in buf); return (chunk or None, status)."""
        r, rh, len_at = self._r, self.rec_hdr, self.len_at
        size = len(buf)
        lim = min(size - rh, pos + budget)
        off, pos = self._offsets(buf, pos, lim)
        r._need = rh  # a stream window must at least hold the next header...
        if not len(off):
            r._pos = r._src.base + pos
            return None, MORE
        rec = byte_rows(buf, off, rh + HEAD_BYTES)
        hdr = rec.view(self.order + "u4")[:, :4].astype(np.int64)  # every width is a multiple of 4
        if len_at == 12:
            hdr[:, [2, 3]] = hdr[:, [3, 2]]
        elif self.maybe_swapped:
            flip = hdr[:, 2] > hdr[:, 3]
            hdr[flip, 2], hdr[flip, 3] = hdr[flip, 3], hdr[flip, 2]
        status = FULL if pos <= size - rh else MORE
        bad = hdr[:, 2] > MAX_RECORD
        keep = len(off)
        if bad.any():
            keep = int(np.argmax(bad))
            pos = int(off[keep])
            r._stop("absurd record length", r._src.base + pos,
                    f"incl_len {hdr[keep, 2]} > {MAX_RECORD}", r.records + keep)
            status = BAD
        elif pos > size:  # the last header promises more bytes than the buffer holds
            keep -= 1
            pos = int(off[keep])
            r._need = rh + int(hdr[keep, 2])  # ...or the whole record it announces
            status = MORE
        r._pos = r._src.base + pos
        if keep == 0:
            return None, status
        hdr, off, rec = hdr[:keep], off[:keep], rec[:keep]
        chunk = RecordChunk(
            buf=buf, data_off=off + rh, caplen=hdr[:, 2], origlen=hdr[:, 3].astype(np.uint32),
            ts_ns=hdr[:, 0] * 1_000_000_000 + hdr[:, 1] * self.frac_ns,
            linktype=self.linktype, first_index=r.records, head=rec, head_start=rh,
        )
        return chunk, status

    def _offsets(self, buf: np.ndarray, pos: int, lim: int) -> tuple[np.ndarray, int]:
        """Offsets of the records from pos while <= lim, and where the next one starts."""
        if pos > lim:
            return np.zeros(0, np.int64), pos
        u32 = chain.u32_everywhere(buf, self.order)
        rh, len_at = self.rec_hdr, self.len_at
        if self.maybe_swapped:
            def step(at):
                return at + rh + np.minimum(u32[at + 8], u32[at + 12])
        else:
            def step(at):
                return at + rh + u32[at + len_at]
        frac_max, snaplen = 1_000_000_000 // self.frac_ns, self.snaplen or MAX_RECORD
        first_sec = int(u32[pos])

        def plausible(at):
            a, b = u32[at + 8], u32[at + 12]
            incl, orig = (a, b) if len_at == 8 else (b, a)
            if self.maybe_swapped:
                incl, orig = np.minimum(a, b), np.maximum(a, b)
            # a guess only: what it gets wrong costs time, never changes the walk
            return ((u32[at + 4] < frac_max) & (incl <= orig) & (orig > 0)
                    & (incl <= min(snaplen, MAX_RECORD))
                    & (np.abs(u32[at].astype(np.int64) - first_sec) <= _GUESS_SECONDS))

        # the top byte of the seconds, as in the first record's (plausible checks the rest)
        top = 3 if self.order == "<" else 0
        lo, hi = ((min(max(first_sec + d, 0), _U32) >> 24) for d in (-_GUESS_SECONDS, _GUESS_SECONDS))

        def sieve(first, width):
            return chain.byte_matches(buf, first, width, top, lo, hi)

        def plain(at):
            offs, end = _plain_walk(buf, at, lim, rh, len_at, self.order, self.maybe_swapped)
            return offs, end, False

        off, end, _ = chain.walk(step, pos, lim, plain, sieve, plausible)
        return np.asarray(off, np.int64), end

    def last_ts(self, buf: np.ndarray) -> int | None:
        """Timestamp of the file's last record, found from the end without reading the rest.

        pcap records link only forwards, so candidate headers in the last 256 KiB are checked
        with numpy: a record that ends exactly at the end of the file, preceded by a chain of
        plausible records (at least 3, or back to the file header). None when that is not
        unambiguous, and the caller reads the file.
        """
        size, rh = len(buf), self.rec_hdr
        lo = max(self.start, size - (256 << 10))
        if size - lo < rh:
            return None
        pos = np.arange(lo, size - rh + 1, dtype=np.int64)
        hdr = byte_rows(buf, pos, 16).view(self.order + "u4").astype(np.int64)
        if self.len_at == 12:
            hdr[:, [2, 3]] = hdr[:, [3, 2]]
        nxt = pos + rh + hdr[:, 2]
        frac_max = 1_000_000_000 // self.frac_ns
        ok = (hdr[:, 1] < frac_max) & (hdr[:, 2] <= MAX_RECORD) & (hdr[:, 2] <= hdr[:, 3])
        ok &= nxt <= size
        chains = []
        for end in np.flatnonzero(ok & (nxt == size)):
            at, depth = int(pos[end]), 1
            while depth < 3 and at > self.start:
                prev = np.flatnonzero(ok & (nxt == at))
                if len(prev) != 1:
                    break
                at, depth = int(pos[prev[0]]), depth + 1
            if depth >= 3 or at == self.start:
                chains.append(end)
        if len(chains) != 1:
            return None
        k = chains[0]
        return int(hdr[k, 0]) * 1_000_000_000 + int(hdr[k, 1]) * self.frac_ns


def _plain_walk(buf: np.ndarray, pos: int, lim: int, rh: int, len_at: int, order: str,
                swapped: bool) -> tuple[list[int], int]:
    """The record-by-record walk from pos while <= lim: what chain.follow must reproduce.

    The fallback for input whose record starts cannot be guessed, and the tests' reference.
    """
    offs: list[int] = []
    append = offs.append
    size = len(buf)
    with memoryview(buf) as mv:
        if order == _NATIVE and not swapped:
            # u32 views at the four alignments: indexing them beats struct.unpack_from
            views = [mv[k : k + (size - k) // 4 * 4].cast("I") for k in range(4)]
            while pos <= lim:
                append(pos)
                at = pos + len_at
                pos += rh + views[at & 3][at >> 2]
            for view in views:
                view.release()
        else:
            unpack = struct.Struct(order + "II").unpack_from
            while pos <= lim:
                append(pos)
                a, b = unpack(mv, pos + 8)
                pos += rh + (min(a, b) if swapped else (a if len_at == 8 else b))
    return offs, pos
