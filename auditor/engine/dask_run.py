"""Read and merge capture files on a Dask cluster (the optional `auditor[dask]` extra).

Each file is one task (`fileread.read_file_partial`, or `remote.read_url_partial` for an fsspec
URL) on whichever worker the scheduler picks; paths must be the same on every worker (shared
storage), URLs are opened by the workers. Only each file's small head (times, counts, warnings)
comes back first, to put the set in time order; the partials themselves are then numbered in
that order and merged pairwise on the workers (`flows.partial.merge_partials`, a tree of
log2(files) levels), so the client receives one merged partial and finishes the flow table.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from auditor.engine.fileread import FilePartial, rebase
from auditor.engine.remote import is_url, url_name
from auditor.engine.setmerge import combine, head, time_order, tree
from auditor.engine.urlread import read_any_partial
from auditor.errors import AuditorError
from auditor.options import EngineOptions, FlowOptions, RpcOptions


def _client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise AuditorError("--scheduler needs Dask: pip install 'auditor[dask]'") from None
    try:
        return Client(address, timeout="20s")
    except OSError as exc:
        raise AuditorError(f"Dask scheduler {address}: cannot connect ({exc})") from None


def read_and_merge(address: str, items: list, flow_options: FlowOptions,
                   rpc_options: RpcOptions, chunk_bytes: int | None = None, *,
                   order_by_time: bool = False) -> tuple[list[FilePartial], FilePartial | None, int]:
    """Read the files of a set on the cluster and merge them there.

    `items` are sources to read (paths the workers see, or URLs) or FileParticles already at
    hand (from the cache: they are sent to the cluster and merged with the rest). Returns each
    file's head in set order, the merged partial of them all (pids and file_index numbered in
    set order; None without files) and how many workers read. `order_by_time` sorts the files by
    their first packet (URLs, which cannot be probed here); else they keep the given order.
    """
    if not items:
        return [], None, 0
    client = _client(address)
    with client:
        todo = [k for k, item in enumerate(items) if isinstance(item, str)]
        read = dict(zip(todo, client.map(read_any_partial, [items[k] for k in todo],
                                         flow_options=flow_options, rpc_options=rpc_options,
                                         chunk_bytes=chunk_bytes, pure=False), strict=True))
        heads = dict(zip(todo, client.gather([client.submit(head, read[k], pure=False)
                                              for k in todo]), strict=True))
        workers = len({w for held in client.who_has(list(read.values())).values() for w in held})
        for k, item in enumerate(items):
            if not isinstance(item, str):
                read[k] = client.scatter(item)
                heads[k] = head(item)
        order = time_order([heads[k] for k in range(len(items))]) if order_by_time else \
            list(range(len(items)))
        level = [client.submit(rebase, read[k], j, pure=False) for j, k in enumerate(order)]
        merged = tree(level, lambda a, b: client.submit(combine, a, b, flow_options,
                                                         pure=False)).result()
        del read, level
    return [heads[k] for k in order], merged, workers


def read_set_on_cluster(paths, partials, flow_options: FlowOptions, rpc_options: RpcOptions,
                        engine: EngineOptions, urls: bool = False):
    """(heads in set order, merged partial, workers) of a set read and merged on the cluster;
    files with a partial in `partials` (from the cache) are sent there, not read again."""
    items = [fp if fp is not None else _source(p) for p, fp in zip(paths, partials, strict=True)]
    names = {_source(p): str(p) for p in paths}
    heads, merged, workers = read_and_merge(engine.scheduler, items, flow_options, rpc_options,
                                            engine.chunk_bytes, order_by_time=urls)
    return [named(h, names.get(h.info.path, h.info.path)) for h in heads], merged, workers


def _source(path) -> str:
    text = str(path)
    return text if is_url(text) else str(Path(text).resolve())


def named(fp: FilePartial, path: str) -> FilePartial:
    """The partial with its file's path (as given) and name."""
    name = url_name(path) if is_url(path) else Path(path).name
    return replace(fp, info=replace(fp.info, path=path, name=name))
