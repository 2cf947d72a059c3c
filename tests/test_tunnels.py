"""Packets inside tunnels (capture/headers.py `_open_tunnels`): a traffic mirror's VXLAN, ERSPAN,
GRE or Geneve is opened and the packet inside becomes the flow; what cannot be opened stays the
tunnel's flow.

fixtures/pcaps/tunnels/vxlan.pcap is real: the Linux kernel's VXLAN driver carried real HTTP,
SMTP, a refused connection, an ICMP port unreachable and pings (record_tunnels.sh).
crafted.pcap holds what that kernel could not make (make_tunnels.py), each case checked against
tshark's dissection of the same packets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from auditor import build_flows
from auditor.capture.packets import format_ip, read_packets
from auditor.cli import cli
from auditor.engine.run import stream_flows
from auditor.options import EngineOptions

TUNNELS = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "tunnels"
VXLAN = TUNNELS / "vxlan.pcap"
CRAFTED = TUNNELS / "crafted.pcap"
PROTO = {6: "tcp", 17: "udp", 47: "gre", 1: "icmp"}
# where tshark and the reader part, on purpose: tshark dissects UDP 4789 as VXLAN whatever its
# flags say (RFC 7348: the I flag must be set; Linux drops such packets), and dissects the first
# fragment of a fragmented tunnel packet inside (the reader never opens a fragment: its pieces
# stay one flow, the tunnel's)
NOT_LIKE_TSHARK = ("UDP 4789 without VXLAN's I flag: not a tunnel",
                   "fragmented VXLAN packet: its fragments stay the outer flow")

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def _listed():
    return json.loads((TUNNELS / "crafted.json").read_text())


def _packets(path):
    pk = read_packets([path]).packets
    return pk, format_ip(pk["src_ip_hi"].to_numpy(), pk["src_ip_lo"].to_numpy()), format_ip(
        pk["dst_ip_hi"].to_numpy(), pk["dst_ip_lo"].to_numpy())


def test_each_crafted_packet_is_read_as_the_packet_its_case_says():
    listed = _listed()
    pk, src, dst = _packets(CRAFTED)
    assert len(pk) == len(listed) == 47
    assert pk["record_index"].tolist() == list(range(47))
    for i, item in enumerate(listed):
        proto, a, b, pa, pb = item["flow"]
        got = PROTO[int(pk["proto"].iat[i])]
        ends = {(src[i], int(pk["src_port"].iat[i])), (dst[i], int(pk["dst_port"].iat[i]))}
        if pk["frag_offset"].iat[i]:  # a later fragment has no ports of its own
            ends = {(src[i], pa), (dst[i], pb)}
        assert (got, ends) == (proto, {(a, pa), (b, pb)}), item["case"]


def test_the_inner_ip_header_is_where_tshark_is_handed_the_packet():
    """l3_offset points at the packet inside: discovery writes packets from there (raw IP)."""
    pk, _, _ = _packets(CRAFTED)
    raw = CRAFTED.read_bytes()
    offsets, at = [], 24
    while at < len(raw):  # the pcap's records, walked here (a plain pcap of 47 records)
        caplen = int.from_bytes(raw[at + 8:at + 12], "little")
        offsets.append(at + 16)
        at += 16 + caplen
    for i, item in enumerate(_listed()):
        first = raw[offsets[i] + int(pk["l3_offset"].iat[i])]
        assert first >> 4 == int(pk["ip_version"].iat[i]), item["case"]
    gre_ipv4 = int(pk["l3_offset"].iat[0])
    assert gre_ipv4 == 14 + 20 + 4  # Ethernet, the outer IPv4 header, GRE's 4 bytes


@needs_tshark
def test_inner_addresses_agree_with_tshark_innermost_network_layer():
    out = subprocess.run(
        ["tshark", "-n", "-r", str(CRAFTED), "-d", "udp.port==8472,vxlan", "-o",
         "ip.defragment:FALSE", "-T", "fields", "-e", "_ws.col.Source", "-e",
         "_ws.col.Destination"], capture_output=True, text=True, check=True).stdout
    theirs = [tuple(line.split("\t")) for line in out.splitlines()]
    _, src, dst = _packets(CRAFTED)
    listed = _listed()
    assert len(theirs) == len(listed)
    cases = [item["case"] for item in listed]
    # every packet of the flagless 4789 case, and the first fragment only (a later one is outer
    # for both)
    expected = [i for i, c in enumerate(cases) if c == NOT_LIKE_TSHARK[0]] + [
        cases.index(NOT_LIKE_TSHARK[1])]
    assert [i for i in range(len(listed)) if (src[i], dst[i]) != theirs[i]] == expected


def test_crafted_flows_are_the_inner_conversations_and_the_unopened_tunnels():
    flows = build_flows(read_packets([CRAFTED]))
    got = Counter()
    for row in flows.itertuples():
        got[(row.proto, row.src_ip, row.dst_ip, row.src_port, row.dst_port)] += (
            row.src_packets + row.dst_packets)
    want = Counter(tuple(item["flow"]) for item in _listed())
    assert got == want
    inner = flows[flows["src_ip"].str.startswith(("198.18.221.", "2001:db8:221::"))]
    assert len(inner) == 12 and set(inner["state"]) == {"established"}  # the 12 opened cases


def _played():
    return json.loads((TUNNELS / "expected.json").read_text())


def test_real_vxlan_gives_the_conversations_played_inside_it_and_none_of_the_tunnel():
    flows = stream_flows([VXLAN], engine=EngineOptions(workers=1, cache_dir=None)).flows
    assert not (flows["dst_port"].isin([4789, 8472]) | flows["src_port"].isin([4789, 8472])).any()
    assert not flows["src_ip"].str.startswith("198.18.210.").any()  # the underlay's addresses
    seen = {(r.proto, r.src_ip, r.dst_ip, int(r.dst_port)): r.state for r in flows.itertuples()}
    for item in _played():
        if item["proto"] == "icmp":
            continue
        key = (item["proto"], item["src_ip"], item["dst_ip"], item["dst_port"])
        assert key in seen, item["what"]
        want = {80: "established", 25: "established", 26: "rejected", 5353: "rejected"}
        assert seen[key] == want[item["dst_port"]], item["what"]
    icmp = flows[flows["proto"] == "icmp"]
    assert set(map(frozenset, zip(icmp["src_ip"], icmp["dst_ip"], strict=True))) == {
        frozenset({"198.18.211.1", "198.18.211.2"}), frozenset({"198.18.212.1", "198.18.212.2"})}


@needs_tshark
def test_real_vxlan_tcp_conversations_agree_with_tshark():
    out = subprocess.run(["tshark", "-n", "-q", "-r", str(VXLAN), "-d", "udp.port==8472,vxlan",
                          "-z", "conv,tcp"], capture_output=True, text=True, check=True).stdout
    theirs = Counter()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 8 and parts[1] == "<->":
            a, b = sorted([parts[0], parts[2]])
            numbers = [int(p) for p in parts[3:] if p.isdigit()]  # frames and bytes each way
            theirs[(a, b)] = numbers[4]  # then in total
    flows = build_flows(read_packets([VXLAN]))
    tcp = flows[flows["proto"] == "tcp"]
    ours = Counter({tuple(sorted([f"{r.src_ip}:{r.src_port}", f"{r.dst_ip}:{r.dst_port}"])):
                    int(r.src_packets + r.dst_packets) for r in tcp.itertuples()})
    assert len(ours) == 4 and ours == theirs


def test_discovery_reads_host_names_from_inside_the_tunnel():
    """SMTP's banner and EHLO inside VXLAN name both ends: the candidate packets were written
    to tshark from the inner IP header (capture/packets.py write_packets)."""
    got = CliRunner().invoke(cli, ["roles", str(VXLAN), "--no-cache"], catch_exceptions=False)
    assert got.exit_code == 0, got.output
    names = {}
    for block in got.stdout.split("  - name: ")[1:]:
        lines = block.splitlines()
        names[lines[0]] = lines[1].strip()
    assert names["mail-b.tunnel.test"] == "addresses: [198.18.211.2]"
    assert names["client-a.tunnel.test"] == "addresses: [198.18.211.1]"


def test_several_workers_open_tunnels_as_one_core_does():
    one = stream_flows([CRAFTED], engine=EngineOptions(workers=1, cache_dir=None))
    two = stream_flows([CRAFTED], engine=EngineOptions(workers=2, cache_dir=None, range_bytes=512))
    assert two.report.ranges > 1  # byte ranges cut through the tunnelled packets
    assert two.flows.equals(one.flows)
    assert np.array_equal(two.labels, one.labels)


def test_each_file_says_how_many_packets_came_from_inside_a_tunnel():
    opened = sum(1 for item in _listed() if item["flow"][1].startswith(("198.18.221.",
                                                                          "2001:db8:221::")))
    assert opened == 36  # the 12 opened cases' handshakes
    assert read_packets([CRAFTED]).files[0].tunnelled == opened
    for workers, range_bytes in ((1, None), (2, 512)):
        got = stream_flows([CRAFTED], engine=EngineOptions(workers=workers, cache_dir=None,
                                                           range_bytes=range_bytes))
        assert got.table.files[0].tunnelled == opened
    text = CliRunner().invoke(cli, ["flows", str(VXLAN), "--no-cache"]).stdout
    assert text.startswith("8 flows, 60 packets from 1 file(s): vxlan.pcap (pcap, 60 records, "
                           "60 from inside tunnels)")
    plain = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "public" / "smtp.pcap"
    assert read_packets([plain]).files[0].tunnelled == 0
