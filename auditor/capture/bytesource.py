"""Where a capture file's bytes come from: the file memory-mapped whole, or a stream.

Both show `reader.RecordReader` a numpy byte buffer `buf` whose first byte is byte `base` of the
(decompressed) stream, and answer the same calls: `more` slides the window on, `release` lets parsed
pages go, `tell` says how much of the file was consumed (for progress). A stream is a decompressor
(`compression.Inflater`), an archive member or editcap's output (`convert.Converted`).
"""

from __future__ import annotations

import mmap
import os
import queue
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

WINDOW = 16 << 20  # streams: bytes added to the window at a time


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


READ_PIECE = 16 << 20  # bytes asked of an archive member at a time
# What reading an archive member can raise when the archive is damaged.
MEMBER_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError)


class PlainStream:
    """An uncompressed file object that cannot be mapped (an archive member, a pipe)."""

    def __init__(self, f: BinaryIO, name: str = ""):
        self.name = name
        self._f = f
        self.eof = False
        self.error: str | None = None

    def read(self, room: int) -> list[bytes]:
        """About `room` more bytes, as parts; [] at the end (or at damage, with `error` set)."""
        try:
            # in pieces: BufferedReader.read(n) allocates n bytes first, and room may come
            # from a length the file claims
            parts, data = [], b"x"
            while room > 0 and data:
                data = self._f.read(min(room, READ_PIECE))
                parts.append(data)
                room -= len(data)
            data = b"".join(parts)
        except MEMBER_ERRORS as exc:  # a zip member failing its CRC, a cut tar, ...
            self.error, self.eof = f"corrupt archive member ({exc})", True
            return []
        if not data:
            self.eof = True
            return []
        return [data]

    def tell(self) -> int:
        """Bytes read so far."""
        return self._f.tell()


class StreamSource:
    """A stream (decompressed, converted or an archive member) seen through a sliding window.

    A pump thread reads the next window while the current one is decoded (decompressors and
    pipes release the GIL), so decompression overlaps decoding; at most two windows wait.
    """

    def __init__(self, stream, close: Callable[[], None]):
        self._stream = stream  # compression.Inflater, PlainStream or convert.Converted
        self._close = close
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._ended = False  # the pump has handed over its last window
        self._pump = threading.Thread(target=self._run, name="capture-stream", daemon=True)
        self._pump.start()
        self.buf = np.empty(0, np.uint8)
        self.base = 0
        self.eof = False
        self.more(0, 64)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                parts = self._stream.read(WINDOW)
                self._queue.put(parts)
                if not parts:
                    return
        except BaseException as exc:  # handed to the reading thread, raised there
            self._queue.put(exc)

    def read(self, room: int) -> list[bytes]:
        """The next parts of the stream (at least `room` bytes unless it ends); [] at the end."""
        parts: list[bytes] = []
        got = 0
        while got < room and not self._ended:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            if not item:
                self._ended = True
                break
            parts.extend(item)
            got += sum(len(p) for p in item)
        return parts

    @property
    def error(self) -> str | None:
        """Why the stream stopped early, or None."""
        return self._stream.error

    def more(self, pos: int, need: int) -> bool:
        """Slide the window to start at pos with at least `need` bytes; False if nothing new."""
        if self.eof:
            return False
        keep = self.buf[pos - self.base :].copy()  # the unfinished record, if any
        self.buf = None  # let the old window go before the new one is filled
        parts = self.read(max(1, need - len(keep)))
        got = bool(parts)
        if not got:
            self.eof = True
        self.buf, self.base = _join(keep, parts), pos
        return got

    def read_all(self, limit: int) -> None:
        """Pull the rest of the stream into the window (formats that seek, like NetMon)."""
        # One growing bytearray (realloc in place), not parts joined at the end: joining needs
        # twice the stream's size at once, 2 GB for a NetMon bomb inflating to the limit.
        data = bytearray(self.buf[: len(self.buf)].tobytes())
        self.buf = None
        while not self.eof and len(data) <= limit:
            got = self.read(WINDOW)
            if not got:
                self.eof = True
            for part in got:
                data += part
        self.buf = np.frombuffer(data, np.uint8)

    def release(self, pos: int) -> None:
        """Nothing to release: the window is replaced as it slides."""

    def tell(self, pos: int) -> int:
        """Bytes of the file (compressed, for a compressed one) consumed so far."""
        return self._stream.tell()

    def close(self) -> None:
        """Stop the pump, then close the stream and what it reads from."""
        self._stop.set()
        for _ in range(600):  # the pump finishes the read it is in, then sees the stop
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._pump.join(0.05)
            if not self._pump.is_alive():
                break
        self._close()


def _join(keep: np.ndarray, parts: list[bytes]) -> np.ndarray:
    got = sum(len(p) for p in parts)
    new = np.empty(len(keep) + got, np.uint8)
    new[: len(keep)] = keep
    at = len(keep)
    while parts:
        part = parts.pop(0)
        new[at : at + len(part)] = np.frombuffer(part, np.uint8)
        at += len(part)
    return new


@dataclass(frozen=True)
class CaptureSource:
    """One capture of a set: a file, or a member of a zip or tar archive (read in place)."""

    path: str  # the file on disk (the archive, for a member)
    member: str | None = None  # the member's name inside the archive

    @property
    def label(self) -> str:
        """How messages name it: the path, or archive!member."""
        return self.path if self.member is None else f"{self.path}!{self.member}"

    @property
    def name(self) -> str:
        """The file's (or member's) base name."""
        return os.path.basename(self.member if self.member is not None else self.path)

    def open(self, archives: ArchiveCache | None = None
             ) -> tuple[BinaryIO, Callable[[], None] | None]:
        """A binary file object for the bytes, and what else to close with it (the archive).

        With `archives`, an archive stays open for its next member (a compressed tar is then
        read once from start to end, not once per member).
        """
        if self.member is None:
            return open(self.path, "rb"), None
        if archives is not None:
            return _member(archives.get(self.path), self.member), None
        archive = _open_archive(self.path)
        try:
            return _member(archive, self.member), archive.close
        except BaseException:
            archive.close()
            raise


class ArchiveCache:
    """Zip and tar archives kept open while a set's members are read."""

    def __init__(self):
        self._open: dict[str, zipfile.ZipFile | tarfile.TarFile] = {}

    def get(self, path: str):
        """The open archive at path (opened on first use)."""
        if path not in self._open:
            self._open[path] = _open_archive(path)
        return self._open[path]

    def __enter__(self) -> ArchiveCache:
        return self

    def __exit__(self, *exc) -> None:
        for archive in self._open.values():
            archive.close()
        self._open.clear()


def _open_archive(path: str):
    return zipfile.ZipFile(path) if zipfile.is_zipfile(path) else tarfile.open(path)


def _member(archive, name: str) -> BinaryIO:
    if isinstance(archive, zipfile.ZipFile):
        return archive.open(name)
    f = archive.extractfile(name)
    if f is None:
        raise KeyError(name)
    return f
