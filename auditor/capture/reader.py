"""Open one capture, tell its compression and format by magic bytes, and read it in chunks.

`RecordReader` is the one entry point for every container: it picks the bytes' source (a memory
map, a decompressor, an archive member, editcap's pcapng output for formats read through tshark's
wiretap), asks `formats` what the bytes are, and lets that format's walker (`pcap`, `pcapng`,
`netmon`) cut them into `records.RecordChunk`s. It keeps what every format shares: the position,
the record count, the first and last timestamps, and the notes on what was skipped and why.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterator

from auditor.capture import formats, records
from auditor.capture.bytesource import (
    ArchiveCache,
    CaptureSource,
    MappedSource,
    PlainStream,
    StreamSource,
)
from auditor.capture.compression import Inflater
from auditor.capture.convert import WIRETAP_READS_ITSELF, Converted, captype, encapsulation
from auditor.capture.netmon import NetmonWalker
from auditor.capture.pcap import PcapWalker
from auditor.capture.pcapng import PcapngWalker
from auditor.capture.records import BAD, END, FULL, NO_TS, SECTION, RecordChunk
from auditor.errors import CaptureError

ETL_HELP = (
    "an ETL trace (netsh trace / pktmon), which no reader off Windows understands; convert it on "
    "Windows with `pktmon etl2pcap FILE.etl --out FILE.pcapng` (Windows 10 2004 or later) or "
    "Microsoft's etl2pcapng (`etl2pcapng FILE.etl FILE.pcapng`), then audit the pcapng"
)


class RecordReader:
    """Open one capture file (or archive member), detect its format and read it in chunks."""

    def __init__(self, source: str | os.PathLike | CaptureSource,
                 archives: ArchiveCache | None = None):
        if not isinstance(source, CaptureSource):
            source = CaptureSource(os.fspath(source))
        self.source = source
        self.path = source.label
        self.records = 0
        self.skipped: Counter[str] = Counter()
        self.notes: dict[str, str] = {}  # reason -> warning text, for reasons that stopped reading
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.compression: str | None = None
        self.converted_from: str | None = None  # the wiretap format editcap converted
        self.warnings: list[str] = []  # notes that are not skips (a conversion, say)
        self._pos = 0
        self._need = 64
        self._archives = archives
        self._src = self._open(archives)
        try:
            self._walker = self._detect()
        except BaseException:
            self._src.close()
            raise
        self.format = (self.converted_from or self._walker.format) + (
            f"+{self.compression}" if self.compression else "") + (
            " via editcap" if self.converted_from else "")

    def _open(self, archives):
        try:
            f, also_close = self.source.open(archives)
        except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            why = getattr(exc, "strerror", None) or (
                "no such member" if isinstance(exc, KeyError) else str(exc))
            raise CaptureError(f"{self.path}: cannot open ({why})") from None
        try:
            try:
                head = f.read(formats.SNIFF_BYTES)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
                raise CaptureError(f"{self.path}: corrupt archive member at byte offset 0 "
                                   f"({exc})") from None
            if not head:
                raise CaptureError(f"{self.path}: empty file (no bytes at offset 0)")
            self.compression = formats.compression_of(head)
            if self.source.member is None and self.compression is None:
                f.seek(0)
                return MappedSource(f)
            if f.seekable():
                f.seek(0)
                stream = PlainStream(f) if self.compression is None else Inflater(f, self.compression)
            else:  # pragma: no cover - archive members are seekable
                raise CaptureError(f"{self.path}: cannot re-read the stream start")
        except BaseException:
            f.close()
            if also_close:
                also_close()
            raise

        def close():
            f.close()
            if also_close:
                also_close()

        return StreamSource(stream, close)

    def _detect(self):
        head = bytes(self._src.buf[: formats.SNIFF_BYTES])
        if not head:
            why = getattr(self._src, "error", None) or "the stream holds no data"
            raise CaptureError(f"{self.path}: nothing to read at byte offset 0 of the "
                               f"{self.compression} content ({why})")
        sniffed = formats.container_of(head, self.source.name)
        if sniffed.container == "pcap":
            return PcapWalker(self, bytes(self._src.buf[:28]))
        if sniffed.container == "pcapng":
            return PcapngWalker(self, head)
        if sniffed.container == "netmon":
            return NetmonWalker(self, head)
        if sniffed.container == "etl":
            raise CaptureError(f"{self.path}: {ETL_HELP}")
        return self._convert(head)

    def _convert(self, head: bytes) -> PcapngWalker:
        """Swap the source for editcap's pcapng output (formats only wiretap reads)."""
        what = f"{self.compression} content" if self.compression else "file"
        unknown = (f"{self.path}: not a capture format auditor or tshark reads ({what} starts "
                   f"with 0x{head[:4].hex()} at byte offset 0)")
        old = self._src
        by_path = self.source.member is None and self.compression in WIRETAP_READS_ITSELF
        note = ""
        if by_path:
            fmt, why = captype(self.source.path)
            if fmt is None:
                raise CaptureError(f"{unknown[:-1]}; {why})" if why else unknown)
            src = self._converted(old, Converted(self.path, self.source.path))
            conv = src._stream
            if conv.eof and conv.error and "can't be written" in conv.error:
                # wiretap-only encapsulations (HP-UX nettl's, CommView's per-packet one) have no
                # pcapng link type; their frames are Ethernet when capinfos says so
                encap = encapsulation(self.source.path)
                if encap and ("ether" in encap or encap == "per-packet"):
                    src._close = lambda: None  # keep `old` open for the retry
                    src.close()
                    conv.close()
                    src = self._converted(old, Converted(self.path, self.source.path,
                                                         ethernet=True))
                    conv = src._stream
                    note = f"; frames taken as Ethernet (wiretap encapsulation {encap})"
            conv.format = fmt
        else:
            src = self._converted(old, Converted(self.path, None, _Replay(bytes(old.buf), old)))
            conv = src._stream
        self._src = src
        if not len(src.buf) or (conv.eof and conv.error and _only_headers(src.buf)):
            self._src.close()
            self._src = old  # closed already; close() again is harmless
            if conv.format:  # wiretap reads it, editcap cannot write it as pcapng
                raise CaptureError(f"{self.path}: editcap cannot convert this {conv.format} file "
                                   f"to pcapng (at byte offset 0: {conv.error})")
            raise CaptureError(f"{unknown[:-1]}; editcap: {conv.error})" if conv.error else unknown)
        self.converted_from = conv.format or "a wiretap format"
        self.warnings.append(f"{self.path}: {self.converted_from} file read through editcap "
                             f"(converted to pcapng on a pipe{note})")
        return PcapngWalker(self, bytes(self._src.buf[: formats.SNIFF_BYTES]))

    def reopen(self):
        """The capture's source opened again at its start, this one closed (a second read of a
        stream, for NetMon's frame table)."""
        self._src.close()
        return self._open(self._archives)

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""
        self._src.close()

    def tell(self) -> int:
        """Bytes of the file (compressed, for a compressed one) consumed so far."""
        return self._src.tell(self._pos)

    def chunks(self, max_bytes: int | None = None) -> Iterator[RecordChunk]:
        """Yield the file's packet records, walking about max_bytes of the file per chunk."""
        budget = max_bytes or records.CHUNK_BYTES
        # Memory follows records, not bytes: tiny records (16-byte empty pcap records of a
        # hostile file) would make a 32 MiB chunk two million rows of per-record arrays. The
        # first chunk walks at most what MAX_CHUNK_RECORDS of the smallest records take; each
        # next one what MAX_CHUNK_RECORDS of the last chunk's mean record take, up to budget.
        # A record's size is how far the walk moved per record, or its data and a record header
        # when the walk does not move (NetMon's frame table is walked by entries, not bytes).
        # (a walk takes the record that starts at its limit too: hence the - 1)
        step = min(budget, records.MAX_CHUNK_RECORDS * records.MIN_RECORD_BYTES - 1)
        walk = self._walker.walk
        self._pos = self._walker.start
        src = self._src
        while True:
            start = self._pos
            chunk, status = walk(src.buf, self._pos - src.base, step)
            if chunk is not None:
                n = len(chunk.data_off)
                took = max(self._pos - start,
                           int(chunk.caplen.sum()) + n * records.MIN_RECORD_BYTES)
                walked = took * records.MAX_CHUNK_RECORDS // max(n, 1)
                step = int(min(budget, max(records.MIN_RECORD_BYTES * 64, walked - 1)))
                self._account(chunk)
                yield chunk
                del chunk
            src.release(self._pos)
            if status == FULL or status == SECTION:
                continue
            if status == BAD or status == END:
                break
            if src.more(self._pos, self._need):
                continue
            end = src.base + len(src.buf)
            error = getattr(src, "error", None)
            if error:  # one line: where the complete records end, and why the stream did
                cut = "truncated" if "ends early" in error else "corrupt"
                reason = (f"{cut} {self.compression or 'input'} stream" if not self.converted_from
                          else "editcap stopped converting")
                self._stop(reason, self._pos, error, self.records)
            elif self._pos < end:
                self._stop("truncated record", self._pos, "the last record is cut short",
                           self.records)
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

    def _ignore(self, reason: str, offset: int, detail: str) -> None:
        """Note a header field that was ignored (reading goes on); warned once per reason."""
        self.skipped[reason] += 1
        self.notes.setdefault(
            reason, f"{self.path}: {reason} in the block at byte offset "
                    f"{self._src.base + offset}{self._of()} ({detail})")

    def _of(self) -> str:
        """Which stream offsets count in: the decompressed or converted one, if not the file."""
        if self.converted_from:
            return " of editcap's pcapng output"
        return f" of the {self.compression}-decompressed stream" if self.compression else ""

    def _stop(self, reason: str, offset: int, detail: str, kept: int) -> None:
        """Record why reading stopped at `offset` (of the decompressed stream, if compressed)."""
        of = self._of()
        self.skipped[reason] += 1
        self.notes[reason] = (
            f"{self.path}: {reason} at byte offset {offset}{of} ({detail}); "
            f"kept the {kept} records before it"
        )



    def _converted(self, old, conv: Converted) -> StreamSource:
        """A stream source over editcap's output; closing it ends editcap and the old source."""

        def close():
            conv.close()
            old.close()

        return StreamSource(conv, close)


def _only_headers(buf) -> bool:
    """Whether editcap's output holds no packet block at all (it failed at the first packet)."""
    import struct

    data, pos = bytes(buf[: 1 << 16]), 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype in (2, 3, 6) or blen < 12:
            return False
        pos += blen
    return pos >= len(data)


class _Replay:
    """A stream whose first window was already read: hand that window out first."""

    def __init__(self, first: bytes, stream):
        self._first = first
        self._stream = stream
        self.error = None

    def read(self, room: int) -> list[bytes]:
        """The window already read, then the rest of the stream."""
        if self._first:
            first, self._first = self._first, b""
            return [first]
        return self._stream.read(room)
