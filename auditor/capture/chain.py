"""Follow a chain of records, each header saying where the next starts, with numpy and exactly.

A pcap record (or pcapng block) is found only from the one before it, so the walk looks
sequential. Here the span is cut into segments; a record start is *guessed* near each segment's
start (format-specific plausibility, a few hops deep) and all segments' cursors advance in
lockstep, one numpy step per record of the longest segment. A segment counts only once the
chain of the segment before it, itself verified, lands exactly on its guessed start; where it
does not, the segment is walked again from where that chain did land. So the guesses decide
the speed, never the result: `follow` returns what the plain loop

    while pos <= lim and not stop(pos): offsets.append(pos); pos = step(pos)

returns, on every input. Hostile input that defeats the guesses falls back to that loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

Step = Callable[[np.ndarray], np.ndarray]  # int64 record offsets -> the offsets that follow
# follow()'s answer: the offsets walked, where the walk ended, whether stop() ended it
Walk = tuple[np.ndarray, int, bool]
MAX_ROUNDS = 6  # re-walks of mis-guessed segments before the plain loop takes over
MAX_WRONG = 0.25  # a larger share of segments mis-guessed: the plain loop takes over at once
MIN_GUESSED = 0.5  # fewer guessed segment starts than this share: the plain loop is cheaper
MIN_SEGMENT = 4096  # bytes; spans too short for four segments this long take the plain loop
SEGMENT_FLOOR = 64 << 10  # bytes of the shortest segment (fewer, longer ones for small records)
SEGMENT_RECORDS = 96  # records per segment, roughly: numpy steps per lockstep round
PROBE_HOPS = 64  # records walked one by one first, to size segments and windows
WINDOW_FLOOR = 512  # bytes searched for a record start at least, after each segment start


def u32_everywhere(buf: np.ndarray, order: str) -> np.ndarray:
    """A view of the u32 (byte order `order`) starting at every byte offset of buf."""
    buf = np.ascontiguousarray(buf)
    return np.ndarray(shape=(max(len(buf) - 3, 0),), dtype=np.dtype(order + "u4"), buffer=buf,
                      strides=(1,))


def byte_matches(buf: np.ndarray, first: np.ndarray, width: int, at: int, lo: int,
                 hi: int) -> np.ndarray:
    """Offsets q in the windows [first[k], first[k] + width) whose byte q + at is in [lo, hi]."""
    step = int(first[1] - first[0]) if len(first) > 1 else 1
    rows = as_strided(buf[int(first[0]) + at :], shape=(len(first), width), strides=(step, 1),
                      writeable=False)
    hit = rows == lo if lo == hi else (rows - np.uint8(lo)) <= np.uint8(hi - lo)
    flat = np.flatnonzero(hit)
    return first[flat // width] + flat % width


def guess_starts(sieve: Callable[[np.ndarray, int], np.ndarray],
                 plausible: Callable[[np.ndarray], np.ndarray], step: Step, pos: int, lim: int,
                 segment: int, window: int, hops: int = 3) -> np.ndarray:
    """One likely record start in the first `window` bytes of each `segment` bytes after pos.

    `sieve(first, width)` gives the candidates (sorted offsets) in the windows starting at
    `first` (a cheap test over every byte, on strided views); each must then be plausible, and
    so must the `hops` records its header chains to (all within lim). Windows with no such
    candidate give none. Sorted, unique, each in (pos, lim].
    """
    first = np.arange(pos + segment, lim + 1 - window, segment, dtype=np.int64)
    if not len(first):
        return first
    cand = sieve(first, window)
    cand = cand[plausible(cand)]
    at = cand
    for _ in range(hops):  # the survivors' next records must be plausible too
        at = step(at)
        ok = at <= lim
        ok[ok] = plausible(at[ok])
        cand, at = cand[ok], at[ok]
    if not len(cand):
        return cand
    win = (cand - pos) // segment
    keep = np.ones(len(cand), bool)
    keep[1:] = win[1:] != win[:-1]  # the first candidate of each window
    return cand[keep]


def _lockstep(step: Step, stop: Step | None, cur: np.ndarray, hi: np.ndarray, lim: int):
    """Advance each cursor until it reaches its hi (or stop says so); return what was visited.

    Returns (visited offsets, their segment numbers, each segment's end, each one's stopped
    flag). A finished cursor stays where it ended until a quarter or fewer are still going;
    then the rest go on alone. Only cursors below hi (so <= lim) are stepped or stopped, so
    step and stop read inside the buffer.
    """
    n = len(cur)
    seg = np.arange(n)
    end = np.empty(n, np.int64)
    stopped = np.zeros(n, bool)
    got_pos: list[np.ndarray] = []
    got_seg: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    while True:
        alive = cur < hi
        if stop is not None:
            halt = alive & stop(np.minimum(cur, lim))
            alive &= ~halt
        going = int(np.count_nonzero(alive))
        if going * 8 <= 7 * len(cur):  # an eighth done: record the finished, go on with the rest
            if rows:
                visited, mask = np.stack(rows), np.stack(masks)
                got_pos.append(visited[mask])
                got_seg.append(np.broadcast_to(seg, visited.shape)[mask])
                rows, masks = [], []
            done = ~alive
            end[seg[done]] = cur[done]
            if stop is not None:
                stopped[seg[done]] = halt[done]
            if not going:
                break
            seg, cur, hi, alive = seg[alive], cur[alive], hi[alive], alive[alive]
        rows.append(cur)
        masks.append(alive)
        if going == len(cur):
            cur = step(cur)
        else:
            cur = np.where(alive, step(np.minimum(cur, lim)), cur)
    if not got_pos:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), end, stopped
    return np.concatenate(got_pos), np.concatenate(got_seg), end, stopped


def follow(step: Step, pos: int, lim: int, starts: np.ndarray, plain: Callable[[int], Walk],
           stop: Step | None = None, max_rounds: int | None = None) -> Walk:
    """The chain from pos while <= lim (and not stop), as the plain loop walks it.

    `starts` are guessed record starts (sorted, in (pos, lim]); `plain(p)` is the plain loop
    from a verified offset p, used when the guesses keep failing.
    """
    max_rounds = MAX_ROUNDS if max_rounds is None else max_rounds
    bounds = np.concatenate(([pos], np.asarray(starts, np.int64), [lim + 1]))
    k = len(bounds) - 1
    start, hi = bounds[:-1].copy(), bounds[1:]
    got_pos, got_seg, end, stopped = _lockstep(step, stop, start, hi, lim)
    parts = [(got_pos, got_seg, 0)]
    latest = np.zeros(k, np.int64)  # the round that last walked each segment
    last, fallback = k - 1, False
    for rnd in range(1, max_rounds + 2):
        handed = ~stopped[:-1] & (end[:-1] == start[1:])
        bad = np.flatnonzero(~handed)
        if not len(bad):
            break
        j = int(bad[0])  # segments 0..j are verified: each chain landed on the next one's start
        if stopped[j] or rnd > max_rounds or len(bad) > MAX_WRONG * k:
            last, fallback = j, not stopped[j]
            break
        redo = bad[~stopped[bad]]  # from where each of these ended, walk the next again
        nxt = redo + 1
        start[nxt] = end[redo]
        p, s, e, st = _lockstep(step, stop, start[nxt], hi[nxt], lim)
        end[nxt], stopped[nxt], latest[nxt] = e, st, rnd
        parts.append((p, nxt[s], rnd))
    if len(parts) == 1 and last == k - 1:
        keep = [got_pos]
    else:
        keep = [p[(s <= last) & (latest[s] == rnd)] for p, s, rnd in parts]
    offsets = np.sort(np.concatenate(keep))  # distinct: one chain, through disjoint segments
    if fallback:
        rest, tail, halted = plain(int(end[last]))
        return np.concatenate([offsets, np.asarray(rest, np.int64)]), tail, halted
    return offsets, int(end[last]), bool(stopped[last])


def probe(step: Step, pos: int, lim: int, stop: Step | None = None, hops: int | None = None):
    """The first records from pos, one numpy step each: (offsets, end, stopped, finished).

    A few records say how long records are here (segment and window sizes); `finished` when
    the walk already ended (past lim, or stopped).
    """
    offs, at = [], np.array([pos], np.int64)
    for _ in range(PROBE_HOPS if hops is None else hops):
        if at[0] > lim:
            return offs, int(at[0]), False, True
        if stop is not None and stop(at)[0]:
            return offs, int(at[0]), True, True
        offs.append(int(at[0]))
        at = step(at)
    return offs, int(at[0]), False, False


def walk(step: Step, pos: int, lim: int, plain: Callable[[int], Walk],
         sieve: Callable[[np.ndarray, int], np.ndarray],
         plausible: Callable[[np.ndarray], np.ndarray], stop: Step | None = None) -> Walk:
    """The chain from pos, as `plain(pos)` walks it: probe, guess segment starts, follow."""
    head, at, halted, finished = probe(step, pos, lim, stop)
    if finished:
        return np.asarray(head, np.int64), at, halted
    sizes = np.diff(np.r_[head, at])
    mean = max(int(sizes.mean()), 1)
    segment = min(max(SEGMENT_FLOOR, SEGMENT_RECORDS * mean), (lim - at) // 4)
    # most windows must hold a record start: wider than most records
    window = int(min(max(WINDOW_FLOOR, 3 * mean, 5 * int(sizes.max()) // 4), segment // 2))
    if segment < MIN_SEGMENT:  # a short span: the plain loop is cheaper than numpy steps
        rest, at, halted = plain(at)
    else:
        starts = guess_starts(sieve, plausible, step, at, lim, segment, window)
        if len(starts) < MIN_GUESSED * ((lim - at) // segment):
            rest, at, halted = plain(at)  # hostile or odd input: guesses would not pay
        else:
            rest, at, halted = follow(step, at, lim, starts, plain, stop)
    return np.concatenate([np.asarray(head, np.int64), np.asarray(rest, np.int64)]), at, halted
