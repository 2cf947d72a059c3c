"""Merging the partials of a set's files wherever they were read (a Dask cluster, this process).

A file's `head` (its facts without frames) is what the caller needs to put the set in time order
and say what was skipped; `combine` merges two neighbouring (rebased) partials with
`flows.partial.merge_partials` exactly as the client would, so a tree of combines gives the same
partial as one merge of them all.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from auditor.engine.fileread import FilePartial
from auditor.flows.partial import merge_partials
from auditor.options import FlowOptions

_LAST = np.iinfo(np.int64).max


def head(fp: FilePartial) -> FilePartial:
    """The file's facts without its frames (what the client needs to order and warn)."""
    return replace(fp, parts=fp.parts.iloc[:0], candidates=fp.candidates.iloc[:0],
                   quotes=fp.quotes.iloc[:0])


def time_order(heads: list[FilePartial]) -> list[int]:
    """Positions of the files by their first IP packet (files without one last), stable."""
    return sorted(range(len(heads)),
                  key=lambda k: heads[k].first_ts_ns if heads[k].info.ip_packets else _LAST)


def combine(a: FilePartial, b: FilePartial, flow_options: FlowOptions) -> FilePartial:
    """Merge two (rebased) partials of a set into one, `a` before `b` in set order."""
    parts = pd.concat([f for f in (a.parts, b.parts) if len(f)] or [a.parts], ignore_index=True)
    merged, old, new = merge_partials(parts, flow_options)
    cands = pd.concat([a.candidates, b.candidates], ignore_index=True)
    if len(cands):
        cands["part"] = pd.Series(new, index=old).reindex(cands["part"].to_numpy()).to_numpy()
    quotes = pd.concat([a.quotes, b.quotes], ignore_index=True)
    return replace(a, parts=merged, candidates=cands, quotes=quotes)


def tree(items: list, merge) -> object:
    """Merge neighbours pairwise, level by level, until one is left (set order kept)."""
    level = list(items)
    while len(level) > 1:
        pairs = [merge(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]
