"""What the benchmark scripts share: the seeded 1M-packet capture they read, made when missing.

Standard library only: a benchmark's own memory must stay small, since a contender started
from it may report the benchmark's peak as its own (vfork and exec keep the high-water mark).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def capture_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with --capture (default benchmarks/data/bench_1m.pcap) and --packets."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=HERE / "data" / "bench_1m.pcap")
    ap.add_argument("--packets", type=int, default=1_000_000)
    return ap


def ensure_capture(path: Path, packets: int) -> None:
    """Write the seeded capture with make_capture.py (in its own process) unless it exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(HERE / "make_capture.py"), str(path),
                    "--packets", str(packets)], check=True)
