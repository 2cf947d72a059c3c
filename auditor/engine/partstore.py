"""One file's merged partials and candidates, kept so that a merge touches only what changes.

`fileread` folds each chunk into partials; merging them with everything merged so far would copy
the whole (O(flows)) state once per merge. `PartialStore` keeps the merged partials in a few
segments instead, each with its candidates (sorted by partial) and its rows' conversation hashes
(sorted). A merge takes out only the stored rows of the conversations the new partials touch,
merges those with the new ones (`flows.partial.merge_partials`: associative, so this equals a
merge of everything) and stores the result as a new segment. Taken rows are marked dead, not
copied away; a segment at least half dead is rewritten without them, and past MAX_SEGMENTS the
smaller half is combined. Memory stays O(flows + candidates), and a merge copies only the rows
it touches, never the whole state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.engine.candidates import empty_candidates as _empty_candidates
from auditor.engine.candidates import keep_candidates
from auditor.flows.partial import KEY, empty_partials, finish_dtype, merge_columns
from auditor.flows.partial import concat_columns as _concat
from auditor.heap import give_back_memory
from auditor.options import FlowOptions, RpcOptions

_MIX = [np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                               0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
                               0x94D049BB133111EB)]


def key_hash(parts) -> np.ndarray:
    """A 64-bit hash of each partial's conversation key (collisions only cost extra work);
    `parts` is a frame or a dict of columns."""
    h = np.zeros(len(parts[KEY[0]]), np.uint64)
    with np.errstate(over="ignore"):
        for k, mix in zip(KEY, _MIX, strict=True):
            h = (h ^ np.asarray(parts[k]).astype(np.uint64)) * mix
            h ^= h >> np.uint64(29)
    return h


def _arrays(parts: pd.DataFrame | dict) -> dict[str, np.ndarray]:
    """A frame's or a dict's columns as arrays: the store keeps partials so. A frame of ~50
    columns costs about a millisecond to build and as much to take apart again, and the store
    made and took apart one at every merge and rewrite (most of a small file's cost in a set:
    the 200 files of 2.7 MB of the 1M-packet capture spent 1.3 s of the parent's 7.3 doing so)."""
    if isinstance(parts, dict):
        return {c: np.asarray(a) for c, a in parts.items()}
    return {c: col.to_numpy() for c, col in parts.items()}


class _Segment:
    """Merged partials (a dict of columns), their key hashes (sorted, with the row order) and
    their candidates."""

    def __init__(self, parts: pd.DataFrame | dict[str, np.ndarray], cands: pd.DataFrame,
                 hashes: np.ndarray | None = None):
        self.columns = _arrays(parts)
        n = len(self.columns["pid"])
        h = key_hash(self.columns) if hashes is None else hashes
        self.order = np.argsort(h, kind="stable")
        if len(h) < 1 << 31:  # (half the bytes: the store keeps this for every row)
            self.order = self.order.astype(np.int32)
        self.hashes = h[self.order]
        self.alive = np.ones(n, bool)
        self.live = n
        self.cands = cands.reset_index(drop=True)
        part = self.cands["part"].to_numpy()
        # the candidates by partial: an index, so combining segments copies no rows to sort
        self.cand_order = (None if len(part) < 2 or (part[1:] >= part[:-1]).all()
                           else np.argsort(part, kind="stable"))
        self.cand_part = part if self.cand_order is None else part[self.cand_order]
        self.cand_alive = np.ones(len(part), bool)

    def take(self, hashes: np.ndarray
             ) -> tuple[dict[str, np.ndarray], pd.DataFrame, np.ndarray] | None:
        """Mark dead and return the live rows with any of `hashes` (a dict of columns), their
        candidates and their hashes (so a caller never hashes them again)."""
        if not self.live:
            return None
        lo = np.searchsorted(self.hashes, hashes, side="left")
        hi = np.searchsorted(self.hashes, hashes, side="right")
        has = hi > lo
        if not has.any():
            return None
        at = _ranges(lo[has], hi[has])
        rows = self.order[at]
        live = self.alive[rows]
        rows, taken = rows[live], self.hashes[at[live]]
        if not len(rows):
            return None
        self.alive[rows] = False
        self.live -= len(rows)
        rows = np.sort(rows)  # a few rows of every column: numpy, not ~50 pandas takes
        parts = {c: col[rows] for c, col in self.columns.items()}
        if not len(self.cands):
            return parts, self.cands, taken
        pids = parts["pid"]
        crow = _ranges(np.searchsorted(self.cand_part, pids, side="left"),
                       np.searchsorted(self.cand_part, pids, side="right"))
        if self.cand_order is not None:
            crow = self.cand_order[crow]
        crow = np.sort(crow[self.cand_alive[crow]])
        self.cand_alive[crow] = False
        return parts, self.cands.iloc[crow], taken

    def compact(self) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
        """The live rows (a dict of columns) and candidates."""
        alive = self.alive
        parts = (self.columns if alive.all()
                 else {c: col[alive] for c, col in self.columns.items()})
        cands = self.cands if self.cand_alive.all() else self.cands[self.cand_alive]
        return parts, cands


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenation of range(lo[i], hi[i]) for every i."""
    n = hi - lo
    total = int(n.sum())
    if not total:
        return np.zeros(0, np.int64)
    starts = np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n)
    return starts + np.arange(total)


_NO_CANDIDATES: list[pd.DataFrame] = []


def empty_candidates() -> pd.DataFrame:
    """A candidate frame with no rows: a copy of one made once (building one from the schema
    costs about 6 ms, paid by every merge of a read without candidates)."""
    if not _NO_CANDIDATES:
        _NO_CANDIDATES.append(_empty_candidates())
    return _NO_CANDIDATES[0].copy()


MAX_SEGMENTS = 32  # more, and the smaller half is combined into one


class PartialStore:
    """Merged partials and candidates of one file, merged touching only what changes."""

    def __init__(self, flow_options: FlowOptions, rpc_options: RpcOptions, prune: bool = True):
        self.flow_options, self.rpc_options = flow_options, rpc_options
        self.prune = prune  # False: candidates are only relabelled (a set's files, each pruned)
        self.segments: list[_Segment] = []
        self.pairs: dict = {}  # candidates._pair_firsts' per-pair facts of everything seen
        self.rows = 0  # live partials

    def add(self, parts: pd.DataFrame | dict[str, np.ndarray], cands: pd.DataFrame,
            merged: bool = False) -> None:
        """Merge new partials (a frame or a dict of columns; their candidates labelled with
        their part) into the store.

        `merged=True` says the new partials are already merged among themselves (another
        store's `finish`): then only those of conversations the store holds are merged again,
        the others are stored as they are (merging merged partials changes nothing).
        """
        parts = _arrays(parts)
        if not len(parts["pid"]):
            return
        hashes = key_hash(parts)
        wanted = _unique(hashes)
        old_parts, old_cands, taken = [], [], []
        for seg in self.segments:
            got = seg.take(wanted)
            if got is not None:
                old_parts.append(got[0])
                old_cands.append(got[1])
                taken.append(got[2])
                self.rows -= len(got[2])
        if merged and not (self.prune and self.rpc_options.candidates):
            # stored as they are, in a segment of their own, out of which the rows of
            # conversations seen before are taken to be merged with those (no copy of the rest)
            seg = _Segment(parts, cands, hashes)
            self.segments.append(seg)
            self.rows += len(hashes)
            if old_parts:
                seen = _unique(np.concatenate(taken))
                got = seg.take(seen)
                if got is not None:
                    old_parts.append(got[0])
                    old_cands.append(got[1])
                    self.rows -= len(got[2])
                self._merge_in(old_parts, old_cands)
            self._tidy()
            return
        fresh = None
        if merged and old_parts:  # only the conversations seen before need merging
            seen = _unique(np.concatenate(taken))
            at = np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)
            hit = seen[at] == hashes
            if not hit.all():
                fresh = {c: col[~hit] for c, col in parts.items()}
                parts = {c: col[hit] for c, col in parts.items()}
        if merged and not old_parts:
            merged_parts, old = parts, np.zeros(0, np.int64)
            new = old
        else:
            merged_parts, old, new = merge_columns(_concat([*old_parts, parts]),
                                                   self.flow_options)
        del old_parts
        if fresh is not None:
            merged_parts = _concat([merged_parts, fresh])
        cands = [c for c in (*old_cands, cands) if len(c)]
        if cands:
            cands = pd.concat(cands, ignore_index=True) if len(cands) > 1 else cands[0].copy()
            cands["part"] = _relabel(cands["part"].to_numpy(), old, new)
            if self.prune:
                cands = keep_candidates(cands, merged_parts, self.rpc_options, self.pairs)
        else:
            cands = empty_candidates()
        self.segments.append(_Segment(merged_parts, cands))
        self.rows += len(merged_parts["pid"])
        self._tidy()

    def _merge_in(self, parts: list[dict[str, np.ndarray]], cands: list[pd.DataFrame]) -> None:
        """Merge partials taken out of the segments (candidates only relabelled) into a new one."""
        frame = _concat(parts)
        merged, old, new = merge_columns(frame, self.flow_options)
        del frame
        cands = [c for c in cands if len(c)]
        if cands:
            cands = pd.concat(cands, ignore_index=True) if len(cands) > 1 else cands[0].copy()
            cands["part"] = _relabel(cands["part"].to_numpy(), old, new)
        else:
            cands = empty_candidates()
        self.segments.append(_Segment(merged, cands))
        self.rows += len(merged["pid"])

    def _tidy(self) -> None:
        """Drop dead rows of segments at least half dead; bound the number of segments."""
        for i, seg in enumerate(self.segments):
            if seg.live * 2 < len(seg.alive):
                self.segments[i] = _Segment(*seg.compact())
        self.segments = [seg for seg in self.segments if seg.live]
        if len(self.segments) > MAX_SEGMENTS:  # combine the smaller half into one
            small = sorted(range(len(self.segments)), key=lambda i: self.segments[i].live)
            small = set(small[: len(small) // 2])
            parts, cands = zip(*(self.segments[i].compact() for i in sorted(small)), strict=True)
            rest = [seg for i, seg in enumerate(self.segments) if i not in small]
            self.segments = [*rest, _Segment(_concat(list(parts)),
                                             pd.concat(cands, ignore_index=True))]

    def finish(self, sort: bool = True, grouped: bool = False,
               columns: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """All merged partials (sorted by conversation, then time) and their candidates (by pid).

        `sort=False` leaves both in store order (for another store's `add(..., merged=True)`).
        `grouped=True` only promises each conversation's rows together, in time order (all
        `finish_flows` needs): the segments already hold them so, each conversation in one
        segment, so they are concatenated as they are when a check confirms it, else sorted
        by key hash (a quarter of the full sort's work). `columns` (with KEY and pid) keeps only
        those of the partials, each in the type the finish reads (`flows.partial.finish_dtype`),
        for a store's last use (`flows.partial.finish_inputs`: what the finish reads).

        The store is emptied as it goes (`_gather`): each segment is dropped as soon as its rows
        are copied, and any reordering is done a column at a time, so the partials are never
        held twice (they are most of a read's memory).
        """
        segments = [seg for seg in self.segments if seg.live]
        self.segments, self.rows = [], 0
        if columns is not None and not set(KEY + ["pid"]) <= set(columns):
            raise ValueError("the partials' columns must include KEY and pid")  # a bug
        if not segments:
            parts = empty_partials(self.flow_options)
            return (parts if columns is None else parts[list(columns)]), empty_candidates()
        parts, cands = _gather(segments, columns)
        if sort:
            order = None
            if grouped:  # None after a hash collision: the full sort below
                order = np.arange(len(parts["pid"])) if _is_grouped(parts) else _grouped_order(
                    parts)
            if order is None:
                order = np.lexsort([parts["pid"]] + [parts[k] for k in reversed(KEY)])
            _reorder(parts, order)
            if cands is not None:
                pid = cands["pid"]
                if len(pid) > 1 and (pid[1:] < pid[:-1]).any():  # in packet order, as the table
                    _reorder(cands, np.argsort(pid, kind="stable"))
        return (pd.DataFrame(parts, copy=False),
                empty_candidates() if cands is None else pd.DataFrame(cands, copy=False))


def _gather(segments: list[_Segment], columns: list[str] | None
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """The live rows of `segments` (in their order) as one array per column, partials and
    candidates (None: no candidate); the list is emptied.

    The segments' frames are dropped first, keeping only their columns' arrays; then each
    column is allocated once, filled segment by segment and its source arrays dropped at once
    (their pages handed back every TRIM_BYTES). Partials are one array per column
    (`flows.partial._narrowed`), so the memory held peaks at the store plus about one column, not
    two whole copies as a concatenation then a take would.
    """
    names = list(segments[0].columns) if columns is None else list(columns)
    with_cands = [k for k, seg in enumerate(segments) if seg.cand_alive.any()]
    cand_names = list(segments[with_cands[0]].cands.columns) if with_cands else []
    types = _common_types([seg.columns for seg in segments], names)
    if types is not None and columns is not None:  # a last use: in the finish's types
        types = {c: finish_dtype(c, t) for c, t in types.items()}
    cand_types = _common_types([segments[k].cands for k in with_cands], cand_names)
    if types is None or cand_types is None:
        return _concatenated(segments, names, cand_names)
    parts = _columns([(seg.columns, seg.alive) for seg in segments], names, types)
    cands = [(segments[k].cands, segments[k].cand_alive) for k in with_cands]
    segments.clear()  # only `parts` and `cands` hold the frames now
    parts = _fill(parts, names, types)
    return parts, (_fill(_columns(cands, cand_names, cand_types), cand_names, cand_types)
                   if cands else None)


def _columns(frames: list[tuple[pd.DataFrame | dict, np.ndarray]], names: list[str],
             types: dict) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Each (frame or a segment's dict of its columns, alive rows)'s arrays of `names` (the
    list of frames is emptied)."""
    out = []
    while frames:
        frame, alive = frames.pop(0)
        out.append(({c: np.asarray(frame[c]) for c in names}, alive))
        del frame
    return out


def _fill(sources: list[tuple[dict[str, np.ndarray], np.ndarray]], names: list[str],
          types: dict) -> dict[str, np.ndarray]:
    """One array per column of the sources' alive rows, each source array dropped once copied."""
    total = sum(int(alive.sum()) for _, alive in sources)
    out = {}
    freed = 0
    for c in names:
        col = out[c] = np.empty(total, types[c])
        at = 0
        for arrays, alive in sources:
            src = arrays.pop(c)
            freed += src.nbytes
            if alive.all():
                col[at:at + len(src)] = src
                at += len(src)
            else:
                stop = at + int(alive.sum())
                if src.dtype == col.dtype:
                    np.compress(alive, src, out=col[at:stop])
                else:  # a narrower type than the concatenation's
                    col[at:stop] = src[alive]
                at = stop
            del src
        if freed >= TRIM_BYTES:  # the sources' pages, most of them in glibc's heap
            give_back_memory()
            freed = 0
    return out


TRIM_BYTES = 16 << 20  # freed by _fill before its pages are handed back (a trim costs ~2 ms)


def _common_types(frames: list[pd.DataFrame | dict], names: list[str]) -> dict | None:
    """Each column's type in a concatenation of `frames` (or dicts of columns; numpy's
    promotion, as pandas' concat gives for numbers: a set's rebased file_index is int64 next to
    merged rows' int32, say); None for anything else (pandas' own rules then)."""
    types = {}
    dtypes = [{c: a.dtype for c, a in f.items()} if isinstance(f, dict)
              else dict(f.dtypes.items()) for f in frames]  # (a frame's dtypes: a new Series)
    for c in names:
        got = {d[c] for d in dtypes}
        if not all(isinstance(t, np.dtype) and t.kind in "biuf" for t in got):
            return None
        if len(got) > 1 and any(t.kind == "b" for t in got):  # pandas: object
            return None
        types[c] = np.result_type(*got)
    return types


def _concatenated(segments: list[_Segment], names: list[str], cand_names: list[str]
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """_gather's result by pandas' concat, for segments whose column types differ (e.g. a cache
    entry of older types): pandas' rules choose the common type, as before."""
    parts, cands = [], []
    while segments:
        p, c = segments.pop(0).compact()
        parts.append(pd.DataFrame({n: p[n] for n in names}, copy=False))
        if len(c):
            cands.append(c)
    frame = pd.concat(parts, ignore_index=True)
    del parts
    out = {c: frame[c].to_numpy() for c in names}
    if not cands:
        return out, None
    cand = pd.concat(cands, ignore_index=True)
    return out, {c: cand[c].to_numpy() for c in cand_names}


def _reorder(columns: dict[str, np.ndarray], order: np.ndarray) -> None:
    """Put every column in `order`, one at a time (a whole copy is never held)."""
    if (order == np.arange(len(order))).all():
        return
    for c in columns:
        columns[c] = columns[c][order]


def _unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2.4's np.unique hashes 64-bit integers, 100x slower here
    (0.5 s for 316k key hashes, more than the merge they select)."""
    s = np.sort(values)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def _is_grouped(frame) -> bool:
    """Whether each conversation's rows are together (one run per key) and in pid order
    (`frame`: a frame or a dict of columns)."""
    n = len(frame["pid"])
    if n < 2:
        return True
    change = np.zeros(n - 1, bool)
    for k in KEY:
        col = np.asarray(frame[k])
        change |= col[1:] != col[:-1]
    pid = np.asarray(frame["pid"])
    if not (change | (pid[1:] > pid[:-1])).all():
        return False
    starts = np.r_[True, change]
    h = np.sort(key_hash(frame)[starts])  # one run per key: no key starts two runs
    return not (h[1:] == h[:-1]).any()


def _grouped_order(frame) -> np.ndarray | None:
    """Rows ordered by (key hash, pid): each conversation's together, in time order; None when
    two conversations share a hash (then only the full sort by key keeps them apart)."""
    h = key_hash(frame)
    order = np.lexsort([np.asarray(frame["pid"]), h])
    h = h[order]
    hash_change = h[1:] != h[:-1]
    key_change = np.zeros(len(h) - 1 if len(h) else 0, bool)
    for k in KEY:
        col = np.asarray(frame[k])[order]
        key_change |= col[1:] != col[:-1]
    return order if np.array_equal(hash_change, key_change) else None


def _relabel(part: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Each candidate's partial after a merge that moved partial `old[i]` into `new[i]`."""
    moved = old != new
    if not moved.any():
        return part
    o = np.argsort(old[moved])
    was, now = old[moved][o], new[moved][o]
    at = np.minimum(np.searchsorted(was, part), len(was) - 1)
    return np.where(was[at] == part, now[at], part).astype(np.int64)
