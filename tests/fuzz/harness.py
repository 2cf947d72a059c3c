"""Run fuzz cases through the CLI in-process and judge each outcome.

A case passes when `auditor flows FILE` ends with exit 0, or with exit 2 and exactly one
`auditor: error:` line that names the file and a byte offset (or says the zip/tar directory is
unreadable); `auditor: warning:` lines may come with either. It fails on exit 1 (internal error),
any other stderr line (a traceback), an exception escaping click, going past the per-case time
limit, or a MemoryError (the runner caps the address space, so a length trusted from the file
shows up as one).
"""

from __future__ import annotations

import contextlib
import random
import re
import resource
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from auditor.cli import cli
from tests.fuzz.mutators import all_kinds, supported_compressions

OUTCOMES = ("read", "refused", "internal-error", "traceback", "bad-message", "hang", "memory")
FAILURES = OUTCOMES[2:]
# A refusal names a byte offset, except for a zip or tar archive whose directory is unreadable:
# that is the whole archive, at no one offset.
_OFFSET = re.compile(r"offset \d+|: (unreadable (zip|tar) archive|archive holds no files)")


class CaseTimeout(BaseException):
    """The per-case time limit passed (BaseException: no `except Exception` swallows it)."""


def _alarm(signum, frame):
    raise CaseTimeout


@dataclass
class Result:
    """One case: what ran and how it ended."""

    kind: str
    seed: int
    outcome: str
    seconds: float
    detail: str = ""
    deep: bool = False  # ran the whole audit (tshark included), not just `flows`


@dataclass
class Campaign:
    """All results of a run, with the slowest case and the process's peak RSS."""

    results: list[Result] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def failures(self) -> list[Result]:
        """Cases whose outcome is a failure."""
        return [r for r in self.results if r.outcome in FAILURES]

    def table(self) -> str:
        """Cases by kind and outcome, as aligned text."""
        counts: dict[str, Counter] = defaultdict(Counter)
        slow: dict[str, float] = defaultdict(float)
        for r in self.results:
            counts[r.kind][r.outcome] += 1
            slow[r.kind] = max(slow[r.kind], r.seconds)
        cols = ("cases",) + OUTCOMES + ("slowest_s",)
        w = max([len(k) for k in counts] + [5])
        lines = [f"{'kind':<{w}} " + " ".join(f"{c:>14}" for c in cols)]
        total: Counter = Counter()
        for kind in sorted(counts):
            c = counts[kind]
            total.update(c)
            row = [sum(c.values())] + [c[o] for o in OUTCOMES] + [f"{slow[kind]:.2f}"]
            lines.append(f"{kind:<{w}} " + " ".join(f"{v:>14}" for v in row))
        row = [sum(total.values())] + [total[o] for o in OUTCOMES] + [
            f"{max(slow.values(), default=0):.2f}"]
        lines.append(f"{'TOTAL':<{w}} " + " ".join(f"{v:>14}" for v in row))
        deep = Counter(r.outcome for r in self.results if r.deep)
        if deep:
            lines.append(f"of which {sum(deep.values())} ran the whole audit with tshark: "
                         + ", ".join(f"{deep[o]} {o}" for o in OUTCOMES if deep[o]))
        slowest = max(self.results, key=lambda r: r.seconds, default=None)
        if slowest:
            lines.append(f"slowest case: {slowest.kind} seed {slowest.seed} "
                         f"{slowest.seconds:.2f} s; peak RSS {self.peak_rss_mb:.0f} MB")
        return "\n".join(lines)


def judge(exit_code: int, stderr: str, name: str, exc: BaseException | None) -> tuple[str, str]:
    """Classify one CLI run; returns (outcome, detail)."""
    if exc is not None and not isinstance(exc, SystemExit):
        if isinstance(exc, MemoryError):
            return "memory", "MemoryError"
        return "traceback", f"{type(exc).__name__}: {exc}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    strays = [ln for ln in lines if not ln.startswith(("auditor: warning: ", "auditor: error: ",
                                                       "auditor: internal error: ", "wrote "))]
    if strays:
        return "traceback", strays[0][:300]
    if any(ln.startswith("auditor: error: out of memory") for ln in lines):
        return "memory", next(ln for ln in lines if "out of memory" in ln)[:300]
    if exit_code == 1 or any(ln.startswith("auditor: internal error") for ln in lines):
        err = next((ln for ln in lines if "internal error" in ln), "")
        return ("memory" if "MemoryError" in err else "internal-error"), err[:300]
    if exit_code == 0:
        return "read", ""
    errors = [ln for ln in lines if ln.startswith("auditor: error: ")]
    if exit_code == 2 and len(errors) == 1 and name in errors[0] and _OFFSET.search(errors[0]):
        return "refused", errors[0][:300]
    return "bad-message", f"exit {exit_code}: {errors[:2]}"[:300]


INVENTORY = Path(__file__).resolve().parents[2] / "fixtures" / "pcaps" / "pilot" / "inventory.yaml"
DEEP_EVERY = 50  # one case in this many runs the whole audit, tshark included


def run_case(kind: str, seed: int, mutate, tmp: Path, limit_s: float, deep: bool = False) -> Result:
    """Build case (kind, seed), run `auditor flows` (deep: `audit`) on it in-process, judge it."""
    rng = random.Random(f"{kind}:{seed}")
    with _uncapped():  # the case itself (an archive bomb is big) is the harness's, not auditor's
        data, suffix = mutate(rng)
    path = tmp / f"case_{seed}{suffix}"
    path.write_bytes(data)
    args = ["flows", str(path), "--format", "csv" if seed % 2 else "json"]
    if deep:  # reader, flows, tshark's dissection of the selected packets, verdicts, JSON
        args = ["audit", str(path), "--inventory", str(INVENTORY), "--format", "json"]
    runner = CliRunner()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.perf_counter()
    try:
        # the cache is exercised too, in the campaign's folder (not the user's)
        res = runner.invoke(cli, args, catch_exceptions=True,
                            env={"XDG_CACHE_HOME": str(tmp / "cache")})
        outcome, detail = judge(res.exit_code, res.stderr, path.name, res.exception)
    except CaseTimeout:
        outcome, detail = "hang", f"over {limit_s:.0f} s"
    except MemoryError:
        outcome, detail = "memory", "MemoryError"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    path.unlink()
    return Result(kind, seed, outcome, seconds, detail, deep)


@contextlib.contextmanager
def _uncapped():
    """Lift cap_memory's address-space cap (the soft limit) for a while, then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def cap_memory(limit_mb: int) -> None:
    """Cap this process's address space at limit_mb above what it uses now."""
    with open("/proc/self/statm") as fh:
        vm_pages = int(fh.read().split()[0])
    now = vm_pages * resource.getpagesize()
    cap = now + limit_mb * (1 << 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def campaign(cases: int, seed: int, tmp: Path, limit_s: float = 10.0, kinds=None,
             on_result=None) -> Campaign:
    """Run `cases` cases spread evenly (round robin) over the mutation kinds."""
    table = all_kinds(supported_compressions())
    names = sorted(kinds or table)
    out = Campaign()
    for i in range(cases):
        kind = names[i % len(names)]
        r = run_case(kind, seed + i // len(names), table[kind], tmp, limit_s,
                     deep=i % DEEP_EVERY == DEEP_EVERY - 1)
        out.results.append(r)
        if on_result:
            on_result(r)
    out.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out
