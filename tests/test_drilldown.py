"""From a finding to its packets with pyshark, also inside a running event loop (as in Jupyter)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from auditor import finding_packets

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot" / "pilot.pcapng"
RPC_REFUSED = "ip.addr==198.18.10.101 && ip.addr==198.18.1.21 && tcp.port==135"

pytest.importorskip("pyshark", reason="pyshark is in the dev extra; CI installs it")
pytestmark = pytest.mark.tshark


def test_finding_packets_gives_the_few_packets_with_wireshark_fields():
    packets = finding_packets(PILOT, RPC_REFUSED)
    # the SYN, and MBX1's ICMP 3/13 quoting it
    assert [p.highest_layer for p in packets] == ["TCP", "ICMP"]
    assert packets[0].ip.src == "198.18.10.101" and packets[0].tcp.dstport == "135"
    assert (packets[1].icmp.type, packets[1].icmp.code) == ("3", "13")


def test_finding_packets_works_inside_a_running_event_loop():
    async def in_jupyter():
        assert asyncio.get_running_loop().is_running()
        return finding_packets(PILOT, RPC_REFUSED, limit=1)

    packets = asyncio.run(in_jupyter())
    assert len(packets) == 1 and packets[0].tcp.flags == "0x0002"


def test_an_empty_filter_is_refused_rather_than_opening_every_packet():
    with pytest.raises(ValueError, match="empty display filter"):
        finding_packets(PILOT, "")
