"""One capture file read as byte ranges on several cores, joined into what one read gives.

`capture.split` cuts the file at record boundaries; each range is read by `read_range` (in a
worker) into a FilePartial whose packet numbers count from 0, plus the facts at its edges that
a single read would carry from one chunk to the next. `join_ranges` shifts each range's packet
numbers by the exact IP-packet counts of the ranges before it and merges the partials as the
one-file read merges its chunks, so the result is identical to reading the file in one piece.

A single read carries three things across chunks; a range starts without them, so the join
gives up (None: read the file whole) whenever one could matter:
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
from auditor.flows.partial import BIG
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


def exact(results: list[tuple[FilePartial, RangeFacts]]) -> bool:
    """Whether joining these ranges (in file order) gives exactly what one read gives."""
    frags_before, cl_before, last_ts = False, -BIG, -BIG
    for k, (fp, facts) in enumerate(results):
        if fp.notes or fp.warnings or facts.untimed or not fp.ordered:
            return False
        if k < len(results) - 1 and facts.state_changed:
            return False
        if k and facts.later_frags and frags_before:
            return False
        if k and facts.cl_any and cl_before >= last_ts - _CL_WINDOW_NS:
            return False
        if kept_rows(fp):
            if fp.first_ts_ns < last_ts:  # out of order across ranges: a single read sorts
                return False
            last_ts = fp.last_ts_ns
        frags_before |= facts.first_frags
        cl_before = max(cl_before, facts.cl_request_ns)
    return True


def shift(fp: FilePartial, rows: int, records: int) -> FilePartial:
    """The range's partials and candidates with packet numbers moved on by `rows` (IP packets)
    and record numbers by `records` (all records) of the ranges before it."""
    if rows == 0 and records == 0:
        return fp
    parts = fp.parts.copy()
    parts["pid"] = parts["pid"] + rows
    for c in ("syn_pos", "head_pos0", "head_pos1"):
        col = parts[c].to_numpy()
        parts[c] = np.where(col < BIG, col + rows, BIG)
    cands = fp.candidates.copy()
    cands["pid"] = cands["pid"] + rows
    cands["part"] = cands["part"] + rows
    cands["record_index"] = (cands["record_index"].astype(np.int64) + records).astype(
        fp.candidates["record_index"].dtype)
    return FilePartial(info=fp.info, parts=parts, candidates=cands, quotes=fp.quotes,
                       first_ts_ns=fp.first_ts_ns, last_ts_ns=fp.last_ts_ns, ordered=fp.ordered)


def join_ranges(results: list[tuple[FilePartial, RangeFacts]], path: str,
                flow_options: FlowOptions, rpc_options: RpcOptions) -> FilePartial | None:
    """One file's partial from its ranges' (in file order); None when only one read is exact."""
    if not exact(results):
        return None
    infos = [fp.info for fp, _ in results]
    shifted, rows, records = [], 0, 0
    for fp, _ in results:
        shifted.append(shift(fp, rows, records))
        rows += kept_rows(fp)
        records += fp.info.records
    store = PartialStore(flow_options, rpc_options)  # merged as one read merges its chunks
    for fp in shifted:
        store.add(fp.parts, fp.candidates)
        fp.parts = fp.candidates = None
    merged, cand = store.finish()
    quotes = [fp.quotes for fp in shifted if len(fp.quotes)]
    skipped: Counter[str] = Counter()
    for info in infos:
        skipped.update(info.skipped)
    firsts = [i.first_ts_ns for i in infos if i.first_ts_ns is not None]
    lasts = [i.last_ts_ns for i in infos if i.last_ts_ns is not None]
    info = CaptureFile(path=str(path), name=infos[0].name, format=infos[0].format,
                       records=sum(i.records for i in infos),
                       ip_packets=sum(i.ip_packets for i in infos),
                       outside_window=sum(i.outside_window for i in infos),
                       non_ip=sum(i.non_ip for i in infos), skipped=dict(skipped),
                       first_ts_ns=min(firsts) if firsts else None,
                       last_ts_ns=max(lasts) if lasts else None)
    timed = [fp for fp in shifted if kept_rows(fp)]
    return FilePartial(info=info, parts=merged, candidates=cand[CANDIDATE_COLUMNS],
                       quotes=pd.concat(quotes, ignore_index=True) if quotes else empty_quotes(),
                       first_ts_ns=min((fp.first_ts_ns for fp in timed), default=BIG),
                       last_ts_ns=max((fp.last_ts_ns for fp in timed), default=-BIG))


__all__ = ["RangeFacts", "join_ranges", "read_range"]
