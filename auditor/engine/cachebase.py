"""The caches' standard-library half: what they are keyed by, where entries lie, and replaying
their warnings, so that a memo hit (cli/memo.py) decides and answers before numpy, pandas or the
engine load.

- `content_hash`: a capture file's SHA-256, remembered per (path, size, mtime, ctime, inode);
- `code_version`: a hash of auditor's own source and data files;
- `tshark_identity`: which tshark binary would dissect;
- `libraries_stamp`: which numpy, pandas, pyarrow, PyYAML and click (and which Python) render;
- `default_cache_dir`: the user's cache folder; `observations_dir`, `stored`: where the
  observation cache (`observed`) keeps its entries;
- `replay`: issue a cached run's warnings again, each in its own category.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path

from auditor import atomic
from auditor.engine.eviction import touch
from auditor.errors import OutputError


class CacheWarning(UserWarning):
    """The cache could not be written; the run goes on without it."""


def default_cache_dir() -> Path:
    """The user's cache folder for auditor: $XDG_CACHE_HOME/auditor, else ~/.cache/auditor."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "auditor"


def file_stamp(path: str | os.PathLike) -> str:
    """A file's real path, size, mtime, ctime and inode: what changes when anyone writes it.

    ctime counts because mtime can be set back (cp -p, rsync -t, touch -r onto a file rewritten
    in place with its old size): any write moves ctime, and nothing sets it back.
    """
    st = os.stat(path)
    return (f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
            f"\0{st.st_ino}")


def _stat_memo(path: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Where the content hash of the file as it is now (`file_stamp`) is remembered."""
    return Path(cache_dir) / "stat" / hashlib.sha256(file_stamp(path).encode()).hexdigest()


def _known(memo: Path) -> str | None:
    """The hash a stat memo holds (marked used), or None."""
    try:
        known = memo.read_text().strip() or None
    except OSError:
        return None
    if known:
        touch(memo)
    return known


def remembered_hash(path: str | os.PathLike, cache_dir: str | os.PathLike) -> str | None:
    """The content hash `content_hash` remembered for the file as it is now, or None."""
    return _known(_stat_memo(path, cache_dir))


def content_hash(path: str | os.PathLike, cache_dir: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes, remembered per `file_stamp` under cache_dir/stat."""
    memo = _stat_memo(path, cache_dir)
    known = _known(memo)
    if known:
        return known
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(memo, digest)
    except (OSError, OutputError) as exc:
        warnings.warn(f"cache {cache_dir}: not written ({getattr(exc, 'strerror', None) or exc})",
                      CacheWarning, stacklevel=2)
    return digest


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of auditor's Python source and data files: a changed auditor never reuses an entry."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".csv", ".yaml", ".json") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def bundled_rules_version() -> str:
    """A hash of the bundled catalogue files beside the package (`rules/`, outside `auditor/`,
    which `code_version` does not read); auditor/data is in `code_version` already."""
    beside = Path(__file__).resolve().parents[2] / "rules"
    h = hashlib.sha256()
    for path in sorted(beside.glob("*.yaml")) if beside.is_dir() else ():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def tshark_identity() -> str:
    """Which tshark would dissect: its binary's real path, size, mtime and inode ('' if none).

    A package upgrade replaces the binary (new inode and mtime), so it misses; asking tshark
    for its version instead would cost a start of tshark (~0.3 s) on every run.
    """
    found = shutil.which("tshark")
    if found is None:
        return ""
    real = os.path.realpath(found)
    st = os.stat(real)
    return f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"


_LIBRARIES = ("numpy", "pandas", "pyarrow", "yaml", "click")


def libraries_stamp() -> str:
    """The Python and the libraries that read, audit and render, without importing them: each
    one's `__init__` file stamp (an upgrade rewrites it)."""
    parts = [sys.version, os.path.realpath(sys.executable)]
    for name in _LIBRARIES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        parts.append(f"{name}\0{file_stamp(origin) if origin else '-'}")
    return "\0".join(parts)


def observations_dir(cache_dir: str | os.PathLike) -> Path:
    """The folder of the observation cache's entries (engine/observed.py)."""
    return Path(cache_dir) / "observations"


def stored(cache_dir: str | os.PathLike, key: str) -> bool:
    """Whether an observation entry of this key is in the cache (not that it is undamaged)."""
    return (observations_dir(cache_dir) / key / "meta.json").is_file()


def replay(notes) -> None:
    """Issue a cached run's warnings ((category name, message) pairs) again, each in its own
    category (auditor.errors' warnings, CacheWarning; any other as UserWarning)."""
    from auditor import errors

    kinds = {c.__name__: c for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, Warning)}
    kinds[CacheWarning.__name__] = CacheWarning
    for category, message in notes:
        warnings.warn(message, kinds.get(category, UserWarning), stacklevel=3)
