"""Time `auditor flows` (and the audit with RPC discovery) against tshark in one process tree.

Each contender runs as a child of this script; wall time comes from a monotonic clock and peak
memory from the child's own rusage (os.wait4), so both are measured the same way. Prints a table
of seconds, peak RSS and the ratio to tshark, and checks the targets:
  auditor flows <= 1/3 of tshark's wall time, peak RSS <= 512 MiB;
  audit with RPC discovery <= 1.5 x auditor flows.

    python benchmarks/bench_flows.py [--capture FILE] [--packets N] [--repeat 3]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_common import capture_parser, ensure_capture

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 1024 * 1024


def run(cmd: list[str]) -> tuple[float, int]:
    """Run cmd as a child; return (wall seconds, peak RSS bytes)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {stderr.strip()[:500]}")
    return wall, usage.ru_maxrss * 1024


def best_of(cmd: list[str], repeat: int) -> tuple[float, int]:
    """Fastest wall time of `repeat` runs, with the peak RSS of all of them."""
    results = [run(cmd) for _ in range(repeat)]
    return min(r[0] for r in results), max(r[1] for r in results)


def main() -> int:
    """Command-line entry point."""
    ap = capture_parser(__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    ensure_capture(args.capture, args.packets)
    cap = str(args.capture)
    auditor = [sys.executable, "-m", "auditor"]
    inventory = ROOT / "benchmarks" / "bench_inventory.yaml"
    contenders = {
        "tshark conv": ["tshark", "-q", "-r", cap, "-z", "conv,tcp", "-z", "conv,udp"],
        "auditor flows": auditor + ["flows", cap, "--format", "csv", "-o", os.devnull],
    }
    if inventory.exists():
        contenders["auditor audit+rpc"] = auditor + [
            "audit", cap, "--inventory", str(inventory), "--format", "json", "-o", os.devnull]
    if shutil.which("nfstream") or _has_module("nfstream"):
        contenders["nfstream"] = [sys.executable, "-c",
                                  f"import nfstream; nfstream.NFStreamer({cap!r}).to_pandas()"]

    size = args.capture.stat().st_size
    print(f"capture: {cap} ({size / MIB:.0f} MiB), best of {args.repeat}")
    results = {name: best_of(cmd, args.repeat) for name, cmd in contenders.items()}
    base = results["tshark conv"][0]
    print(f"{'contender':<20} {'wall s':>8} {'peak MiB':>9} {'x tshark':>9}")
    for name, (wall, rss) in results.items():
        print(f"{name:<20} {wall:8.2f} {rss / MIB:9.0f} {wall / base:9.2f}")

    ok = True
    flows_wall, flows_rss = results["auditor flows"]
    ok &= _check("auditor flows <= 1/3 tshark wall time", flows_wall <= base / 3)
    ok &= _check("auditor flows peak RSS <= 512 MiB", flows_rss <= 512 * MIB)
    if "auditor audit+rpc" in results:
        ratio = results["auditor audit+rpc"][0] / flows_wall
        ok &= _check(f"audit+rpc <= 1.5 x flows (is {ratio:.2f}x)", ratio <= 1.5)
    return 0 if ok else 1


def _check(label: str, passed: bool) -> bool:
    print(f"[{'ok' if passed else 'MISSED'}] {label}")
    return passed


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    raise SystemExit(main())
