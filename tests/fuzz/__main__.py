"""`python -m tests.fuzz`: the seeded fuzz campaign `make fuzz` runs (see harness.py)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

from tests.fuzz.harness import campaign, cap_memory


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per case")
    ap.add_argument("--memory-mb", type=int, default=2048, help="address space cap above start")
    ap.add_argument("--kind", action="append", help="only these mutation kinds (repeatable)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    cap_memory(args.memory_mb)

    def show(r):
        if r.outcome not in ("read", "refused"):
            print(f"FAIL {r.kind} seed {r.seed}: {r.outcome}: {r.detail}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="auditor-fuzz-") as tmp:
        camp = campaign(args.cases, args.seed, Path(tmp), args.limit, args.kind, show)
    print(camp.table())
    fails = camp.failures()
    print(f"{len(fails)} failing case(s)" + (": rerun one with --kind KIND --seed SEED --cases 1"
                                              if fails else ""))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
