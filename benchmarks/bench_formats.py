"""Read speed of every native format and compression on the 1M-packet benchmark capture.

The capture from `make_capture.py` is rewritten by editcap (pcapng, modified pcap, NetMon 2.x) and
compressed by the command-line tools (gzip, zstd, lz4, bzip2, xz -1); each file is then read by
`auditor.read_packets` in a fresh child process (the time is read_packets' own, without the
interpreter's start; files taken round-robin, best round), and once by tshark pulling the
addresses and ports of every packet (`tshark -T fields`; n/a where wiretap cannot open the
file). Prints seconds and ratios to plain pcap, and checks the targets: NetMon 2.x and modified
pcap within 1.2x pcap, zstd and lz4 within 1.5x. Not a test: timings depend on the machine.

    python benchmarks/bench_formats.py [--capture FILE] [--packets N] [--repeat 3]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_common import capture_parser, ensure_capture

MIB = 1024 * 1024
EDITCAP = {"pcapng": ("pcapng", "pcapng"), "modified pcap": ("modpcap", "mod.pcap"),
           "NetMon 2.x": ("netmon2", "cap")}
COMPRESSORS = {"gzip": (["gzip", "-c"], "gz"), "zstd": (["zstd", "-q", "-c"], "zst"),
               "lz4": (["lz4", "-q", "-c"], "lz4"), "bzip2": (["bzip2", "-c"], "bz2"),
               "xz -1": (["xz", "-1", "-T2", "-c"], "xz")}
TARGETS = {"modified pcap": 1.2, "NetMon 2.x": 1.2, "pcap+zstd": 1.5, "pcap+lz4": 1.5}
WIRETAP_CANNOT = ("bzip2", "xz -1")  # tshark does not decompress these
_CHILD = ("import sys, time, warnings\n"
          "from auditor import read_packets\n"
          "warnings.simplefilter('ignore')\n"
          "t = time.perf_counter(); table = read_packets([sys.argv[1]])\n"
          "print(time.perf_counter() - t, len(table.packets), table.files[0].format)\n")


def prepare(capture: Path) -> dict[str, Path]:
    """The benchmark files, made once beside the capture (benchmarks/data/ is not committed)."""
    files = {"pcap": capture}
    for name, (fmt, ext) in EDITCAP.items():
        out = capture.with_suffix(f".{ext}")
        if not out.exists():
            subprocess.run(["editcap", "-F", fmt, str(capture), str(out)], check=True)
        files[name] = out
    for name, (cmd, ext) in COMPRESSORS.items():
        out = capture.with_suffix(f".pcap.{ext}")
        if shutil.which(cmd[0]) is None:
            print(f"[skip] {name}: {cmd[0]} not installed")
            continue
        if not out.exists():
            with open(out, "wb") as fh:
                subprocess.run([*cmd, str(capture)], stdout=fh, check=True)
        files[f"pcap+{name.split()[0]}"] = out
    return files


def auditor_read(path: Path) -> tuple[float, int, str]:
    """(seconds in read_packets, rows, format) from a fresh child process."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]), out[2]


def tshark_read(path: Path) -> float:
    """Wall seconds for tshark to pull addresses and ports of every packet."""
    start = time.monotonic()
    subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                    "-e", "tcp.srcport", "-e", "tcp.dstport"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - start


def main() -> int:
    """Command-line entry point."""
    ap = capture_parser(__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true", help="Skip the tshark column (slow).")
    args = ap.parse_args()
    ensure_capture(args.capture, args.packets)
    files = prepare(args.capture)
    print(f"capture: {args.capture} ({args.capture.stat().st_size / MIB:.0f} MiB), "
          f"best of {args.repeat}")
    print(f"{'file':<16} {'MiB':>6} {'auditor s':>10} {'x pcap':>7} {'tshark s':>9} "
          f"{'x auditor':>9}  format")
    # Round-robin: every file once per round, so the load of a shared machine drifts over all
    # of them alike; each file's best round counts.
    runs: dict[str, list] = {name: [] for name in files}
    for _ in range(args.repeat):
        for name, path in files.items():
            runs[name].append(auditor_read(path))
    base = min(runs["pcap"])[0]
    rows0 = min(runs["pcap"])[1]
    ok = True
    for name, path in files.items():
        secs, rows, fmt = min(runs[name])
        ts = "n/a"
        if not args.no_tshark and name.removeprefix("pcap+") not in (w.split()[0] for w in
                                                                    WIRETAP_CANNOT):
            ts = f"{tshark_read(path):9.2f}"
        ratio = secs / base
        tshark_ratio = f"{float(ts) / secs:9.1f}" if ts != "n/a" else "      n/a"
        print(f"{name:<16} {path.stat().st_size / MIB:6.0f} {secs:10.2f} {ratio:7.2f} {ts:>9} "
              f"{tshark_ratio}  {fmt}", flush=True)
        if rows != rows0:
            print(f"[MISSED] {name}: {rows} packets, pcap gave {rows0}")
            ok = False
        if name in TARGETS:
            passed = ratio <= TARGETS[name]
            ok &= passed
            if not passed:
                print(f"[MISSED] {name}: {ratio:.2f}x pcap > {TARGETS[name]}x")
    print("[ok] every target met" if ok else "[MISSED] some targets")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
