"""Capture files that overlap in time, folded as one stream merged by timestamp (as mergecap).

A pilot records on several servers at once: their files cover the same hours, so no file can be
folded after another. Each file still streams chunk by chunk; a k-way merge emits, at each step,
every buffered packet older than the *watermark* (the newest timestamp every open file has
reached, and never past the first timestamp of a file not opened yet), stably sorted by time, so
the fold sees exactly the order of one sorted table of all packets (`capture.read_packets`:
time, then file order, then record order). Memory is the fold's state plus about one chunk per
open file; files open only when the watermark reaches them, so a time-ordered set (a ring, the
members of an archive) holds one at a time.

Exactness is checked, not assumed: a file whose chunks go back in time, a file that turns out to
start before packets already emitted, or records whose borrowed timestamp is not known yet raise
`NotStreamable`, and the engine reads the set as one sorted table instead.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from auditor.capture.bytesource import ArchiveCache, CaptureSource
from auditor.capture.headers import decode_chunk
from auditor.capture.packets import CaptureFile, _warn_skipped, open_or_skip
from auditor.capture.reader import RecordReader
from auditor.capture.records import NO_TS, fill_untimed
from auditor.capture.sets import Span, spans_of
from auditor.engine.candidates import CANDIDATE_COLUMNS, empty_candidates
from auditor.engine.fileread import FilePartial, _Folder, _record_spans, empty_quotes
from auditor.engine.window import Window
from auditor.errors import CaptureWarning
from auditor.flows.partial import BIG, empty_partials
from auditor.options import FlowOptions, RpcOptions


class NotStreamable(Exception):
    """The set cannot be merged chunk by chunk exactly: read it as one sorted table."""


@dataclass
class _Stream:
    """One open file: its reader, the chunks iterator and the rows buffered but not emitted."""

    index: int
    source: CaptureSource
    reader: RecordReader
    chunks: object
    window: Window | None
    cols: dict[str, np.ndarray] | None = None  # buffered rows, sorted by time
    errs: dict[str, np.ndarray] | None = None  # their ICMP errors (packet_index into cols)
    done: bool = False
    last_ts: int | None = None  # the newest timestamp read from the file (order)
    prev_ts: int | None = None  # the timestamp of the file's last record read (fill)
    rows: int = 0
    non_ip: int = 0
    tunnelled: int = 0
    skipped: Counter = field(default_factory=Counter)

    def buffered(self) -> int:
        return 0 if self.cols is None else len(self.cols["ts_ns"])

    def top(self) -> int:
        """The newest buffered timestamp (the file's rows after it are at least as new)."""
        return int(self.cols["ts_ns"][-1])

    def pull(self) -> None:
        """Read the next chunk with IP rows into the buffer (or mark the file done)."""
        for chunk in self.chunks:
            out, errs, non_ip, skipped, tunnelled = decode_chunk(chunk)
            _record_spans(out, chunk, self.reader)
            self.non_ip += non_ip
            self.tunnelled += tunnelled
            self.skipped.update(skipped)
            n = len(out["ts_ns"])
            self.rows += n
            if not n:
                continue
            out["file_index"] = np.full(n, self.index, np.uint16)
            self._fill_ts(out)
            if self.window is not None:
                out, errs = self.window.keep(out, errs)
                if self.window.unsure:
                    raise NotStreamable("untimed records before any timestamp")
                if not len(out["ts_ns"]):
                    continue
            out, errs = _sorted(out, errs)
            ts = out["ts_ns"]
            if self.last_ts is not None and ts[0] < self.last_ts:
                raise NotStreamable(f"{self.source.label} goes back in time")
            self.last_ts = int(ts[-1])
            self._append(out, errs)
            return
        self.done = True

    def _fill_ts(self, out: dict[str, np.ndarray]) -> None:
        """Records without a timestamp (pcapng SPB) take the one of the record before them in
        the file; leading ones the file's first timestamp (as read_packets fills them)."""
        if self.prev_ts is None and (out["ts_ns"] == NO_TS).all():  # the one they borrow is
            raise NotStreamable("untimed records before any timestamp")  # further on
        ts = out["ts_ns"] = fill_untimed(out["ts_ns"], self.prev_ts)
        self.prev_ts = int(ts[-1])

    def _append(self, out, errs) -> None:
        if self.cols is None:
            self.cols, self.errs = out, errs
            return
        shift = self.buffered()
        self.cols = {k: np.concatenate([self.cols[k], out[k]]) for k in self.cols}
        errs = dict(errs, packet_index=errs["packet_index"] + shift)
        self.errs = {k: np.concatenate([self.errs[k], errs[k]]) for k in self.errs}

    def take(self, below: int) -> tuple[dict, dict]:
        """Remove and return the buffered rows older than `below` (a prefix: they are sorted)."""
        k = int(np.searchsorted(self.cols["ts_ns"], below, side="left"))
        head = {c: v[:k] for c, v in self.cols.items()}
        at = self.errs["packet_index"]
        mine = at < k
        head_errs = {c: v[mine] for c, v in self.errs.items()}
        if k == self.buffered():
            self.cols = self.errs = None
        else:
            self.cols = {c: v[k:] for c, v in self.cols.items()}
            self.errs = {c: v[~mine] for c, v in self.errs.items()}
            self.errs["packet_index"] = self.errs["packet_index"] - k
        return head, head_errs


def _sorted(out: dict, errs: dict) -> tuple[dict, dict]:
    """A chunk's rows stably sorted by time, its ICMP errors following their packets."""
    ts = out["ts_ns"]
    if len(ts) < 2 or not (ts[1:] < ts[:-1]).any():
        return out, errs
    order = np.argsort(ts, kind="stable")
    out = {k: v[order] for k, v in out.items()}
    if len(errs["packet_index"]):
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        errs = dict(errs, packet_index=inverse[errs["packet_index"]])
    return out, errs


def _concat(parts: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """Rows of several files (in file order) as one chunk in time order (ties: file order)."""
    parts = [p for p in parts if len(p[0]["ts_ns"])]
    if not parts:
        return None, None
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(c["ts_ns"]) for c, _ in parts])
    cols = {k: np.concatenate([c[k] for c, _ in parts]) for k in parts[0][0]}
    errs = {k: np.concatenate([e[k] + (offsets[i] if k == "packet_index" else 0)
                               for i, (_, e) in enumerate(parts)]) for k in parts[0][1]}
    return _sorted(cols, errs)


def fold_interleaved(sources: list[CaptureSource], flow_options: FlowOptions | None = None,
                     rpc_options: RpcOptions | None = None, chunk_bytes: int | None = None,
                     window: tuple[int | None, int | None] | None = None,
                     spans: dict[CaptureSource, Span] | None = None) -> list[FilePartial]:
    """One FilePartial per source (set order, as `plan` orders them): the first holds the
    merged partials, candidates and quotes of the whole set; the others their file's facts.
    `spans` (capture.sets.spans_of) gives each file's first timestamp without probing again.

    Raises NotStreamable when only a sorted table of all packets is exact.
    """
    folder = _Folder(flow_options or FlowOptions(), rpc_options or RpcOptions())
    if spans is None and len(sources) > 1:  # one file needs no start: it is opened first
        spans = spans_of(sources)  # (probing a NetMon member reads it whole, a second time)
    starts = [spans[s].first_ns for s in sources] if spans else [None] * len(sources)
    opened: list[_Stream] = []
    infos: list[CaptureFile | None] = [None] * len(sources)
    emitted = -BIG  # the newest timestamp handed to the fold
    nxt = 0  # the next source to open
    with ArchiveCache() as archives:
        try:
            while True:
                for st in opened:
                    if st.done and not st.buffered() and infos[st.index] is None:
                        infos[st.index] = _close(st)
                live = [st for st in opened if infos[st.index] is None]
                if not live:
                    if nxt == len(sources):
                        break
                    _open_next(sources, nxt, archives, window, chunk_bytes, emitted, opened,
                               infos)
                    nxt += 1
                    continue
                for st in live:  # every open file has rows buffered, or has ended
                    if not st.done and not st.buffered():
                        st.pull()
                waiting = [st for st in live if not st.done]
                limit = min((st.top() for st in waiting if st.buffered()), default=BIG)
                start = starts[nxt] if nxt < len(sources) else None
                if start is not None:  # a file not open yet holds nothing older than its start
                    limit = min(limit, start)
                # rows at `limit` itself wait: a file may hold more of that instant, and ties
                # go in file order
                parts = [st.take(limit) for st in live if st.buffered()]
                cols, errs = _concat(parts)
                if cols is not None:
                    emitted = max(emitted, int(cols["ts_ns"][-1]))
                    folder.add(cols, errs)
                elif nxt < len(sources) and (not waiting or (start is not None and start <= limit)):
                    _open_next(sources, nxt, archives, window, chunk_bytes, emitted, opened,
                               infos)
                    nxt += 1
                elif not waiting:  # every open file has ended: fold the rest, all of it
                    cols, errs = _concat([st.take(BIG) for st in live if st.buffered()])
                    emitted = max(emitted, int(cols["ts_ns"][-1]))
                    folder.add(cols, errs)
                else:  # nothing older than the limit: read on in the file(s) that set it
                    for st in waiting:
                        if st.buffered() and st.top() == limit:
                            st.pull()
        finally:
            for st in opened:
                st.reader.close()
    folder.merge()
    parts, cands = folder.store.finish()
    quotes = pd.concat(folder.quotes, ignore_index=True) if folder.quotes else empty_quotes()
    out = []
    for i, info in enumerate(infos):
        first = i == 0
        out.append(FilePartial(
            info=info, parts=parts if first else empty_partials(flow_options),
            candidates=(cands if first else empty_candidates())[CANDIDATE_COLUMNS],
            quotes=quotes if first else empty_quotes(),
            first_ts_ns=folder.first_ts if first else BIG,
            last_ts_ns=folder.last_ts if first else -BIG))
    return out


def overlapping(sources: list[CaptureSource], spans: dict[CaptureSource, Span]) -> bool:
    """Whether a file of the set (in plan order) starts before the ones before it end, as far
    as the files' first and last timestamps tell (`capture.sets.spans_of`)."""
    last = None
    for source in sources:
        span = spans[source]
        if last is not None and span.first_ns is not None and span.first_ns < last:
            return True
        if span.last_ns is not None:
            last = span.last_ns if last is None else max(last, span.last_ns)
    return False


def _open_next(sources, nxt, archives, window, chunk_bytes, emitted, opened, infos) -> None:
    """Open sources[nxt] and buffer its first rows (into `opened`, or its CaptureFile into
    `infos` when it is skipped); raise NotStreamable when it starts before `emitted`.

    An archive member that is no capture is skipped with a warning, as read_packets does.
    """
    source = sources[nxt]
    reader, skipped_member = open_or_skip(source, archives)
    if reader is None:
        infos[nxt] = skipped_member
        return
    stream = _Stream(nxt, source, reader, reader.chunks(chunk_bytes),
                     Window(*window) if window is not None else None)
    opened.append(stream)
    stream.pull()
    if stream.buffered() and int(stream.cols["ts_ns"][0]) < emitted:
        raise NotStreamable(f"{source.label} starts before packets already folded")


def _close(s: _Stream) -> CaptureFile:
    """The file's CaptureFile, as read_packets counts it; its skip warnings are given now."""
    reader = s.reader
    s.skipped.update(reader.skipped)
    outside = s.window.outside if s.window is not None else 0
    info = CaptureFile(path=s.source.path, name=s.source.name, format=reader.format,
                       records=reader.records, ip_packets=s.rows, non_ip=s.non_ip,
                       skipped=dict(s.skipped), first_ts_ns=reader.first_ts_ns,
                       last_ts_ns=reader.last_ts_ns, member=s.source.member,
                       outside_window=outside, tunnelled=s.tunnelled)
    _warn_skipped(info, reader.notes, reader.path)
    for text in reader.warnings:
        warnings.warn(text, CaptureWarning, stacklevel=3)
    reader.close()
    return info


__all__ = ["NotStreamable", "fold_interleaved", "overlapping"]
