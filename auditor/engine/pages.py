"""How this process asks the kernel for memory: small pages for numpy's big arrays, and
Arrow's buffers from the C library's allocator.

numpy advises transparent huge pages (madvise MADV_HUGEPAGE) for every array of 4 MiB or more.
The engine makes many such arrays once each (a store's columns, a join's temporaries, the
finish's gathers): every first touch of one of their 2 MiB pages makes the kernel zero the whole
page, whether the array uses it all or not. On a 2-core VM that was most of the parent's system
time on a 10 GB ring set (perf: `clear_page_erms` under `do_huge_pmd_anonymous_page`, about a
sixth of every sample), and the one-core run paid it too. With small pages only the pages an
array touches are zeroed; results are the same, peak RSS is the same.

pyarrow's default allocator (mimalloc in its Linux wheels) keeps the pages each thread frees for
that thread's later use. The flow table's pieces are made in threads (`flows.pieces`), each
piece's text columns and CSV bytes in Arrow buffers: on the 10 GB ring set the parent's RSS rose
to 578-582 MiB while the pieces were written, against 530-556 MiB with the C library's allocator,
which hands big blocks back as they are freed, and once the pieces also trim the heap every few
pieces and are of at most 16k flows (since c93927e) to 434-450 MiB, below the read's own peak
(481-493 MiB).
"""

from __future__ import annotations

import numpy as np


def small_pages() -> bool:
    """Stop numpy advising huge pages for new arrays in this process (and the processes it
    forks); True if it did before. A no-op where numpy has no such switch."""
    core = getattr(np, "_core", None)
    multiarray = getattr(core, "multiarray", None) if core is not None else None
    if multiarray is None:  # numpy 1.x
        multiarray = np.core.multiarray
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None:  # pragma: no cover - a numpy without the switch
        return False
    return bool(setter(False))


def system_arrow_pool() -> None:
    """Make the C library's allocator Arrow's default pool in this process (see above); buffers
    made before keep their own pool. A no-op where pyarrow has no system pool."""
    import pyarrow as pa

    pool = getattr(pa, "system_memory_pool", None)
    if pool is not None and pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pool())


__all__ = ["small_pages", "system_arrow_pool"]
