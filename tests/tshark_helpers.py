"""Shared by the tshark-backed tests (dissect, rpc): where the captures are, the interface UUIDs
and pilot addresses they use, and tshark's own `-T fields` output as the oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "fixtures" / "pcaps" / "public"
RPC = ROOT / "fixtures" / "pcaps" / "rpc"

EMSMDB = "a4f1db00-ca47-1067-b31f-00dd010662da"
NSPI = "f5cc5a18-4264-101a-8c59-08002b2f8426"
CAS, CLIENT = "198.18.1.10", "198.18.10.21"


def tshark_fields(path: Path, display_filter: str, *names: str) -> list[list[str]]:
    """One row per matching packet: each field's occurrences, comma-separated (tshark -T fields)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-E", "occurrence=a", *sum((["-e", n] for n in names), [])],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]
