"""Streamed decompression of gzip, zstd, lz4 (frame), bzip2 and xz, member after member.

`Inflater.read(room)` hands back about `room` decompressed bytes at a time, so a capture of any
size is read through a bounded window. On a cut or corrupt stream it keeps every byte it could
decompress and records why it stopped in `error`; the reader then keeps the complete records and
warns with the offset. Concatenated members (gzip -c a b, zstd frames, xz streams) are read on.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import BinaryIO

INPUT_BYTES = 1 << 20  # compressed bytes read from the file at a time
# Compressed bytes given to a decompressor per call: a call that fails loses its output, so small
# feeds keep what came before the damage (and bound zstd, whose calls have no output limit).
FEED = 64 << 10
ZSTD_FEED = 8 << 10


class _Codec:
    """One compression's decompressor objects behind the same three calls."""

    def new(self):
        """A fresh decompressor for the next member."""
        raise NotImplementedError

    def step(self, d, data: bytes, room: int) -> tuple[bytes, bytes]:
        """Decompress up to about `room` bytes from data; return (output, input left over)."""
        raise NotImplementedError

    def wants_input(self, d) -> bool:
        """True when d has no buffered output and needs more compressed bytes."""
        return True


class _Zlib(_Codec):
    def new(self):
        return zlib.decompressobj(wbits=31)  # gzip framing

    def step(self, d, data, room):
        out = d.decompress(data[:FEED], room)
        if d.eof:
            return out, d.unused_data + bytes(data[FEED:])
        tail = d.unconsumed_tail
        return out, (tail + bytes(data[FEED:])) if tail else data[FEED:]


class _MaxLength(_Codec):
    """bz2, lzma and lz4.frame share the decompress(data, max_length)/needs_input interface."""

    def __init__(self, factory):
        self._factory = factory

    def new(self):
        return self._factory()

    def step(self, d, data, room):
        out = d.decompress(data[:FEED], max_length=room)
        rest = data[FEED:]
        return out, (d.unused_data or b"") + bytes(rest) if d.eof else rest

    def wants_input(self, d):
        return d.needs_input


class _Zstd(_Codec):
    def __init__(self):
        import zstandard

        self._dctx = zstandard.ZstdDecompressor()

    def new(self):
        return self._dctx.decompressobj()

    def step(self, d, data, room):
        # zstandard's decompressobj has no output limit: small feeds keep each call bounded.
        out = d.decompress(data[:ZSTD_FEED])
        rest = data[ZSTD_FEED:]
        return out, (d.unused_data + bytes(rest)) if d.eof else rest


def _lz4():
    import lz4.frame

    return lz4.frame.LZ4FrameDecompressor()


def codec(name: str) -> _Codec:
    """The codec for a compression name from `formats.compression_of`."""
    if name == "gzip":
        return _Zlib()
    if name == "zstd":
        return _Zstd()
    if name == "lz4":
        return _MaxLength(_lz4)
    if name == "bzip2":
        return _MaxLength(bz2.BZ2Decompressor)
    if name == "xz":
        return _MaxLength(lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ))
    raise ValueError(f"unknown compression {name!r}")


def _errors():
    errs = [zlib.error, OSError, EOFError, ValueError, RuntimeError, lzma.LZMAError]
    try:
        import zstandard

        errs.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errs)


class Inflater:
    """Decompressed bytes of a file object, about `room` at a time."""

    def __init__(self, f: BinaryIO, name: str):
        self.name = name
        self._f = f
        self._codec = codec(name)
        self._d = self._codec.new()
        self._errors = _errors()
        # compressed bytes not yet fed, as a memoryview: feeding it piece by piece must not copy
        # the rest each time
        self._pending = memoryview(b"")
        self._fed = False  # this member has had input (so a clean EOF here means a cut)
        self.eof = False
        self.error: str | None = None

    def read(self, room: int) -> list[bytes]:
        """About `room` more decompressed bytes (as parts); [] once the stream is over."""
        parts: list[bytes] = []
        while room > 0 and not self.eof:
            d = self._d
            if getattr(d, "eof", False):  # end of one member: another may follow
                rest = bytes(self._pending)
                if not rest.strip(b"\0"):
                    rest = self._f.read(INPUT_BYTES)
                    if not rest.strip(b"\0"):  # trailing zero padding (tape blocks) ends it too
                        self.eof = True
                        break
                self._pending, self._d, self._fed = memoryview(rest), self._codec.new(), False
                continue
            if not self._pending and self._codec.wants_input(d):
                self._pending = memoryview(self._f.read(INPUT_BYTES))
                if not self._pending:
                    self.eof = True
                    if self._fed:
                        self.error = "the compressed stream ends early"
                    break
            try:
                out, rest = self._codec.step(d, self._pending, room)
                self._pending = rest if isinstance(rest, memoryview) else memoryview(rest)
            except self._errors as exc:
                self.error = f"corrupt {self.name} data ({exc})"
                self.eof = True
                break
            self._fed = True
            if out:
                parts.append(out)
                room -= len(out)
        return parts

    def tell(self) -> int:
        """Compressed bytes read from the file so far."""
        return self._f.tell()
