"""Each capture's flow table equals its reviewed golden copy (tests/golden/flows/).

tshark confirms conversations, packets and bytes (test_flows_oracle.py); the golden tables also
pin what tshark cannot tell: initiator, state, end, ICMP codes, payload bytes. After a deliberate
change, regenerate with `python tests/golden/regenerate.py` and review the diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from regenerate import HERE, captures, flow_table_text, golden_name  # noqa: E402


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_flow_table_matches_its_golden_copy(path: Path):
    golden = HERE / "flows" / golden_name(path)
    assert golden.exists(), f"no golden table: run tests/golden/regenerate.py ({golden.name})"
    assert flow_table_text(path) == golden.read_text()


def test_every_golden_table_belongs_to_a_capture():
    expected = {golden_name(p) for p in captures()}
    assert {p.name for p in (HERE / "flows").glob("*.csv")} == expected
