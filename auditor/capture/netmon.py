"""Microsoft Network Monitor 2.x (`.cap` from NetMon 3.x and Message Analyzer exports).

The 128-byte file header points at a frame table: one u32 file offset per frame. Each frame is a
16-byte header (microseconds since the capture start as a u64, original and captured length),
the frame bytes and, from format 2.1 on, a trailer whose first two bytes are the frame's media
type (2.2 adds a process index, 2.3 a UTC FILETIME and a time-zone index). With the table there
is no per-frame Python loop at all: every field is gathered with numpy. A file cut before its
table (the table is written last) is walked frame by frame from byte 128, with a warning.

A compressed or archived file cannot seek to its table. One that inflates to IN_MEMORY or less is
inflated whole; a bigger one is read twice, each time streamed: once through to its table, then
again from the start, frame by frame in table order through a sliding window, so its memory stays
a window's whatever its size. Only a table that goes back (frames out of file order), or none,
needs the whole file in memory (up to MAX_INFLATED).

Media types: 0 and 1 are Ethernet (NetMon 3.4 VPN captures use 0 for Ethernet frames), 7-9 are
raw IP (tunnels, WWAN, "raw IP frames"), 0xE000 | LINKTYPE_x are frames converted from pcap, and
0xFFE0-0xFFFF are NetMon's own records (ETW events, adapter lists, filters, DNS cache), counted as
non-IP. Token Ring and FDDI keep their pcap link types; 802.11, ATM, 1394 and Message Analyzer's
WFP/Fiddler types are counted as skipped.
"""

from __future__ import annotations

import calendar
import struct
from collections import deque

import numpy as np

from auditor.capture import chain
from auditor.capture.bytesource import WINDOW, StreamSource
from auditor.capture.records import (
    BAD,
    END,
    FULL,
    HEAD_BYTES,
    MAX_RECORD,
    MORE,
    NON_PACKET,
    UNSUPPORTED_MEDIA,
    RecordChunk,
    byte_rows,
)
from auditor.errors import CaptureError

HEADER_BYTES = 128
# A compressed or archived NetMon file whose table does not follow file order is inflated whole
# (its frames need seeking); past this it is refused rather than let a small file claim gigabytes
# of memory. NetMon 3.4 itself writes files of 20 MB by default.
MAX_INFLATED = 1 << 30
# ...and one that inflates to at most this is inflated whole: reading it twice would cost more
IN_MEMORY = 64 << 20
# a frame table the first of two reads keeps (16M frames); a longer one is a claim of the header,
# not a table: the file is read whole, as one whose table is missing
MAX_TABLE = 64 << 20
_FILETIME_1970 = 116_444_736_000_000_000  # 100 ns units from 1601-01-01 to 1970-01-01
_TRAILER = {0: 0, 1: 2, 2: 6}  # minor version -> trailer bytes after the frame (3 and on: 15)
_METADATA = (0xFFE0, 0xFFFB, 0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF)


def netmon_linktypes(media: np.ndarray) -> np.ndarray:
    """Map NetMon media types to pcap link types (or the reader's pseudo link types)."""
    media = media.astype(np.int64)
    lt = np.full(len(media), UNSUPPORTED_MEDIA, np.int64)
    lt[media <= 1] = 1  # Ethernet
    lt[media == 2] = 6  # Token Ring
    lt[media == 3] = 10  # FDDI
    lt[(media >= 7) & (media <= 9)] = 101  # raw IP
    from_pcap = ((media & 0xF000) == 0xE000) & ~((media >= 0xE080) & (media <= 0xE08A))
    lt[from_pcap] = media[from_pcap] & 0x0FFF
    lt[np.isin(media, _METADATA)] = NON_PACKET
    return lt


class NetmonWalker:
    """Cuts a NetMon 2.x file into RecordChunks by its frame table."""

    format = "netmon2"
    start = 0

    def __init__(self, reader, head: bytes):
        self._r = reader
        self.streamed = False  # frames read through a sliding window (`_walk_streamed`)
        self._streamed_last: int | None = None
        src = reader._src
        if isinstance(src, StreamSource):  # compressed or in an archive: the table needs seeking
            src.read_all(IN_MEMORY)
            if not src.eof and self._stream_table(reader, src):  # (header read there)
                return
            src = reader._src
            src.read_all(MAX_INFLATED)
            if len(src.buf) > MAX_INFLATED:
                raise CaptureError(f"{reader.path}: NetMon file inflates past {MAX_INFLATED >> 20} "
                                   f"MiB (at byte offset {MAX_INFLATED} of the stream), and its "
                                   "frame table is missing or not in file order; decompress it "
                                   "first")
        self._header(reader, src.buf)
        buf = src.buf
        table_off, table_len = self.table_off, self.table_len
        if table_off + table_len <= len(buf):
            self.table = buf[table_off : table_off + table_len].view("<u4").astype(np.int64)
        else:
            self.table = self._walk_frames(buf)
            reader._stop("frame table missing", table_off,
                         f"the file ends at byte {len(buf)}, before the frame table it announces"
                         f" ({table_len} bytes); frames were found walking from byte "
                         f"{HEADER_BYTES}", len(self.table))
        self._next = 0  # index in the frame table of the next frame to hand out

    def _header(self, reader, buf: np.ndarray) -> None:
        """The file header's fields (raise CaptureError for one no reader can go on from)."""
        if len(buf) < HEADER_BYTES:
            raise CaptureError(f"{reader.path}: truncated NetMon file header ({len(buf)} bytes "
                               f"at offset 0, {HEADER_BYTES} needed)")
        head = bytes(buf[:HEADER_BYTES])
        self.minor = head[4]
        self.format = f"netmon2.{self.minor}"
        self.trailer = _TRAILER.get(self.minor, 15)
        file_media = struct.unpack_from("<H", head, 6)[0]
        self.file_linktype = int(netmon_linktypes(np.array([file_media]))[0])
        self.start_ns = self._start_time(head)
        self.table_off, self.table_len = struct.unpack_from("<II", head, 24)
        if self.table_len % 4:
            raise CaptureError(f"{reader.path}: frame table length {self.table_len} at byte "
                               "offset 28 is not a multiple of 4")

    def _stream_table(self, reader, src: StreamSource) -> bool:
        """The first of two reads of a big compressed file: on through the stream to its frame
        table, keeping only the table (and the last frame's time). True when the table is whole
        and in file order: the reader then reads the stream again from its start
        (`_walk_streamed`); False: the reader's stream is opened again, for a read of it whole."""
        self._header(reader, src.buf)
        if self.table_len > MAX_TABLE:
            reader._src = reader.reopen()
            return False
        start, end = self.table_off, self.table_off + self.table_len
        table = bytearray()
        recent: deque[tuple[int, memoryview]] = deque()  # the last pieces: the last frame's bytes
        at, piece = 0, memoryview(src.buf)
        while True:
            lo, hi = max(at, start), min(at + len(piece), end)
            if lo < hi:
                table += piece[lo - at : hi - at]
            recent.append((at, piece))
            while len(recent) > 3:
                recent.popleft()
            at += len(piece)
            if at >= end:
                break
            parts = src.read(WINDOW)
            if not parts:
                break
            piece = memoryview(b"".join(parts) if len(parts) > 1 else parts[0])
        offsets = np.frombuffer(table, "<u4").astype(np.int64)
        reader._src = reader.reopen()
        if len(table) < self.table_len or (np.diff(offsets) < 0).any():
            return False
        self.table, self.streamed = offsets, True
        self._next = 0
        if len(offsets):
            self._streamed_last = self._last_of(lambda o, n: _bytes_at(recent, o, n))
        return True

    def _start_time(self, head: bytes) -> int:
        """The header's SYSTEMTIME (read as UTC: the file keeps no time zone) in ns."""
        year, month, _, day, hour, minute, sec, msec = struct.unpack_from("<8H", head, 8)
        try:
            secs = calendar.timegm((year, month, day, hour, minute, sec))
            # beyond about year 2262 the ns no longer fit the int64 timestamps
            if not (1 <= month <= 12 and 1 <= day <= 31) or abs(secs) > 1 << 33:
                raise ValueError
        except (ValueError, OverflowError):
            self._r._ignore("invalid start time", 8, f"{year}-{month}-{day} {hour}:{minute}:{sec} "
                            "read as 1970-01-01")
            return 0
        return secs * 1_000_000_000 + min(msec, 999) * 1_000_000

    def _walk_frames(self, buf: np.ndarray) -> np.ndarray:
        """Offsets of the complete frames laid end to end from byte 128 (no frame table)."""
        size, lim, trailer = len(buf), len(buf) - 16, self.trailer
        if HEADER_BYTES > lim:
            return np.zeros(0, np.int64)
        u32 = chain.u32_everywhere(buf, "<")

        def step(at):
            return at + (16 + trailer) + u32[at + 12]

        def stop(at):
            orig, incl = u32[at + 8], u32[at + 12]
            return (incl > MAX_RECORD) | (incl > orig) | (step(at) > size)

        def plausible(at):  # a complete frame less than a few days after the capture's start
            return ~stop(at) & (u32[at + 8] > 0) & (u32[at + 4] < 1 << 8)

        def sieve(first, width):  # the top byte of the microsecond offset is zero
            return chain.byte_matches(buf, first, width, 7, 0, 0)

        def plain(at):
            return _plain_frames(buf, at, trailer)

        offs, _, _ = chain.walk(step, HEADER_BYTES, lim, plain, sieve, plausible, stop)
        return np.asarray(offs, np.int64)

    def walk(self, buf: np.ndarray, pos: int, budget: int):
        """The next frames of the table (about budget // 256 of them); return (chunk, status)."""
        if self.streamed:
            return self._walk_streamed(budget)
        r, size = self._r, len(buf)
        i = self._next
        j = min(len(self.table), i + max(1, budget // 256))
        off = self.table[i:j]
        self._next = j
        status = FULL if j < len(self.table) else MORE
        if status == MORE:
            r._pos = size  # nothing left: the reader sees the end, not a cut record
        hdr, caplen, fits = self._headers(buf, off)
        if not fits.all():
            k = int(np.argmax(~fits))
            self._stop_at(i, k, off, caplen, size)
            status = BAD
            off, hdr, caplen = off[:k], hdr[:k], caplen[:k]
            if not k:
                return None, status
        return self._chunk(buf, off, hdr, caplen), status

    def _walk_streamed(self, budget: int):
        """`walk` of the second read of a big compressed file: the next frames in table order
        that the stream's window holds, sliding it on (it starts at the first frame not handed
        out) until it holds at least one; at the stream's end, as `walk` of the whole file."""
        src = self._r._src
        i = self._next
        if i >= len(self.table):
            return None, END  # what follows the last frame is never read
        off = self.table[i : min(len(self.table), i + max(1, budget // 256))]
        while True:
            buf, base = src.buf, src.base
            hdr, caplen, fits = self._headers(buf, off - base)
            m = len(off) if fits.all() else int(np.argmax(~fits))
            absurd = m < len(off) and caplen[m] > MAX_RECORD and off[m] - base + 16 <= len(buf)
            if m or absurd:
                break
            end = base + len(buf)
            if off[0] > end:  # a hole before the frame: passed a window at a time, never held
                if not src.more(end, 1):
                    break
                continue
            need = 16 + self.trailer + (int(caplen[0]) if off[0] + 16 <= end else HEAD_BYTES)
            if not src.more(int(off[0]), need):  # the stream ended: as `walk` of the whole file
                break
        status = FULL if i + m < len(self.table) else END
        if m < len(off) and (absurd or src.eof):
            self._stop_at(i, m, off, caplen, base + len(buf), base)
            status = BAD
        self._next = i + m
        if not m:
            return None, status
        return self._chunk(buf, off[:m] - base, hdr[:m], caplen[:m]), status

    def _headers(self, buf: np.ndarray, off: np.ndarray):
        """(frame headers, captured lengths, whether each frame is whole and sane) at `off`."""
        size = len(buf)
        inside = (off >= 0) & (off + 16 <= size)
        if inside.all():
            hdr = byte_rows(buf, off, 16 + HEAD_BYTES)
        else:
            hdr = byte_rows(buf, np.where(inside, off, 0), 16 + HEAD_BYTES)
        caplen = hdr[:, 12:16].copy().view("<u4")[:, 0].astype(np.int64)
        fits = inside & (caplen <= MAX_RECORD) & (off + 16 + caplen + self.trailer <= size)
        return hdr, np.where(inside, caplen, 0), fits

    def _stop_at(self, i: int, k: int, off: np.ndarray, caplen: np.ndarray, size: int,
                 base: int = 0) -> None:
        """Note why frame i + k stops the read (off: absolute - base; size: the file's)."""
        r = self._r
        entry = self.table_off + 4 * (i + k)
        where = int(off[k])
        if where - base + 16 > size - base or where < base:
            reason = "frame past the end of the file"
            detail = (f"frame table entry {i + k} at byte offset {entry} points to byte "
                      f"{where}, past the end of the {size}-byte file")
        elif caplen[k] > MAX_RECORD:
            reason, detail = "absurd frame length", f"captured length {caplen[k]} > {MAX_RECORD}"
        else:
            reason = "frame past the end of the file"
            detail = f"the frame's {caplen[k]} bytes run past the end of the {size}-byte file"
        r._stop(reason, where, detail, r.records + k)

    def _chunk(self, buf: np.ndarray, off: np.ndarray, hdr: np.ndarray, caplen: np.ndarray
               ) -> RecordChunk:
        """The RecordChunk of whole frames at `off` of `buf`."""
        n = len(off)
        delta = hdr[:, :8].copy().view("<u8")[:, 0]
        # As Wireshark: the u64 microseconds times 10, read as signed 100 ns units.
        ts = (delta * np.uint64(10)).view(np.int64) * 100 + self.start_ns
        if self.trailer:
            tr = byte_rows(buf, off + 16 + caplen, self.trailer)
            media = tr[:, 0].astype(np.int64) | (tr[:, 1].astype(np.int64) << 8)
            linktype = netmon_linktypes(media)
            if self.trailer >= 14:  # 2.3: a UTC FILETIME per frame, which wins
                ft = tr[:, 6:14].copy().view("<u8")[:, 0]
                ok = (ft >= _FILETIME_1970) & (ft < _FILETIME_1970 + (1 << 62) // 100)
                utc = (ft.astype(np.int64, casting="unsafe") - _FILETIME_1970) * 100
                ts = np.where(ok, utc, ts)
            if n and (linktype == linktype[0]).all():
                linktype = int(linktype[0])
        else:
            linktype = self.file_linktype
        return RecordChunk(
            buf=buf, data_off=off + 16, caplen=caplen,
            origlen=hdr[:, 8:12].copy().view("<u4")[:, 0], ts_ns=ts, linktype=linktype,
            first_index=self._r.records, head=hdr, head_start=16,
        )

    def last_ts(self, buf: np.ndarray) -> int | None:
        """Timestamp of the frame table's last frame (None if it cannot be read)."""
        if self.streamed:
            return self._streamed_last
        if not len(self.table):
            return None

        def at(offset: int, n: int) -> bytes | None:
            return bytes(buf[offset : offset + n]) if 0 <= offset and offset + n <= len(buf) else None

        return self._last_of(at)

    def _last_of(self, at) -> int | None:
        """The last frame's timestamp, its bytes got by at(offset, n) (None: not to be had)."""
        off = int(self.table[-1])
        head = at(off, 16)
        if head is None:
            return None
        delta, _, caplen = struct.unpack_from("<QII", head)
        ts = ((delta * 10) & ((1 << 64) - 1))
        ts = (ts - (1 << 64) if ts >= 1 << 63 else ts) * 100 + self.start_ns
        end = off + 16 + caplen + self.trailer
        if self.trailer >= 14:
            tail = at(end - 9, 9)  # (the FILETIME and the time-zone byte after it)
            if tail is not None:
                ft = struct.unpack_from("<Q", tail)[0]
                if _FILETIME_1970 <= ft < _FILETIME_1970 + (1 << 62) // 100:
                    ts = (ft - _FILETIME_1970) * 100
        return ts


def _bytes_at(pieces, offset: int, n: int) -> bytes | None:
    """n bytes at `offset` of a stream of which `pieces` ((start, bytes) in order, contiguous)
    are the last seen; None when they do not hold them all."""
    out = bytearray()
    for start, piece in pieces:
        lo, hi = max(offset, start), min(offset + n, start + len(piece))
        if lo < hi:
            if lo != offset + len(out):
                return None
            out += piece[lo - start : hi - start]
    return bytes(out) if len(out) == n else None


def _plain_frames(buf: np.ndarray, pos: int, trailer: int):
    """NetmonWalker._walk_frames frame by frame: (offsets, end, stopped); the fallback."""
    offs, size = [], len(buf)
    with memoryview(buf) as mv:
        while pos + 16 <= size:
            orig, incl = struct.unpack_from("<II", mv, pos + 8)
            nxt = pos + 16 + incl + trailer
            if incl > MAX_RECORD or incl > orig or nxt > size:
                return offs, pos, True
            offs.append(pos)
            pos = nxt
    return offs, pos, False
