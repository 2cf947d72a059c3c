"""What every container reader hands on: chunks of packet records, and the limits they obey.

A `RecordChunk` is a byte buffer plus per-record arrays (data offset, captured and original length,
timestamp, link type). The container modules (`pcap`, `pcapng`, `netmon`) produce them; `headers`
decodes them. `byte_rows` gathers fixed-width rows at many offsets without a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

MAX_RECORD = 262_144  # Wireshark's limit for ordinary link types; more means a corrupt header
MAX_BLOCK = 128 << 20  # largest pcapng block accepted (Wireshark allows about this much)
CHUNK_BYTES = 32 << 20  # file bytes walked per chunk: bounds memory whatever the file size
MAX_CHUNK_RECORDS = 1 << 18  # ...and records per chunk, about: per-record arrays bound memory
MIN_RECORD_BYTES = 16  # the smallest record: a pcap record header with no data
HEAD_BYTES = 112  # leading bytes of each record copied out once; enough for almost all headers
NO_TS = np.iinfo(np.int64).min  # timestamp of a record that has none (pcapng simple packet block)
MAX_TSOFFSET = 1 << 32  # if_tsoffset seconds beyond this cannot be added to int64 ns timestamps
# Pseudo link types (negative, so they never collide with a real LINKTYPE_ value):
BAD_INTERFACE = -1  # a pcapng packet that names an undefined interface (skipped)
NON_PACKET = -2  # a record that is valid but carries no frame (NetMon events, filters): not IP
UNSUPPORTED_MEDIA = -3  # a NetMon media type with no pcap equivalent the decoder knows (skipped)

# The readers' walk results: the chunk filled its budget, needs more bytes, hit damage, or ended
# at a pcapng section boundary.
FULL, MORE, BAD, SECTION, END = range(5)  # END: the format says nothing follows


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


def fill_untimed(ts: np.ndarray, before: int | None) -> np.ndarray:
    """A chunk's timestamps with each NO_TS (pcapng simple packet blocks) replaced by the one of
    the record before it; those ahead of the chunk's first timed record take `before` (the
    stream's previous timestamp), or with None the chunk's first timestamp (0 if it has none).
    `ts` itself when none is missing."""
    missing = ts == NO_TS
    if not missing.any():
        return ts
    have = np.flatnonzero(~missing)
    lead = before if before is not None else (int(ts[have[0]]) if len(have) else 0)
    last = np.maximum.accumulate(np.where(missing, -1, np.arange(len(ts))))
    return np.where(last >= 0, ts[np.maximum(last, 0)], lead)


def byte_rows(buf: np.ndarray, off: np.ndarray, width: int) -> np.ndarray:
    """Return the `width` bytes at each offset as an (n, width) array, zero past the buffer end."""
    if not len(off):  # (and a buffer shorter than width would make the window below negative)
        return np.zeros((0, width), np.uint8)
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
