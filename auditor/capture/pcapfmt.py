"""Capture containers: pcap (us/ns, either byte order), pcapng and gzip-wrapped files of both.

`RecordReader` walks a file's record headers and hands out `RecordChunk`s: a byte buffer plus
per-record arrays (data offset, captured and original length, timestamp, link type). Getting the
bytes (mmap, or gzip inflated) is `bytesource.py`'s job; decoding the packets is `headers.py`'s.
The only per-record Python loop in the package is the header walk here, because pcap and pcapng
records chain sequentially; every field is then read with numpy over the whole chunk.
"""

from __future__ import annotations

import os
import struct
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from auditor.capture.bytesource import GzipSource, MappedSource
from auditor.errors import CaptureError

MAX_RECORD = 262_144  # Wireshark's limit for ordinary link types; more means a corrupt header
MAX_BLOCK = 128 << 20  # largest pcapng block accepted (Wireshark allows about this much)
CHUNK_BYTES = 32 << 20  # file bytes walked per chunk: bounds memory whatever the file size
HEAD_BYTES = 112  # leading bytes of each record copied out once; enough for almost all headers
NO_TS = np.iinfo(np.int64).min  # timestamp of a record that has none (pcapng simple packet block)
MAX_TSOFFSET = 1 << 32  # if_tsoffset seconds beyond this cannot be added to int64 ns timestamps
BAD_INTERFACE = -1  # link type given to a pcapng packet that names an undefined interface

_PCAP_MAGICS = {  # magic bytes -> (byte order, ns per fraction unit, format name)
    b"\xd4\xc3\xb2\xa1": ("<", 1000, "pcap"),
    b"\xa1\xb2\xc3\xd4": (">", 1000, "pcap"),
    b"\x4d\x3c\xb2\xa1": ("<", 1, "pcap-ns"),
    b"\xa1\xb2\x3c\x4d": (">", 1, "pcap-ns"),
}
_NG_MAGIC = b"\x0a\x0d\x0d\x0a"
_SHB, _IDB, _OPB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
_FULL, _MORE, _BAD, _SECTION = range(4)
_NATIVE = "<" if sys.byteorder == "little" else ">"


@dataclass
class RecordChunk:
    """Consecutive packet records of one file (about CHUNK_BYTES of it)."""

    buf: np.ndarray  # uint8 bytes the offsets point into (a window of the file)
    data_off: np.ndarray  # int64 offset of each record's captured bytes in buf
    caplen: np.ndarray  # int64 captured length
    origlen: np.ndarray  # uint32 original length on the wire
    ts_ns: np.ndarray  # int64 ns since the epoch, NO_TS when the record has no timestamp
    linktype: int | np.ndarray  # one link type for the chunk, or one per record
    first_index: int  # record number (0-based, in the file) of the first record
    # Each record's leading bytes copied into one (n, k) array: decoding reads these
    # cache-friendly rows and goes back to `buf` only for the rare deeper headers.
    head: np.ndarray  # (n, k) uint8; bytes past caplen are the next record's (or zero at EOF)
    head_start: int | np.ndarray  # column of head where the captured bytes start


def byte_rows(buf: np.ndarray, off: np.ndarray, width: int) -> np.ndarray:
    """Return the `width` bytes at each offset as an (n, width) array, zero past the buffer end."""
    last = len(buf) - width
    if len(off) and off.max() > last:  # rows running off the end: read them from a padded tail
        over = off > last
        start = min(max(int(off[over].min()), 0), len(buf))
        tail = np.zeros(len(buf) - start + width, np.uint8)
        tail[: len(buf) - start] = buf[start:]
        out = np.empty((len(off), width), np.uint8)
        out[over] = byte_rows(tail, np.minimum(off[over] - start, len(tail) - width), width)
        if not over.all():
            out[~over] = byte_rows(buf, off[~over], width)
        return out
    n = len(off)
    if n > 1 and off[0] >= 0:
        step = int(off[1] - off[0])
        if step > 0 and int(off[-1] - off[0]) == step * (n - 1) and (np.diff(off) == step).all():
            # Evenly spaced (same header layout in every row of a chunk's head array): a
            # strided view, no copy at all.
            return as_strided(buf[int(off[0]) :], shape=(n, width), strides=(step, 1),
                              writeable=False)
    # A sliding-window view makes each offset one row, so the gather copies n rows rather than
    # building an n x width index array.
    win = as_strided(buf, shape=(last + 1, width), strides=(1, 1), writeable=False)
    return win[off]



class RecordReader:
    """Open one capture file, detect its format and read its packet records in chunks."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.records = 0
        self.skipped: Counter[str] = Counter()
        self.notes: dict[str, str] = {}  # reason -> warning text, for reasons that stopped reading
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        try:
            f = open(self.path, "rb")
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open ({exc.strerror})") from None
        try:
            if os.fstat(f.fileno()).st_size == 0:
                raise CaptureError(f"{self.path}: empty file (no bytes at offset 0)")
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            self._src = GzipSource(f) if gz else MappedSource(f)
        except BaseException:
            f.close()
            raise
        self._pos = 0
        try:
            self._detect(gz)
        except BaseException:
            self._src.close()
            raise

    def _detect(self, gz: bool) -> None:
        head = bytes(self._src.buf[:24])
        if not head:
            why = getattr(self._src, "error", None) or "the stream holds no data"
            raise CaptureError(f"{self.path}: nothing to read at byte offset 0 of the gzip "
                               f"content ({why})")
        suffix = "+gzip" if gz else ""
        if head[:4] in _PCAP_MAGICS:
            self._order, self._frac_ns, fmt = _PCAP_MAGICS[head[:4]]
            if len(head) < 24:
                raise CaptureError(f"{self.path}: truncated pcap file header "
                                   f"({len(head)} bytes at offset 0, 24 needed)")
            network = struct.unpack_from(self._order + "I", head, 20)[0]
            self._linktype = network & 0x03FFFFFF  # upper bits may carry the FCS length
            self.format = fmt + suffix
        elif head[:4] == _NG_MAGIC:
            if head[8:12] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise CaptureError(f"{self.path}: not a pcapng file (bad byte-order magic at "
                                   "byte offset 8)")
            self.format = "pcapng" + suffix
        else:
            what = "gzip content" if gz else "file"
            raise CaptureError(
                f"{self.path}: not a pcap or pcapng file ({what} starts with 0x{head[:4].hex()} "
                "at byte offset 0)"
            )

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""
        self._src.close()

    def tell(self) -> int:
        """Bytes of the file (compressed, for gzip) consumed so far."""
        return self._src.tell(self._pos)

    def chunks(self, max_bytes: int | None = None) -> Iterator[RecordChunk]:
        """Yield the file's packet records, walking about max_bytes of the file per chunk."""
        budget = max_bytes or CHUNK_BYTES
        walk = self._pcap_walk
        if self.format.startswith("pcapng"):
            walk = self._ng_walk
            self._ifaces: list[tuple[int, int, int, int]] = []  # linktype, snaplen, tsresol, off
            self._sec_base = 0
            self._sec_order = "<"
            self._pos = 0
        else:
            self._pos = 24
        src = self._src
        while True:
            chunk, status = walk(src.buf, self._pos - src.base, budget)
            if chunk is not None:
                self._account(chunk)
                yield chunk
                del chunk
            src.release(self._pos)
            if status == _FULL or status == _SECTION:
                continue
            if status == _BAD:
                break
            if src.more(self._pos, self._need):
                continue
            end = src.base + len(src.buf)
            if self._pos < end:
                self._stop("truncated record", self._pos, "the last record is cut short",
                           self.records)
            if getattr(src, "error", None):
                self._stop("corrupt gzip stream", end, src.error, self.records)
            break

    def _account(self, chunk: RecordChunk) -> None:
        n = len(chunk.data_off)
        self.records = chunk.first_index + n
        ts = chunk.ts_ns
        has = ts != NO_TS
        if not has.all():
            ts = ts[has]
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.first_ts_ns = lo if self.first_ts_ns is None else min(self.first_ts_ns, lo)
            self.last_ts_ns = hi if self.last_ts_ns is None else max(self.last_ts_ns, hi)

    def _stop(self, reason: str, offset: int, detail: str, kept: int) -> None:
        gz = " of the decompressed stream" if self.format.endswith("+gzip") else ""
        self.skipped[reason] += 1
        self.notes[reason] = (
            f"{self.path}: {reason} at byte offset {offset}{gz} ({detail}); "
            f"kept the {kept} records before it"
        )

    # -- pcap -------------------------------------------------------------------------------

    def _pcap_walk(self, buf: np.ndarray, pos: int, budget: int):
        offs: list[int] = []
        append = offs.append
        size = len(buf)
        lim = min(size - 16, pos + budget)
        # The one per-record Python loop: each header says where the next one starts. Only the
        # offsets are collected; all fields are read afterwards with numpy.
        with memoryview(buf) as mv:
            if self._order == _NATIVE:
                # u32 views at the four alignments: indexing them beats struct.unpack_from
                views = [mv[k : k + (size - k) // 4 * 4].cast("I") for k in range(4)]
                while pos <= lim:
                    append(pos)
                    at = pos + 8
                    pos = at + 8 + views[at & 3][at >> 2]
                for view in views:
                    view.release()
            else:
                unpack = struct.Struct(self._order + "I").unpack_from
                while pos <= lim:
                    append(pos)
                    pos += 16 + unpack(mv, pos + 8)[0]
        self._need = 16  # a gzip window must at least hold the next header...
        if not offs:
            self._pos = self._src.base + pos
            return None, _MORE
        off = np.array(offs, dtype=np.int64)
        rec = byte_rows(buf, off, 16 + HEAD_BYTES)
        hdr = rec.view(self._order + "u4")[:, :4].astype(np.int64)
        status = _FULL if pos <= size - 16 else _MORE
        bad = hdr[:, 2] > MAX_RECORD
        keep = len(off)
        if bad.any():
            keep = int(np.argmax(bad))
            pos = int(off[keep])
            self._stop("absurd record length", self._src.base + pos,
                       f"incl_len {hdr[keep, 2]} > {MAX_RECORD}", self.records + keep)
            status = _BAD
        elif pos > size:  # the last header promises more bytes than the buffer holds
            keep -= 1
            pos = int(off[keep])
            self._need = 16 + int(hdr[keep, 2])  # ...or the whole record it announces
            status = _MORE
        self._pos = self._src.base + pos
        if keep == 0:
            return None, status
        hdr, off, rec = hdr[:keep], off[:keep], rec[:keep]
        chunk = RecordChunk(
            buf=buf, data_off=off + 16, caplen=hdr[:, 2], origlen=hdr[:, 3].astype(np.uint32),
            ts_ns=hdr[:, 0] * 1_000_000_000 + hdr[:, 1] * self._frac_ns,
            linktype=self._linktype, first_index=self.records, head=rec, head_start=16,
        )
        return chunk, status

    # -- pcapng -----------------------------------------------------------------------------

    def _ng_walk(self, buf: np.ndarray, pos: int, budget: int):
        offs: list[int] = []
        append = offs.append
        size = len(buf)
        lim = min(size - 12, pos + budget)
        status = None
        self._need = 64
        with memoryview(buf) as mv:
            # Blocks are 4-byte aligned, so in native byte order one u32 view reads them.
            words = mv[: size // 4 * 4].cast("I") if self._sec_order == _NATIVE else None
            unpack = struct.Struct(self._sec_order + "II").unpack_from
            while pos <= lim:
                if words is not None:  # fast path: a run of enhanced packet blocks
                    while pos <= lim:
                        at = pos >> 2
                        blen = words[at + 1]
                        if words[at] != _EPB or blen < 32 or blen & 3:
                            break
                        append(pos)
                        pos += blen
                    if pos > lim:
                        break
                btype, blen = unpack(mv, pos)
                if btype == _SHB:
                    if offs:  # a chunk never spans sections: the byte order may change
                        status = _SECTION
                        break
                    order = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}.get(
                        bytes(mv[pos + 8 : pos + 12]))
                    if order is None:
                        self._stop("corrupt block", self._src.base + pos,
                                   "bad section byte-order magic", self.records)
                        status = _BAD
                        break
                    if order != self._sec_order:
                        self._sec_order = order
                        if words is not None:
                            words.release()
                        words = mv[: size // 4 * 4].cast("I") if order == _NATIVE else None
                        unpack = struct.Struct(order + "II").unpack_from
                    blen = unpack(mv, pos)[1]
                if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                    self._stop("corrupt block", self._src.base + pos, f"block length {blen}",
                               self.records + len(offs))
                    status = _BAD
                    break
                if pos + blen > size:
                    self._need = blen
                    status = _MORE
                    break
                if btype == _EPB or btype == _SPB or btype == _OPB:
                    append(pos)
                elif btype == _IDB:
                    self._interface(mv, pos, blen)
                elif btype == _SHB:
                    self._sec_base = len(self._ifaces)
                pos += blen
            if words is not None:
                words.release()
        if status is None:
            status = _FULL if pos <= size - 12 else _MORE
        if pos > size:  # the fast path's last block runs past the buffer
            pos = offs.pop()
            self._need = int(buf[pos + 4 : pos + 8].view(self._sec_order + "u4")[0])
            status = _MORE
        self._pos = self._src.base + pos
        if not offs:
            return None, status
        return self._ng_chunk(buf, np.array(offs, dtype=np.int64), status)

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
        if abs(tsoffset) > MAX_TSOFFSET:  # its nanoseconds would not fit the int64 timestamps
            self._ignore("implausible if_tsoffset", pos, f"if_tsoffset {tsoffset} s ignored")
            tsoffset = 0
        if not _resolution_ok(tsresol):
            self._ignore("unusable if_tsresol", pos,
                         f"if_tsresol 0x{tsresol:02x} is finer than a 64-bit count can reach "
                         "in whole ns; this interface's timestamps are read as 0")
        self._ifaces.append((linktype, snaplen, tsresol, tsoffset))

    def _ignore(self, reason: str, offset: int, detail: str) -> None:
        """Note a header field that was ignored (reading goes on); warned once per reason."""
        gz = " of the decompressed stream" if self.format.endswith("+gzip") else ""
        self.skipped[reason] += 1
        self.notes.setdefault(
            reason, f"{self.path}: {reason} in the block at byte offset "
                    f"{self._src.base + offset}{gz} ({detail})")

    def _ng_chunk(self, buf: np.ndarray, off: np.ndarray, status: int):
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
            self._pos = self._src.base + int(off[k])
            self._stop("corrupt block", self._pos, "packet block lengths do not agree",
                       self.records + k)
            status = _BAD
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
            first_index=self.records, head=rec,
            head_start=28 if not spb.any() else head_start,
        )
        return chunk, status


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
