"""Read capture files on a Dask cluster (the optional `auditor[dask]` extra).

Each file is one task (`fileread.read_file_partial`) on whichever worker the scheduler picks;
the workers must see the files at the same path (shared storage). The small per-file partials
come back and are merged here, exactly as the local engine merges them.
"""

from __future__ import annotations

from pathlib import Path

from auditor.engine.fileread import FilePartial, read_file_partial
from auditor.errors import AuditorError
from auditor.options import FlowOptions, RpcOptions


def read_on_cluster(address: str, paths: list[str], flow_options: FlowOptions,
                    rpc_options: RpcOptions, chunk_bytes: int | None = None,
                    ) -> tuple[list[FilePartial], int]:
    """Read each file on the cluster at `address`; return the partials and how many workers read."""
    try:
        from distributed import Client
    except ImportError:
        raise AuditorError("--scheduler needs Dask: pip install 'auditor[dask]'") from None
    if not paths:
        return [], 0
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise AuditorError(f"Dask scheduler {address}: cannot connect ({exc})") from None
    with client:
        where = [str(Path(p).resolve()) for p in paths]
        futures = client.map(read_file_partial, where, flow_options=flow_options,
                             rpc_options=rpc_options, chunk_bytes=chunk_bytes, pure=False)
        results = client.gather(futures)
        ran = client.who_has(futures)
        workers = len({w for holders in ran.values() for w in holders})
    return list(results), workers
