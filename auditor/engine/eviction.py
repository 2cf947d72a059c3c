"""Keeping the cache folder under a size: least recently used entries go first.

The cache holds five kinds of unit, each used and removed whole:

- `entries/KEY/`: one capture file's partials (engine/cache.py, Parquet);
- `observations/KEY/`: one capture set's flows and RPC discovery (engine/observed.py, Arrow);
- `results/KEY`: one audit command's rendered output (engine/results.py);
- `quick/NAME`, `stat/NAME`: the memo's quick index and the remembered content hashes (a few
  dozen bytes each).

A unit's last use is its modification time: each is written whole (a rename), and every read
that uses it touches it (`touch`). `evict` removes units oldest use first until the folder
takes at most `max_bytes` (blocks on disk, as `du` counts), never one used since `keep_since`
(the command that trims it keeps what it just used, even when that alone is larger). Temporary
folders of a store in progress (`.tmp-*`) are neither counted nor removed.

Removing an entry another run is reading is safe: tables are read into memory, not mapped, and
an entry that is gone by the time a run opens it is a miss.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

DEFAULT_MAX_BYTES = 4 * 1024**3  # --cache-size default
_UNITS = ("entries", "observations", "results", "quick", "stat")


def touch(path: str | os.PathLike) -> None:
    """Mark a unit as used now (a read-only cache folder keeps its old order)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _size(path: Path) -> int:
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_blocks * 512
        return path.lstat().st_blocks * 512 + sum(p.lstat().st_blocks * 512
                                                 for p in path.iterdir())
    except OSError:
        return 0


def units(cache_dir: str | os.PathLike) -> list[tuple[float, int, Path]]:
    """(last use, bytes on disk, path) of every unit in the cache folder, oldest use first."""
    found = []
    for kind in _UNITS:
        try:
            with os.scandir(Path(cache_dir) / kind) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        used = entry.stat(follow_symlinks=False).st_mtime
                    except OSError:
                        continue
                    path = Path(entry.path)
                    found.append((used, _size(path), path))
        except OSError:
            continue
    return sorted(found, key=lambda u: (u[0], str(u[2])))


def evict(cache_dir: str | os.PathLike, max_bytes: int,
          keep_since: float | None = None) -> list[Path]:
    """Remove least recently used units until the folder takes at most `max_bytes`; return them.

    Units used at or after `keep_since` (a time.time() value) are kept whatever their size.
    """
    found = units(cache_dir)
    total = sum(size for _, size, _ in found)
    removed = []
    for used, size, path in found:
        if total <= max_bytes:
            break
        if keep_since is not None and used >= keep_since:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except OSError:
                continue
        total -= size
        removed.append(path)
    return removed


def parse_size(text: str) -> int:
    """'500M', '4G', '1.5G', '0' or a plain number of bytes -> bytes (K, M, G, T: powers of 1024)."""
    text = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if text and text[-1] in "KMGT":
        scale = 1024 ** ("KMGT".index(text[-1]) + 1)
        text = text[:-1]
    value = float(text)  # ValueError: not a size
    if value < 0 or value != value:
        raise ValueError("a size is not negative")
    return int(value * scale)


def now() -> float:
    """The clock unit times are compared with (file mtimes follow it)."""
    return time.time()
