"""`auditor audit` run again on unchanged inputs prints its first output again (engine.results).

The audit command asks `audit_memo` before it audits: on a hit it replays the warnings and emits
the stored text; otherwise it audits under `recording()` and hands its rendered text to `keep`.
Reports (`--report`), CSV and a proposed inventory (no `--inventory`) are not memoised.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine is imported when a command audits, not at start-up
    from auditor.engine.results import ResultKey


class AuditMemo:
    """One audit command's memo entry: `hit` when it has one."""

    def __init__(self, cache_dir: str | None, key: ResultKey | None):
        from auditor.engine import results

        self.cache_dir, self.key = cache_dir, key
        self.hit = results.load(cache_dir, key) if key is not None else None
        self._said: list[tuple[str, str]] | None = None

    def replay(self) -> str:
        """Issue the stored warnings again and give the stored text."""
        from auditor.engine.observed import replay

        logging.getLogger("auditor.engine").debug("the audit's output from the cache")
        replay(self.hit.warnings)
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
            from auditor.engine import results

            kinds = tuple(sorted({str(k) for k in result.findings["kind"]}))
            results.store(self.cache_dir, self.key, results.Rendered(text, tuple(self._said), kinds))
        return text


def audit_memo(captures, inventory, catalogue, options, *, fmt: str, show_all: bool,
               reports) -> AuditMemo:
    """The memo of this audit command (one without a key when it is not memoised)."""
    from auditor.engine import results

    cache_dir = options.engine.cache_dir
    if inventory is None or reports or fmt not in ("json", "table") or cache_dir is None:
        return AuditMemo(cache_dir, None)
    render = {"format": fmt, "all": bool(show_all) if fmt == "table" else False}
    return AuditMemo(cache_dir, results.result_key(captures, inventory, catalogue, options, render))
