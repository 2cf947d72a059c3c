"""Capture files named by fsspec URLs (`s3://bucket/ring/x.pcapng`, `file:///srv/x.pcap`, ...).

Whoever reads a file (this process, a worker process or a Dask worker) opens the URL with
`fsspec.open` (the optional `auditor[remote]` extra, plus the protocol's own package, e.g. s3fs)
and copies it to a local temp file (`local_copy`), which the ordinary reader then streams
(`urlread`): the reader needs random access and memory maps, which a remote stream does not
give. The copy is deleted as soon as the file is read; RPC discovery fetches a file again for
the few packets it hands to tshark. Without fsspec, a URL is one clear error. This module
imports nothing heavy: the CLI and the capture stage ask it whether a name is a URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

from auditor.errors import AuditorError, CaptureError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(::[A-Za-z][A-Za-z0-9+.-]*)*://")


def is_url(source) -> bool:
    """True for 'proto://...' (fsspec URLs, chained ones too); False for paths."""
    return isinstance(source, str) and bool(_URL.match(source))


def url_name(url: str) -> str:
    """The file name at the end of a URL (its last path segment)."""
    return url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or url


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise AuditorError("capture URLs need fsspec: pip install 'auditor[remote]' "
                           "(and the protocol's package, e.g. s3fs for s3://)") from None
    return fsspec


def check_urls(urls: list[str]) -> None:
    """Raise one clear error when a URL cannot be opened here (no fsspec, unknown protocol)."""
    fsspec = _fsspec()
    for url in urls:
        try:
            fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise AuditorError(f"{url}: cannot open this URL ({exc})") from None


@contextlib.contextmanager
def local_copy(url: str) -> Iterator[str]:
    """A temp copy of the file at `url` (deleted after the block); errors name the URL."""
    fsspec = _fsspec()
    with tempfile.TemporaryDirectory(prefix="auditor-url-") as tmp:
        local = os.path.join(tmp, url_name(url))
        try:
            with fsspec.open(url, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise CaptureError(f"{url}: cannot open ({why})") from None
        yield local
