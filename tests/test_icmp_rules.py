"""ICMP and ICMPv6 rules: matched by type, echo to DCs documented, control traffic no finding."""

from __future__ import annotations

from pathlib import Path

import pytest
from packet_factory import pkt, table
from tshark_helpers import tshark_fields

from auditor import audit_captures, audit_flows, build_flows, load_catalogue, load_inventory
from auditor.inventory.roles import Host, Inventory, Network

MIDSTREAM = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "midstream"
CLIENT, DC, MBX, EDGE, ROUTER = "198.18.10.7", "198.18.1.10", "198.18.1.21", "198.18.2.5", "198.19.0.1"
INVENTORY = Inventory(
    hosts=(Host("DC1", (DC,), ("domain_controller",)), Host("MBX1", (MBX,), ("mailbox",)),
           Host("EDGE1", (EDGE,), ("edge_transport",))),
    networks=(Network("198.18.10.0/24", ("client",)),), default_roles=("internet",),
    source="test")
ICMP, ICMPV6 = 1, 58


def ping(src, dst, t=1.0, proto=ICMP, reply_only=False):
    """An echo request and its reply (or the reply alone: the request was before the capture)."""
    request, reply = (8, 0) if proto == ICMP else (128, 129)
    answer = pkt(t + 0.001, dst, 0, src, 0, proto=proto, icmp_type=reply, payload=32)
    if reply_only:
        return [answer]
    return [pkt(t, src, 0, dst, 0, proto=proto, icmp_type=request, payload=32), answer]


def audit(rows, inventory=INVENTORY):
    return audit_flows(build_flows(table(rows)), inventory, load_catalogue())


def flow_findings(result):
    """Findings about flows (not the expected rules a tiny test capture never shows)."""
    return result.findings[result.findings["kind"] != "missing"]


def one(result, proto="icmp"):
    flows = result.flows[result.flows["proto"] == proto]
    assert len(flows) == 1, flows.to_string()
    return flows.iloc[0]


@pytest.mark.tshark
def test_the_ping_to_a_dc_in_the_midstream_capture_is_documented_normal_ad_life():
    # tshark is the oracle for what the capture holds: CLIENT1 pings DC1
    echo = tshark_fields(MIDSTREAM / "midstream.pcap", "icmp.type==8", "ip.src", "ip.dst")
    assert echo and {tuple(r) for r in echo} == {("198.18.10.101", "198.18.1.10")}
    result = audit_captures([MIDSTREAM / "midstream.pcap"],
                            load_inventory(MIDSTREAM / "inventory.yaml"), load_catalogue())
    flow = one(result)
    assert (flow.src_ip, flow.dst_ip, flow.rule, flow.verdict, flow.service) == (
        "198.18.10.101", "198.18.1.10", "N01-client-dc-icmp-echo", "expected", "icmp")
    assert result.findings[result.findings["proto"] == "icmp"].empty
    status = result.rules.set_index("id").loc["N01-client-dc-icmp-echo"]
    assert (status["status"], status["flows"]) == ("observed", 1)


def test_exchange_servers_pinging_a_dc_match_the_member_rule():
    flow = one(audit(ping(MBX, DC)))
    assert (flow.rule, flow.verdict, flow.src_role, flow.dst_role) == (
        "N01-member-dc-icmp-echo", "expected", "mailbox", "domain_controller")


def test_a_ping_caught_at_its_reply_still_matches_the_echo_rule():
    flow = one(audit(ping(CLIENT, DC, reply_only=True)))
    # the reply's sender answered: the client asked (orientation), and echo covers echo-reply
    assert (flow.src_ip, flow.icmp_type, flow.rule, flow.verdict) == (
        CLIENT, 0, "N01-client-dc-icmp-echo", "expected")


def test_a_ping_to_an_exchange_server_is_unexpected_and_names_the_rules_for_other_roles():
    result = audit(ping(CLIENT, MBX))
    assert one(result).verdict == "unexpected"
    finding = result.findings.iloc[0]
    assert finding["detail"].startswith(
        "no catalogue rule allows client -> mailbox on icmp echo; icmp echo is documented only "
        "for other roles: N01-client-dc-icmp-echo (client -> domain_controller), "
        "N01-member-dc-icmp-echo (mailbox|client_access|hub_transport|unified_messaging -> "
        "domain_controller), N01-dc-dc-icmp-echo (domain_controller -> domain_controller)")
    assert finding["severity"] == "medium"


def test_the_edge_pinging_a_dc_stays_unexpected_as_it_is_no_domain_member():
    assert one(audit(ping(EDGE, DC))).verdict == "unexpected"


def test_an_icmp_type_no_rule_lists_says_so():
    rows = [pkt(1.0, CLIENT, 0, DC, 0, proto=ICMP, icmp_type=13, payload=12),
            pkt(1.001, DC, 0, CLIENT, 0, proto=ICMP, icmp_type=14, payload=12)]
    result = audit(rows)
    assert one(result).verdict == "unexpected"
    assert result.findings.iloc[0]["detail"].endswith(
        "; no catalogue rule covers icmp timestamp for any roles")


def test_path_mtu_and_unreachable_messages_are_network_control_never_a_finding():
    rows = [pkt(1.0, ROUTER, 0, MBX, 0, proto=ICMP, icmp_type=3, icmp_code=4, payload=28),
            pkt(1.5, ROUTER, 0, CLIENT, 0, proto=ICMP, icmp_type=11, payload=28),
            pkt(2.0, "2001:db8::1", 0, "2001:db8::21", 0, proto=ICMPV6, icmp_type=2, payload=48)]
    result = audit(rows)
    assert set(result.flows["verdict"]) == {"expected"}
    assert set(result.flows["service"]) == {"icmp"}
    assert flow_findings(result).empty


def test_icmpv6_neighbour_discovery_on_the_link_is_named_by_the_local_rule():
    rows = [pkt(1.0, "fe80::21", 0, "ff02::1:ff00:10", 0, proto=ICMPV6, icmp_type=135, payload=24),
            pkt(1.2, "fe80::10", 0, "fe80::21", 0, proto=ICMPV6, icmp_type=136, payload=24)]
    result = audit(rows)
    assert set(result.flows["rule"]) == {"L08-icmpv6-neighbor-discovery-mld"}
    assert set(result.flows["verdict"]) == {"expected"}
    assert flow_findings(result).empty


def test_icmpv6_echo_to_a_dc_matches_the_icmpv6_rule():
    inventory = Inventory(hosts=(Host("DC1", ("2001:db8::10",), ("domain_controller",)),),
                          networks=(Network("2001:db8:10::/64", ("client",)),), source="test")
    flow = one(audit(ping("2001:db8:10::7", "2001:db8::10", proto=ICMPV6), inventory), "icmpv6")
    assert (flow.rule, flow.verdict) == ("N01-client-dc-icmpv6-echo", "expected")


def test_unicast_neighbour_discovery_between_global_addresses_is_link_control_not_a_finding():
    # NUD: a neighbour solicitation to the neighbour's own global address, and its advertisement
    inventory = Inventory(hosts=(Host("DC1", ("2001:db8::10",), ("domain_controller",)),
                                 Host("MBX1", ("2001:db8::21",), ("mailbox",))),
                          networks=(Network("2001:db8:10::/64", ("client",)),), source="test")
    rows = [pkt(1.0, "2001:db8:10::7", 0, "2001:db8::21", 0, proto=ICMPV6, icmp_type=135,
                payload=24),
            pkt(1.001, "2001:db8::21", 0, "2001:db8:10::7", 0, proto=ICMPV6, icmp_type=136,
                payload=24)]
    result = audit(rows, inventory)
    assert set(result.flows["verdict"]) == {"expected"}
    assert flow_findings(result).empty


def test_pings_and_unreachables_between_two_hosts_are_flows_of_their_own(tmp_path):
    """Read from real bytes (capture/headers.py keys ICMP by its exchange): the DC's port
    unreachables to a client and the client's pings to the DC are two flows, each audited by
    its own type; one flow of both would take the type of whichever came first."""
    scapy = pytest.importorskip("scapy.all")
    quoted = scapy.IP(src=CLIENT, dst=DC) / scapy.UDP(sport=50000, dport=5355)
    frames = [
        scapy.IP(src=DC, dst=CLIENT) / scapy.ICMP(type=3, code=3) / bytes(quoted)[:28],
        scapy.IP(src=CLIENT, dst=DC) / scapy.ICMP(type=8, id=1, seq=1) / (b"p" * 32),
        scapy.IP(src=DC, dst=CLIENT) / scapy.ICMP(type=0, id=1, seq=1) / (b"p" * 32),
        scapy.IP(src=DC, dst=CLIENT) / scapy.ICMP(type=3, code=3) / bytes(quoted)[:28],
    ]
    for i, frame in enumerate(frames):
        frame.time = 1_704_067_200 + i
    path = tmp_path / "ping_and_unreachable.pcap"
    scapy.wrpcap(str(path), [scapy.Ether() / f for f in frames])
    result = audit_captures([path], INVENTORY, load_catalogue(), options=None)
    flows = result.flows[result.flows["proto"] == "icmp"].sort_values("icmp_type")
    assert flows[["src_ip", "dst_ip", "src_port", "dst_port", "icmp_type", "state",
                  "src_packets", "dst_packets"]].values.tolist() == [
        [DC, CLIENT, 0, 0, 3, "one_way", 2, 0],
        [CLIENT, DC, 0, 0, 8, "answered", 1, 1]]
    echo = flows[flows["icmp_type"] == 8].iloc[0]
    assert (echo["rule"], echo["verdict"]) == ("N01-client-dc-icmp-echo", "expected")
    assert flows[flows["icmp_type"] == 3].iloc[0]["service"] == "icmp"  # control, no finding
    assert not (flow_findings(result)["proto"] == "icmp").any()
