"""A worker's result handed to this process through a shared-memory file, not a pipe copy.

A ProcessPoolExecutor sends a result as one pickle down a pipe: the worker copies every array
into the pickle, the kernel copies it through the pipe, this process copies it into a fresh
bytes object and unpickling copies it again into new arrays, each copy into freshly zeroed
pages (the kernel's page zeroing was the biggest single cost of a read on two cores). Here the
worker pickles with protocol 5, writes the arrays' buffers (out of band) to a file in
/dev/shm (or the temporary folder) and returns only the small pickle and the file's name; this
process maps each buffer copy-on-write on its own (a small array kept must not pin a whole
result) and unpickles the arrays onto the mapped pages: one copy in all. The file is unlinked as
soon as it is mapped (each mapping keeps its pages while an array uses them); `discard` removes
the file of a result that will never be taken.
"""

from __future__ import annotations

import mmap
import os
import pickle
import tempfile
from dataclasses import dataclass, field

_ALIGN = mmap.ALLOCATIONGRANULARITY  # each buffer starts on a page: it is mapped on its own
MIN_BUFFER = 64 << 10  # smaller buffers stay in the pickle
MIN_BYTES = 1 << 20  # smaller results go in band, as before (a file costs more than it saves)


@dataclass(frozen=True)
class Shipped:
    """A pickled result whose big buffers wait in `path` (None: all in `head`)."""

    head: bytes
    path: str | None = None
    sizes: tuple[int, ...] = field(default_factory=tuple)


def _folder() -> str:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


def ship(fn, *args) -> Shipped:
    """Run fn(*args) (in a worker) and pack its result for `unship`."""
    return pack(fn(*args))


def pack(result) -> Shipped:
    """The result pickled with its big buffers in a shared-memory file."""
    buffers: list[memoryview] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:  # False: it goes to the file
        raw = buf.raw()
        if raw.nbytes < MIN_BUFFER:
            return True
        buffers.append(raw)
        return False

    head = pickle.dumps(result, protocol=5, buffer_callback=out_of_band)
    if sum(r.nbytes for r in buffers) < MIN_BYTES:
        return Shipped(pickle.dumps(result, protocol=5))
    fd, path = tempfile.mkstemp(prefix="auditor-result-", dir=_folder())
    try:
        with os.fdopen(fd, "wb") as out:
            for r in buffers:
                out.write(r)
                pad = -r.nbytes % _ALIGN
                if pad:
                    out.write(bytes(pad))
    except OSError:  # no room in /dev/shm: through the pipe, as before
        os.unlink(path)
        return Shipped(pickle.dumps(result, protocol=5))
    return Shipped(head, path, tuple(r.nbytes for r in buffers))


def unship(shipped: Shipped):
    """The worker's result, its arrays on the mapped pages of the file (which is unlinked)."""
    if shipped.path is None:
        return pickle.loads(shipped.head)
    buffers, at = [], 0
    try:
        with open(shipped.path, "rb") as f:
            for n in shipped.sizes:  # a mapping each: a column kept pins only its own pages
                buffers.append(memoryview(mmap.mmap(f.fileno(), n, access=mmap.ACCESS_COPY,
                                                    offset=at)))
                at += n + (-n % _ALIGN)
    finally:
        os.unlink(shipped.path)
    return pickle.loads(shipped.head, buffers=buffers)


def discard(shipped: Shipped) -> None:
    """Remove the file of a result that will not be unshipped."""
    if shipped.path is not None:
        try:
            os.unlink(shipped.path)
        except FileNotFoundError:
            pass


__all__ = ["Shipped", "discard", "pack", "ship", "unship"]
