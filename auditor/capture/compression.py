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
        return _ZstdFrame(self._dctx.decompressobj())

    def step(self, d, data, room):
        # zstandard's decompressobj has no output limit: the feed is cut by the frame's blocks
        n = d.feed_size(data, room)
        out = d.obj.decompress(data[:n])
        rest = data[n:]
        return out, (d.unused_data + bytes(rest)) if d.eof else rest


_BLOCK_MAX = 128 << 10  # RFC 8878 3.1.1.2: a block regenerates at most 128 KiB
_SAFE_FEED = 512  # bytes that make at most 16 MiB whatever they hold (4-byte blocks of 128 KiB)
_ZSTD_MAGIC = 0xFD2FB528


class _ZstdFrame:
    """One zstd frame's decompressor, fed so that a call makes about `room` bytes at most.

    zstd regenerates a 128 KiB block from 4 bytes (an RLE block): a feed of a few KB can make
    hundreds of MB (a 10 KB file inflated 300 MB in one call, 690 MiB peak). The frame's own
    headers (RFC 8878 3.1.1) say what each block makes, so a feed ends before the block that
    would make more than the room. Input that is not a frame as the RFC lays it out (a
    skippable frame, damage) is fed _SAFE_FEED bytes at a time: the decompressor says what is
    wrong with it, and what it makes stays bounded.
    """

    def __init__(self, obj):
        self.obj = obj
        self._head = bytearray()  # the header being read (it may span feeds)
        self._phase = "frame"  # "frame"/"block" header, "content", "checksum", "end", "opaque"
        self._want = 5  # header bytes needed to parse it (magic and descriptor first)
        self._skip = 0  # bytes of the block's content (or of the checksum) still to come
        self._last = False  # the block is the frame's last
        self._checksum = 0  # bytes of the frame's content checksum

    @property
    def eof(self) -> bool:
        return self.obj.eof

    @property
    def unused_data(self) -> bytes:
        return self.obj.unused_data

    def feed_size(self, data, room: int) -> int:
        """How many bytes of `data` to feed now (at most ZSTD_FEED); the walk moves past them."""
        size, n, made = min(len(data), ZSTD_FEED), 0, 0
        while n < size and self._phase not in ("end", "opaque"):
            if self._phase in ("content", "checksum"):
                k = min(self._skip, size - n)
                n += k
                self._skip -= k
                if not self._skip:
                    self._skipped()
                continue
            had = len(self._head)
            take = min(self._want - had, size - n)
            self._head += data[n : n + take]
            n += take
            if len(self._head) < self._want:
                break
            bound = self._bound() if self._phase == "block" else None
            if bound is not None and made and made + bound > room:  # it waits for the next call
                del self._head[had:]
                n -= take
                break
            self._parse()
            made += bound or 0
        if self._phase == "opaque" or not n:  # never stall: what the walk cannot cut goes slowly
            self._phase = "opaque"
            return max(n, min(len(data), _SAFE_FEED))
        return n

    def _bound(self) -> int | None:
        """What the block whose header is in _head regenerates at most (None: not a block)."""
        h = int.from_bytes(self._head[:3], "little")
        kind, size = (h >> 1) & 3, h >> 3
        if kind == 3 or size > _BLOCK_MAX:  # reserved, or larger than any block may be
            return None
        return _BLOCK_MAX if kind == 2 else size  # compressed; raw and RLE say it

    def _parse(self) -> None:
        """Move on past the complete header in _head."""
        head = self._head
        if self._phase == "frame":
            if int.from_bytes(head[:4], "little") != _ZSTD_MAGIC:
                self._phase = "opaque"
                return
            fhd = head[4]
            single = bool(fhd & 0x20)
            total = (5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
                     + (1 if single else 0, 2, 4, 8)[fhd >> 6])
            if len(head) < total:
                self._want = total
                return
            self._checksum = 4 if fhd & 0x04 else 0
            head.clear()
            self._phase, self._want = "block", 3
            return
        if self._bound() is None:
            self._phase = "opaque"
            return
        h = int.from_bytes(head[:3], "little")
        head.clear()
        kind = (h >> 1) & 3
        self._last = bool(h & 1)
        self._phase, self._skip = "content", (1 if kind == 1 else h >> 3)
        if not self._skip:
            self._skipped()

    def _skipped(self) -> None:
        """The content (or checksum) is all fed: the next block, the checksum or the end."""
        if self._phase == "content" and not self._last:
            self._phase, self._want = "block", 3
        elif self._phase == "content" and self._checksum:
            self._phase, self._skip = "checksum", self._checksum
        else:
            self._phase = "end"


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
