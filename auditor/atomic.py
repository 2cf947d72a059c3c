"""Atomic output files: write beside the target, then rename over it.

Every file the CLI writes goes through `atomic_path` (or the `write_text`/`write_bytes` shortcuts):
the bytes land in a hidden temp file in the target's folder (same file system, so the rename is
atomic), which replaces the target only once it is complete. A failed, full-disk or interrupted
run leaves the previous file as it was and no partial one; OS errors become one `OutputError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auditor.errors import OutputError

_TEMP_MARK = ".auditor-tmp-"  # in every temp file's name, so a leftover is recognisable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` (same suffix); rename it over `path` if the block ends."""
    target = Path(path)
    if target.exists() and not (target.is_file() or target.is_dir()):  # /dev/null, a FIFO, a tty
        # (renaming over a device would replace it with a regular file, /dev/null included)
        yield target
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", suffix=target.suffix,
                                   prefix=f".{target.name}{_TEMP_MARK}")
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 is not what a plain open gives
        os.replace(tmp_path, target)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc}); "
                          "any previous file is left as it was") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str, *, newline: str | None = None) -> None:
    """Write text (UTF-8) to path atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to path atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A folder filled under a temporary name beside `path`, renamed to `path` when the block
    ends: readers see all of it or nothing. If `path` exists by then (another run published it
    first), theirs is kept; an error in the block removes the temporary folder."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:  # another run stored it first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
