"""The mid-stream capture (fixtures/pcaps/midstream): its ground truth against tshark, and the audit
against its ground truth (orientation of flows that began before the capture, AD-life rules)."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path

import pytest
from tshark_helpers import tshark_fields

from auditor import audit_captures, load_catalogue, load_inventory

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps" / "midstream"
CAPTURE = HERE / "midstream.pcap"
TRUTH = json.loads((HERE / "ground_truth.json").read_text())
DC1, DC2, INET_NTP, INET_DNS = "198.18.1.10", "198.18.1.11", "198.19.0.123", "198.19.0.53"


@lru_cache(maxsize=1)
def audited():
    return audit_captures([CAPTURE], load_inventory(HERE / "inventory.yaml"), load_catalogue())


def _key(a, ap, b, bp):
    return tuple(sorted([(a, int(ap)), (b, int(bp))]))


@pytest.mark.tshark
def test_every_ground_truth_midstream_flow_is_in_the_capture_without_a_syn():
    syns, seen = set(), set()
    for src, sport, dst, dport, syn in tshark_fields(CAPTURE, "tcp", "ip.src", "tcp.srcport",
                                                      "ip.dst", "tcp.dstport", "tcp.flags.syn"):
        seen.add(_key(src, sport, dst, dport))
        if syn in ("1", "True"):
            syns.add(_key(src, sport, dst, dport))
    flows = TRUTH["midstream_flows"]
    services = {(f["server_ip"], f["server_port"]) for f in flows}
    # SAMR and DRSUAPI on dynamic ports, LDAP, SMB and SMTP, DRSUAPI both ways between the DCs
    assert {(DC1, 389), (DC1, 445), ("198.18.1.41", 25), (DC1, 49154)} <= services
    assert {f["client_ip"] for f in flows if f["service"] == "rpc-dynamic"} >= {DC1, DC2}
    for f in flows:
        key = _key(f["client_ip"], f["client_port"], f["server_ip"], f["server_port"])
        assert key in seen and key not in syns, f


def test_the_audit_orients_every_midstream_flow_as_the_kernel_saw_it():
    flows = audited().flows
    for f in TRUTH["midstream_flows"]:
        hit = flows[(flows["proto"] == "tcp") & (
            (flows["src_ip"] == f["client_ip"]) & (flows["src_port"] == f["client_port"])
             & (flows["dst_ip"] == f["server_ip"]) & (flows["dst_port"] == f["server_port"]))]
        assert len(hit) == 1, f
        assert hit.iloc[0]["state"] == "midstream"
        assert hit.iloc[0]["orientation"] != "first_packet", f


def test_unicast_responders_are_listening_sockets():
    listening = {(x["ip"], x["port"], x["proto"]) for x in TRUTH["listeners"]}
    flows = audited().flows
    checked = 0
    for r in flows[flows["proto"].isin(["tcp", "udp"])].itertuples():
        dst = ipaddress.ip_address(r.dst_ip)
        if dst.is_multicast or r.dst_ip.endswith(".255.255"):
            continue
        both = (r.src_ip, int(r.src_port), r.proto) in listening
        if not both:  # (chronyd polls from its own server port 123: either end listens)
            assert (r.dst_ip, int(r.dst_port), r.proto) in listening, r
            checked += 1
    assert checked >= 9


def test_normal_ad_life_between_the_dcs_and_outwards_is_documented():
    flows = audited().flows
    rules = {(r.src_ip, r.dst_ip, int(r.dst_port)): (r.rule, r.verdict)
             for r in flows.itertuples()}
    assert rules[(DC2, DC1, 49153)] == ("A08-dc-dc-replication-rpc", "expected")
    assert rules[(DC1, DC2, 49153)] == ("A08-dc-dc-replication-rpc", "expected")
    assert rules[(DC1, INET_NTP, 123)] == ("A11-dc-external-ntp", "expected")
    assert rules[(DC1, INET_DNS, 53)] == ("A07-dc-dns-forwarder-udp", "expected")
    dc_rpc = flows[(flows["dst_port"] == 49154) & (flows["dst_ip"] == DC1)].iloc[0]
    assert (dc_rpc["rule"], dc_rpc["rpc_interface"]) == ("A08-client-dc-rpc", "SAMR")


@pytest.mark.tshark
def test_the_64_lookup_epm_conversation_yields_every_port_tshark_sees():
    ports = set()
    for (value,) in tshark_fields(CAPTURE, "epm && dcerpc.pkt_type == 2", "epm.proto.tcp_port"):
        ports |= {int(p) for p in value.split(",") if p}
    rpc = audited().rpc
    epm = rpc[(rpc["server_ip"] == DC1) & (rpc["evidence"] == "epm")]
    assert ports == {49152, 49153, 49154} == set(epm["port"].astype(int))
    requests = tshark_fields(CAPTURE, "epm && dcerpc.pkt_type == 0", "frame.number")
    assert len(requests) == 64
