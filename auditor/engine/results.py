"""A memo of an audit's rendered output: the same command, run again on unchanged inputs, gives
what it gave the first time without auditing again.

An entry is keyed by everything that output depends on:

- the set's observation key (`observed.observation_key`): each capture file's content hash and
  name, the reader, flow and RPC options, the tshark binary and auditor's own source;
- the inventory and the catalogue as loaded: every field of their frozen dataclasses, so an
  edited inventory, another bundled catalogue or an edited rule file misses, whatever its name;
- the audit options and how the output is rendered (format, `--all`);
- the Python and the libraries that audit and render (`cachebase.libraries_stamp`).

An entry holds the rendered text, the warnings the run issued (category and message, in order)
and the kinds of finding it found (for `--fail-on`). It is stored only when the set's observation
is in the cache too (discovery that failed is never stored, so neither is its audit), names its
key and the text's size and CRC-32: a damaged or foreign entry is removed and never used.
Without a cache folder (`--no-cache`) there is no key.

Working that key out needs the inventory and catalogue parsed and the set planned, which loads
yaml, numpy and pandas (some 0.4 s). So a second, quicker index (`quick/`) names each entry by
what the command line gave, read with the standard library only (`cli/memo.py` builds it): each
capture's path and remembered content hash (its stat unchanged), the inventory's and catalogue
files' bytes, the bundled rule files, every option, tshark, auditor's source and the libraries
that render. That name is stricter than the key (same bytes parse alike), so a quick hit is
always a hit of the key; it is written whenever an entry is stored or found by the key.

This module imports only the standard library: a memo hit never loads the engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from auditor import atomic
from auditor.engine import eviction
from auditor.engine.cachebase import CacheWarning, libraries_stamp, observations_dir, stored
from auditor.errors import OutputError
from auditor.options import PipelineOptions

# Bump when what an entry holds changes shape (the code hash catches changes of behaviour).
RESULT_VERSION = 1


@dataclass(frozen=True)
class Rendered:
    """What a memo entry gives back."""

    text: str
    warnings: tuple[tuple[str, str], ...]  # (category name, message), in the order issued
    kinds: tuple[str, ...]  # distinct finding kinds of the result


@dataclass(frozen=True)
class ResultKey:
    """The memo entry's name and the observation entry it stands on."""

    name: str
    observation: str


def canonical(value: object) -> object:
    """`value` as JSON-ready data that names every field of every dataclass in it.

    Anything but dataclasses, tuples, lists, mappings, text, numbers, booleans and None raises
    TypeError: an object this cannot see through is never keyed by a guess.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__qualname__,
                {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}]
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    if isinstance(value, Mapping):
        return [[canonical(k), canonical(v)] for k, v in value.items()]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"cannot key a {type(value).__name__}")


def result_key(captures: Sequence, inventory, catalogue, options: PipelineOptions,
               render: Mapping[str, object]) -> ResultKey | None:
    """The memo key of an audit of `captures` rendered as `render` says, or None (no cache)."""
    from auditor.engine import observed  # numpy and pandas: only when the quick index missed

    seen = observed.observation_key(captures, options)
    if seen is None:
        return None
    try:
        text = json.dumps({"version": RESULT_VERSION, "observation": seen[0],
                           "inventory": canonical(inventory), "catalogue": canonical(catalogue),
                           "audit": canonical(options.audit), "render": canonical(dict(render)),
                           "libraries": libraries_stamp()},
                          sort_keys=True)
    except (TypeError, ValueError):
        return None
    return ResultKey(hashlib.sha256(text.encode()).hexdigest()[:40], seen[0])


def _path(cache_dir: str | os.PathLike, key: ResultKey) -> Path:
    return Path(cache_dir) / "results" / key.name


def has_entry(cache_dir: str | os.PathLike, key: ResultKey) -> bool:
    """Whether the memo has an entry of `key` (not that it is undamaged)."""
    return _path(cache_dir, key).is_file()


def quick_name(parts: Mapping[str, object]) -> str:
    """The quick index's name of an entry: a hash of what the command line gave (JSON data)."""
    text = json.dumps({"version": RESULT_VERSION, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _quick_path(cache_dir: str | os.PathLike, name: str) -> Path:
    return Path(cache_dir) / "quick" / name


def load_quick(cache_dir: str | os.PathLike, name: str) -> Rendered | None:
    """The entry the quick index names `name`, or None (no such name, or its entry is gone)."""
    try:
        meta = json.loads(_quick_path(cache_dir, name).read_bytes())
        key = ResultKey(meta["result"], meta["observation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (_hex(key.name) and _hex(key.observation)):
        return None
    found = load(cache_dir, key)
    if found is not None:
        eviction.touch(_quick_path(cache_dir, name))
    return found


def _hex(name: object) -> bool:
    return isinstance(name, str) and len(name) == 40 and not name.strip("0123456789abcdef")


def store_quick(cache_dir: str | os.PathLike, name: str, key: ResultKey) -> None:
    """Name the entry of `key` `name` in the quick index (a failure is silent: it only costs
    the next run the longer way to the same entry)."""
    path = _quick_path(cache_dir, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, json.dumps({"result": key.name,
                                             "observation": key.observation}).encode())
    except (OSError, OutputError):
        pass


def load(cache_dir: str | os.PathLike, key: ResultKey) -> Rendered | None:
    """The memo entry of `key`, or None; a damaged or foreign entry is removed."""
    path = _path(cache_dir, key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        head, _, body = data.partition(b"\n")
        meta = json.loads(head)
        if (meta["key"], meta["version"]) != (key.name, RESULT_VERSION) or (
                (meta["size"], meta["crc32"]) != (len(body), zlib.crc32(body))):
            raise ValueError("damaged or foreign")
        if not stored(cache_dir, key.observation):
            raise ValueError("its observation is gone")
        rendered = Rendered(body.decode(), tuple((c, m) for c, m in meta["warnings"]),
                            tuple(meta["kinds"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        path.unlink(missing_ok=True)
        return None
    eviction.touch(path)  # its last use (engine/eviction.py), and its observation's
    eviction.touch(observations_dir(cache_dir) / key.observation)
    return rendered


def store(cache_dir: str | os.PathLike, key: ResultKey, rendered: Rendered) -> None:
    """Write the memo entry of `key` (only when its observation is stored); a failure warns."""
    if not stored(cache_dir, key.observation):
        return
    body = rendered.text.encode()
    meta = {"key": key.name, "version": RESULT_VERSION, "size": len(body),
            "crc32": zlib.crc32(body), "warnings": [list(w) for w in rendered.warnings],
            "kinds": list(rendered.kinds)}
    path = _path(cache_dir, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, json.dumps(meta).encode() + b"\n" + body)
    except (OSError, OutputError) as exc:
        warnings.warn(f"cache {cache_dir}: not written ({getattr(exc, 'strerror', None) or exc})",
                      CacheWarning, stacklevel=2)
