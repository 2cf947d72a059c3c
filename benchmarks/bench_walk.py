"""Time the record walk with numpy (capture.chain) against the record-by-record loop it replaced.

Both walk the whole capture in the reader's 32 MiB chunks, alternately (A, B, A, B, ...) in one
process, so a busy machine slows both alike; CPU time (time.process_time) is reported, and the
offsets of both are checked to be identical. The capture is read once first, so neither pays
for the page cache or the first touch of the memory map.

    python benchmarks/bench_walk.py [--capture FILE] [--rounds 5]
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
from bench_common import capture_parser, ensure_capture


def walkers(path: str):
    """(name, function walking the file and returning every record offset) for both walks."""
    from auditor.capture import chain
    from auditor.capture.reader import RecordReader
    from auditor.capture.records import CHUNK_BYTES

    reader = RecordReader(path)
    walker, buf = reader._walker, reader._src.buf
    if not hasattr(walker, "_offsets"):
        raise SystemExit(f"{path}: only classic pcap files are timed here")

    def offsets() -> np.ndarray:
        pos, size, out = walker.start, len(buf), []
        while True:
            lim = min(size - walker.rec_hdr, pos + CHUNK_BYTES)
            if pos > lim:
                return np.concatenate(out)
            off, pos = walker._offsets(buf, pos, lim)
            out.append(off)

    def numpy_walk() -> np.ndarray:
        return offsets()

    def plain_walk() -> np.ndarray:
        real = chain.walk
        chain.walk = lambda step, pos, lim, plain, *a, **k: plain(pos)
        try:
            return offsets()
        finally:
            chain.walk = real

    int(buf[::4096].sum())  # every page mapped before either is timed
    return reader, [("numpy walk (capture.chain)", numpy_walk), ("record-by-record loop", plain_walk)]


def main() -> int:
    """Command-line entry point."""
    ap = capture_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    ensure_capture(args.capture, args.packets)
    reader, contenders = walkers(str(args.capture))
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    first = None
    for _ in range(args.rounds):
        for name, walk in contenders:
            start = time.process_time()
            off = walk()
            times[name].append(time.process_time() - start)
            if first is None:
                first = off
            elif not np.array_equal(off, first):
                raise SystemExit(f"{name} found other record offsets")
    reader.close()
    print(f"{args.capture.name}: {len(first)} records, {args.rounds} rounds alternately "
          "(CPU seconds)")
    base = statistics.median(times[contenders[1][0]])
    for name, _ in contenders:
        med = statistics.median(times[name])
        print(f"  {name:28s} median {med:6.3f}  best {min(times[name]):6.3f}  "
              f"x{med / base:.2f} of the loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
