"""Captures to flows without a packet table: per file on one core, every core, or a Dask cluster.

Each file is streamed into partial aggregates (`fileread`), possibly read from or stored in the
cache (`cache`); on several cores as byte ranges of every file in worker processes, or on a Dask
cluster (`dask_run`). As each range and file comes in, it is joined into its file
(`ranges.RangeJoin`) and the file into the set's one store (`setmerge.SetMerger`), in set order;
the set's partials are then finished into the flow table. Only candidate packets for discovery
are kept, as a small `PacketTable`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.capture.packets import PacketTable, _warn_skipped, read_packets
from auditor.capture.sets import CaptureSet, expand_sources, plan, spans_of
from auditor.capture.split import plan_ranges
from auditor.engine import cache as cache_mod
from auditor.engine.candidates import record_spans
from auditor.engine.dask_run import read_set_on_cluster
from auditor.engine.fileread import FilePartial, read_file_partial
from auditor.engine.interleave import NotStreamable, fold_interleaved, overlapping
from auditor.engine.pages import small_pages, system_arrow_pool
from auditor.engine.ranges import RangeJoin, read_range
from auditor.engine.remote import is_url
from auditor.engine.setmerge import SetMerger
from auditor.engine.shipping import discard, ship, unship
from auditor.engine.urlset import read_urls
from auditor.engine.window import kept_rows, read_file
from auditor.errors import CaptureError, CaptureWarning
from auditor.flows.build import build_flows_labelled
from auditor.flows.partial import finish_pieces
from auditor.heap import give_back_memory
from auditor.options import EngineOptions, FlowOptions, RpcOptions
from auditor.processes import may_fork, usable_cores
from auditor.schema import ICMP_ERROR_COLUMNS, PACKET_COLUMNS, column_names, empty_frame


@dataclass(frozen=True)
class EngineReport:
    """How the files were read: where, by how many workers, how many came from the cache."""

    files: int
    workers: int
    where: str  # "local", "processes" or "dask"
    cached: int
    streamed: bool  # False: timestamps went back across chunks, so a full sort was used
    ranges: int = 0  # byte ranges the files read were cut into (0: each file read whole)

    def line(self) -> str:
        """One line for stderr, e.g. 'read 8 files on 2 worker processes (3 from the cache)'."""
        read = self.files - self.cached
        what = {"local": "in this process",
                "processes": f"on {self.workers} worker process{'es' if self.workers != 1 else ''}",
                "dask": f"on {self.workers} Dask workers"}[self.where]
        text = f"read {read} file{'s' if read != 1 else ''} {what}"
        if self.ranges:
            text = (f"read {read} file{'s' if read != 1 else ''} as {self.ranges} byte range"
                    f"{'s' if self.ranges != 1 else ''} {what}")
        if self.cached:
            text += f" ({self.cached} from the cache)"
        return text


@dataclass(frozen=True)
class Streamed:
    """Flows of a capture set, with the candidate packets discovery may need."""

    table: PacketTable  # candidate packets only (and every file's CaptureFile)
    flows: pd.DataFrame
    labels: np.ndarray  # flow_id per row of table.packets
    report: EngineReport


def stream_flows(
    captures: Sequence[str | os.PathLike],
    flow_options: FlowOptions | None = None,
    rpc_options: RpcOptions | None = None,
    engine: EngineOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Streamed:
    """Flows of capture files read as one capture, in memory O(flows + candidate packets)."""
    flow_options = flow_options or FlowOptions()
    rpc_options = rpc_options or RpcOptions()
    engine = engine or EngineOptions()
    small_pages()  # big arrays made once each: zero only the pages they touch (engine/pages.py)
    system_arrow_pool()  # Arrow buffers freed in the pieces' threads go back (engine/pages.py)
    if any(is_url(c) for c in captures):  # fsspec URLs: engine/remote.py
        return _finish_elsewhere(*read_urls(captures, flow_options, rpc_options, engine), 0,
                                 flow_options)
    window = (captures.since_ns, captures.until_ns) if isinstance(captures, CaptureSet) else None
    if window == (None, None):
        window = None
    found = expand_sources(captures)
    if not found:
        raise CaptureError("no capture files given")
    if len(found) > np.iinfo(np.uint16).max:
        raise CaptureError(f"too many capture files ({len(found)})")
    with warnings.catch_warnings():  # "no capture in the window" is read_packets' to say
        warnings.simplefilter("ignore")
        spans = spans_of(found) if len(found) > 1 or window else None  # each probed once
        read, left = plan(found, *(window or (None, None)), spans=spans)  # as read_packets
    if not read:  # read_packets says what is wrong, or gives the empty table
        return _full_sort(captures, flow_options, progress,
                          EngineReport(len(found), 1, "local", 0, False))
    left_out = tuple(s.label for s in left)
    if (any(s.member for s in found) or (window and engine.scheduler)
            or (spans is not None and overlapping(read, spans))):
        # archive members, a window on a cluster, files recorded at the same time (several
        # servers): one process folds them merged by time (engine/interleave.py)
        return _interleaved(captures, read, spans, left_out, flow_options, rpc_options, engine,
                            window, progress, EngineReport(len(found), 1, "local", 0, True))
    paths = [Path(s.path) for s in read]
    partials: list[FilePartial | None] = [None] * len(paths)
    keys: list[str | None] = [None] * len(paths)
    if engine.cache_dir is not None and window is None:  # entries hold whole files
        for i, path in enumerate(paths):
            digest = cache_mod.content_hash(path, engine.cache_dir)
            keys[i] = cache_mod.entry_key(digest, flow_options, rpc_options)
            partials[i] = cache_mod.load_for(engine.cache_dir, digest, flow_options,
                                             rpc_options, str(path))
    todo = [i for i, fp in enumerate(partials) if fp is None]
    cached = len(paths) - len(todo)
    if engine.scheduler:  # read and merge on the cluster: the client gets one merged partial
        return _finish_elsewhere(*read_set_on_cluster(paths, partials, flow_options, rpc_options,
                                                      engine), "dask", cached, flow_options)

    def keep(i: int, fp: FilePartial) -> None:  # each file read goes to the cache whole
        if keys[i] is not None:
            cache_mod.store(engine.cache_dir, keys[i], fp)

    caching = engine.cache_dir is not None and window is None
    merger = SetMerger(len(paths), flow_options, rpc_options, on_file=keep if caching else None)
    for i, fp in enumerate(partials):
        if fp is not None:
            merger.add(i, fp, read=False)
    del partials
    where, workers, ranges = _read(paths, todo, merger, flow_options, rpc_options, engine,
                                   progress, window)
    report = EngineReport(len(paths), workers, where, cached, True, ranges)
    if where != "local":  # on several cores, say who did the work (stdout stays the result)
        log.info(report.line())
    else:
        log.debug(report.line())
    heads = merger.heads
    if not _in_time_order(heads):
        return _interleaved(captures, read, spans, left_out, flow_options, rpc_options, engine,
                            window, progress, report)
    for fp in heads:
        _warn_skipped(fp.info, fp.notes, fp.info.path)
        for text in fp.warnings:
            warnings.warn(text, CaptureWarning, stacklevel=2)
    frames = merger.finish()
    del merger
    give_back_memory()  # the read's freed heap, before the finish's peak
    return _finish_merged(frames, heads, flow_options, report, left_out,
                          pieces=engine.flow_pieces, workers=engine.workers)


def _read(paths, todo, merger, flow_options, rpc_options, engine, progress, window=None):
    """Read the files of `todo` into `merger`; return (where, workers, byte ranges).

    On several cores the files are cut into byte ranges (`_tasks`), read by worker processes in
    set order a few ahead, and each range is joined into its file as it comes (`RangeJoin`),
    each complete file into the set's store (`SetMerger`): what waits here is bounded by the
    tasks in flight, and the merging overlaps the reading. On one core a big set is read the
    same way by one worker process, whole files (`_apart`).
    """
    args = (flow_options, rpc_options, engine.chunk_bytes, window)
    total = sum(p.stat().st_size for p in paths) or 1
    done = sum(paths[i].stat().st_size for i in range(len(paths)) if i not in set(todo))
    cores = engine.workers or usable_cores()
    tasks = _tasks(paths, todo, cores, engine.range_bytes or RANGE_BYTES)
    workers = min(cores, len(tasks))
    if workers <= 1 and not _apart(paths, todo, engine, cores):
        for i in todo:
            merger.add(i, read_file_partial(str(paths[i]), *args[:3]) if window is None
                       else read_file(str(paths[i]), *args))
            done += paths[i].stat().st_size
            if progress is not None:
                progress(done, total)
        return "local", 1, 0
    ctx = _context()
    pieces = Counter(i for i, rng in tasks if rng is not None)
    # a set of one file (or a file for the cache): its join sorts, as a single read does
    # (enough for finish_flows when not for the cache: each conversation's rows together)
    one = len(paths) == 1 or merger.on_file is not None
    joins = {i: RangeJoin(str(paths[i]), n, flow_options, rpc_options) for i, n in pieces.items()}
    redo = {}
    ahead = deque()
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        def submit(i, rng):  # results come back through shared memory (engine/shipping.py)
            if rng is None:
                if window is None:
                    return pool.submit(ship, read_file_partial, str(paths[i]), *args[:3])
                return pool.submit(ship, read_file, str(paths[i]), *args)
            return pool.submit(ship, read_range, str(paths[i]), rng, *args)

        try:
            _drain(tasks, submit, workers, ahead, redo, merger, joins, one, paths, progress,
                   done, total)
        finally:  # an error on the way: no result file of a task in flight is left behind
            _discard([f for _, f in ahead] + list(redo.values()))
    return "processes", workers, sum(pieces.values())


def _drain(tasks, submit, workers, ahead, redo, merger, joins, one, paths, progress, done,
           total):
    """_read's loop: tasks submitted a few ahead, their results joined in set order."""
    # in set order, at most AHEAD tasks per worker in flight: results do not pile up here
    todo_tasks = iter(tasks)
    for task in islice(todo_tasks, AHEAD * workers):
        ahead.append((task, submit(*task)))
    while ahead:
        (i, rng), future = ahead[0]
        result = unship(future.result())
        ahead.popleft()
        del future
        for task in islice(todo_tasks, 1):
            ahead.append((task, submit(*task)))
        if rng is None:
            merger.add(i, result)
            done += paths[i].stat().st_size
        else:
            done += rng.stop - rng.start
            join = joins[i]
            if join.add(*result):
                if len(join.infos) == join.pieces:
                    merger.add(i, join.finish(sort=one, grouped=merger.on_file is None))
                    del joins[i]
            elif i not in redo:  # an edge a range cannot see: one read is exact
                log.info("%s: read again in one piece (its byte ranges are not "
                         "independent)", paths[i])
                redo[i] = submit(i, None)
        del result
        for k in [k for k, f in redo.items() if f.done()]:  # later files wait for these
            merger.add(k, unship(redo[k].result()))
            del redo[k]
        if progress is not None:
            progress(min(done, total), total)
    for i in list(redo):
        merger.add(i, unship(redo[i].result()))
        del redo[i]


def _discard(futures) -> None:
    """Remove the result files of tasks whose results will not be taken."""
    for future in futures:
        if not future.cancel():
            try:
                discard(future.result())
            except Exception:  # noqa: BLE001 - the task failed: it left no file
                pass


def _apart(paths, todo, engine: EngineOptions, cores: int) -> bool:
    """On one core (not asked for: `--workers 0`), whether a set's files are read by one worker
    process all the same: this process then holds the set's merged partials and only the file
    being merged, the worker the decoding of the next file, so neither holds both (the 10 GB
    ring set read here pinned to one core peaked at 574-577 MiB). Worth it only for a set big
    enough for its merged partials to matter next to a read's own memory (APART_BYTES)."""
    if engine.workers or cores != 1 or len(todo) < 2:
        return False
    return sum(paths[i].stat().st_size for i in todo) >= APART_BYTES


AHEAD = 2  # tasks per worker submitted ahead of the one this process waits for
APART_BYTES = 512 << 20  # a one-core set of at least this many bytes is read by one worker
RANGE_BYTES = 64 << 20  # smallest byte range of one file given to a worker


def _context():
    """fork while this process runs one thread (workers start at once, with every module
    imported: a forkserver costs about a second of imports first); else a forkserver, since
    forking a process with other threads may copy a lock some thread holds."""
    if may_fork():
        return get_context("fork")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["auditor.engine.ranges"])  # each worker starts with it imported
    return ctx


def _tasks(paths, todo, cores, range_bytes):
    """(file index, ByteRange or None for the whole file) to read, in set and file order.

    On several cores every file of at least two range_bytes is cut into byte ranges of about
    1/PER_CORE of a worker's share of the set (and at least range_bytes): ranges of every file
    on every worker, so the workers stay evenly busy to the end whatever the files' sizes, and
    each range's partials (what a worker holds and sends here) stay a fraction of the set's.
    """
    if cores <= 1:
        return [(i, None) for i in todo]
    sizes = {i: paths[i].stat().st_size for i in todo}
    # rounded up: a file of the whole share is cut in cores * PER_CORE ranges, not one more
    # (a last range left to one worker while the others wait)
    target = max(range_bytes, -(-sum(sizes.values()) // (cores * PER_CORE)))
    tasks = []
    for i in todo:
        pieces = -(-sizes[i] // target)
        ranges = (plan_ranges(str(paths[i]), pieces, range_bytes)
                  if pieces > 1 and sizes[i] >= 2 * range_bytes else None)
        if ranges and len(ranges) > 1:
            tasks.extend((i, rng) for rng in ranges)
        else:
            tasks.append((i, None))
    return tasks


PER_CORE = 3  # byte ranges per worker's share of the set


def _in_time_order(partials: list[FilePartial]) -> bool:
    """Every file in time order, and each file after the one before (ties keep file order)."""
    last = None
    for fp in partials:
        if not fp.ordered:
            return False
        if kept_rows(fp):
            if last is not None and fp.first_ts_ns < last:
                return False
            last = fp.last_ts_ns
    return True


def _interleaved(captures, sources, spans, left_out, flow_options, rpc_options, engine, window,
                 progress, report) -> Streamed:
    """The set folded merged by time; one sorted table of all packets where that is not exact."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            partials = fold_interleaved(sources, flow_options, rpc_options, engine.chunk_bytes,
                                        window, spans)
        except NotStreamable as why:
            log.debug("reading the set as one sorted table: %s", why)
            partials = None
    if partials is None:  # the readers' warnings come again from the full read
        return _full_sort(captures, flow_options, progress, report)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if len(sources) > 1:  # in this process: debug, as every one-process read
        log.debug("read %d files in this process, merged by time (they overlap in time or are "
                 "archive members)", len(sources))
    first = partials[0]  # it holds the whole set's merged partials (fold_interleaved)
    frames = [first.parts, first.candidates, first.quotes]
    first.parts = first.candidates = first.quotes = None
    return _finish_merged(frames, partials, flow_options,
                          replace(report, workers=1, where="local", ranges=0), left_out,
                          pieces=engine.flow_pieces, workers=engine.workers)


def _full_sort(paths, flow_options, progress, report) -> Streamed:
    """Packets out of time order across chunks or files: read them all and sort (exact, big)."""
    table = read_packets(paths, progress=progress)
    flows, labels = build_flows_labelled(table, flow_options)
    report = EngineReport(report.files, report.workers, report.where, report.cached, False)
    return Streamed(table, flows, labels, report)


def _finish(partials: list[FilePartial], flow_options: FlowOptions,
            report: EngineReport, left_out: tuple[str, ...] = ()) -> Streamed:
    """Finish partials of several files (rebased): concatenated, then merged by finish_flows."""
    def take(name: str) -> pd.DataFrame:  # one frame of every file's, dropping theirs
        frames = [getattr(fp, name) for fp in partials]
        for fp in partials:
            setattr(fp, name, None)
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    return _finish_merged([take("parts"), take("candidates"), take("quotes")], partials,
                          flow_options, report, left_out, merged=len(partials) == 1)


def _finish_merged(frames: list[pd.DataFrame], heads: list[FilePartial],
                   flow_options: FlowOptions, report: EngineReport,
                   left_out: tuple[str, ...] = (), merged: bool = True,
                   pieces: bool = False, workers: int = 0) -> Streamed:
    """The Streamed result of a set's [partials, candidates, quotes] (merged: as
    merge_partials gives them); its flows as FlowPieces when `pieces` (EngineOptions.flow_pieces),
    else one frame, made on `workers` cores (EngineOptions.workers; 0: every core). The list is
    emptied: finish_flows holds the only reference to the partials, and drops them once it has
    read them (the set's biggest frame: peak memory)."""
    files = tuple(fp.info for fp in heads)
    quotes, cands = frames.pop(), frames.pop()
    finished, flow_of = finish_pieces(frames.pop(), files, flow_options, quotes, merged=merged)
    del quotes
    finished.workers = workers or None
    flows = finished if pieces else finished.frame()  # pieces: a caller writes them in turn
    del finished
    pid = cands["pid"].to_numpy()
    if len(pid) > 1 and (pid[1:] < pid[:-1]).any():  # the stores give them in pid order
        cands = cands.sort_values("pid", kind="stable", ignore_index=True)
    labels = flow_of.reindex(cands["part"].to_numpy()).to_numpy()
    if len(labels) and np.isnan(labels.astype(float)).any():
        raise AssertionError("a candidate packet lost its flow")  # a bug, not bad input
    packets = cands[column_names(PACKET_COLUMNS)].astype(
        {c.name: c.dtype for c in PACKET_COLUMNS})
    if packets.empty:
        packets = empty_frame(PACKET_COLUMNS)
    table = PacketTable(packets=packets, icmp_errors=empty_frame(ICMP_ERROR_COLUMNS), files=files,
                        left_out=left_out, spans=record_spans(cands))
    return Streamed(table, flows, labels.astype(np.int64), report)


def _finish_elsewhere(heads, merged, workers, where, cached, flow_options) -> Streamed:
    """Finish a set read and merged elsewhere (a Dask cluster, fsspec URLs): each file's head
    in set order and one merged partial of them all."""
    report = EngineReport(len(heads), workers, where, cached, True)
    log.info(report.line()) if where == "dask" else log.debug(report.line())
    if not _in_time_order(heads):
        if any(is_url(h.info.path) for h in heads):
            raise CaptureError("the capture URLs overlap in time: a set read from URLs must not "
                               "go back in time, across files or within one")
        return _full_sort([Path(h.info.path) for h in heads], flow_options, None, report)
    for fp in heads:
        _warn_skipped(fp.info, fp.notes, fp.info.path)
        for text in fp.warnings:
            warnings.warn(text, CaptureWarning, stacklevel=3)
    first = replace(heads[0], parts=merged.parts, candidates=merged.candidates,
                    quotes=merged.quotes)
    return _finish([first, *heads[1:]], flow_options, report)


__all__ = ["EngineReport", "Streamed", "stream_flows"]
log = logging.getLogger("auditor.engine")
