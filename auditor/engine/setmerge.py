"""Merging the partials of a set's files wherever they were read (a Dask cluster, this process).

`SetMerger` is this process's: files (or the joins of their byte ranges) are merged into one
store as they arrive, in set order.

A file's `head` (its facts without frames) is what the caller needs to put the set in time order
and say what was skipped; `combine` merges two neighbouring (rebased) partials with
`flows.partial.merge_partials` exactly as the client would, so a tree of combines gives the same
partial as one merge of them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from auditor.engine.fileread import FilePartial, empty_quotes
from auditor.engine.partstore import PartialStore
from auditor.engine.ranges import shift
from auditor.flows.partial import FILE_SHIFT, finish_inputs, merge_partials
from auditor.heap import give_back_memory
from auditor.options import FlowOptions, RpcOptions

_LAST = np.iinfo(np.int64).max


def head(fp: FilePartial) -> FilePartial:
    """The file's facts without its frames (what the client needs to order and warn).

    The empty frames are copies: a slice would be a view keeping the file's frames alive."""
    return replace(fp, parts=fp.parts.iloc[:0].copy(), candidates=fp.candidates.iloc[:0].copy(),
                   quotes=fp.quotes.iloc[:0].copy())


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


class SetMerger:
    """The partials of a set's files merged into one store as each file is complete.

    Files come in any order (worker processes finish when they finish) and are merged in set
    order, each as soon as the ones before it are in; a file's own partials are already merged
    among themselves, so only the conversations an earlier file held are merged again. This
    process keeps one store of the set's partials, the files waiting for their turn and each
    file's head, never a list of every file's partials.
    """

    def __init__(self, files: int, flow_options: FlowOptions, rpc_options: RpcOptions,
                 on_file: Callable[[int, FilePartial], None] | None = None):
        self.heads: list[FilePartial | None] = [None] * files
        # each file's candidates were chosen by its own read: merged, they are only relabelled
        self.store = PartialStore(flow_options, rpc_options, prune=False)
        self.quotes: list[pd.DataFrame] = []
        self.on_file = on_file  # sees each file's partial (pids from 0) before it is merged
        self._waiting: dict[int, FilePartial] = {}
        self._next = 0
        self._only: FilePartial | None = None  # a set of one file: its partial, unmerged

    def add(self, i: int, fp: FilePartial, read: bool = True) -> None:
        """File i's partial (pids from 0); `read=False` for one that came from the cache."""
        if read and self.on_file is not None:
            self.on_file(i, fp)
        self.heads[i] = head(fp)
        self._waiting[i] = fp
        while self._next in self._waiting:
            k = self._next
            got = self._waiting.pop(k)
            if len(self.heads) == 1:
                self._only = got
            else:
                got = shift(got, int(np.int64(k) << FILE_SHIFT), 0, file_index=k)  # rebase
                self.store.add(got.parts, got.candidates, merged=True)
                if len(got.quotes):
                    self.quotes.append(got.quotes)
                del got
                give_back_memory()  # the merge's freed heap, before the next file's read
            self._next += 1

    def finish(self) -> list[pd.DataFrame]:
        """[the set's merged partials (each conversation's rows together, in time order, and only
        the columns the finish reads, `flows.partial.finish_inputs`: what finish_flows needs),
        candidates (by pid), ICMP quotes]; this merger keeps none of them."""
        if self._next != len(self.heads):
            raise AssertionError("a file of the set was never merged")  # a bug, not input
        if self._only is not None:
            fp, self._only = self._only, None
            frames = [fp.parts, fp.candidates, fp.quotes]
            fp.parts = fp.candidates = fp.quotes = None
            return frames
        give_back_memory()  # the read's freed heap, before the store's last copy
        parts, cands = self.store.finish(
            grouped=True, columns=finish_inputs(bool(self.quotes), self.store.flow_options.zeek))
        quotes = pd.concat(self.quotes, ignore_index=True) if self.quotes else empty_quotes()
        self.quotes = []
        return [parts, cands, quotes]
