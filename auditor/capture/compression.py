"""Streamed decompression of gzip, zstd, lz4 (frame), bzip2 and xz, member after member.

`Inflater.read(room)` hands back about `room` decompressed bytes at a time, so a capture of any
size is read through a bounded window. On a cut or corrupt stream it keeps every byte it could
decompress and records why it stopped in `error`; the reader then keeps the complete records and
warns with the offset. Concatenated members (gzip -c a b, zstd frames, xz streams) are read on.
"""

from __future__ import annotations

import bz2
import lzma
import tarfile
import zipfile
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


class Lz4Frame:
    """One LZ4 frame, decoded block by block with lz4.block (python-lz4's frame decompressor
    runs at a tenth of the speed here), its header, block and content checksums (XXH32) checked
    with xxhash. Same interface as bz2.BZ2Decompressor."""

    def __init__(self):
        import lz4.block
        import xxhash

        self._block = lz4.block
        self._xxh32 = xxhash.xxh32_intdigest
        self._content = xxhash.xxh32()
        self._in = bytearray()
        self._out: list[bytes] = []
        self._head = None  # (independent, block checksum, content checksum, block max)
        self._prev = b""  # the last block's output: the dictionary of a linked next block
        self.eof = False
        self.unused_data = b""

    @property
    def needs_input(self) -> bool:
        """True when no decoded output is waiting."""
        return not self._out

    def decompress(self, data, max_length: int = -1) -> bytes:
        """Decode the complete blocks of data (plus what came before); return up to max_length."""
        if data:
            self._in += data
        self._decode()
        out = b"".join(self._out)
        self._out = []
        if 0 <= max_length < len(out):
            out, rest = out[:max_length], out[max_length:]
            self._out = [rest]
        return out

    def _decode(self) -> None:
        buf = self._in
        if self._head is None:
            if len(buf) < 7:
                return
            flg, bd = buf[4], buf[5]
            if flg >> 6 != 1:
                raise ValueError(f"lz4 frame version {flg >> 6}")
            size = 7 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
            if len(buf) < size:
                return
            if (self._xxh32(bytes(buf[4 : size - 1])) >> 8) & 0xFF != buf[size - 1]:
                raise ValueError("lz4 frame header checksum mismatch")
            self._head = (bool(flg & 0x20), bool(flg & 0x10), bool(flg & 0x04),
                          1 << (8 + 2 * ((bd >> 4) & 7)))
            del buf[:size]
        independent, block_sum, content_sum, bmax = self._head
        pos = 0
        while pos + 4 <= len(buf):
            size = int.from_bytes(buf[pos : pos + 4], "little")
            if size == 0:  # end mark, then the content checksum
                end = pos + 4 + (4 if content_sum else 0)
                if end > len(buf):
                    break
                if content_sum and self._content.intdigest() != int.from_bytes(
                        buf[pos + 4 : end], "little"):
                    raise ValueError("lz4 content checksum mismatch")
                self.eof = True
                self.unused_data = bytes(buf[end:])
                pos = len(buf)
                break
            raw, size = size & 0x80000000, size & 0x7FFFFFFF
            if size > bmax:
                raise ValueError(f"lz4 block of {size} bytes > the frame's {bmax}")
            end = pos + 4 + size + (4 if block_sum else 0)
            if end > len(buf):
                break
            block = bytes(buf[pos + 4 : pos + 4 + size])
            if block_sum and self._xxh32(block) != int.from_bytes(buf[end - 4 : end], "little"):
                raise ValueError("lz4 block checksum mismatch")
            if raw:
                out = block
            elif independent:
                out = self._block.decompress(block, uncompressed_size=bmax)
            else:
                out = self._block.decompress(block, uncompressed_size=bmax,
                                             dict=self._prev[-65536:])
            self._prev = out
            if content_sum:
                self._content.update(out)
            self._out.append(out)
            pos = end
        del buf[:pos]


def codec(name: str) -> _Codec:
    """The codec for a compression name from `formats.compression_of`."""
    if name == "gzip":
        return _Zlib()
    if name == "zstd":
        return _Zstd()
    if name == "lz4":
        return _MaxLength(Lz4Frame)
    if name == "bzip2":
        return _MaxLength(bz2.BZ2Decompressor)
    if name == "xz":
        return _MaxLength(lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ))
    raise ValueError(f"unknown compression {name!r}")


def _errors():
    errs = [zlib.error, OSError, EOFError, ValueError, RuntimeError, lzma.LZMAError]
    try:
        import lz4.block
        import zstandard

        errs += [zstandard.ZstdError, lz4.block.LZ4BlockError]
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
                    rest = self._input()
                    if not rest.strip(b"\0"):  # trailing zero padding (tape blocks) ends it too
                        self.eof = True
                        break
                self._pending, self._d, self._fed = memoryview(rest), self._codec.new(), False
                continue
            if not self._pending and self._codec.wants_input(d):
                self._pending = memoryview(self._input())
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

    def _input(self) -> bytes:
        """The next compressed bytes; b"" (with `error` set) if the archive member is damaged."""
        try:
            return self._f.read(INPUT_BYTES)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            self.error, self._fed = f"corrupt archive member ({exc})", False
            return b""

    def tell(self) -> int:
        """Compressed bytes read from the file so far."""
        return self._f.tell()
