"""Read one capture file into partial flow aggregates, candidate packets and ICMP quotes.

This is the unit of work that runs in a worker process or on a Dask worker: it streams the file
chunk by chunk (`capture.pcapfmt`, `capture.headers`), folds each chunk (`flows.partial`) and
merges as it goes, so memory stays O(flows + candidates) whatever the file size. Packet numbers
(`pid`) count from 0 in the file; `rebase` moves them to the file's place in a set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from auditor.capture.bytesource import MappedSource
from auditor.capture.headers import decode_chunk
from auditor.capture.packets import CaptureFile
from auditor.capture.reader import RecordReader
from auditor.capture.records import fill_untimed
from auditor.capture.records_at import UNKNOWN
from auditor.engine.candidates import CANDIDATE_COLUMNS, chunk_candidates
from auditor.engine.partstore import PartialStore, empty_candidates
from auditor.flows.build import _address_codes
from auditor.flows.orient import _DCE_CL_CLIENT, tie_connectionless_rpc
from auditor.flows.partial import (
    BIG,
    FILE_SHIFT,
    ICMP_QUOTE_COLUMNS,
    concat_columns,
    fold_chunk_columns,
    position_columns,
)
from auditor.options import FlowOptions, RpcOptions
from auditor.schema import PACKET_COLUMNS, column_names

_FRAG_KEY = ["src_ip_hi", "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "proto", "ip_id"]
_PACKET_NAMES = column_names(PACKET_COLUMNS)
_CAND_NAMES = [*_PACKET_NAMES, "rec_off", "rec_len"]  # and where each record lies in the file
_CL_COLUMNS = ["ts_ns", "proto", "payload_head", "payload_len", "payload_b4", "src_ip_hi",
               "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "src_port", "dst_port"]
_CL_WINDOW_NS = 30_000_000_000  # flows.orient.tie_connectionless_rpc's tolerance
MERGE_ROWS = 50_000  # merge the pending partials into the store once they reach this


@dataclass
class FilePartial:
    """What one capture file contributes, before it is merged with the other files of a set."""

    info: CaptureFile
    parts: pd.DataFrame  # flows.partial.PARTIAL_COLUMNS
    candidates: pd.DataFrame  # candidates.CANDIDATE_COLUMNS
    quotes: pd.DataFrame  # flows.partial.ICMP_QUOTE_COLUMNS
    first_ts_ns: int = BIG  # earliest and latest IP packet time
    last_ts_ns: int = -BIG
    ordered: bool = True  # chunks came in time order (else only a full sort is exact)
    notes: dict[str, str] = field(default_factory=dict)  # the reader's warning texts
    warnings: list[str] = field(default_factory=list)  # notes that are not skips


def empty_quotes() -> pd.DataFrame:
    """An ICMP-quote frame with no rows."""
    return pd.DataFrame({c: np.zeros(0, bool if c == "err_v6" else np.int64)
                         for c in ICMP_QUOTE_COLUMNS})


class _Folder:
    """The running state of one file: pending and merged partials, candidates, fragments."""

    def __init__(self, flow_options: FlowOptions, rpc_options: RpcOptions):
        self.flow_options, self.rpc_options = flow_options, rpc_options
        self.store = PartialStore(flow_options, rpc_options)
        self.pending: list[pd.DataFrame] = []
        self.pending_rows = 0
        self.cands: list[pd.DataFrame] = []  # candidates of the pending partials
        self.quotes: list[pd.DataFrame] = []
        self.frag_firsts: pd.DataFrame | None = None
        self.cl_requests: pd.DataFrame | None = None  # connectionless RPC requests, last 30 s
        self.rows = 0
        self.last_ts = -BIG
        self.first_ts = BIG
        self.ordered = True

    def add(self, out: dict[str, np.ndarray], errs: dict[str, np.ndarray]) -> None:
        n = len(out["ts_ns"])
        if n == 0:
            return
        ts = out["ts_ns"] = fill_untimed(out["ts_ns"],
                                         self.last_ts if self.last_ts > -BIG else None)
        if ts.min() < self.last_ts:
            self.ordered = False
        order = None
        if n > 1 and (ts[1:] < ts[:-1]).any():
            order = np.argsort(ts, kind="stable")
        cols = {k: (v[order] if order is not None else v) for k, v in out.items()}
        self.first_ts = min(self.first_ts, int(cols["ts_ns"][0]))
        self.last_ts = max(self.last_ts, int(cols["ts_ns"][-1]))
        self._fragment_ports(cols)
        self._tie_connectionless_rpc(cols)
        pid = np.arange(self.rows, self.rows + n, dtype=np.int64)
        parts, row_part = fold_chunk_columns(cols, pid, self.flow_options)
        self._quotes(out, errs, order, pid)
        pay = np.flatnonzero((cols["payload_len"] > 0) & np.isin(cols["proto"], (6, 17))
                             ) if self.rpc_options.candidates else ()
        if len(pay):
            self.cands.append(chunk_candidates(cols, pay, pid, row_part, parts, self.rpc_options,
                                               self.store.pairs, _CAND_NAMES))
        self.rows += n
        self.pending.append(parts)
        self.pending_rows += len(parts["pid"])
        if self.pending_rows > MERGE_ROWS:
            self.merge()

    def _fragment_ports(self, cols: dict[str, np.ndarray]) -> None:
        """Give non-first fragments the ports of the last first fragment seen (same id)."""
        first = (cols["frag_offset"] == 0) & cols["more_fragments"]
        if first.any():
            new = pd.DataFrame({c: cols[c][first] for c in _FRAG_KEY + ["src_port", "dst_port"]})
            known = new if self.frag_firsts is None else pd.concat([self.frag_firsts, new])
            self.frag_firsts = known.drop_duplicates(_FRAG_KEY, keep="last", ignore_index=True)
        later = np.flatnonzero(cols["frag_offset"] != 0)
        if not len(later) or self.frag_firsts is None:
            return
        rows = pd.DataFrame({c: cols[c][later] for c in _FRAG_KEY}).merge(
            self.frag_firsts, on=_FRAG_KEY, how="left")
        found = rows["src_port"].notna().to_numpy()
        for c in ("src_port", "dst_port"):
            col = cols[c].copy()
            col[later[found]] = rows[c].to_numpy()[found].astype(col.dtype)
            cols[c] = col

    def _tie_connectionless_rpc(self, cols: dict[str, np.ndarray]) -> None:
        """As build_flows: CL DCE/RPC answers from another port go to their request's flow.

        The requests of the last 30 s (the tie's window) are carried from chunk to chunk.
        """
        maybe = (cols["proto"] == 17) & ((cols["payload_head"] >> 24) == 4)
        if not maybe.any() and self.cl_requests is None:
            return
        cur = pd.DataFrame({c: cols[c] for c in _CL_COLUMNS})
        pk = cur if self.cl_requests is None else pd.concat([self.cl_requests, cur],
                                                             ignore_index=True)
        codes, _, _ = _address_codes(pk)
        m, n = len(pk), len(cur)
        sport = pk["src_port"].to_numpy().astype(np.int64)
        tied = tie_connectionless_rpc(pk, codes[:m], codes[m:], sport,
                                      pk["dst_port"].to_numpy().astype(np.int64))
        cols["src_port"] = tied[m - n:].astype(cols["src_port"].dtype)
        head = pk["payload_head"].to_numpy().astype(np.int64)
        ts = pk["ts_ns"].to_numpy()
        keep = ((pk["proto"].to_numpy() == 17) & ((head >> 24) == 4)
                & np.isin((head >> 16) & 0xFF, _DCE_CL_CLIENT) & (ts >= ts.max() - _CL_WINDOW_NS))
        self.cl_requests = pk[keep].reset_index(drop=True) if keep.any() else None

    def _quotes(self, out, errs, order, pid) -> None:
        if not len(errs["packet_index"]):
            return
        at = errs["packet_index"]
        self.quotes.append(pd.DataFrame({
            "src_ip_hi": errs["inner_src_ip_hi"], "src_ip_lo": errs["inner_src_ip_lo"],
            "dst_ip_hi": errs["inner_dst_ip_hi"], "dst_ip_lo": errs["inner_dst_ip_lo"],
            "proto": errs["inner_proto"].astype(np.int64),
            "src_port": errs["inner_src_port"].astype(np.int64),
            "dst_port": errs["inner_dst_port"].astype(np.int64),
            "ts_ns": out["ts_ns"][at].astype(np.int64),
            "err_type": errs["icmp_type"].astype(np.int64),
            "err_code": errs["icmp_code"].astype(np.int64),
            "err_v6": out["ip_version"][at] == 6,
        }))

    def merge(self) -> None:
        """Merge the pending partials into the store."""
        if not self.pending:
            return
        parts = concat_columns(self.pending)
        cands = [c for c in self.cands if len(c)]
        cands = (cands[0] if len(cands) == 1 else pd.concat(cands, ignore_index=True)) if cands \
            else empty_candidates()
        self.pending, self.pending_rows, self.cands = [], 0, []
        self.store.add(parts, cands)


def read_file_partial(path: str, flow_options: FlowOptions | None = None,
                      rpc_options: RpcOptions | None = None,
                      chunk_bytes: int | None = None, byte_range=None,
                      observe=None, keep=None) -> FilePartial:
    """Stream one capture file into its partial aggregates (pids counted from 0).

    `byte_range` (a `capture.split.ByteRange`) reads only those records; `observe` sees each
    decoded chunk's columns before they are folded (`engine.ranges` checks a range's edges);
    `keep` filters them first (`engine.window`: --since/--until).
    """
    folder = _Folder(flow_options or FlowOptions(), rpc_options or RpcOptions())
    from pathlib import Path

    p = Path(path)
    with RecordReader(p) as reader:
        if byte_range is not None:
            byte_range.apply(reader)
        non_ip, tunnelled, skipped = 0, 0, Counter()
        for chunk in reader.chunks(chunk_bytes):
            out, errs, chunk_non_ip, chunk_skipped, chunk_tunnelled = decode_chunk(chunk)
            out["file_index"] = np.zeros(len(out["ts_ns"]), np.uint16)
            _record_spans(out, chunk, reader)
            if keep is not None:
                out, errs = keep(out, errs)
            if observe is not None:
                observe(out)
            folder.add(out, errs)
            non_ip += chunk_non_ip
            tunnelled += chunk_tunnelled
            skipped.update(chunk_skipped)
        skipped.update(reader.skipped)
        info = CaptureFile(path=str(path), name=p.name, format=reader.format,
                           records=reader.records, ip_packets=folder.rows, non_ip=non_ip,
                           skipped=dict(skipped), first_ts_ns=reader.first_ts_ns,
                           last_ts_ns=reader.last_ts_ns, tunnelled=tunnelled)
        notes = dict(reader.notes)
        texts = list(reader.warnings)
    folder.merge()
    parts, cands = folder.store.finish()
    quotes = pd.concat(folder.quotes, ignore_index=True) if folder.quotes else empty_quotes()
    return FilePartial(info=info, parts=parts, candidates=cands[CANDIDATE_COLUMNS],
                       quotes=quotes, first_ts_ns=folder.first_ts, last_ts_ns=folder.last_ts,
                       ordered=folder.ordered, notes=notes, warnings=texts)


def _record_spans(out: dict[str, np.ndarray], chunk, reader: RecordReader) -> None:
    """Where each row's captured bytes lie in the file (rec_off, rec_len), so the packets tshark
    dissects are read from there instead of walking the file again; UNKNOWN where the bytes are
    not the file's own (compressed, converted to pcapng, or a member of an archive)."""
    n = len(out["ts_ns"])
    src = reader._src
    if isinstance(src, MappedSource) and not reader.converted_from and n:
        k = out["record_index"].astype(np.int64) - chunk.first_index
        out["rec_off"] = chunk.data_off[k] + src.base
        out["rec_len"] = chunk.caplen[k].astype(np.int64)
    else:
        out["rec_off"] = np.full(n, UNKNOWN, np.int64)
        out["rec_len"] = np.zeros(n, np.int64)


def rebase(fp: FilePartial, file_index: int, path: str | None = None) -> FilePartial:
    """Move a file's packet numbers to its place in a set (file_index), optionally renamed."""
    if file_index == 0 and path is None:
        return replace(fp)  # numbers already count from 0: a shallow copy, no frame copied
    shift = np.int64(file_index) << FILE_SHIFT
    parts = fp.parts.copy()
    parts["pid"] = parts["pid"] + shift
    for c in position_columns(parts):
        col = parts[c].to_numpy()
        parts[c] = np.where(col < BIG, col + shift, BIG)
    parts["file_index"] = file_index
    cands = fp.candidates.copy()
    cands["pid"] = cands["pid"] + shift
    cands["part"] = cands["part"] + shift
    cands["file_index"] = np.full(len(cands), file_index, np.uint16)
    info = fp.info
    if path is not None:
        from pathlib import Path

        info = replace(info, path=str(path), name=Path(path).name)
    return replace(fp, info=info, parts=parts, candidates=cands)
