"""The flow table agrees with tshark's own conversations on every real and fixture capture.

tshark is the oracle: per TCP/UDP stream (tcp.stream / udp.stream, its own port-reuse split) we
compare the two endpoints, the packet count and the sum of frame.len with our flows built without
idle timeouts (tshark has none). tshark runs without IP reassembly and its non-first fragments are
counted to the stream of their first fragment (same src, dst and IP id), as the auditor does.
A connectionless DCE/RPC answer sent from another port than its request went to counts to the
request's stream, tied by tshark's activity id and sequence number (the auditor ties by address).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from auditor import FlowOptions, build_flows, read_packets

ROOT = Path(__file__).resolve().parents[1]
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")

# checked packet by packet against tshark in test_tunnels.py instead, which names the two cases
# tshark reads otherwise (UDP 4789 without VXLAN's I flag, a tunnel's first fragment)
NOT_HERE = {"crafted.pcap"}


def _captures() -> list[Path]:
    found = [p for p in sorted((ROOT / "fixtures" / "pcaps").rglob("*"))
             if p.suffix in CAPTURE_SUFFIXES and p.is_file() and p.name not in NOT_HERE]
    return found


def tshark_conversations(path: Path) -> Counter:
    """(proto, endpoints, packets, bytes) per tshark TCP/UDP stream."""
    fields = ["tcp.stream", "udp.stream", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
              "tcp.srcport", "udp.srcport", "tcp.dstport", "udp.dstport", "frame.len", "ip.id",
              "ip.frag_offset", "dcerpc.pkt_type", "dcerpc.dg_act_id", "dcerpc.dg_seqnum"]
    # the last occurrence of each field: a packet inside a tunnel (VXLAN, GRE, ...) is the
    # innermost one's, as the auditor reads it; 8472 is VXLAN to the auditor (the kernel's port)
    cmd = ["tshark", "-n", "-o", "ip.defragment:FALSE", "-d", "udp.port==8472,vxlan", "-r",
           str(path), "-Y", "(tcp or udp or ip.frag_offset > 0) and not icmp and not icmpv6",
           "-T", "fields", "-E", "occurrence=l", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    streams: dict[tuple[str, str], dict] = {}
    first_fragment: dict[tuple[str, str, str], tuple[str, str]] = {}
    calls: dict[tuple[str, str], tuple[str, str]] = {}  # CL RPC (activity, seq) -> request stream
    for line in out.splitlines():
        (ts, us, s4, s6, d4, d6, tsp, usp, tdp, udp_, flen, ip_id, frag, ptype, act,
         seq) = line.split("\t")
        if us and act and ptype in ("0", "1"):
            calls.setdefault((act, seq), ("udp", us))
        elif us and act and ptype in ("2", "3", "4", "5", "6", "10"):
            asked = calls.get((act, seq))
            if asked is not None and asked != ("udp", us):
                entry = streams[asked]  # the request's stream, whose endpoints it already has
                entry["packets"] += 1
                entry["bytes"] += int(flen)
                continue
        if not (ts or us):  # a non-first fragment: its first fragment's stream
            key = first_fragment.get((s4, d4, ip_id))
            if key is None:
                continue
            streams[key]["packets"] += 1
            streams[key]["bytes"] += int(flen)
            continue
        proto, stream = ("tcp", ts) if ts else ("udp", us)
        if ip_id:
            first_fragment[(s4, d4, ip_id)] = (proto, stream)
        ep = ((s4 or s6, int(tsp or usp)), (d4 or d6, int(tdp or udp_)))
        entry = streams.setdefault((proto, stream), {"ep": frozenset(ep), "packets": 0, "bytes": 0})
        entry["packets"] += 1
        entry["bytes"] += int(flen)
    return Counter((p, e["ep"], e["packets"], e["bytes"]) for (p, _), e in streams.items())


def auditor_conversations(path: Path) -> Counter:
    """The same view of our flow table."""
    with pytest.warns() if path.name in WARNS else _nullcontext():
        flows = build_flows(read_packets([path]), FlowOptions(float("inf"), float("inf")))
    flows = flows[flows["proto"].isin(["tcp", "udp"])]
    return Counter(
        (
            r.proto,
            frozenset({(r.src_ip, int(r.src_port)), (r.dst_ip, int(r.dst_port))}),
            int(r.src_packets + r.dst_packets),
            int(r.src_bytes + r.dst_bytes),
        )
        for r in flows.itertuples(index=False)
    )


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


WARNS = {"truncated.pcap", "netmon23_mixed.cap"}  # the latter skips an 802.11 frame


@pytest.mark.tshark
@pytest.mark.parametrize("path", _captures(), ids=lambda p: p.name)
def test_flows_agree_with_tshark_conversations(path: Path):
    if shutil.which("tshark") is None:
        pytest.fail("tshark is required for the flow oracle")
    ours, theirs = auditor_conversations(path), tshark_conversations(path)
    assert sum(theirs.values()) > 0 or sum(ours.values()) == 0
    assert ours - theirs == Counter(), f"only in auditor: {sorted(ours - theirs, key=str)[:5]}"
    assert theirs - ours == Counter(), f"only in tshark: {sorted(theirs - ours, key=str)[:5]}"
