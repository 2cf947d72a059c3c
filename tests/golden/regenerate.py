"""Rewrite the golden flow tables in tests/golden/flows/ from the current code.

Run after a deliberate change of flow semantics, then review `git diff tests/golden/`:

    .venv/bin/python tests/golden/regenerate.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from auditor import build_flows, read_packets  # noqa: E402

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")
# columns that say what a flow is and how it went (flow_id and capture are bookkeeping)
COLUMNS = ["src_ip", "src_port", "dst_ip", "dst_port", "proto", "first_seen", "last_seen",
           "src_packets", "src_bytes", "dst_packets", "dst_bytes", "src_payload_bytes",
           "dst_payload_bytes", "state", "end", "icmp_type", "icmp_code", "client_payload_head",
           "orientation"]


def captures() -> list[Path]:
    """Every capture under fixtures/pcaps/, the public third-party ones (public/) included."""
    return sorted(p for p in (ROOT / "fixtures" / "pcaps").rglob("*")
                  if p.is_file() and p.suffix in CAPTURE_SUFFIXES)


def golden_name(path: Path) -> str:
    """File name of a capture's golden table (unique across fixture folders)."""
    return "__".join(path.relative_to(ROOT / "fixtures" / "pcaps").parts) + ".csv"


def flow_table_text(path: Path) -> str:
    """The capture's flow table as CSV text, in a stable order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncated fixtures warn by design
        flows = build_flows(read_packets([path]))[COLUMNS]
    flows = flows.assign(first_seen=flows["first_seen"].astype(str),
                         last_seen=flows["last_seen"].astype(str))
    return flows.sort_values(COLUMNS, kind="stable").to_csv(index=False, lineterminator="\n")


def main() -> int:
    """Write every golden table."""
    out = HERE / "flows"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.csv"):
        old.unlink()
    for path in captures():
        (out / golden_name(path)).write_text(flow_table_text(path))
    print(f"wrote {len(captures())} golden flow tables to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
