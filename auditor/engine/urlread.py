"""Read a capture file named by an fsspec URL into its partial aggregates (engine/remote.py)."""

from __future__ import annotations

from dataclasses import replace

from auditor.engine.fileread import FilePartial, read_file_partial
from auditor.engine.remote import is_url, local_copy, url_name
from auditor.errors import CaptureError
from auditor.options import FlowOptions, RpcOptions


def read_url_partial(url: str, flow_options: FlowOptions | None = None,
                     rpc_options: RpcOptions | None = None,
                     chunk_bytes: int | None = None) -> FilePartial:
    """Stream the capture file at an fsspec URL into its partial aggregates (as read_file_partial)."""
    with local_copy(url) as local:
        try:
            fp = read_file_partial(local, flow_options, rpc_options, chunk_bytes)
        except CaptureError as exc:  # name the URL, not the temp copy
            raise CaptureError(str(exc).replace(local, url)) from None
    fp.notes = {k: v.replace(local, url) for k, v in fp.notes.items()}
    fp.warnings = [w.replace(local, url) for w in fp.warnings]
    return replace(fp, info=replace(fp.info, path=url, name=url_name(url)))


def read_any_partial(source: str, flow_options: FlowOptions | None = None,
                     rpc_options: RpcOptions | None = None,
                     chunk_bytes: int | None = None) -> FilePartial:
    """read_url_partial for a URL, read_file_partial for a path."""
    read = read_url_partial if is_url(source) else read_file_partial
    return read(source, flow_options, rpc_options, chunk_bytes)
