"""Scale benchmarks of issue 12: speed against tshark, peak memory, cores, linearity, the cache.

Every contender runs as a child of this script; wall time comes from a monotonic clock and peak
RSS from the child's own rusage (os.wait4). Contenders of one comparison run alternately, round
after round, so a busy machine slows them alike. The big captures are generated here (seeded,
`make_capture.py`'s traffic model) under --data and deleted afterwards unless --keep.

    python benchmarks/bench_scale.py [--data DIR] [--rounds 3] [--big-rounds 1]
                                     [--only speed,files,big,ring,cache] [--keep]

Sections and targets:
  speed  680 MB / 1M packets: flows <= 0.20 x tshark -q -z conv,tcp -z conv,udp;
         audit (RPC discovery) <= 1.25 x flows; `cat FILE > /dev/null` shown as the floor
  files  the same capture as 200 small files (editcap): their flows' time against one file's
         (shown, no target)
  big    2 GB / 3M packets: peak RSS <= 512 MiB for flows and audit
  ring   10 GB ring set of 5 files: peak RSS <= 512 MiB; wall within 10 % of 5 x the 2 GB
         file's; on 2 cores >= 1.6 x faster than pinned to one (taskset -c 0)
  cache  a cached re-audit <= 10 % of the first run

Before each run the share of its captures' bytes in the page cache is read (mincore) and shown
under the table: a round that found its input evicted read it from disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_capture import plan_packets, write_pcap  # noqa: E402

MIB = 1024 * 1024
AUDITOR = [sys.executable, "-m", "auditor"]
INVENTORY = HERE / "bench_inventory.yaml"


# The contender runs as a grandchild, forked from this small helper: a child forked (or
# vforked) from the benchmark itself inherits its memory high-water mark (the generated
# captures' arrays, GBs), and its ru_maxrss would report that instead of its own peak.
_PEAK_HELPER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'\\nbench-peak-kib {usage.ru_maxrss}\\n')\n"
    "sys.stderr.write(f'bench-cpu-s {usage.ru_utime + usage.ru_stime}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run(cmd: list[str] | str, shell: bool = False) -> tuple[float, int]:
    """Run cmd as a grandchild; return (wall seconds, its peak RSS in bytes)."""
    argv = ["sh", "-c", cmd] if shell else list(cmd)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-S", "-c", _PEAK_HELPER, *argv],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.monotonic() - start
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {err.strip()[:500]}")
    peak = [line for line in err.splitlines() if line.startswith("bench-peak-kib ")]
    cpu = [line for line in err.splitlines() if line.startswith("bench-cpu-s ")]
    CPU_S.setdefault(" ".join(argv), []).append(float(cpu[-1].split()[1]))
    return wall, int(peak[-1].split()[1]) * 1024


# command line -> CPU seconds (user + system, the contender and its worker processes) of each
# run: what a busy machine changes least (the ring section shows them beside the wall times)
CPU_S: dict[str, list[float]] = {}


def cpu_s(cmd: list[str]) -> float:
    """The least CPU time any run of cmd took."""
    return min(CPU_S[" ".join(cmd)])


def alternate(contenders: dict[str, list[str] | str], rounds: int,
              files: list[Path] | dict[str, list[Path]] | None = None
              ) -> dict[str, tuple[float, int]]:
    """Best wall time and worst peak RSS of each contender, run round-robin `rounds` times
    (`files`: the captures they read, or each one's by name, whose page-cached share before
    each run goes to CACHED, emptied first)."""
    got: dict[str, list[tuple[float, int]]] = {k: [] for k in contenders}
    CACHED.clear()
    for _ in range(rounds):
        for name, cmd in contenders.items():
            mine = files.get(name) if isinstance(files, dict) else files
            if mine:
                CACHED.setdefault(name, []).append(page_cached(mine))
            got[name].append(run(cmd, shell=isinstance(cmd, str)))
    return {k: (min(w for w, _ in v), max(r for _, r in v)) for k, v in got.items()}


# contender -> the share of its captures' bytes in the page cache before each of its runs
CACHED: dict[str, list[float]] = {}


def page_cached(files: list[Path]) -> float:
    """The share of the files' bytes in the page cache now (mincore(2); 1.0 where it cannot
    tell). A run that finds part of its input evicted (other work's memory, a big file written
    in between) reads it from disk, and its time is not the other rounds'."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    page = mmap.PAGESIZE
    total = cached = 0
    for path in files:
        size = path.stat().st_size
        if not size:
            continue
        with open(path, "rb") as fh:
            # a private mapping, never touched: mincore reports the file's pages in the cache
            mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY)
            try:
                pages = -(-size // page)
                vec = (ctypes.c_ubyte * pages)()
                start = ctypes.c_char.from_buffer(mm)  # the mapping's address (an export)
                failed = libc.mincore(ctypes.addressof(start), size, vec) != 0
                del start  # before close: a mapping with an export cannot be closed
                if failed:
                    return 1.0
                cached += int(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1)) * page
                total += pages * page
            finally:
                mm.close()
    return cached / total if total else 1.0


def cached_note(*names: str) -> str:
    """'page-cached before each run: ...' of the contenders named."""
    return "page-cached before each run: " + "; ".join(
        f"{n} " + ", ".join(f"{c:.0%}" for c in CACHED.get(n, [])) for n in names)


def generate(path: Path, packets: int, seed: int, offset_s: float = 0.0) -> Path:
    """Write a seeded capture of about `packets` packets, its clock shifted by offset_s."""
    if not path.exists():
        cols = plan_packets(packets, np.random.default_rng(seed))
        cols["t"] = cols["t"] + offset_s
        write_pcap(str(path), cols)
    return path


def warm(*paths: Path) -> float:
    """Read the files once (into the page cache) before any contender does; return the seconds
    that took. Left cold, the first contender of a round would read from disk and the others
    from memory (a 10 GB ring set on a machine whose cache other work had filled)."""
    start = time.monotonic()
    for path in paths:
        for f in sorted(path.iterdir()) if path.is_dir() else [path]:
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    return time.monotonic() - start


def row(name: str, wall: float, rss: int, note: str = "") -> None:
    print(f"| {name} | {wall:.2f} | {rss / MIB:.0f} | {note} |", flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def speed(data: Path, rounds: int) -> None:
    cap = generate(data / "bench_1m.pcap", 1_000_000, 7)
    size = cap.stat().st_size / 1e6
    warm(cap)
    print(f"\n### 680 MB class: {cap.name}, {size:.0f} MB, best of {rounds} alternating rounds\n")
    print("| contender | wall s | peak MiB | note |\n|---|---|---|---|")
    cmds = {
        "cat": f"cat {cap} > /dev/null",
        "tshark": ["tshark", "-q", "-n", "-r", str(cap), "-z", "conv,tcp", "-z", "conv,udp"],
        "flows": AUDITOR + ["flows", str(cap), "--format", "csv", "-o", os.devnull,
                            "--no-cache"],
        "audit": AUDITOR + ["audit", str(cap), "--inventory", str(INVENTORY), "--format",
                            "json", "-o", os.devnull, "--no-cache"],
    }
    res = alternate(cmds, rounds, files=[cap])
    t = res["tshark"][0]
    row("`cat FILE > /dev/null` (floor)", *res["cat"], f"{res['cat'][0] / t:.2f} x tshark")
    row("`tshark -q -z conv,tcp -z conv,udp`", *res["tshark"], "1.00")
    f = res["flows"][0]
    row("`auditor flows --format csv`", *res["flows"],
        f"{f / t:.2f} x tshark (target <= 0.20: {verdict(f / t <= 0.20)}); "
        f"cpu {cpu_s(cmds['flows']):.2f} s")
    a = res["audit"][0]
    audit_cpu = cpu_s(cmds["audit"])
    row("`auditor audit --format json` (RPC discovery)", *res["audit"],
        f"{a / f:.2f} x flows (target <= 1.25: {verdict(a / f <= 1.25)}); "
        f"cpu {audit_cpu:.2f} s")
    # the audit's CPU time shared perfectly over every core: no scheduling does better
    cores = os.cpu_count() or 1
    print(f"\nthe audit's cpu time over {cores} cores, perfectly shared: {audit_cpu / cores:.2f} s, "
          f"{audit_cpu / cores / f:.2f} x flows (the most parallelism alone can reach)")
    print(cached_note(*cmds))


def big(data: Path, rounds: int) -> None:
    cap = generate(data / "big_3m.pcap", 3_000_000, 11)
    print(f"\n### 2 GB class: {cap.name}, {cap.stat().st_size / 1e9:.2f} GB "
          f"(read once first: {warm(cap):.1f} s)\n")
    print("| contender | wall s | peak MiB | note |\n|---|---|---|---|")
    res = alternate({
        "flows": AUDITOR + ["flows", str(cap), "--format", "csv", "-o", os.devnull, "--no-cache"],
        "audit": AUDITOR + ["audit", str(cap), "--inventory", str(INVENTORY), "--format", "json",
                            "-o", os.devnull, "--no-cache"],
    }, rounds, files=[cap])
    for name in ("flows", "audit"):
        row(f"`auditor {name}`", *res[name],
            f"peak <= 512 MiB: {verdict(res[name][1] <= 512 * MIB)}")
    print(f"\n{cached_note('flows', 'audit')}")


def ring(data: Path, rounds: int) -> None:
    folder = data / "ring"
    folder.mkdir(exist_ok=True)
    for i in range(5):  # five 2 GB files, one hour each, in time order
        generate(folder / f"ring_{i:05d}.pcap", 3_000_000, 100 + i, offset_s=3700.0 * i)
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1e9
    print(f"\n### ring set: 5 files, {size:.1f} GB (read once first: {warm(folder):.1f} s)\n")
    print("| contender | wall s | peak MiB | note |\n|---|---|---|---|")
    flows = AUDITOR + ["flows", str(folder), "--format", "csv", "-o", os.devnull, "--no-cache"]
    # the floor, alternately too: a round whose set was partly evicted reads it from disk, and
    # its cat shows it
    res = alternate({"cat": f"cat {shlex.quote(str(folder))}/* > /dev/null", "2 cores": flows,
                     "1 core": ["taskset", "-c", "0", *flows]}, rounds,
                    files=sorted(folder.iterdir()))
    two, one = res["2 cores"], res["1 core"]
    row("`cat ring/* > /dev/null` (floor)", *res["cat"],
        f"{size / res['cat'][0]:.1f} GB/s")
    row("`auditor flows` ring, 2 worker processes", *two,
        f"peak <= 512 MiB: {verdict(two[1] <= 512 * MIB)}; cpu {cpu_s(flows):.1f} s")
    speedup = one[0] / two[0]
    row("same, `taskset -c 0` (one core)", *one,
        f"2 cores {speedup:.2f} x faster (target >= 1.6: {verdict(speedup >= 1.6)}); "
        f"cpu {cpu_s(['taskset', '-c', '0', *flows]):.1f} s")
    print(f"\n{cached_note('cat', '2 cores', '1 core')}\n")


def files(data: Path, rounds: int) -> None:
    """The 1M-packet capture as one file and as a ring of 200 small ones (editcap -c 5000,
    pcap): what each file of a set costs beyond its packets. No target of issue 12; a ring
    buffer of small files (dumpcap -b filesize:...) is common, so the per-file cost is shown."""
    cap = generate(data / "bench_1m.pcap", 1_000_000, 7)
    folder = data / "small200"
    if not folder.is_dir() or len(list(folder.iterdir())) != 200:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        subprocess.run(["editcap", "-F", "pcap", "-c", "5000", str(cap), str(folder / "s.pcap")],
                       check=True)
    print(f"\n### one file or 200: {cap.name} and {folder.name}/, best of {rounds} alternating "
          "rounds\n")
    print("| contender | wall s | peak MiB | note |\n|---|---|---|---|")
    flows = AUDITOR + ["flows", "--format", "csv", "-o", os.devnull, "--no-cache"]
    res = alternate({"one": flows + [str(cap)], "200": flows + [str(folder)]}, rounds,
                    files={"one": [cap], "200": sorted(folder.iterdir())})
    row("`auditor flows` one file", *res["one"], f"cpu {cpu_s(flows + [str(cap)]):.2f} s")
    row("`auditor flows` the same packets in 200 files", *res["200"],
        f"{res['200'][0] / res['one'][0]:.2f} x one file; cpu {cpu_s(flows + [str(folder)]):.2f} s")
    print(f"\n{cached_note('one', '200')}")


def cache(data: Path, rounds: int) -> None:
    cap = generate(data / "bench_1m.pcap", 1_000_000, 7)
    print(f"\n### cached re-audit: {cap.name}\n")
    print("| contender | wall s | peak MiB | note |\n|---|---|---|---|")
    # another inventory: the second hub transport left out (its flows become unexpected)
    other = data / "bench_inventory_other.yaml"
    text = INVENTORY.read_text()
    other.write_text(text.replace("  - name: HUB2\n    addresses: [198.18.1.42]\n"
                                  "    roles: [hub_transport]\n", ""))
    assert other.read_text() != text
    firsts, agains, others = [], [], []
    for _ in range(rounds):
        where = tempfile.mkdtemp(prefix="auditor-bench-cache-", dir=data)

        def cmd(inventory):
            return AUDITOR + ["audit", str(cap), "--inventory", str(inventory), "--format",
                              "json", "-o", os.devnull, "--cache", where]  # noqa: B023

        firsts.append(run(cmd(INVENTORY)))
        agains.append(run(cmd(INVENTORY)))
        others.append(run(cmd(other)))
        sizes = {p.name: sum(f.stat().st_blocks * 512 for f in p.rglob("*") if f.is_file())
                 for p in sorted(Path(where).iterdir()) if p.is_dir()}  # not the .usage ledger
        shutil.rmtree(where)
    first = (min(w for w, _ in firsts), max(r for _, r in firsts))
    row("`auditor audit --cache DIR`, first run", *first)
    for name, got in (("same, again (cache hit)", agains),
                      ("same, another inventory (cache hit)", others)):
        again = (min(w for w, _ in got), max(r for _, r in got))
        row(name, *again, f"{again[0] / first[0]:.2f} of the first "
                          f"(target <= 0.10: {verdict(again[0] / first[0] <= 0.10)})")
    # imported the way `auditor audit` imports them (collector paused, then frozen)
    imports = [sys.executable, "-c", "from auditor.cli.engine_opts import imports_without_gc\n"
               "with imports_without_gc():\n    import auditor.cli.audit_cmds, auditor.audit.pipeline"]
    start = [sys.executable, "-c", "import auditor.cli.audit_cmds"]
    floors = alternate({"import": imports, "start": start}, rounds)
    row("start-up and imports only (the floor of another inventory)", *floors["import"],
        f"{floors['import'][0] / first[0]:.2f} of the first")
    row("start-up of the command line only (the floor of a hit)", *floors["start"],
        f"{floors['start'][0] / first[0]:.2f} of the first")
    print("\ncache folder after the three runs: "
          + ", ".join(f"{name}/ {size / MIB:.1f} MiB" for name, size in sizes.items()))


def compile_auditor() -> str:
    """Compile the auditor package the contenders import (`python -m auditor` from here) to
    bytecode; return its folder. Writing .pyc files is what an install does; without them each
    command compiles some 95 modules anew (about 0.27 s of its start)."""
    code = ("import compileall, os, auditor\n"
            "where = os.path.dirname(auditor.__file__)\n"
            "compileall.compile_dir(where, quiet=1)\n"
            "print(where)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def main() -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-rounds", type=int, default=None,
                    help="rounds of the 2 GB and 10 GB sections (default: --rounds)")
    ap.add_argument("--only", default="speed,files,big,ring,cache")
    ap.add_argument("--keep", action="store_true",
                    help="keep the captures this run generates (those already there are kept)")
    args = ap.parse_args()
    if not stat.S_ISCHR(os.stat(os.devnull).st_mode):
        # once seen here: every `> /dev/null` and `-o /dev/null` then wrote a file in RAM (the
        # ring set's cat floor took 40-80 s, and its 8.3 GB pushed the captures out of the cache)
        raise SystemExit(f"{os.devnull} is not a character device (something replaced it with a "
                         "file); as root: rm /dev/null && mknod -m 666 /dev/null c 1 3")
    args.data.mkdir(parents=True, exist_ok=True)
    compiled = compile_auditor()
    load = os.getloadavg()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
          f"Python {platform.python_version()}, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} at start; {shutil.disk_usage(args.data).free / 1e9:.0f} GB free")
    print(f"auditor's bytecode compiled first ({compiled}), as pip does when it installs the "
          "package: a run that finds none compiles every module it imports, every time, where "
          "PYTHONDONTWRITEBYTECODE is set")
    only = set(args.only.split(","))
    big_rounds = args.big_rounds or args.rounds
    made = []
    # only what this run generates is removed: captures already there (another run's, kept
    # with --keep, that others may be reading) stay whatever --keep says
    there = {p for p in (args.data / "big_3m.pcap", args.data / "ring", args.data / "small200")
             if p.exists()}
    try:
        if "speed" in only:
            speed(args.data, args.rounds)
        if "files" in only:
            files(args.data, args.rounds)
            made.append(args.data / "small200")
        if "big" in only or "ring" in only:
            big(args.data, big_rounds)
            made.append(args.data / "big_3m.pcap")
        if "ring" in only:
            ring(args.data, big_rounds)
            # linearity against the 2 GB file, both pinned to one core
            flows = ["taskset", "-c", "0", *AUDITOR, "flows", "--format", "csv", "-o",
                     os.devnull, "--no-cache"]
            res = alternate({"one": flows + [str(args.data / "big_3m.pcap")],
                             "five": flows + [str(args.data / "ring")]}, big_rounds,
                            files={"one": [args.data / "big_3m.pcap"],
                                   "five": sorted((args.data / "ring").iterdir())})
            lin = res["five"][0] / (5 * res["one"][0])
            one_cpu = cpu_s(flows + [str(args.data / "big_3m.pcap")])
            five_cpu = cpu_s(flows + [str(args.data / "ring")])
            row("`taskset -c 0 auditor flows` 2 GB file", *res["one"], f"cpu {one_cpu:.1f} s")
            row("`taskset -c 0 auditor flows` 10 GB ring", *res["five"],
                f"{lin:.2f} x 5 x the 2 GB file (at most 1.10: {verdict(lin <= 1.10)}"
                f"{'; faster than linear' if lin < 0.90 else ''}); "
                f"cpu {five_cpu:.1f} s, {five_cpu / (5 * one_cpu):.2f} x 5 x the 2 GB file's")
            print(f"\n{cached_note('one', 'five')}")
            made.append(args.data / "ring")
        if "cache" in only:
            cache(args.data, args.rounds)
    finally:
        if not args.keep:
            for path in (p for p in made if p not in there):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    path.unlink()
        load = os.getloadavg()
        print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
