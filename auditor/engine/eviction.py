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

Listing every unit costs about 0.3 s for a folder of 10k units (a day of use), on every command.
So a ledger (`.usage` in the folder) keeps an upper bound of the folder's size and when it was
taken: a unit is written whole by a rename into its kind's folder, which moves that folder's
mtime, so only folders changed since are listed, and only their units written since are sized.
Removals by other runs only make the bound larger than the truth. Once the bound passes
`max_bytes`, or the ledger is an hour old (a store racing the ledger may be missed), every unit
is listed and sized again, as without a ledger.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from auditor import atomic
from auditor.errors import OutputError

DEFAULT_MAX_BYTES = 4 * 1024**3  # --cache-size default
_UNITS = ("entries", "observations", "results", "quick", "stat")
LEDGER = ".usage"  # "BYTES SINCE LISTED": the bound, mtimes it counts up to, the last full listing
_SLACK_S = 2.0  # mtimes tick coarser than time(), and a unit's files are written before its rename
_RELIST_S = 3600.0  # a full listing at least this often


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


def units(cache_dir: str | os.PathLike, since: float | None = None
          ) -> list[tuple[float, int, Path]]:
    """(last use, bytes on disk, path) of every unit in the cache folder, oldest use first;
    with `since`, only those used at or after it (in the kinds' folders changed since: a unit
    arrives by a rename, which moves its folder's mtime)."""
    found = []
    for kind in _UNITS:
        folder = Path(cache_dir) / kind
        try:
            if since is not None and folder.stat().st_mtime < since:
                continue
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        used = entry.stat(follow_symlinks=False).st_mtime
                    except OSError:
                        continue
                    if since is not None and used < since:
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
    The ledger (module docstring) answers most calls without listing the folder.
    """
    started = now()
    ledger = _read_ledger(cache_dir, started)
    if ledger is not None:
        bound, since, listed = ledger
        new = units(cache_dir, since - _SLACK_S)  # written since the ledger (or used again)
        bound += sum(size for _, size, _ in new)
        if bound <= max_bytes:
            if new:
                _write_ledger(cache_dir, bound, started, listed)
            return []
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
    _write_ledger(cache_dir, total, started, started)
    return removed


def _read_ledger(cache_dir, at: float) -> tuple[int, float, float] | None:
    """(bound, since, listed) of the ledger, or None: missing, unreadable, from the future,
    or listed more than _RELIST_S ago."""
    try:
        words = (Path(cache_dir) / LEDGER).read_text().split()
        bound, since, listed = int(words[0]), float(words[1]), float(words[2])
    except (OSError, ValueError, IndexError):
        return None
    if bound < 0 or not (at - _RELIST_S <= listed <= at) or not (listed <= since <= at):
        return None
    return bound, since, listed


def _write_ledger(cache_dir, bound: int, since: float, listed: float) -> None:
    """Keep the ledger (a folder that cannot take it goes without: every call lists it)."""
    try:
        atomic.write_text(Path(cache_dir) / LEDGER, f"{bound} {since!r} {listed!r}\n")
    except (OSError, OutputError):
        pass


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
