"""A cache of a whole capture set's observation: its finished flows and its RPC discovery.

Everything `audit.pipeline.observe` produces depends only on the capture files and the options,
not on the inventory or the catalogue, so a re-audit with another inventory or catalogue can
reuse it and run neither the flow merge nor tshark. An entry is keyed by:

- each file's content hash and path as given, in set order (the RPC endpoints' `captures`
  column and the warnings name the files), through `cache.entry_key`, which adds the reader and flow
  versions and every flow and RPC option;
- whether discovery ran, and which tshark did it (its binary's path, size, mtime and inode:
  an upgraded tshark misses);
- the Python and the libraries that read and merge (`libraries_stamp`: numpy, pandas, pyarrow);
- a hash of auditor's own source (`code_version`): any change to the code that reads,
  merges or dissects misses, even between releases.

Discovery that failed (tshark missing or broken) is never stored. Entries are written to a
temp folder and renamed into place, so a reader never sees half an entry. Each table is an Arrow
file (`arrowfile`: zstd-compressed, read into memory, checked by size and CRC), so a hit costs a
few reads; a hit touches the entry (its last use, for `eviction`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.atomic import atomic_dir
from auditor.capture.packets import CaptureFile, PacketTable
from auditor.capture.sets import CaptureSet, expand_sources, plan
from auditor.dissect.dcerpc import RpcFacts
from auditor.dissect.rpc import RpcDiscovery
from auditor.engine import arrowfile, eviction
from auditor.engine import cache as cache_mod
from auditor.engine.cachebase import (
    code_version,
    libraries_stamp,
    replay,
    stored,
    tshark_identity,
)
from auditor.engine.cachebase import observations_dir as _where
from auditor.engine.remote import is_url
from auditor.errors import AuditorError
from auditor.options import PipelineOptions
from auditor.schema import ICMP_ERROR_COLUMNS, empty_frame

# Bump when what an entry holds changes shape (the code hash catches changes of behaviour).
# 4: the flows' RPC annotation (rpc_interface, rpc_evidence) as a table of its own
OBSERVATION_VERSION = 4  # 3: zstd-compressed Arrow files (2: mapped Arrow; 1: Parquet)
_SUFFIX = ".arrow"
_LABEL = "__flow_id"  # the packets' flow labels travel as one more Parquet column
_FACTS = ("epm", "binds", "dcom", "cl_rpc")
# the standard-library half (engine/cachebase.py), re-exported
__all__ = ["Observed", "code_version", "load", "observation_key", "replay", "store", "stored",
           "tshark_identity"]


@dataclass(frozen=True)
class Observed:
    """What an entry gives back: the pieces of an `audit.pipeline.Observation`."""

    table: PacketTable
    flows: pd.DataFrame
    labels: np.ndarray
    rpc: RpcDiscovery | None
    warnings: tuple[tuple[str, str], ...]  # (category name, message), to issue again
    annotation: pd.DataFrame | None = None  # audit.classify.rpc_annotation of the flows


def observation_key(captures, options: PipelineOptions) -> tuple[str, list[Path]] | None:
    """(entry name, files in set order) for a plain set of files, or None when not cacheable.

    Archives and time windows are not cached here (their files are read through the packet
    table); nor is anything when the cache is off.
    """
    cache_dir = options.engine.cache_dir
    if cache_dir is None:
        return None
    if isinstance(captures, CaptureSet) and (captures.since_ns, captures.until_ns) != (None, None):
        return None
    if any(is_url(c) for c in captures):
        return None  # knowing a URL's content hash would mean fetching it
    try:
        found = expand_sources(captures)
        if not found or any(s.member for s in found):
            return None
        paths = [Path(s.path) for s in plan(found, None, None)[0]]
        files = [(str(p), cache_mod.entry_key(cache_mod.content_hash(p, cache_dir),
                                              options.flows, options.rpc_options)) for p in paths]
    except (AuditorError, OSError):
        return None  # reading the set says what is wrong, in one line
    text = json.dumps({"version": OBSERVATION_VERSION, "code": code_version(), "files": files,
                       "rpc": options.rpc,
                       "tshark": tshark_identity() if options.rpc else "",
                       "libraries": libraries_stamp()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:40], paths


def load(cache_dir: str | os.PathLike, key: str, paths: list[Path], *,
         packets: bool = True) -> Observed | None:
    """The cached observation of a set (its files named after `paths`), or None.

    `packets=False` leaves the candidate packets unread (an empty table of their columns, no
    labels): an audit with an inventory reads only the table's files (audit/pipeline.py), and the
    packets are the larger half of an entry once inflated.

    An entry that is damaged (a table's size or CRC differs from what was written), foreign (it
    names another key) or of another shape is removed, and the run stores a fresh one.
    """
    where = _where(cache_dir) / key
    try:
        meta = json.loads((where / "meta.json").read_text())
        if meta.get("key") != key or meta.get("version") != OBSERVATION_VERSION:
            raise ValueError("another entry")
        frames = {t: arrowfile.read_frame(where / f"{t}{_SUFFIX}", check)
                  if packets or t != "packets" else arrowfile.read_empty(where / f"{t}{_SUFFIX}")
                  for t, check in meta["tables"].items()}
        flows, candidates = frames["flows"], frames["packets"]
    except FileNotFoundError:
        if where.exists():  # entries appear whole (a rename): this one was damaged since
            shutil.rmtree(where, ignore_errors=True)
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        shutil.rmtree(where, ignore_errors=True)  # damaged: the next store replaces it
        return None
    if len(meta["files"]) != len(paths):
        return None
    files = tuple(CaptureFile(**{**info, "path": str(p), "name": p.name})
                  for info, p in zip(meta["files"], paths, strict=True))
    labels = np.array(candidates.pop(_LABEL), np.int64)  # a writable copy, as a fresh read gives
    rpc = None
    if meta["rpc"] is not None:
        facts = RpcFacts(**{t: frames[t] for t in _FACTS})
        rpc = RpcDiscovery(endpoints=frames["endpoints"], facts=facts, names=frames["names"],
                           packets=meta["rpc"]["packets"],
                           warnings=tuple(meta["rpc"]["warnings"]))
    table = PacketTable(packets=candidates, icmp_errors=empty_frame(ICMP_ERROR_COLUMNS), files=files)
    notes = tuple((c, m) for c, m in meta["warnings"])
    annotation = frames.get("annotation") if rpc is not None else None
    eviction.touch(where)
    return Observed(table, flows, labels, rpc, notes, annotation)


def store(cache_dir: str | os.PathLike, key: str, seen: Observed) -> None:
    """Write a set's observation as one entry, atomically; a cache that cannot be written warns."""
    if seen.table.icmp_errors is not None and len(seen.table.icmp_errors):
        return  # only streamed sets (no packet table) are cached
    try:
        _store(cache_dir, key, seen)
    except OSError as exc:
        warnings.warn(f"cache {cache_dir}: not written ({exc.strerror or exc})",
                      cache_mod.CacheWarning, stacklevel=2)


def _store(cache_dir, key, seen: Observed) -> None:
    root = _where(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_dir(root / key) as tmp:
        frames = {"flows": seen.flows,
                  "packets": seen.table.packets.assign(
                      **{_LABEL: np.asarray(seen.labels, np.int64)})}
        rpc = None
        if seen.rpc is not None:
            frames.update({"endpoints": seen.rpc.endpoints, "names": seen.rpc.names,
                           **{t: getattr(seen.rpc.facts, t) for t in _FACTS}})
            rpc = {"packets": int(seen.rpc.packets), "warnings": list(seen.rpc.warnings)}
            if seen.annotation is not None and len(seen.annotation) == len(seen.flows):
                frames["annotation"] = seen.annotation
        tables = {name: arrowfile.write_frame(frame, tmp / f"{name}{_SUFFIX}")
                  for name, frame in frames.items()}
        meta = {"key": key, "version": OBSERVATION_VERSION, "tables": tables,
                "files": [dataclasses.asdict(f) for f in seen.table.files], "rpc": rpc,
                "warnings": [list(w) for w in seen.warnings]}
        (tmp / "meta.json").write_text(json.dumps(meta))
