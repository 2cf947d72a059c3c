"""A cache of each capture file's partial aggregates and candidate packets, as Parquet.

An entry is keyed by the file's content hash plus the versions of the reader and of the flow
and candidate options, so a changed file or a changed option never reuses a stale entry, and a
copy of a file (or the same file under another name) reuses it. So that a re-audit does not even
read the capture to hash it, the hash is remembered per (path, size, mtime, ctime, inode): a
file whose stat changed is hashed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd

from auditor.atomic import atomic_dir
from auditor.capture.packets import CaptureFile
from auditor.engine import eviction
from auditor.engine.cachebase import CacheWarning, content_hash, default_cache_dir
from auditor.engine.fileread import FilePartial
from auditor.flows.conn import CONN_COLUMNS
from auditor.options import FlowOptions, RpcOptions

# Bump when decoding, folding or candidate selection changes what an entry holds.
READER_VERSION = 2  # 2: tunnels opened (VXLAN, Geneve, GRE, ERSPAN); ICMP keyed by exchange
FLOW_VERSION = 1
_TABLES = ("parts", "candidates", "quotes")
__all__ = ["CacheWarning", "content_hash", "default_cache_dir", "entry_key", "load", "store"]


def entry_key(digest: str, flow_options: FlowOptions, rpc_options: RpcOptions) -> str:
    """The entry name: content hash, reader and flow versions, and every option that matters."""
    options = json.dumps({"reader": READER_VERSION, "flows": FLOW_VERSION,
                          "flow_options": _flow_key(flow_options),
                          "rpc_options": dataclasses.asdict(rpc_options)}, sort_keys=True)
    return f"{digest[:32]}-{hashlib.sha256(options.encode()).hexdigest()[:16]}"


def _flow_key(flow_options: FlowOptions) -> dict:
    """The flow options as the key has them: `zeek` only when set, so the entries of every
    other output keep the keys they had before it existed (and hold no conn.log columns)."""
    options = dataclasses.asdict(flow_options)
    if not options["zeek"]:
        del options["zeek"]
    return options


def load_for(cache_dir: str | os.PathLike, digest: str, flow_options: FlowOptions,
             rpc_options: RpcOptions, path: str) -> FilePartial | None:
    """The cached partial of a file for these options: its own entry, else (options without
    `zeek`) the entry `--format zeek` left, without the conn.log columns (a superset)."""
    fp = load(cache_dir, entry_key(digest, flow_options, rpc_options), path)
    if fp is None and not flow_options.zeek:
        fp = load(cache_dir, entry_key(digest, dataclasses.replace(flow_options, zeek=True),
                                       rpc_options), path)
        if fp is not None:
            fp.parts = fp.parts.drop(columns=CONN_COLUMNS)
    return fp


ROW_GROUP = 1 << 16  # rows converted to Arrow and encoded at a time


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """`frame` as a Parquet file in row groups of ROW_GROUP rows: `to_parquet` of one group
    holds the whole encoded group beside the frame (a 58 MiB partial frame of the 3M-packet
    benchmark capture: 82 MiB more at the peak; 38 MiB in row groups)."""
    frame.to_parquet(path, index=False, row_group_size=ROW_GROUP)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """A frame `write_parquet` wrote; each Arrow column freed once converted (not the whole
    table beside the whole frame)."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)


def load(cache_dir: str | os.PathLike, key: str, path: str) -> FilePartial | None:
    """The cached partial of a file (named after `path`), or None when there is none."""
    where = Path(cache_dir) / "entries" / key
    try:
        meta = json.loads((where / "meta.json").read_text())
        tables = {t: read_parquet(where / f"{t}.parquet") for t in _TABLES}
    except FileNotFoundError:
        if where.exists():  # entries appear whole (a rename): this one was damaged since
            shutil.rmtree(where, ignore_errors=True)
        return None
    except (OSError, ValueError):
        shutil.rmtree(where, ignore_errors=True)  # damaged: the next store replaces it
        return None
    info = CaptureFile(**{**meta["info"], "path": str(path), "name": Path(path).name})
    eviction.touch(where)  # its last use (engine/eviction.py)
    return FilePartial(info=info, **tables, first_ts_ns=meta["first_ts_ns"],
                       last_ts_ns=meta["last_ts_ns"], ordered=meta["ordered"],
                       notes=meta["notes"], warnings=meta.get("warnings", []))


def store(cache_dir: str | os.PathLike, key: str, fp: FilePartial) -> None:
    """Write a file's partial as one entry (a folder of Parquet files), atomically.

    A cache that cannot be written (full disk, read-only folder) is a warning, not a failure.
    """
    try:
        _store(cache_dir, key, fp)
    except OSError as exc:
        warnings.warn(f"cache {cache_dir}: not written ({exc.strerror or exc})", CacheWarning,
                      stacklevel=2)


def _store(cache_dir: str | os.PathLike, key: str, fp: FilePartial) -> None:
    entries = Path(cache_dir) / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    with atomic_dir(entries / key) as tmp:
        for t in _TABLES:
            write_parquet(getattr(fp, t), tmp / f"{t}.parquet")
        info = dataclasses.asdict(fp.info)
        meta = {"info": info, "first_ts_ns": int(fp.first_ts_ns), "last_ts_ns": int(fp.last_ts_ns),
                "ordered": bool(fp.ordered), "notes": dict(fp.notes),
                "warnings": list(fp.warnings)}
        (tmp / "meta.json").write_text(json.dumps(meta))

