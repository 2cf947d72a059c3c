"""Capture sets as users send them, and the time window that restricts them.

A set is any mix of files, folders (their capture files), glob patterns (for shells that do not
expand them) and zip or tar(.gz) archives of ring-buffer files, whose members are read in place,
never unpacked to disk. `CaptureSet` carries the paths with an optional `--since/--until`
window; `plan` orders the set's captures by their first timestamp and leaves out those entirely
outside the window, judged from each file's first and last timestamp so those files are not read.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from auditor.capture import pcapng
from auditor.capture.bytesource import CaptureSource, MappedSource
from auditor.capture.formats import compression_of
from auditor.capture.netmon import NetmonWalker
from auditor.capture.pcap import PcapWalker
from auditor.capture.pcapng import PcapngWalker
from auditor.capture.reader import RecordReader
from auditor.errors import CaptureError, CaptureWarning

_CAPTURE_NAME = re.compile(
    r"\.(pcap|pcapng|cap|ntar|dmp|snoop|erf|trc|etl)\d*(\.(gz|zst|lz4|bz2|xz))?$"
    r"|\.(gz|zst|lz4|bz2|xz|zip|tar|tgz)$", re.IGNORECASE)
_GLOB = re.compile(r"[*?\[]")
PROBE_BYTES = 64 << 10  # bytes walked to find a capture's first timestamp


@dataclass(frozen=True)
class CaptureSet:
    """Capture paths (files, folders, globs, archives) and an optional time window in ns."""

    sources: tuple[str | os.PathLike, ...]
    since_ns: int | None = None  # packets before this are left out
    until_ns: int | None = None  # packets after this are left out

    def __iter__(self) -> Iterator[str | os.PathLike]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)


def expand_sources(sources: Iterable[str | os.PathLike] | str | os.PathLike) -> list[CaptureSource]:
    """Expand files, folders, globs and archives into the captures to read, in set order."""
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    out: list[CaptureSource] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = [p for p in path.iterdir()
                     if p.is_file() and not p.name.startswith(".") and _CAPTURE_NAME.search(p.name)]
            if not found:
                raise CaptureError(f"{source}: folder holds no capture files")
            for p in sorted(found, key=lambda p: natural_key(p.name)):
                out.extend(_file_or_archive(p))
        elif path.exists():
            out.extend(_file_or_archive(path))
        elif _GLOB.search(str(source)):
            matches = sorted(glob.glob(str(source)), key=natural_key)
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise CaptureError(f"{source}: the pattern matches no files")
            for p in files:
                out.extend(_file_or_archive(p))
        else:
            raise CaptureError(f"{source}: no such file or folder")
    return out


def _file_or_archive(path: Path) -> list[CaptureSource]:
    """One capture, or the members of a zip or tar archive (sorted by name)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as exc:
            raise CaptureError(f"{path}: unreadable zip archive ({exc})") from None
        return _members(path, names)
    if _is_tar(path):
        try:
            with tarfile.open(path) as tf:
                names = [m.name for m in tf.getmembers() if m.isfile()]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CaptureError(f"{path}: unreadable tar archive ({exc})") from None
        # A compressed tar is one stream: members are read in archive order (seeking back would
        # inflate it again from the start), which is the order ring-buffer files were added in.
        return _members(path, names, sort=compression_of(head) is None)
    return [CaptureSource(str(path))]


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError, ValueError):
        return False


def _members(path: Path, names: list[str], sort: bool = True) -> list[CaptureSource]:
    keep = [n for n in names if not any(part.startswith((".", "__MACOSX")) for part in
                                        n.split("/"))]
    if not keep:
        raise CaptureError(f"{path}: archive holds no files")
    if sort:
        keep = sorted(keep, key=natural_key)
    return [CaptureSource(str(path), n) for n in keep]


def natural_key(name: str) -> list:
    """Digits compare as numbers, so tcpdump's `x.pcap9` sorts before `x.pcap10`."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


@dataclass(frozen=True)
class Span:
    """A capture's first and last timestamps in ns (None where they could not be told cheaply)."""

    first_ns: int | None
    last_ns: int | None


def probe(source: CaptureSource) -> Span:
    """First timestamp from the first records; last from the end where the format allows it."""
    with RecordReader(source) as reader, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in reader.chunks(PROBE_BYTES):
            break
        first = reader.first_ts_ns
        walker, src = reader._walker, reader._src
        last = None
        if isinstance(walker, NetmonWalker):
            last = walker.last_ts(src.buf)
        elif isinstance(src, MappedSource) and isinstance(walker, PcapWalker):
            last = walker.last_ts(src.buf)
        elif isinstance(src, MappedSource) and isinstance(walker, PcapngWalker):
            last = pcapng.last_ts(walker, src.buf)
        if reader.records == 0 and reader.first_ts_ns is None:
            last = None
    return Span(first, last)


def span_of(source: CaptureSource) -> Span:
    """probe(source), as a set's planning uses it: members of a compressed tar are not probed
    (each probe would inflate the archive again up to the member), and a capture that cannot be
    read has no span (reading it will say what is wrong, in one line)."""
    try:
        return Span(None, None) if _in_compressed_tar(source) else probe(source)
    except CaptureError:
        return Span(None, None)


def spans_of(sources: list[CaptureSource]) -> dict[CaptureSource, Span]:
    """Each capture's span (span_of), probed once."""
    return {s: span_of(s) for s in sources}


def plan(sources: list[CaptureSource], since_ns: int | None, until_ns: int | None,
         spans: dict[CaptureSource, Span] | None = None
         ) -> tuple[list[CaptureSource], list[CaptureSource]]:
    """(captures to read in time order, captures left out by the window) of a set.

    `spans` (spans_of) saves probing the captures again when the caller has them.
    """
    if len(sources) < 2 and since_ns is None and until_ns is None:
        return sources, []
    spans = spans if spans is not None else spans_of(sources)
    # time order; captures whose first timestamp is unknown keep their place after the others
    order = sorted(range(len(sources)), key=lambda i: (
        spans[sources[i]].first_ns is None, spans[sources[i]].first_ns or 0, i))
    read, left = [], []
    for i in order:
        s, span = sources[i], spans[sources[i]]
        after = until_ns is not None and span.first_ns is not None and span.first_ns > until_ns
        before = (since_ns is not None and span.last_ns is not None and span.last_ns < since_ns
                  and (span.first_ns is None or span.first_ns <= span.last_ns))
        (left if after or before else read).append(s)
    if left and not read:
        warnings.warn(f"no capture has packets between --since and --until ({len(left)} "
                      "file(s) left out)", CaptureWarning, stacklevel=3)
    return read, left


def _in_compressed_tar(source: CaptureSource) -> bool:
    if source.member is None:
        return False
    with open(source.path, "rb") as fh:
        head = fh.read(8)
    return head[:4] not in (b"PK\x03\x04", b"PK\x05\x06") and compression_of(head) is not None


def source_sizes(sources: list[CaptureSource]) -> list[int]:
    """Bytes each capture takes on disk, for progress: a zip member's compressed size, a tar
    member's share of its archive (reading a tar's index would mean inflating it)."""
    count: dict[str, int] = {}
    for s in sources:
        count[s.path] = count.get(s.path, 0) + 1
    zips: dict[str, dict[str, int]] = {}
    out = []
    for s in sources:
        try:
            size = os.path.getsize(s.path)
            if s.member is not None and zipfile.is_zipfile(s.path):
                if s.path not in zips:
                    with zipfile.ZipFile(s.path) as zf:
                        zips[s.path] = {i.filename: i.compress_size for i in zf.infolist()}
                size = zips[s.path].get(s.member, 0)
            elif s.member is not None:
                size //= count[s.path]
        except (OSError, zipfile.BadZipFile):
            size = 0
        out.append(size)
    return out
