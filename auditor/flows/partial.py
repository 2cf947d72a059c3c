"""Per-flow partial aggregates: fold chunks of packets, merge them associatively, finish the flows.

A chunk of packets (in time order) folds into *partials*: one row per (conversation, piece of a
flow) with sums, time bounds, first-of facts and the few TCP facts the port-reuse rule needs.
`merge_partials` joins the partials of neighbouring chunks or files, and merging is associative:
merging a merge of A and B with C gives what merging A, B and C at once gives. `finish_flows`
turns the merged partials into the flow table, identical to `build.build_flows` of all packets.

Why the rules are exact: a flow boundary inside a chunk is either certain from the chunk alone
(an idle gap, or a SYN after a FIN/RST that follows another SYN of the chunk), or depends on what
came before, which a partial's `kind` records: `1` continues whatever flow was open unless the
gap is too long; `2` starts with a pure SYN that opens a new flow only if the open flow saw a
FIN/RST since its last SYN (and the SYN is not a retry of that SYN's sequence number).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.flows import conn
from auditor.flows.build import (
    _NOT_A_REFUSAL_V4,
    ACK,
    FIN,
    RST,
    SYN,
    TCP,
    _flow_starts,
)
from auditor.flows.pieces import PARTIAL_INPUTS, REFUSAL_INPUTS, FlowPieces
from auditor.heap import give_back_memory
from auditor.options import FlowOptions

KEY = ["a_hi", "a_lo", "b_hi", "b_lo", "a_port", "b_port", "proto_num"]
BIG = np.iinfo(np.int64).max
CERTAIN, CONTINUES, SYN_DECIDES = 0, 1, 2
FILE_SHIFT = 40  # pid = file_index << 40 | packet row in the file: unique, ordered like time

_SUMS = ["packets0", "packets1", "bytes0", "bytes1", "payload0", "payload1", "synack0",
         "synack1", "rst0", "rst1", "fin", "closed_total"]
_FIRST = ["pid", "kind", "file_index", "first_dir", "icmp_type0", "icmp_code0", "first_seq",
          *KEY]
# Each direction's first payload packet: its first 28 bytes (as the packet table keeps them)
# and its length, which orientation reads.
_HEAD_FIELDS = {"head": "payload_head", "b4_": "payload_b4", "b12_": "payload_b12",
                "b20_": "payload_b20", "hlen": "payload_len"}
_HEADS = [f"{name}{side}" for side in (0, 1) for name in _HEAD_FIELDS]
# value column -> the column saying where it was seen (BIG = not yet): the first one wins
_FIRST_SEEN = {"syn_dir": "syn_pos",
               **{f"{name}{side}": f"head_pos{side}" for side in (0, 1) for name in _HEAD_FIELDS}}
PARTIAL_COLUMNS = (_FIRST + _SUMS + ["first_ns", "last_ns", "first_ns0", "first_ns1",
                                      "syn_pos", "head_pos0", "head_pos1", "syn_dir", *_HEADS,
                                      "has_syn", "last_syn_seq", "closed_tail", "has_bind"])
POSITION_COLUMNS = ("syn_pos", "head_pos0", "head_pos1")  # pids (BIG: none), moved by a rebase


def partial_columns(options: FlowOptions) -> list[str]:
    """The partials' columns under these options: with Zeek's conn.log facts
    (`flows.conn.CONN_COLUMNS`) only when `options.zeek` asks for them."""
    return PARTIAL_COLUMNS + conn.CONN_COLUMNS if options.zeek else PARTIAL_COLUMNS


def position_columns(parts) -> list[str]:
    """The columns of `parts` (a frame or a dict) holding pids, BIG for none: a rebase moves
    them with the pids."""
    return [*POSITION_COLUMNS, *(c for c in conn.AT_COLUMNS if c in parts)]


# Narrow types where values are small: the partials are most of the engine's memory.
_DTYPES = {"a_hi": np.uint64, "a_lo": np.uint64, "b_hi": np.uint64, "b_lo": np.uint64,
           "a_port": np.uint16, "b_port": np.uint16, "proto_num": np.uint8, "kind": np.int8,
           "file_index": np.int32, "first_dir": np.int8, "icmp_type0": np.uint8,
           "icmp_code0": np.uint8, "syn_dir": np.int8, "has_syn": bool, "has_bind": bool,
           "synack0": np.int32, "synack1": np.int32,
           "rst0": np.int32, "rst1": np.int32, "fin": np.int32, "closed_total": np.int32,
           "closed_tail": np.int32,
           **{f"{name}{side}": np.uint64 for side in (0, 1) for name in ("b4_", "b12_", "b20_")},
           **{f"{name}{side}": np.uint32 for side in (0, 1) for name in ("head", "hlen")}}


# Columns stored in the smallest unsigned type their values fit (a_hi, b_hi: 0 for IPv4; counts
# and byte sums of most flows fit 32 bits; file_index < 65536 files, which the engine enforces):
# about 60 of a partial's 268 bytes. The type follows the values, so it is never too small; a
# concatenation takes the wider type, `merge_partials` computes in the full types and
# `finish_pieces` gives the finish every column in its full type (`_DTYPES`; but for the few it
# casts itself, `finish_dtype`), so no result and none of the flow table's types change.
_NARROWED = ("a_hi", "b_hi", "file_index", "first_seq", "packets0", "packets1", "bytes0",
             "bytes1", "payload0", "payload1", "hlen0", "hlen1", "synack0", "synack1", "rst0",
             "rst1", "fin", "closed_total", "closed_tail")
_UNSIGNED = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))


def partial_dtype(column: str) -> np.dtype:
    """A partial column's full type (what the finish reads; stored narrower when it fits)."""
    return np.dtype(_DTYPES.get(column, np.int64))


def _narrowest(values: np.ndarray, wide: np.dtype) -> np.dtype:
    """The smallest unsigned type holding every value, if narrower than `wide`."""
    if not len(values) or values.min() < 0:
        return wide
    top = values.max()
    for t in _UNSIGNED:
        if t.itemsize >= wide.itemsize:
            break
        if top <= np.iinfo(t).max:
            return t
    return wide


def _narrowed(columns: dict) -> dict[str, np.ndarray]:
    """The partials' columns in order, each in its narrow type (`_NARROWED`: by its values)
    and an array of its own (a frame of them, made with copy=False, is not copied into one 2-D
    block per type: a store's finish frees each column once copied)."""
    out = {}
    for c in (*PARTIAL_COLUMNS, *(c for c in conn.CONN_COLUMNS if c in columns)):
        values = np.asarray(columns[c])
        wide = partial_dtype(c)
        out[c] = values.astype(_narrowest(values, wide) if c in _NARROWED else wide, copy=False)
    return out


# columns the finish casts itself (flows.pieces: head lengths to int64, file_index as codes of
# the capture names): they reach it in their stored type; the other narrow ones are cast by
# FlowPieces a slice at a time (its `widths`)
_FINISH_AS_STORED = ("file_index", "hlen0", "hlen1")
_WIDENED_BY_PIECES = tuple(c for c in _NARROWED if c not in _FINISH_AS_STORED)


def finish_dtype(column: str, stored: np.dtype) -> np.dtype:
    """The type a partial column stored as `stored` is handed to the finish in: its full type
    (`partial_dtype`), but for those the finish casts itself (or a slice at a time)."""
    if column in _FINISH_AS_STORED or column in _WIDENED_BY_PIECES:
        return np.dtype(stored)
    return partial_dtype(column)


def finish_inputs(refusals: bool, zeek: bool = False) -> list[str]:
    """The partial columns the finish reads (`flows.pieces.PARTIAL_INPUTS`), without those only
    ICMP refusals read when no ICMP error came with the partials (`refusals=False`); with the
    conn.log facts under `FlowOptions.zeek` (`zeek=True`)."""
    return ([c for c in PARTIAL_INPUTS if refusals or c not in REFUSAL_INPUTS]
            + (conn.CONN_COLUMNS if zeek else []))


def finish_columns(parts: pd.DataFrame, columns) -> pd.DataFrame:
    """`parts`' `columns` each in its `finish_dtype`, copying only narrower ones."""
    return pd.DataFrame({c: parts[c].to_numpy().astype(finish_dtype(c, parts[c].dtype),
                                                       copy=False)
                         for c in columns}, copy=False)


ICMP_QUOTE_COLUMNS = ["src_ip_hi", "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "proto", "src_port",
                      "dst_port", "ts_ns", "err_type", "err_code", "err_v6"]


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Partials given as dicts of columns, as one (numpy's promotion of the types, as pandas'
    concat gives for numbers; merge_partials computes in the full types whatever they are)."""
    if len(parts) == 1:
        return parts[0]
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}


def empty_partials(options: FlowOptions | None = None) -> pd.DataFrame:
    """A partial-aggregate frame with no rows (with the columns these options fold)."""
    return pd.DataFrame(empty_partial_columns(options))


def empty_partial_columns(options: FlowOptions | None = None) -> dict[str, np.ndarray]:
    """empty_partials as a dict of columns."""
    return {c: np.zeros(0, _DTYPES.get(c, np.int64))
            for c in partial_columns(options or FlowOptions())}


def canonical(src_hi, src_lo, dst_hi, dst_lo, src_port, dst_port):
    """Side a is the smaller (address, port); return a, b halves and ports, and swap (= dir 1)."""
    swap = (src_hi > dst_hi) | ((src_hi == dst_hi) & (src_lo > dst_lo)) | (
        (src_hi == dst_hi) & (src_lo == dst_lo) & (src_port > dst_port))
    return (np.where(swap, dst_hi, src_hi), np.where(swap, dst_lo, src_lo),
            np.where(swap, src_hi, dst_hi), np.where(swap, src_lo, dst_lo),
            np.where(swap, dst_port, src_port), np.where(swap, src_port, dst_port), swap)


def bind_like(head: np.ndarray) -> np.ndarray:
    """A CO DCE/RPC bind or alter_context header (05 00|01 0b|0e) in a payload's first bytes."""
    head = np.asarray(head).astype(np.int64)
    ptype = (head >> 8) & 0xFF
    return ((head >> 24) == 5) & (((head >> 16) & 0xFF) <= 1) & ((ptype == 11) | (ptype == 14))


def _key_change(frame_cols: list[np.ndarray]) -> np.ndarray:
    """True where a row's key differs from the row before (and for the first row)."""
    n = len(frame_cols[0])
    change = np.zeros(n, bool)
    if n:
        change[0] = True
        for col in frame_cols:
            change[1:] |= col[1:] != col[:-1]
    return change


def _timeout_ns(proto: np.ndarray, options: FlowOptions) -> np.ndarray:
    # the same float expression as build._flow_starts, so both round alike
    return np.where(proto == TCP, options.tcp_idle_timeout_s * 1e9, options.udp_idle_timeout_s * 1e9)


def _conversation_order(a_hi, a_lo, b_hi, b_lo, a_port, b_port, proto):
    """Row order by KEY, stable (lexsort of the seven columns), and the keys that decide it.

    Fewer sort passes give the same order: the ports and protocol make one 40-bit key, a
    column that is the same in every row orders nothing, and when the upper halves of both
    addresses' low words are constant (IPv4-mapped addresses, say) their lower halves make
    one key.
    """
    ports = (a_port << 24) | (b_port << 8) | proto
    hi_same = all(len(c) == 0 or bool((c == c[0]).all()) for c in (a_hi, b_hi))
    top_a, top_b = a_lo >> np.uint64(32), b_lo >> np.uint64(32)
    if hi_same and bool((top_a == top_a[0]).all()) and bool((top_b == top_b[0]).all()):
        keys = [ports, (a_lo << np.uint64(32)) | (b_lo & np.uint64(0xFFFF_FFFF))]
    else:
        keys = [ports] + [c for c in (b_lo, b_hi, a_lo, a_hi) if not (c == c[0]).all()]
    return np.lexsort(keys), keys


def fold_chunk(cols: dict[str, np.ndarray], pid: np.ndarray,
               options: FlowOptions) -> tuple[pd.DataFrame, np.ndarray]:
    """Fold packet columns (time order, fragment ports filled) into partials.

    `pid` gives each packet its global order number. Returns the partials and, per packet, the
    pid of the partial it went into.
    """
    parts, row_part = fold_chunk_columns(cols, pid, options)
    return pd.DataFrame(parts, copy=False), row_part


def fold_chunk_columns(cols: dict[str, np.ndarray], pid: np.ndarray, options: FlowOptions
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """fold_chunk's result with the partials as a dict of columns (what a store keeps)."""
    n = len(pid)
    if n == 0:
        return empty_partial_columns(options), np.zeros(0, np.int64)
    src_port = cols["src_port"].astype(np.int64)
    dst_port = cols["dst_port"].astype(np.int64)
    a_hi, a_lo, b_hi, b_lo, a_port, b_port, swap = canonical(
        cols["src_ip_hi"], cols["src_ip_lo"], cols["dst_ip_hi"], cols["dst_ip_lo"],
        src_port, dst_port)
    proto = cols["proto"].astype(np.int64)
    order, sort_keys = _conversation_order(a_hi, a_lo, b_hi, b_lo, a_port, b_port, proto)
    change = _key_change([k[order] for k in sort_keys])
    conv = np.cumsum(change)
    ts = cols["ts_ns"][order]
    flags = cols["tcp_flags"].astype(np.int64)[order]
    pr = proto[order]
    seq = cols["tcp_seq"].astype(np.int64)[order]
    starts = _flow_starts(conv, ts, flags, pr, seq, options)

    # The first pure SYN of a conversation before any idle gap depends on the flow open before
    # this chunk: it starts a partial of its own whose fate the merge decides.
    pos = np.arange(n, dtype=np.int64)
    gap_start = np.zeros(n, bool)
    gap_start[1:] = ~change[1:] & (np.diff(ts) > _timeout_ns(pr[1:], options))
    pure_syn = (pr == TCP) & ((flags & (SYN | ACK)) == SYN)
    conv_first = np.maximum.accumulate(np.where(change, pos, 0))
    gaps = np.cumsum(gap_start)
    in_head = gaps == gaps[conv_first]
    syn_head = pure_syn & in_head
    syn_count = np.cumsum(syn_head)
    before = syn_count[conv_first] - syn_head[conv_first]
    decides = syn_head & (syn_count - before == 1)
    starts = starts | decides
    bounds = np.flatnonzero(starts)
    kind = np.where(decides[bounds], SYN_DECIDES, np.where(change[bounds], CONTINUES, CERTAIN))
    part_of = np.cumsum(starts) - 1

    d1 = swap[order].astype(np.int64)
    d0 = 1 - d1
    frame_len = cols["frame_len"].astype(np.int64)[order]
    payload = cols["payload_len"].astype(np.int64)[order]
    gpid = pid[order]
    first_rows = order[bounds]
    syn_ack = (pr == TCP) & ((flags & (SYN | ACK)) == (SYN | ACK))
    fin_rst = ((pr == TCP) & ((flags & (FIN | RST)) != 0)).astype(np.int64)

    def total(values):
        return np.add.reduceat(values, bounds)

    def split(values):  # (sum over direction 0, sum over direction 1) of each partial
        one = total(values * d1)
        return total(values) - one, one

    def first_at(mask):
        return np.minimum.reduceat(np.where(mask, pos, BIG), bounds)

    syn_at = first_at(pure_syn)
    last_syn = np.maximum.reduceat(np.where(pure_syn, pos, -1), bounds)
    closed_cum = np.cumsum(fin_rst)
    ends = np.r_[bounds[1:], n] - 1
    has_syn = last_syn >= 0
    ls = np.maximum(last_syn, 0)
    tail = np.where(has_syn, closed_cum[ends] - (closed_cum[ls] - fin_rst[ls]), total(fin_rst))
    has_payload = payload > 0
    counts = np.diff(np.r_[bounds, n])
    packets1 = total(d1)
    out = {
        "pid": gpid[bounds], "kind": kind.astype(np.int64),
        "file_index": cols["file_index"][first_rows].astype(np.int64),
        "first_dir": d1[bounds], "icmp_type0": cols["icmp_type"][first_rows].astype(np.int64),
        "icmp_code0": cols["icmp_code"][first_rows].astype(np.int64),
        "first_seq": seq[bounds],
        **{name: k[first_rows] for name, k in zip(KEY, (a_hi, a_lo, b_hi, b_lo, a_port,
                                                          b_port, proto), strict=True)},
        "packets0": counts - packets1, "packets1": packets1,
        **dict(zip(("bytes0", "bytes1"), split(frame_len), strict=True)),
        **dict(zip(("payload0", "payload1"), split(payload), strict=True)),
        **dict(zip(("synack0", "synack1"), split(syn_ack.astype(np.int64)), strict=True)),
        **dict(zip(("rst0", "rst1"), split((((flags & RST) != 0) & (pr == TCP)).astype(np.int64)),
                   strict=True)),
        "fin": total(((flags & FIN) != 0) & (pr == TCP)),
        "closed_total": total(fin_rst),
        "first_ns": ts[bounds], "last_ns": np.maximum.reduceat(ts, bounds),
        "first_ns0": np.minimum.reduceat(np.where(d0 == 1, ts, BIG), bounds),
        "first_ns1": np.minimum.reduceat(np.where(d1 == 1, ts, BIG), bounds),
    }
    # (value column, unsorted) per first-of column: gathered at the few rows that are first
    firsts = {"syn_pos": (syn_at, {"syn_dir": (swap.astype(np.int64), -1)})}
    for side, d in ((0, d0), (1, d1)):
        firsts[f"head_pos{side}"] = (first_at(has_payload & (d == 1)), {
            f"{name}{side}": (cols[field], 0) for name, field in _HEAD_FIELDS.items()})
    for where, (at, values) in firsts.items():
        seen = at < BIG
        at = np.minimum(at, n - 1)
        out[where] = np.where(seen, gpid[at], BIG)
        row = order[at]
        for name, (value, missing) in values.items():
            out[name] = np.where(seen, value[row], missing).astype(_DTYPES.get(name, np.int64))
    out["has_syn"] = has_syn
    out["last_syn_seq"] = np.where(has_syn, seq[ls], -1)
    out["closed_tail"] = tail
    bind = bind_like(cols["payload_head"]) & (cols["payload_len"] > 0) & (cols["proto"] == TCP)
    out["has_bind"] = np.maximum.reduceat(bind[order].astype(np.int64), bounds) > 0
    if options.zeek:
        ip_bytes = frame_len - cols["l3_offset"].astype(np.int64)[order]
        out.update(conn.fold(flags, payload, pr, d1, gpid, ip_bytes, bounds))
    row_part = np.empty(n, np.int64)
    row_part[order] = gpid[bounds][part_of]
    return _narrowed(out), row_part


def merge_partials(parts: pd.DataFrame | dict[str, np.ndarray],
                   options: FlowOptions) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Merge partials (of any chunks, in any row order; a frame or a dict of columns) into as
    few as the rules allow.

    Returns the merged partials (sorted by conversation, then time) and the mapping from each
    input pid to the pid of the merged row it went into (two aligned arrays).
    """
    merged, old, new = merge_columns(parts, options)
    return pd.DataFrame(merged, copy=False), old, new


def merge_columns(parts: pd.DataFrame | dict[str, np.ndarray], options: FlowOptions
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """merge_partials' result with the merged partials as a dict of columns (what a store
    keeps: no frame is built and taken apart again at every merge)."""
    if not len(parts["pid"]):
        return empty_partial_columns(options), np.zeros(0, np.int64), np.zeros(0, np.int64)
    cols = {c: np.asarray(parts[c]) for c in partial_columns(options)}
    order = np.lexsort([cols["pid"]] + [cols[k] for k in reversed(KEY)])
    # in the full types (the stored ones may be narrower): every step computes as it always did
    cols = {c: a[order].astype(partial_dtype(c), copy=False) for c, a in cols.items()}
    n = len(order)
    idx = np.arange(n, dtype=np.int64)
    change = _key_change([cols[k] for k in KEY])
    kind = cols["kind"]
    gap = np.zeros(n, bool)
    gap[1:] = (cols["first_ns"][1:] - cols["last_ns"][:-1]) > _timeout_ns(cols["proto_num"][1:],
                                                                           options)
    hard = change | (kind == CERTAIN) | gap
    t = np.maximum.accumulate(np.where(hard, idx, -1))
    syn_idx = np.maximum.accumulate(np.where(cols["has_syn"], idx, -1))
    k = np.r_[-1, syn_idx[:-1]]
    ct = np.cumsum(cols["closed_total"])

    def upto(j):  # closed_total summed over rows [0, j]
        return np.where(j >= 0, ct[np.maximum(j, 0)], 0)

    kk = np.maximum(k, 0)
    anchored = k >= t
    closed = np.where(anchored, cols["closed_tail"][kk] + upto(idx - 1) - upto(kk),
                      upto(idx - 1) - upto(t - 1))
    retry = anchored & (cols["last_syn_seq"][kk] == cols["first_seq"])
    starts = hard | ((kind == SYN_DECIDES) & (closed > 0) & ~retry)
    bounds = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1

    out = {c: cols[c][bounds] for c in _FIRST}
    out["kind"] = np.where(change[bounds], kind[bounds], CERTAIN)
    for c in _SUMS:
        out[c] = np.add.reduceat(cols[c], bounds)
    out["first_ns"] = cols["first_ns"][bounds]
    out["last_ns"] = np.maximum.reduceat(cols["last_ns"], bounds)
    for c in ("first_ns0", "first_ns1"):
        out[c] = np.minimum.reduceat(cols[c], bounds)
    for value, at in _FIRST_SEEN.items():
        first = np.minimum.reduceat(np.where(cols[at] < BIG, idx, BIG), bounds)
        seen = first < BIG
        pick = np.minimum(first, n - 1)
        out[at] = np.where(seen, cols[at][pick], BIG)
        out[value] = np.where(seen, cols[value][pick], cols[value][bounds])
    # reuse state: the last SYN's sequence number, and FIN/RSTs since it (or since the start)
    last_syn = np.maximum.reduceat(np.where(cols["has_syn"], idx, -1), bounds)
    ends = np.r_[bounds[1:], n] - 1
    has = last_syn >= 0
    ls = np.maximum(last_syn, 0)
    out["has_syn"] = has
    out["last_syn_seq"] = np.where(has, cols["last_syn_seq"][ls], -1)
    out["closed_tail"] = np.where(has, cols["closed_tail"][ls] + upto(ends) - upto(ls),
                                  upto(ends) - upto(bounds - 1))
    out["has_bind"] = np.maximum.reduceat(cols["has_bind"].astype(np.int64), bounds) > 0
    if options.zeek:
        out.update(conn.merge(cols, bounds))
    return _narrowed(out), cols["pid"], out["pid"][group]


def finish_flows(parts: pd.DataFrame, files, options: FlowOptions,
                 quotes: pd.DataFrame | None = None,
                 merged: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    """The flow table (schema.FLOW_COLUMNS) from partials, and a Series pid -> flow_id.

    `files` are the CaptureFile records (their names fill `capture`); `quotes` the ICMP
    unreachables (ICMP_QUOTE_COLUMNS) that may refuse a flow. `merged=True` says `parts` is
    already the output of merge_partials (one file's partials), which saves a copy.
    """
    pieces, mapping = finish_pieces(parts, files, options, quotes, merged)
    return pieces.frame(), mapping


def finish_pieces(parts: pd.DataFrame, files, options: FlowOptions,
                  quotes: pd.DataFrame | None = None, merged: bool = False,
                  piece_rows: int | None = None) -> tuple[FlowPieces, pd.Series]:
    """finish_flows' table as `pieces.FlowPieces` (made a piece at a time), and the mapping."""
    if merged:
        old = new = parts["pid"].to_numpy()
    else:
        parts, old, new = merge_partials(parts, options)
    errs = quoted_errors(quotes)
    parts = finish_columns(parts, finish_inputs(errs is not None, options.zeek))  # in the finish's types
    pieces = FlowPieces(parts, files, errs,
                        **({} if piece_rows is None else {"piece_rows": piece_rows}),
                        widths={c: partial_dtype(c) for c in _WIDENED_BY_PIECES})
    del parts  # FlowPieces keeps what it reads
    give_back_memory()  # its passes' freed heap, before the pieces are made (maybe in forks)
    if new is old:  # the partials were merged already: the flow of row i is where i went
        return pieces, pd.Series(pieces.flow_ids, index=old)
    flow_of = pd.Series(pieces.flow_ids, index=pieces.columns["pid"])
    return pieces, pd.Series(flow_of.reindex(new).to_numpy(), index=old)


def quoted_errors(quotes: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ICMP unreachables (ICMP_QUOTE_COLUMNS) that may refuse a flow, keyed as partials
    are (KEY, and dir: the quoted packet's direction), in time order; None when there are none."""
    if quotes is None or not len(quotes):
        return None
    q = quotes.sort_values("ts_ns", kind="stable")
    q = q[~((~q["err_v6"].astype(bool)) & q["err_code"].isin(_NOT_A_REFUSAL_V4))]
    if q.empty:
        return None
    a_hi, a_lo, b_hi, b_lo, a_port, b_port, swap = canonical(
        q["src_ip_hi"].to_numpy(), q["src_ip_lo"].to_numpy(), q["dst_ip_hi"].to_numpy(),
        q["dst_ip_lo"].to_numpy(), q["src_port"].to_numpy().astype(np.int64),
        q["dst_port"].to_numpy().astype(np.int64))
    return pd.DataFrame({"a_hi": a_hi, "a_lo": a_lo, "b_hi": b_hi, "b_lo": b_lo,
                         "a_port": a_port, "b_port": b_port,
                         "proto_num": q["proto"].to_numpy().astype(np.int64), "dir": swap,
                         "ts_ns": q["ts_ns"].to_numpy(), "err_type": q["err_type"].to_numpy(),
                         "err_code": q["err_code"].to_numpy(), "err": np.arange(len(q))})
