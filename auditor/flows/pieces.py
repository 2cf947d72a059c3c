"""Merged partials finished into the flow table a piece at a time.

Only `orient.listener_keys` needs every flow at once: it is computed first, in one pass over
the partials that keeps two int8 facts per flow. Every other column of a flow depends on that
flow alone, so the table is made in pieces of consecutive flows (`FlowPieces.pieces`), each
gathered from the partials, and written piece by piece (`render.csv_file.write_csv_pieces`):
peak memory is the partials plus one piece, not the partials plus the whole table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from multiprocessing import get_context

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from auditor.flows import conn
from auditor.flows.build import (
    initiator_facts,
    orient_rows,
    shared_of,
)
from auditor.flows.orient import listener_keys, payload_matrix
from auditor.heap import give_back_memory
from auditor.processes import may_fork, usable_cores
from auditor.schema import FLOW_COLUMNS, empty_frame

PIECE_ROWS = 1 << 15  # flows per piece: a piece's temporaries are tens of MiB
# at most this many per piece made in threads: those in flight hold their temporaries at once
THREAD_PIECE_ROWS = 1 << 14

KEY = ["a_hi", "a_lo", "b_hi", "b_lo", "a_port", "b_port", "proto_num"]
# the partials' columns a piece reads (besides the address codes made here)
_PIECE_COLUMNS = ["a_port", "b_port", "proto_num", "file_index", "first_dir", "icmp_type0",
                  "icmp_code0", "fin", "packets0", "packets1", "bytes0", "bytes1", "payload0",
                  "payload1", "synack0", "synack1", "rst0", "rst1", "first_ns", "last_ns",
                  "syn_dir", "head0", "head1"]
_HEADS = [[f"{name}{side}" for name in ("head", "b4_", "b12_", "b20_", "hlen")] for side in (0, 1)]
_REFUSABLE = ("unanswered", "udp_unanswered", "rejected")
# every column of the partials FlowPieces reads (a store's last use keeps only these); the
# REFUSAL_INPUTS only when an ICMP error may refuse a flow (`_refusals`): a set without ICMP
# errors may leave them out
REFUSAL_INPUTS = ["first_ns0", "first_ns1"]
PARTIAL_INPUTS = list(dict.fromkeys(_PIECE_COLUMNS + KEY + sum(_HEADS, []) + ["pid"]
                                    + REFUSAL_INPUTS))


class FlowPieces:
    """The flow table of merged partials, made a piece of consecutive flows at a time.

    `parts` are merge_partials' rows (each conversation's rows together, in time order); the
    flows come in order of their conversation's first packet, then by time (as build_flows).
    `flow_ids[i]` is the flow of partial row i. The partials are read, never changed.
    """

    def __init__(self, parts: pd.DataFrame, files, errs: pd.DataFrame | None = None,
                 piece_rows: int = PIECE_ROWS, widths: dict | None = None):
        self.piece_rows = max(1, int(piece_rows))
        # columns that may come narrower than they compute in (counts stored in the smallest
        # type that holds them): cast as each slice is gathered, never the whole column, so
        # the finish holds the partials as stored (about 60 bytes a flow less, also in forks)
        self.widths = dict(widths or {})
        self.workers: int | None = None  # threads or processes `mapped` uses (None: the cores)
        # Zeek's conn.log facts when the partials carry them (FlowOptions.zeek): each piece then
        # has conn.RECORD_COLUMNS after the flow table's
        self.zeek = all(c in parts for c in conn.CONN_COLUMNS)
        self.columns = {c: parts[c].to_numpy() for c in PARTIAL_INPUTS
                        + (conn.CONN_COLUMNS if self.zeek else [])
                        if errs is not None or c not in REFUSAL_INPUTS}
        cols = self.columns
        n = self.rows = len(parts)
        change = np.zeros(n, bool)
        if n:
            change[0] = True
            for k in KEY:
                change[1:] |= cols[k][1:] != cols[k][:-1]
        pid = cols["pid"]
        conv_first = pid[np.maximum.accumulate(np.where(change, np.arange(n), 0))]
        self.order = np.lexsort((pid, conv_first))  # flow i is partial row order[i]
        del change, conv_first
        self.flow_ids = np.empty(n, np.int64)
        self.flow_ids[self.order] = np.arange(n, dtype=np.int64)
        self.refused = self._refusals(errs)
        self.files = files
        self.shared = None  # made with the listener facts before the first piece (`_prepare`)

    def _prepare(self) -> None:
        """The one fact that needs every flow, made once before the first piece: who listens
        where, from two int8 facts per flow (`initiator_facts`) and the sorted listener keys.

        The facts are made a slice of rows at a time (their temporaries stay a piece's), in
        threads beside this one while it numbers the addresses (`_facts_everywhere`).
        """
        if self.shared is not None:
            return
        n = self.rows
        self.handshake = np.empty(n, np.int8)
        self.evidence = np.empty(n, np.int8)
        addr_hi, addr_lo = self._facts_everywhere(self.bounds())
        cols = self.columns
        keys = []
        for lo_row, hi_row in self.bounds():
            rows = slice(lo_row, hi_row)
            f = {c: cols[c][rows] for c in ("proto_num", "a_port", "b_port", "a_code", "b_code")}
            keys.append(listener_keys(f, self.handshake[rows], self.evidence[rows]))
        known = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
        self.shared = shared_of(addr_hi, addr_lo, self.files, known)
        for k in ("a_hi", "a_lo", "b_hi", "b_lo"):  # the codes stand for them now
            del cols[k]

    def _facts_everywhere(self, bounds) -> tuple[np.ndarray, np.ndarray]:
        """Fill handshake/evidence of every slice in `bounds`, in `workers` threads beside this
        one; return `_number_addresses`', made meanwhile in this thread."""
        helpers = min((self.workers or usable_cores()) - 1, len(bounds))
        if helpers < 1 or len(bounds) < 2:
            for lo_row, hi_row in bounds:
                self._facts_into(lo_row, hi_row)
            return self._number_addresses()
        with ThreadPoolExecutor(helpers, thread_name_prefix="auditor-facts") as pool:
            # each slice writes its own rows of handshake/evidence; the addresses are numbered
            # here meanwhile (columns the facts do not read)
            futures = [pool.submit(self._facts_into, *b) for b in bounds]
            try:
                addresses = self._number_addresses()
            except BaseException:  # an interrupt: the slices not begun are not made
                for future in futures:
                    future.cancel()
                raise
            for future in futures:
                future.result()
        return addresses

    def _facts(self, lo_row: int, hi_row: int) -> tuple[np.ndarray, np.ndarray]:
        """`initiator_facts` (int8 handshake and evidence) of partial rows lo_row .. hi_row - 1."""
        rows = slice(lo_row, hi_row)
        f = {c: self._gather(c, rows) for c in ("proto_num", "a_port", "b_port", "first_dir",
                                                 "syn_dir", "synack0", "synack1", "icmp_type0")}
        return initiator_facts(f, self._heads(rows))

    def _facts_into(self, lo_row: int, hi_row: int) -> None:
        self.handshake[lo_row:hi_row], self.evidence[lo_row:hi_row] = self._facts(lo_row, hi_row)

    def _number_addresses(self) -> tuple[np.ndarray, np.ndarray]:
        """Number every distinct address (a_code, b_code: the same codes in every piece);
        return each code's address halves."""
        cols = self.columns
        n = self.rows
        hi = np.concatenate([cols["a_hi"], cols["b_hi"]]).astype(np.uint64, copy=False)
        if n and hi.min() == hi.max():  # one upper half (IPv4 only, say): the lower ones say it
            del hi
            codes, lo_uniq = pd.factorize(np.concatenate([cols["a_lo"], cols["b_lo"]]))
            addr_lo = np.asarray(lo_uniq, np.uint64)
            addr_hi = np.full(len(addr_lo), cols["a_hi"][0], np.uint64)
        else:
            hi_codes, hi_uniq = pd.factorize(hi)
            del hi
            lo_codes, lo_uniq = pd.factorize(np.concatenate([cols["a_lo"], cols["b_lo"]]))
            codes, pairs = pd.factorize(hi_codes.astype(np.int64) * len(lo_uniq) + lo_codes)
            del hi_codes, lo_codes
            pairs = np.asarray(pairs, np.int64)
            addr_hi = np.asarray(hi_uniq, np.uint64)[pairs // len(lo_uniq)]
            addr_lo = np.asarray(lo_uniq, np.uint64)[pairs % len(lo_uniq)]
        width = np.int32 if len(addr_lo) < 1 << 31 else np.int64
        cols["a_code"], cols["b_code"] = codes[:n].astype(width), codes[n:].astype(width)
        return addr_hi, addr_lo

    def __len__(self) -> int:
        return self.rows

    def _gather(self, column: str, rows) -> np.ndarray:
        """The column's values at `rows`, in the type it computes in (`widths`)."""
        values = self.columns[column][rows]
        wide = self.widths.get(column)
        return values if wide is None else values.astype(wide, copy=False)

    def _heads(self, rows) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per canonical side: the (rows, 28) first payload bytes and that packet's length."""
        cols = self.columns
        return [(payload_matrix(*(cols[c][rows] for c in names[:4])),
                 cols[names[4]][rows].astype(np.int64)) for names in _HEADS]

    def piece(self, start: int, stop: int) -> pd.DataFrame:
        """Flows start .. stop - 1 of the table (schema.FLOW_COLUMNS)."""
        self._prepare()
        rows = self.order[start:stop]
        f = {c: self._gather(c, rows) for c in _PIECE_COLUMNS + ["a_code", "b_code"]}
        facts = self.handshake[rows], self.evidence[rows]
        flows = orient_rows(f, self._heads(rows), facts, self.shared, first_id=start)
        flows = self._refuse(flows, start, stop)
        return self._conn_records(flows, f, rows) if self.zeek else flows

    def _conn_records(self, flows: pd.DataFrame, f: dict, rows) -> pd.DataFrame:
        """The piece with Zeek's conn_state, history and per-side IP bytes (conn.records): the
        flow's src is the originator, so side a is where it is src's address and port."""
        f = {**f, **{c: self.columns[c][rows] for c in conn.CONN_COLUMNS}}
        src = pa.array(flows["src_ip"].array, pa.string())
        # (an ICMP flow's ports are 0 in the table, its exchange in the partials)
        icmp = np.isin(np.asarray(f["proto_num"]), (1, 58))
        a_orig = (((flows["src_port"].to_numpy() == f["a_port"]) | icmp)
                  & pc.equal(src, self.shared.addresses.take(pa.array(f["a_code"], pa.int64())))
                  .to_numpy(zero_copy_only=False))
        return flows.assign(**conn.records(f, a_orig))

    def time_span(self) -> tuple[int, int]:
        """The first and last packet time of all flows (ns; 0, 0 without flows)."""
        if not self.rows:
            return 0, 0
        return int(self.columns["first_ns"].min()), int(self.columns["last_ns"].max())

    def pieces(self) -> Iterator[pd.DataFrame]:
        """The table as consecutive pieces of at most piece_rows flows (none when empty)."""
        for start, stop in self.bounds():
            yield self.piece(start, stop)

    def mapped(self, fn: Callable[[pd.DataFrame, bool], object],
               workers: int | None = None, threads: bool = False) -> Iterator:
        """fn(piece, first) of each piece in order (first: True for the first piece).

        On several cores (`workers`, else self.workers, else the cores this process may use) the
        pieces are made a few ahead of the one handed out, by one of two means:
        - `threads=True`, for an `fn` whose work numpy and Arrow do (a piece's CSV bytes):
          threads of this process, reading the partials where they are, while
          numpy and Arrow release the GIL. On the 1M-packet benchmark capture's 107k flows, CSV
          took two forked processes 0.21-0.27 s, one thread 0.14-0.16 s and two threads
          0.08-0.16 s. Those pieces are of at most THREAD_PIECE_ROWS flows: the pieces in
          flight (made in each thread, and the next to hand out) hold their temporaries at
          once, and at 32k flows each the 10 GB ring set's parent rose to 474-488 MiB (sampled)
          while writing them, at 16k to 434-450, in the same time (the 1M-packet capture: the
          same wall time, 218-224 -> 205-206 MiB). Every `workers` pieces the heap the threads
          freed is handed back (`heap.give_back_memory`): each thread's malloc heap keeps what
          it freed, and the 10 GB ring set's parent grew by 150 MiB while writing its pieces
          (40-90 MiB with the trims).
        - else, for an `fn` that is Python's own work (JSON records, conn.log lines), which
          threads would only take turns at: worker processes forked from this one, which read
          the partials copy-on-write; `fn` (a module-level function) turns each piece into
          what comes back here. (Threads made the JSON of those 107k flows in 2.7 s instead of
          1.9 s, at 559 MiB instead of 305.) One process where forking is not safe.
        `fn` must not change what other pieces read.
        """
        self._prepare()
        bounds = self.bounds(min(self.piece_rows, THREAD_PIECE_ROWS) if threads else None)
        workers = min(workers or self.workers or usable_cores(), len(bounds))
        if workers <= 1 or not (threads or may_fork()):
            for start, stop in bounds:
                yield fn(self.piece(start, stop), start == 0)
            return
        if threads:
            yield from self._in_threads(fn, bounds, workers)
            return
        global _FORKED
        _FORKED = self  # what the forked workers find (fork copies it)
        try:
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                todo = iter(bounds)
                ahead = deque(pool.submit(_forked_piece, fn, *b) for b in islice(todo, 2 * workers))
                while ahead:
                    result = ahead.popleft().result()
                    ahead.extend(pool.submit(_forked_piece, fn, *b) for b in islice(todo, 1))
                    yield result
                    del result
        finally:
            _FORKED = None

    def _in_threads(self, fn, bounds, workers: int) -> Iterator:
        """`mapped`'s pieces made in `workers` threads, in order."""
        def make(start: int, stop: int):
            return fn(self.piece(start, stop), start == 0)

        pool = ThreadPoolExecutor(workers, thread_name_prefix="auditor-piece")
        try:
            todo = iter(bounds)
            ahead = deque(pool.submit(make, *b) for b in islice(todo, workers + 1))
            made = 0
            while ahead:
                result = ahead.popleft().result()
                ahead.extend(pool.submit(make, *b) for b in islice(todo, 1))
                yield result
                del result
                made += 1
                if made % workers == 0:
                    give_back_memory()
        finally:  # a consumer that stops (an error, an interrupt) waits only for pieces begun
            pool.shutdown(wait=True, cancel_futures=True)

    def bounds(self, piece_rows: int | None = None) -> list[tuple[int, int]]:
        """(start, stop) of each piece: as few as pieces of `piece_rows` (else self.piece_rows)
        allow, of equal sizes (one row apart), so that workers making them in turn finish
        together (4 x 26,844 flows on 2 workers, not 3 x 32,768 and a last 9,072 one worker
        makes while the other waits)."""
        count = -(-self.rows // (piece_rows or self.piece_rows))
        return [(self.rows * k // count, self.rows * (k + 1) // count) for k in range(count)]

    def frame(self) -> pd.DataFrame:
        """The whole flow table as one frame, made a piece at a time and joined a column at a
        time: one piece of every flow would hold the intermediate arrays of every flow beside
        the table (about 560 bytes a flow: 890 MiB more for the 1.58M flows of the 10 GB ring
        set); text columns join as Arrow chunks, without a copy."""
        if not self.rows:
            return empty_frame(FLOW_COLUMNS)
        # in this thread: pieces made in threads at once would each hold their temporaries
        # beside the table growing here, and at a size that keeps those to one piece's they
        # were no faster (1M-packet capture: 0.078-0.089 s in two threads, 0.077-0.085 in one)
        pieces = list(self.pieces())
        if len(pieces) == 1:
            return pieces[0]
        columns = list(pieces[0].columns)
        return pd.DataFrame({c: pd.concat([p.pop(c) for p in pieces], ignore_index=True)
                             for c in columns}, copy=False)

    def _refusals(self, errs: pd.DataFrame | None) -> pd.DataFrame | None:
        """The ICMP unreachables that refuse a flow: flow_id, err_type, err_code (by flow_id).

        `errs` are partial.quoted_errors' (KEY, dir, ts_ns, err_type, err_code, err).

        An error refuses the latest flow of the conversation it quotes that had sent that way
        before it, if that flow is refusable (`_refuse` checks its state, piece by piece).
        """
        if errs is None or errs.empty or not self.rows:
            return None
        cols = self.columns
        # only the partials of a quoted conversation's ports: a few rows, not the table
        near = np.flatnonzero(np.isin(cols["a_port"], errs["a_port"].unique())
                              & np.isin(cols["b_port"], errs["b_port"].unique()))
        cand = pd.DataFrame({**{c: self._gather(c, near) for c in KEY},
                             "first_ns0": self._gather("first_ns0", near),
                             "first_ns1": self._gather("first_ns1", near),
                             "flow_id": self.flow_ids[near]})
        for c in KEY:
            errs[c] = errs[c].astype(cand[c].dtype)
        joined = errs.merge(cand, on=KEY, how="inner")
        if joined.empty:
            return None
        sent_at = np.where(joined["dir"].to_numpy(), joined["first_ns1"], joined["first_ns0"])
        joined = joined[sent_at <= joined["ts_ns"].to_numpy()]
        # the latest flow of the conversation that had sent that way before the error
        matched = joined.sort_values(["err", "flow_id"]).drop_duplicates("err", keep="last")
        matched = matched.sort_values("err").drop_duplicates("flow_id", keep="first")
        if matched.empty:
            return None
        return matched[["flow_id", "err_type", "err_code"]].sort_values("flow_id",
                                                                        ignore_index=True)

    def _refuse(self, flows: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
        """Mark the piece's flows an ICMP unreachable refuses (as build_flows)."""
        r = self.refused
        if r is None:
            return flows
        ids = r["flow_id"].to_numpy()
        lo, hi = np.searchsorted(ids, [start, stop])
        if lo == hi:
            return flows
        mine = r.iloc[lo:hi]
        at = mine["flow_id"].to_numpy().astype(np.int64) - start
        refusable = flows["state"].isin(_REFUSABLE).to_numpy()[at]
        at, mine = at[refusable], mine[refusable]
        if not len(at):
            return flows
        flows = flows.copy()
        flows.loc[at, "state"] = "rejected"
        flows.loc[at, "icmp_type"] = mine["err_type"].to_numpy()
        flows.loc[at, "icmp_code"] = mine["err_code"].to_numpy()
        return flows


# the FlowPieces a forked worker of FlowPieces.mapped works on (set only around a pool)
_FORKED: FlowPieces | None = None


def _forked_piece(fn, start: int, stop: int):
    return fn(_FORKED.piece(start, stop), start == 0)
