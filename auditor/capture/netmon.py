"""Microsoft Network Monitor 2.x (`.cap` from NetMon 3.x and Message Analyzer exports).

The 128-byte file header points at a frame table: one u32 file offset per frame. Each frame is a
16-byte header (microseconds since the capture start as a u64, original and captured length),
the frame bytes and, from format 2.1 on, a trailer whose first two bytes are the frame's media
type (2.2 adds a process index, 2.3 a UTC FILETIME and a time-zone index). With the table there
is no per-frame Python loop at all: every field is gathered with numpy. A file cut before its
table (the table is written last) is walked frame by frame from byte 128, with a warning.

Media types: 0 and 1 are Ethernet (NetMon 3.4 VPN captures use 0 for Ethernet frames), 7-9 are
raw IP (tunnels, WWAN, "raw IP frames"), 0xE000 | LINKTYPE_x are frames converted from pcap, and
0xFFE0-0xFFFF are NetMon's own records (ETW events, adapter lists, filters, DNS cache), counted as
non-IP. Token Ring and FDDI keep their pcap link types; 802.11, ATM, 1394 and Message Analyzer's
WFP/Fiddler types are counted as skipped.
"""

from __future__ import annotations

import calendar
import struct

import numpy as np

from auditor.capture import chain
from auditor.capture.bytesource import StreamSource
from auditor.capture.records import (
    BAD,
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
# A compressed or archived NetMon file is inflated whole (its frame table needs seeking); past this
# it is refused rather than let a small file claim gigabytes of memory. NetMon 3.4 itself writes
# files of 20 MB by default.
MAX_INFLATED = 1 << 30
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
        src = reader._src
        if isinstance(src, StreamSource):  # compressed or in an archive: the table needs seeking
            src.read_all(MAX_INFLATED)
            if len(src.buf) > MAX_INFLATED:
                raise CaptureError(f"{reader.path}: NetMon file inflates past {MAX_INFLATED >> 20} "
                                   f"MiB (at byte offset {MAX_INFLATED} of the stream); "
                                   "decompress it first")
        buf = src.buf
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
        table_off, table_len = struct.unpack_from("<II", head, 24)
        self.table_off = table_off
        if table_len % 4:
            raise CaptureError(f"{reader.path}: frame table length {table_len} at byte offset 28 "
                               "is not a multiple of 4")
        if table_off + table_len <= len(buf):
            self.table = buf[table_off : table_off + table_len].view("<u4").astype(np.int64)
        else:
            self.table = self._walk_frames(buf)
            reader._stop("frame table missing", table_off,
                         f"the file ends at byte {len(buf)}, before the frame table it announces"
                         f" ({table_len} bytes); frames were found walking from byte "
                         f"{HEADER_BYTES}", len(self.table))
        self._next = 0  # index in the frame table of the next frame to hand out

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
        r, size = self._r, len(buf)
        i = self._next
        j = min(len(self.table), i + max(1, budget // 256))
        off = self.table[i:j]
        self._next = j
        status = FULL if j < len(self.table) else MORE
        if status == MORE:
            r._pos = size  # nothing left: the reader sees the end, not a cut record
        inside = off + 16 <= size
        if inside.all():
            hdr = byte_rows(buf, off, 16 + HEAD_BYTES)
        else:
            hdr = byte_rows(buf, np.where(inside, off, 0), 16 + HEAD_BYTES)
        caplen = hdr[:, 12:16].copy().view("<u4")[:, 0].astype(np.int64)
        bad = ~inside | (caplen > MAX_RECORD) | (off + 16 + caplen + self.trailer > size)
        if bad.any():
            k = int(np.argmax(bad))
            entry = self.table_off + 4 * (i + k)
            where = int(off[k])
            if not inside[k]:
                reason = "frame past the end of the file"
                detail = (f"frame table entry {i + k} at byte offset {entry} points to byte "
                          f"{where}, past the end of the {size}-byte file")
            elif caplen[k] > MAX_RECORD:
                reason, detail = "absurd frame length", f"captured length {caplen[k]} > {MAX_RECORD}"
            else:
                reason = "frame past the end of the file"
                detail = f"the frame's {caplen[k]} bytes run past the end of the {size}-byte file"
            r._stop(reason, where, detail, r.records + k)
            status = BAD
            off, hdr, caplen = off[:k], hdr[:k], caplen[:k]
            if not k:
                return None, status
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
        chunk = RecordChunk(
            buf=buf, data_off=off + 16, caplen=caplen,
            origlen=hdr[:, 8:12].copy().view("<u4")[:, 0], ts_ns=ts, linktype=linktype,
            first_index=r.records, head=hdr, head_start=16,
        )
        return chunk, status

    def last_ts(self, buf: np.ndarray) -> int | None:
        """Timestamp of the frame table's last frame (None if it cannot be read)."""
        if not len(self.table):
            return None
        off = int(self.table[-1])
        if off < 0 or off + 16 > len(buf):
            return None
        delta, _, caplen = struct.unpack_from("<QII", bytes(buf[off : off + 16]))
        ts = ((delta * 10) & ((1 << 64) - 1))
        ts = (ts - (1 << 64) if ts >= 1 << 63 else ts) * 100 + self.start_ns
        end = off + 16 + caplen + self.trailer
        if self.trailer >= 14 and end <= len(buf):
            ft = struct.unpack_from("<Q", bytes(buf[end - 9 : end - 1]))[0]
            if _FILETIME_1970 <= ft < _FILETIME_1970 + (1 << 62) // 100:
                ts = (ft - _FILETIME_1970) * 100
        return ts


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
