"""One data frame as one Arrow IPC file, its buffers zstd-compressed: the observation cache's tables.

Parquet suits the per-file entries (small, written once per file); a cache hit of a whole set's
observation wants its frames back at once, and Parquet costs a decode of every page plus, on the
first read of a process, some 0.3 s of CPU to set pyarrow's Parquet reader up. An Arrow file holds
the columns as they lie in memory, so reading it is one read of the file, a CRC over it, and one
decompression per buffer, with no per-row work. pandas' metadata in the file restores every dtype,
so the frame read back equals the frame written.

The buffers are zstd-compressed (Arrow IPC's own buffer compression): the 1M-packet benchmark's
observation takes 10 MB instead of 67 MB, and reads as fast as the mapped uncompressed file did
(its CRC runs over a seventh of the bytes; zstd inflates at GB/s). Text is not
dictionary-encoded: a dictionary column would come back as a categorical, which is not the frame
that was written.

The file is read into memory, not memory-mapped: nothing of the returned frame points into the
file, so an entry removed or truncated by anyone while a run uses it (another run's eviction, an
outside tool) cannot crash the run (a mapped page cut off under a frame is a SIGBUS). A file whose
size or CRC-32 differs from what was recorded when it was written, or that Arrow finds malformed,
raises `ValueError`: the caller treats the entry as damaged.
"""

from __future__ import annotations

import os
import zlib

import pandas as pd
import pyarrow as pa

_COMPRESSION = "zstd"


BATCH_ROWS = 1 << 16  # rows converted to Arrow and written at a time


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> dict[str, int]:
    """Write `frame` to `path`; return what `read_frame` checks it by ({"size", "crc32"}).

    The frame is converted a batch of BATCH_ROWS rows at a time: an Arrow copy of the whole
    frame (the flow table of a ring set: hundreds of MiB) would sit beside it at the peak."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=_COMPRESSION)
    with pa.ipc.new_file(sink, schema, options=options) as writer:
        for start in range(0, len(frame), BATCH_ROWS):
            writer.write_table(pa.Table.from_pandas(
                frame.iloc[start:start + BATCH_ROWS], schema=schema, preserve_index=False))
    data = sink.getvalue()
    with open(path, "wb") as fh:
        fh.write(data)
    return {"size": data.size, "crc32": zlib.crc32(data)}


def read_frame(path: str | os.PathLike, check: dict[str, int]) -> pd.DataFrame:
    """The frame `write_frame` wrote to `path`, if the file is still what it wrote (else ValueError)."""
    with open(path, "rb") as fh:  # at most the recorded size and one byte: a grown file is refused
        data = fh.read(check["size"] + 1)
    if len(data) != check["size"] or zlib.crc32(data) != check["crc32"]:
        raise ValueError(f"{path}: not the file that was written (size or CRC differs)")
    try:
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        table.validate()
    except pa.ArrowException as exc:
        raise ValueError(f"{path}: {exc}") from exc
    del data  # the table holds its own (inflated) buffers; self_destruct frees each once copied
    return table.to_pandas(use_threads=False, split_blocks=True, self_destruct=True)


def read_empty(path: str | os.PathLike) -> pd.DataFrame:
    """No rows of the frame `write_frame` wrote to `path`, with its columns and dtypes: only the
    file's schema is read (its CRC is not checked, and a categorical comes back without its
    categories; a file Arrow cannot open raises ValueError)."""
    try:
        with pa.OSFile(os.fspath(path)) as fh:
            schema = pa.ipc.open_file(fh).schema
    except pa.ArrowException as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return schema.empty_table().to_pandas(use_threads=False)
