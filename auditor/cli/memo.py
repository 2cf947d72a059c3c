"""`auditor audit` run again on unchanged inputs prints its first output again (engine.results).

The audit command asks `audit_memo` first, with the command line as given: the quick index
(`QuickKey`, standard library only) answers an unchanged command before the inventory, the
catalogue, numpy, pandas or the engine load. On a quick miss the command parses its inputs and
asks `AuditMemo.parsed` (the full key); on a miss of both it audits under `recording()` and
hands its rendered text to `keep`. Reports (`--report`), CSV and a proposed inventory (no
`--inventory`) are not memoised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from auditor.engine import cachebase, results


@dataclasses.dataclass
class QuickKey:
    """What names a command in the quick index: read when the command starts (an input edited
    while it audits must not be filed under its old bytes), and the captures' content hashes,
    which a first run learns while it reads them."""

    cache_dir: str
    parts: dict
    captures: list[str]  # the capture paths as given, in order

    def name(self) -> str | None:
        """The index name, or None while a capture's content hash is not remembered yet."""
        hashes = []
        for path in self.captures:
            try:
                known = cachebase.remembered_hash(path, self.cache_dir)
            except OSError:
                return None
            if known is None:
                return None
            hashes.append(known)
        return results.quick_name({**self.parts, "capture_hashes": hashes})


def quick_key(captures, inventory, catalogues, replace_catalogue, options, render) -> QuickKey | None:
    """The quick index key of an audit command, or None when it cannot have one: a capture that
    is not a plain file (a folder, glob or URL: its members could change), a time window."""
    cache_dir = options.engine.cache_dir
    if not isinstance(captures, list | tuple) or not captures:
        return None  # a CaptureSet: --since/--until
    try:
        given = [str(c) for c in captures]
        if any("://" in c or not os.path.isfile(c) for c in given):
            return None
        parts = {
            "captures": [[c, os.path.realpath(c)] for c in given],
            "inventory": _file_part(inventory),
            "catalogues": [[str(c), _file_part(c) if os.path.isfile(c) else None]
                           for c in catalogues],
            "replace_catalogue": bool(replace_catalogue),
            "options": results.canonical(dataclasses.replace(options, engine=None)),
            "render": results.canonical(dict(render)),
            "code": cachebase.code_version(),
            "rules": cachebase.bundled_rules_version(),
            "libraries": cachebase.libraries_stamp(),
            "tshark": cachebase.tshark_identity() if options.rpc else "",
        }
    except (OSError, TypeError, ValueError):
        return None
    return QuickKey(str(cache_dir), parts, given)


def _file_part(path) -> list[str]:
    real = os.path.realpath(path)
    return [real, hashlib.sha256(Path(real).read_bytes()).hexdigest()]


class AuditMemo:
    """One audit command's memo: `hit` (engine.results.Rendered) when it has an entry."""

    def __init__(self, cache_dir: str | None, quick: QuickKey | None, render=None):
        self.cache_dir, self.quick, self.render = cache_dir, quick, render
        self.key: results.ResultKey | None = None
        self.memoised = render is not None
        name = quick.name() if quick is not None else None
        self.hit = results.load_quick(cache_dir, name) if name is not None else None
        self._said: list[tuple[str, str]] | None = None

    def parsed(self, captures, inventory, catalogue, options) -> None:
        """Look the entry up by the full key, from the parsed inventory and catalogue (a quick
        miss: say a capture's hash was not remembered yet, or an inventory edited alike)."""
        if not self.memoised or self.hit is not None:
            return
        self.key = results.result_key(captures, inventory, catalogue, options, self.render)
        if self.key is not None:
            self.hit = results.load(self.cache_dir, self.key)
            if self.hit is not None:
                self._index()

    def replay(self) -> str:
        """Issue the stored warnings again and give the stored text."""
        logging.getLogger("auditor.engine").debug("the audit's output from the cache")
        cachebase.replay(self.hit.warnings)
        return self.hit.text

    def found(self, kinds) -> bool:
        """Whether the stored result has a finding of one of `kinds`."""
        return bool(set(self.hit.kinds) & set(kinds))

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Note every warning of the block (for the entry), then pass each on unchanged."""
        if self.key is None:
            yield
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        self._said = [(w.category.__name__, str(w.message)) for w in caught]
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def keep(self, text: str, result) -> str:
        """Store `text` (the rendering of `result`) under the key; give it back."""
        if self.key is not None and self._said is not None:
            kinds = tuple(sorted({str(k) for k in result.findings["kind"]}))
            results.store(self.cache_dir, self.key, results.Rendered(text, tuple(self._said), kinds))
            self._index()
        return text

    def _index(self) -> None:
        name = self.quick.name() if self.quick is not None else None
        if name is not None and results.has_entry(self.cache_dir, self.key):
            results.store_quick(self.cache_dir, name, self.key)


def audit_memo(captures, inventory, catalogues, replace_catalogue, options, *, fmt: str,
               show_all: bool, reports) -> AuditMemo:
    """The memo of this audit command from its command line (inventory and catalogues as the
    paths and names given); one that is never hit nor kept when it is not memoised."""
    cache_dir = options.engine.cache_dir
    if inventory is None or reports or fmt not in ("json", "table") or cache_dir is None:
        return AuditMemo(cache_dir, None)
    render = {"format": fmt, "all": bool(show_all) if fmt == "table" else False}
    quick = quick_key(captures, inventory, catalogues, replace_catalogue, options, render)
    return AuditMemo(cache_dir, quick, render)
