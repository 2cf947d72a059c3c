"""A --since/--until window applied inside the fold: packets outside it are never folded.

`Window.keep` filters each decoded chunk's rows (and its ICMP errors) before `fileread` folds
them, as `capture.packets.read_packets` filters its whole table: records without a timestamp
(pcapng simple packet blocks) take the one of the record before them first, and rows outside
[since, until] are counted per file (`outside_window`). When a file starts with such records
and the chunk gives no timestamp before them, which one they borrow is not known yet (`unsure`):
the engine then reads the set as one sorted table, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from auditor.capture.records import NO_TS, fill_untimed
from auditor.engine.fileread import FilePartial, read_file_partial
from auditor.options import FlowOptions, RpcOptions


@dataclass
class Window:
    """Packets kept: since_ns <= ts <= until_ns (either bound may be None)."""

    since_ns: int | None
    until_ns: int | None
    outside: int = 0  # rows left out so far
    unsure: bool = False  # untimed records with no timestamp before them in their chunk
    _last_ts: int | None = None  # the last timestamp seen (for the next untimed record)

    def keep(self, out: dict[str, np.ndarray], errs: dict[str, np.ndarray]):
        """The chunk's rows (and ICMP errors) inside the window."""
        ts = out["ts_ns"]
        n = len(ts)
        if not n:
            return out, errs
        if self._last_ts is None and ts[0] == NO_TS:  # which one they borrow is not known
            self.unsure = True
        ts = out["ts_ns"] = fill_untimed(ts, self._last_ts)
        self._last_ts = int(ts[-1])
        mask = np.ones(n, bool)
        if self.since_ns is not None:
            mask &= ts >= self.since_ns
        if self.until_ns is not None:
            mask &= ts <= self.until_ns
        if mask.all():
            return out, errs
        self.outside += int(n - mask.sum())
        out = {k: v[mask] for k, v in out.items()}
        at = errs["packet_index"]
        if len(at):
            kept = mask[at]
            errs = {k: v[kept] for k, v in errs.items()}
            errs["packet_index"] = (np.cumsum(mask) - 1)[errs["packet_index"]].astype(
                at.dtype)
        return out, errs


def read_file(path: str, flow_options: FlowOptions | None = None,
              rpc_options: RpcOptions | None = None, chunk_bytes: int | None = None,
              window: tuple[int | None, int | None] | None = None, byte_range=None,
              observe=None) -> FilePartial:
    """read_file_partial, of the packets inside `window` (since_ns, until_ns) when given.

    The file's `ip_packets` still counts every IP packet read, `outside_window` those left out
    (as read_packets counts them); a file whose untimed records could not be placed is marked
    not `ordered`, so the engine reads the set as one sorted table.
    """
    if window is None:
        return read_file_partial(path, flow_options, rpc_options, chunk_bytes,
                                 byte_range=byte_range, observe=observe)
    w = Window(*window)
    fp = read_file_partial(path, flow_options, rpc_options, chunk_bytes, byte_range=byte_range,
                           observe=observe, keep=w.keep)
    info = replace(fp.info, ip_packets=fp.info.ip_packets + w.outside, outside_window=w.outside)
    return replace(fp, info=info, ordered=fp.ordered and not w.unsure)


def kept_rows(fp: FilePartial) -> int:
    """The IP packets a file's partial was folded from (those inside the window)."""
    return fp.info.ip_packets - fp.info.outside_window


__all__ = ["Window", "kept_rows", "read_file"]
