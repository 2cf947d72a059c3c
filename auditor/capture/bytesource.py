"""Where a capture file's bytes come from: the file memory-mapped whole, or a gzip stream.

Both show `pcapfmt.RecordReader` a numpy byte buffer `buf` whose first byte is byte `base` of the
(decompressed) stream, and answer the same calls: `more` slides the window on, `release` lets parsed
pages go, `tell` says how much of the file was consumed (for progress).
"""

from __future__ import annotations

import mmap
import zlib

import numpy as np

WINDOW = 16 << 20  # gzip: decompressed bytes inflated at a time


class MappedSource:
    """A plain file, memory-mapped whole; parsed pages are handed back so RSS stays flat."""

    def __init__(self, f):
        self._f = f
        self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.buf = np.frombuffer(self._mm, dtype=np.uint8)
        self.base = 0
        self._released = 0

    def more(self, pos: int, need: int) -> bool:
        """The whole file is already in view: there is never more."""
        return False

    def release(self, pos: int) -> None:
        """Drop the mapping of pages before pos (they still live in the page cache)."""
        upto = pos & ~(mmap.PAGESIZE - 1)
        if upto > self._released:
            self._mm.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

    def tell(self, pos: int) -> int:
        """Bytes of the file consumed when the stream is at pos."""
        return pos

    def close(self) -> None:
        """Unmap (left to the GC if a caller still holds a view) and close."""
        self.buf = None
        try:
            self._mm.close()
        except BufferError:
            pass
        self._f.close()


class GzipSource:
    """A gzip-compressed file, inflated through a sliding window of about WINDOW bytes."""

    def __init__(self, f):
        self._f = f
        self._z = zlib.decompressobj(wbits=31)  # gzip framing; members are chained below
        self.buf = np.empty(0, np.uint8)
        self.base = 0
        self.eof = False
        self.error: str | None = None
        self.more(0, 64)

    def more(self, pos: int, need: int) -> bool:
        """Slide the window to start at pos with at least `need` bytes; False if nothing new."""
        if self.eof:
            return False
        keep = self.buf[pos - self.base :].copy()  # the unfinished record, if any
        self.buf = None  # let the old window go before the new one is inflated
        parts = self._inflate(max(WINDOW, need))
        got = sum(len(p) for p in parts)
        new = np.empty(len(keep) + got, np.uint8)
        new[: len(keep)] = keep
        at = len(keep)
        while parts:
            part = parts.pop(0)
            new[at : at + len(part)] = np.frombuffer(part, np.uint8)
            at += len(part)
        self.buf, self.base = new, pos
        return got > 0

    def _inflate(self, room: int) -> list[bytes]:
        # zlib rather than GzipFile: on a cut or corrupt stream it still hands over every byte
        # it could inflate, so the records before the damage are kept.
        parts = []
        while room > 0:
            if self._z.eof:  # end of one gzip member: another may follow
                src = self._z.unused_data or self._f.read(1 << 20)
                if not src.strip(b"\0"):
                    self.eof = True
                    break
                self._z = zlib.decompressobj(wbits=31)
            else:
                src = self._z.unconsumed_tail or self._f.read(1 << 20)
                if not src:
                    parts.append(self._z.flush())
                    self.error = "the compressed stream ends early"
                    self.eof = True
                    break
            try:
                out = self._z.decompress(src, room)
            except zlib.error as exc:
                self.error = f"corrupt compressed data ({exc})"
                self.eof = True
                break
            parts.append(out)
            room -= len(out)
        return parts

    def release(self, pos: int) -> None:
        """Nothing to release: the window is replaced as it slides."""

    def tell(self, pos: int) -> int:
        """Compressed bytes consumed so far."""
        return self._f.tell()

    def close(self) -> None:
        """Close the file."""
        self._f.close()
