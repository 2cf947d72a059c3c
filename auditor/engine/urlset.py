"""A capture set that names fsspec URLs: read where each file is opened, merged in time order.

Without `--scheduler` this process fetches and reads each URL (`remote.read_url_partial`), with
it the Dask workers do (`dask_run`); either way the files are numbered by their first packet
(a URL cannot be probed for its times before it is read) and merged with `setmerge`.
"""

from __future__ import annotations

import os

from auditor.capture.sets import CaptureSet
from auditor.engine.dask_run import read_set_on_cluster
from auditor.engine.fileread import rebase
from auditor.engine.remote import check_urls, is_url
from auditor.engine.setmerge import combine, head, time_order, tree
from auditor.engine.urlread import read_any_partial
from auditor.errors import AuditorError, CaptureError
from auditor.options import FlowOptions, RpcOptions


def read_urls(captures, flow_options: FlowOptions, rpc_options: RpcOptions, engine):
    """(heads in time order, merged partial, workers, where) of a set naming URLs (and perhaps
    plain files): each file is read where it is opened (here, or on the Dask cluster), then
    merged in time order. URLs are not cached: their content hash would mean fetching them."""
    if isinstance(captures, CaptureSet) and (captures.since_ns, captures.until_ns) != (None, None):
        raise AuditorError("--since/--until need local capture files, not URLs")
    sources = [os.fspath(c) for c in captures]
    for s in sources:
        if not is_url(s) and not os.path.isfile(s):
            raise CaptureError(f"{s}: beside URLs, give capture files one by one (not a folder, "
                               "glob or archive)")
    check_urls([s for s in sources if is_url(s)])
    if engine.scheduler:
        return (*read_set_on_cluster(sources, [None] * len(sources), flow_options, rpc_options,
                                     engine, urls=True), "dask")
    partials = [read_any_partial(s, flow_options, rpc_options, engine.chunk_bytes)
                for s in sources]
    order = time_order(partials)
    rebased = [rebase(partials[k], j) for j, k in enumerate(order)]
    merged = tree(rebased, lambda a, b: combine(a, b, flow_options))
    return [head(partials[k]) for k in order], merged, 1, "local"
