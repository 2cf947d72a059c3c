"""Fetch packet records by their byte offset in the file, instead of walking the file again.

The streaming read knows where each candidate packet's captured bytes lie in a plain
(memory-mapped) file: `(offset, captured length)`. Writing the few thousand packets tshark
dissects then costs a read of each, not a walk over every record of a 2 GB capture. A record
whose bytes no longer show the packet the read saw (the file changed) makes the caller fall back
to the walk, which says what changed.
"""

from __future__ import annotations

import os

import numpy as np

UNKNOWN = -1  # an offset the read could not give (compressed, converted or archived input)


def spans_known(offsets: np.ndarray) -> bool:
    """Every record's offset is known."""
    return bool(len(offsets)) and bool((np.asarray(offsets) >= 0).all())


def read_at(path: str, offsets: np.ndarray, lengths: np.ndarray) -> list[bytes] | None:
    """The captured bytes at each (offset, length) of the file, or None when one is cut short."""
    out: list[bytes] = []
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        for off, n in zip(np.asarray(offsets).tolist(), np.asarray(lengths).tolist(), strict=True):
            raw = os.pread(fd, n, off)
            if len(raw) != n:
                return None
            out.append(raw)
    except OSError:
        return None
    finally:
        os.close(fd)
    return out


def same_source(raw: bytes, l3: int, version: int, src_hi: int, src_lo: int) -> bool:
    """Whether the record's IP header shows the version and source address the read saw."""
    if len(raw) < l3 + 1 or raw[l3] >> 4 != version:
        return False
    if version == 4:
        got = raw[l3 + 12 : l3 + 16]
        return len(got) == 4 and src_hi == 0 and src_lo == (0xFFFF << 32) | int.from_bytes(got)
    got = raw[l3 + 8 : l3 + 24]
    return len(got) == 16 and int.from_bytes(got) == (src_hi << 64) | src_lo
