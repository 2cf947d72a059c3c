"""One data frame as one Arrow IPC file, read back whole in O(columns): the observation cache's tables.

Parquet suits the per-file entries (small, written once per file); a cache hit of a whole set's
observation wants its frames back at once, and Parquet costs a decode of every page plus, on the
first read of a process, some 0.3 s of CPU to set pyarrow's Parquet reader up. An Arrow file holds
the columns as they lie in memory: reading it maps the file, checks its CRC and wraps the buffers,
with no per-row work: every column stays in the mapped file (pandas' Arrow-backed `str` dtype wraps
text as it is; numbers become one read-only block per column). pandas' metadata in the file
restores every dtype, so the frame read back equals the frame written.

Text is not dictionary-encoded although flows repeat a few addresses and states: decoding it back
to `str` allocated more than it saved here (a dictionary column would come back as a categorical,
which is not the frame that was written).

A file whose size or CRC-32 differs from what was recorded when it was written, or that Arrow finds
malformed, raises `ValueError`: the caller treats the entry as damaged. Entries are published by a
rename and removed by an unlink, never rewritten in place, so a mapped file does not change under
the frames that use it.
"""

from __future__ import annotations

import os
import zlib

import pandas as pd
import pyarrow as pa


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> dict[str, int]:
    """Write `frame` to `path`; return what `read_frame` checks it by ({"size", "crc32"})."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    with open(path, "wb") as fh:
        fh.write(data)
    return {"size": data.size, "crc32": zlib.crc32(data)}


def read_frame(path: str | os.PathLike, check: dict[str, int]) -> pd.DataFrame:
    """The frame `write_frame` wrote to `path`, if the file is still what it wrote (else ValueError)."""
    try:
        data = pa.memory_map(os.fspath(path)).read_buffer()
    except pa.ArrowInvalid as exc:  # e.g. an empty file cannot be mapped
        raise ValueError(f"{path}: {exc}") from exc
    if data.size != check["size"] or zlib.crc32(data) != check["crc32"]:
        raise ValueError(f"{path}: not the file that was written (size or CRC differs)")
    try:
        table = pa.ipc.open_file(data).read_all()
        table.validate()
    except pa.ArrowException as exc:
        raise ValueError(f"{path}: {exc}") from exc
    # one block per column, each over the mapped file: no copy, and pages nobody reads stay
    # unread (pandas' copy-on-write never writes into them)
    return table.to_pandas(use_threads=False, split_blocks=True)
