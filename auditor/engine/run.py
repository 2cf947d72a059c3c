"""Captures to flows without a packet table: per file on one core, every core, or a Dask cluster.

Each file is streamed into partial aggregates (`fileread`), possibly read from or stored in the
cache (`cache`), in worker processes when there are several files and cores, or on a Dask
cluster (`dask_run`); the files' partials are then merged in set order and finished into the
flow table. Only candidate packets for discovery are kept, as a small `PacketTable`.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import islice
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.capture.packets import PacketTable, _warn_skipped, read_packets
from auditor.capture.sets import CaptureSet, expand_sources, plan
from auditor.capture.split import plan_ranges
from auditor.engine import cache as cache_mod
from auditor.engine.dask_run import read_set_on_cluster
from auditor.engine.fileread import FilePartial, read_file_partial, rebase
from auditor.engine.ranges import join_ranges, read_range
from auditor.engine.remote import is_url
from auditor.engine.urlset import read_urls
from auditor.engine.window import kept_rows, read_file
from auditor.errors import CaptureError, CaptureWarning
from auditor.flows.build import build_flows_labelled
from auditor.flows.partial import finish_flows
from auditor.options import EngineOptions, FlowOptions, RpcOptions
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
        what = {"local": "in this process", "processes": f"on {self.workers} worker processes",
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
        read, left = plan(found, *(window or (None, None)))  # time order, as read_packets
    if any(s.member for s in found) or not read or (window and engine.scheduler):
        # archives (and a window on a cluster): read_packets knows them; exact, one row a packet
        return _full_sort(captures, flow_options, progress,
                          EngineReport(len(found), 1, "local", 0, False))
    paths = [Path(s.path) for s in read]
    left_out = tuple(s.label for s in left)
    partials: list[FilePartial | None] = [None] * len(paths)
    keys: list[str | None] = [None] * len(paths)
    if engine.cache_dir is not None and window is None:  # entries hold whole files
        for i, path in enumerate(paths):
            digest = cache_mod.content_hash(path, engine.cache_dir)
            keys[i] = cache_mod.entry_key(digest, flow_options, rpc_options)
            partials[i] = cache_mod.load(engine.cache_dir, keys[i], str(path))
    todo = [i for i, fp in enumerate(partials) if fp is None]
    cached = len(paths) - len(todo)
    if engine.scheduler:  # read and merge on the cluster: the client gets one merged partial
        return _finish_elsewhere(*read_set_on_cluster(paths, partials, flow_options, rpc_options,
                                                      engine), "dask", cached, flow_options)
    where, workers, ranges = _read(paths, todo, partials, flow_options, rpc_options, engine,
                                   progress, window)
    if engine.cache_dir is not None and window is None:
        for i in todo:
            cache_mod.store(engine.cache_dir, keys[i], partials[i])
    report = EngineReport(len(paths), workers, where, cached, True, ranges)
    if where != "local":  # on several cores, say who did the work (stdout stays the result)
        log.info(report.line())
    else:
        log.debug(report.line())
    if not _in_time_order(partials):
        return _full_sort(captures if window else paths, flow_options, progress, report)
    for fp in partials:
        _warn_skipped(fp.info, fp.notes, fp.info.path)
        for text in fp.warnings:
            warnings.warn(text, CaptureWarning, stacklevel=2)
    rebased = [rebase(fp, i) for i, fp in enumerate(partials)]
    del partials  # _finish drops each file's frames as it merges them: peak memory
    return _finish(rebased, flow_options, report, left_out)


def _read(paths, todo, partials, flow_options, rpc_options, engine, progress, window=None):
    """Fill partials[i] for i in todo; return (where, workers, byte ranges)."""
    args = (flow_options, rpc_options, engine.chunk_bytes, window)
    total = sum(p.stat().st_size for p in paths) or 1
    done = sum(paths[i].stat().st_size for i in range(len(paths)) if i not in set(todo))
    if engine.scheduler:
        from auditor.engine.dask_run import read_on_cluster

        results, workers = read_on_cluster(engine.scheduler, [str(paths[i]) for i in todo],
                                           *args[:3])
        for i, fp in zip(todo, results, strict=True):
            partials[i] = replace(fp, info=replace(fp.info, path=str(paths[i])))
        return "dask", workers, 0
    cores = engine.workers or _cores()
    tasks = _tasks(paths, todo, cores, engine.range_bytes or RANGE_BYTES)
    workers = min(cores, len(tasks))
    if workers <= 1:
        for i in todo:
            partials[i] = (read_file_partial(str(paths[i]), *args[:3]) if window is None
                           else read_file(str(paths[i]), *args))
            done += paths[i].stat().st_size
            if progress is not None:
                progress(done, total)
        return "local", 1, 0
    ctx = _context()
    pieces = Counter(i for i, rng in tasks if rng is not None)
    got: dict[int, list] = {i: [] for i in pieces}
    redo = {}
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        def submit(i, rng):
            if rng is None:
                if window is None:
                    return pool.submit(read_file_partial, str(paths[i]), *args[:3])
                return pool.submit(read_file, str(paths[i]), *args)
            return pool.submit(read_range, str(paths[i]), rng, *args)

        # in file order, at most two tasks per worker waiting: results do not pile up unmerged
        ahead = deque()
        todo_tasks = iter(tasks)
        for task in islice(todo_tasks, 2 * workers):
            ahead.append((task, submit(*task)))
        while ahead:
            (i, rng), future = ahead.popleft()
            result = future.result()
            for task in islice(todo_tasks, 1):
                ahead.append((task, submit(*task)))
            if rng is None:
                partials[i] = result
                done += paths[i].stat().st_size
            else:
                got[i].append(result)
                done += rng.stop - rng.start
                if len(got[i]) == pieces[i]:
                    partials[i] = join_ranges(got.pop(i), str(paths[i]), flow_options, rpc_options)
                    if partials[i] is None:  # an edge a range cannot see: one read is exact
                        log.info("%s: read again in one piece (its byte ranges are not "
                                 "independent)", paths[i])
                        redo[i] = submit(i, None)
            if progress is not None:
                progress(min(done, total), total)
        for i, future in redo.items():
            partials[i] = future.result()
    return "processes", workers, sum(pieces.values())


RANGE_BYTES = 64 << 20  # smallest byte range of one file given to a worker


def _context():
    """fork while this process runs one thread (workers start at once, with every module
    imported: a forkserver costs about a second of imports first); else a forkserver, since
    forking a process with other threads may copy a lock some thread holds."""
    if threading.active_count() == 1 and "fork" in get_all_start_methods():
        return get_context("fork")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["auditor.engine.ranges"])  # each worker starts with it imported
    return ctx


def _cores() -> int:
    """Cores this process may run on (taskset and cgroups' cpusets count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _tasks(paths, todo, cores, range_bytes):
    """(file index, ByteRange or None for the whole file) to read, in set and file order.

    Files are read whole while that keeps the workers evenly busy; otherwise the last of the
    largest files is cut into one byte range per worker (of at least range_bytes), until the busiest worker
    has at most 10 % more than its share (five files on two workers: one file is cut in two).
    Each cut file costs a join in this process, so no more are cut than that takes.
    """
    if cores <= 1:
        return [(i, None) for i in todo]
    sizes = {i: paths[i].stat().st_size for i in todo}
    share = sum(sizes.values()) / cores
    cut: dict[int, list] = {}  # file -> its byte ranges
    tried: set[int] = set()

    def spans() -> list[int]:
        return [x for i in todo for x in ([r.stop - r.start for r in cut[i]] if i in cut
                                          else [sizes[i]])]

    while _makespan(spans(), cores) > 1.1 * share:
        whole = [i for i in todo if i not in tried and sizes[i] >= 2 * range_bytes]
        if not whole:
            break
        # a big file late in the set: cutting the tail's file evens out the end best
        top = max(sizes[i] for i in whole)
        big = max(whole, key=lambda i: (sizes[i] >= 0.8 * top, i))
        tried.add(big)
        ranges = plan_ranges(str(paths[big]), cores, range_bytes)
        if ranges and len(ranges) > 1:
            cut[big] = ranges
    tasks = []
    for i in todo:
        if i in cut:
            tasks.extend((i, rng) for rng in cut[i])
        else:
            tasks.append((i, None))
    return tasks


def _makespan(sizes: list[int], workers: int) -> int:
    """The busiest worker's bytes when tasks go, in order, to whichever worker is free first."""
    load = [0] * workers
    for size in sizes:
        load[load.index(min(load))] += size
    return max(load)


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


def _full_sort(paths, flow_options, progress, report) -> Streamed:
    """Packets out of time order across chunks or files: read them all and sort (exact, big)."""
    table = read_packets(paths, progress=progress)
    flows, labels = build_flows_labelled(table, flow_options)
    report = EngineReport(report.files, report.workers, report.where, report.cached, False)
    return Streamed(table, flows, labels, report)


def _finish(partials: list[FilePartial], flow_options: FlowOptions,
            report: EngineReport, left_out: tuple[str, ...] = ()) -> Streamed:
    def take(name: str) -> pd.DataFrame:  # one frame of every file's, dropping theirs
        frames = [getattr(fp, name) for fp in partials]
        for fp in partials:
            setattr(fp, name, None)
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    files = tuple(fp.info for fp in partials)
    one = len(partials) == 1  # a file's partials come merged from fileread
    flows, flow_of = finish_flows(take("parts"), files, flow_options, take("quotes"), merged=one)
    cands = take("candidates")
    pid = cands["pid"].to_numpy()
    if len(pid) > 1 and (pid[1:] < pid[:-1]).any():  # fileread gives them in pid order
        cands = cands.sort_values("pid", kind="stable", ignore_index=True)
    labels = flow_of.reindex(cands["part"].to_numpy()).to_numpy()
    if len(labels) and np.isnan(labels.astype(float)).any():
        raise AssertionError("a candidate packet lost its flow")  # a bug, not bad input
    packets = cands[column_names(PACKET_COLUMNS)].astype(
        {c.name: c.dtype for c in PACKET_COLUMNS})
    if packets.empty:
        packets = empty_frame(PACKET_COLUMNS)
    table = PacketTable(packets=packets, icmp_errors=empty_frame(ICMP_ERROR_COLUMNS), files=files,
                        left_out=left_out)
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


def default_engine(cache: bool | str | os.PathLike = False, workers: int = 0,
                   scheduler: str | None = None) -> EngineOptions:
    """EngineOptions from CLI-style settings: cache True (the XDG folder), a folder, or off."""
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    cache_dir = None
    if cache is True:
        cache_dir = str(cache_mod.default_cache_dir())
    elif cache:
        cache_dir = str(Path(cache))
    return EngineOptions(workers=workers, cache_dir=cache_dir, scheduler=scheduler)


__all__ = ["EngineReport", "Streamed", "default_engine", "stream_flows"]
log = logging.getLogger("auditor.engine")
