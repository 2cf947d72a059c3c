"""One capture file read as byte ranges on several cores, joined into what one read gives.

`capture.split` cuts the file at record boundaries; each range is read by `read_range` (in a
worker) into a FilePartial whose packet numbers count from 0, plus the facts at its edges that
a single read would carry from one chunk to the next. `RangeJoin` takes the ranges in file order
as they come, shifts each range's packet numbers by the exact IP-packet counts of the ranges
before it and merges it into one store at once (as the one-file read merges its chunks), so the
result is identical to reading the file in one piece; `join_ranges` does it for a list.

A single read carries three things across chunks; a range starts without them, so the join
gives up (None: read the file whole) as soon as one could matter:
- ports of IP fragments: a range with non-first fragments after a range with first fragments;
- connectionless DCE/RPC requests of the last 30 s (answers from another port are tied to them):
  a client request within 30 s of a range's end, when a later range holds any CL RPC packet;
- timestamps of pcapng simple packet blocks (the time of the record before): any untimed record.
So does any note of the reader (a record cut at the range's end proves the boundary was not one;
damage, ignored header fields) and any pcapng section or interface block inside a range that a
later range would have needed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from auditor.capture.packets import CaptureFile
from auditor.capture.records import NO_TS
from auditor.capture.split import ByteRange
from auditor.engine.candidates import CANDIDATE_COLUMNS
from auditor.engine.fileread import _CL_WINDOW_NS, FilePartial, empty_quotes
from auditor.engine.partstore import PartialStore
from auditor.engine.window import kept_rows, read_file
from auditor.flows.orient import _DCE_CL_CLIENT
from auditor.flows.partial import BIG, finish_inputs, position_columns
from auditor.heap import give_back_memory
from auditor.options import FlowOptions, RpcOptions


@dataclass
class RangeFacts:
    """What a range's edges show, for `join_ranges` to decide whether the join is exact."""

    first_frags: bool = False  # a first fragment (offset 0, more fragments)
    later_frags: bool = False  # a non-first fragment
    cl_any: bool = False  # any connectionless DCE/RPC packet
    cl_request_ns: int = -BIG  # latest connectionless DCE/RPC client request
    untimed: bool = False  # a record without a timestamp (pcapng simple packet block)
    state_changed: bool = False  # pcapng: a section or interface block inside the range

    def observe(self, out: dict[str, np.ndarray]) -> None:
        """Note the edge facts of one decoded chunk (before it is folded)."""
        if not len(out["ts_ns"]):
            return
        frag = out["frag_offset"]
        self.first_frags |= bool(((frag == 0) & out["more_fragments"]).any())
        self.later_frags |= bool((frag != 0).any())
        ts = out["ts_ns"]
        self.untimed |= bool((ts == NO_TS).any())
        head = out["payload_head"].astype(np.int64)
        cl = (out["proto"] == 17) & ((head >> 24) == 4)
        if cl.any():
            self.cl_any = True
            req = cl & np.isin((head >> 16) & 0xFF, _DCE_CL_CLIENT)
            if req.any():
                self.cl_request_ns = max(self.cl_request_ns, int(ts[req].max()))


def read_range(path: str, byte_range: ByteRange, flow_options: FlowOptions,
               rpc_options: RpcOptions, chunk_bytes: int | None = None,
               window: tuple[int | None, int | None] | None = None
               ) -> tuple[FilePartial, RangeFacts]:
    """Read one byte range of a file (pids from 0) with the facts at its edges."""
    facts = RangeFacts()
    fp = read_file(path, flow_options, rpc_options, chunk_bytes, window,
                   byte_range=byte_range, observe=facts.observe)
    facts.state_changed = byte_range.state_changed()
    return fp, facts


class RangeJoin:
    """One file's ranges joined as they come (in file order) into what one read of it gives.

    `add` checks each range against the ones before it (the edges `exact` describes) and merges
    it into one store at once, so the ranges' partials never wait in a list; once a range shows
    the join cannot be exact, the rest are dropped and `finish` says None (read it whole).
    """

    def __init__(self, path: str, pieces: int, flow_options: FlowOptions,
                 rpc_options: RpcOptions):
        self.path, self.pieces = str(path), pieces
        self.store: PartialStore | None = PartialStore(flow_options, rpc_options)
        self.infos: list[CaptureFile] = []
        self.quotes: list[pd.DataFrame] = []
        self.rows = self.records = 0
        self.frags_before, self.cl_before, self.last_ts = False, -BIG, -BIG
        self.first_kept, self.last_kept = BIG, -BIG

    @property
    def exact(self) -> bool:
        """Whether the ranges added so far join exactly."""
        return self.store is not None

    def _fits(self, fp: FilePartial, facts: RangeFacts) -> bool:
        k = len(self.infos)
        if fp.notes or fp.warnings or facts.untimed or not fp.ordered:
            return False
        if k < self.pieces - 1 and facts.state_changed:
            return False
        if k and facts.later_frags and self.frags_before:
            return False
        if k and facts.cl_any and self.cl_before >= self.last_ts - _CL_WINDOW_NS:
            return False
        if kept_rows(fp) and fp.first_ts_ns < self.last_ts:  # a single read sorts: not ours
            return False
        return True

    def add(self, fp: FilePartial, facts: RangeFacts) -> bool:
        """Join the next range; False once the join cannot be exact (the store is dropped)."""
        if self.store is None:
            return False
        if not self._fits(fp, facts):
            self.store = None
            return False
        if kept_rows(fp):
            self.last_ts = fp.last_ts_ns
            self.first_kept = min(self.first_kept, fp.first_ts_ns)
            self.last_kept = max(self.last_kept, fp.last_ts_ns)
        self.frags_before |= facts.first_frags
        self.cl_before = max(self.cl_before, facts.cl_request_ns)
        fp = shift(fp, self.rows, self.records)
        self.rows += kept_rows(fp)
        self.records += fp.info.records
        self.infos.append(fp.info)
        if len(fp.quotes):
            self.quotes.append(fp.quotes)
        self.store.add(fp.parts, fp.candidates, merged=True)
        fp.parts = fp.candidates = None  # (when shift had nothing to move, the caller's own)
        return True

    def finish(self, sort: bool = True, grouped: bool = False) -> FilePartial | None:
        """The file's partial (pids from 0), or None when only one read is exact.

        `sort=False` leaves the partials in store order (for a set's store to merge);
        `grouped=True` only keeps each conversation's together (`PartialStore.finish`): with
        `sort`, it is the file's last use (a set of one file, finished as it is), so only the
        columns the finish reads (`flows.partial.finish_inputs`) are kept."""
        if self.store is None or len(self.infos) != self.pieces:
            return None
        give_back_memory()  # the read's freed heap, before the store's last copy
        last = (finish_inputs(bool(self.quotes), self.store.flow_options.zeek)
                if sort and grouped else None)
        merged, cand = self.store.finish(sort, grouped, last)
        self.store = None
        infos = self.infos
        skipped: Counter[str] = Counter()
        for info in infos:
            skipped.update(info.skipped)
        firsts = [i.first_ts_ns for i in infos if i.first_ts_ns is not None]
        lasts = [i.last_ts_ns for i in infos if i.last_ts_ns is not None]
        info = CaptureFile(path=self.path, name=infos[0].name, format=infos[0].format,
                           records=sum(i.records for i in infos),
                           ip_packets=sum(i.ip_packets for i in infos),
                           outside_window=sum(i.outside_window for i in infos),
                           non_ip=sum(i.non_ip for i in infos), skipped=dict(skipped),
                           tunnelled=sum(i.tunnelled for i in infos),
                           first_ts_ns=min(firsts) if firsts else None,
                           last_ts_ns=max(lasts) if lasts else None)
        quotes = pd.concat(self.quotes, ignore_index=True) if self.quotes else empty_quotes()
        if list(cand.columns) != CANDIDATE_COLUMNS:  # (a selection copies every column)
            cand = cand[CANDIDATE_COLUMNS]
        return FilePartial(info=info, parts=merged, candidates=cand,
                           quotes=quotes, first_ts_ns=self.first_kept, last_ts_ns=self.last_kept)


def shift(fp: FilePartial, rows: int, records: int, file_index: int | None = None
          ) -> FilePartial:
    """The range's partials and candidates with packet numbers moved on by `rows` (IP packets)
    and record numbers by `records` (all records) of the ranges before it; `file_index` also
    gives them that file's place in a set (`rows` then includes `file_index << FILE_SHIFT`, as
    fileread.rebase). Only the moved columns are new: the others are shared, not copied, so
    `fp` gives its frames up (its caller hands it on to be merged: kept, its unshifted columns,
    for a range on the pages it was shipped in, would be held beside the merge's)."""
    if rows == 0 and records == 0 and file_index is None:
        return fp
    parts = fp.parts.copy(deep=False)
    parts["pid"] = parts["pid"] + rows
    for c in position_columns(parts):
        col = parts[c].to_numpy()
        parts[c] = np.where(col < BIG, col + rows, BIG)
    cands = fp.candidates.copy(deep=False)
    cands["pid"] = cands["pid"] + rows
    cands["part"] = cands["part"] + rows
    if records:
        cands["record_index"] = (cands["record_index"].astype(np.int64) + records).astype(
            fp.candidates["record_index"].dtype)
    if file_index is not None:  # (at most 65535 files: run.stream_flows refuses more)
        parts["file_index"] = np.full(len(parts), file_index, np.uint16)
        cands["file_index"] = np.full(len(cands), file_index, np.uint16)
    fp.parts = fp.candidates = None
    return FilePartial(info=fp.info, parts=parts, candidates=cands, quotes=fp.quotes,
                       first_ts_ns=fp.first_ts_ns, last_ts_ns=fp.last_ts_ns, ordered=fp.ordered)


def join_ranges(results: list[tuple[FilePartial, RangeFacts]], path: str,
                flow_options: FlowOptions, rpc_options: RpcOptions) -> FilePartial | None:
    """One file's partial from its ranges' (in file order); None when only one read is exact."""
    join = RangeJoin(path, len(results), flow_options, rpc_options)
    for fp, facts in results:
        if not join.add(fp, facts):
            return None
    return join.finish()


__all__ = ["RangeFacts", "RangeJoin", "join_ranges", "read_range"]
