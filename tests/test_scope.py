"""Multicast, broadcast and link-local traffic: its own roles, local rules, never a HIGH finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor import PipelineOptions, audit_captures, build_flows, load_catalogue, read_packets
from auditor.audit.scope import address_scope
from auditor.audit.verdicts import _detail
from auditor.inventory.roles import Host, Inventory, Network
from auditor.render.json_export import result_to_dict

PUBLIC = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "public"
BUG_5162 = PUBLIC / "suricata-verify_bug-5162_input.pcap"
# the capture's two Windows hosts: a DC (.102) and a workstation (.104); everything else internet
INVENTORY = Inventory(
    hosts=(Host("DC1", ("192.168.56.102",), ("domain_controller", "dns")),
           Host("WS1", ("192.168.56.104",), ("client",))),
    networks=(Network("192.168.56.0/24", ("client",), "lan"),), default_roles=("internet",))


@pytest.fixture(scope="module")
def bug_5162():
    return audit_captures([BUG_5162], INVENTORY, load_catalogue(), PipelineOptions(rpc=False))


def test_group_and_link_local_addresses_have_a_scope_of_their_own():
    got = address_scope(["224.0.0.252", "ff02::1:2", "255.255.255.255", "192.168.56.255",
                         "fe80::1", "169.254.3.4", "0.0.0.0", "192.168.56.102", "8.8.8.8"],
                        INVENTORY)
    assert got.tolist() == ["multicast", "multicast", "broadcast", "broadcast", "link_local",
                            "link_local", "link_local", "", ""]


def test_multicast_destinations_are_neither_internet_nor_a_network_role(bug_5162):
    flows = bug_5162.flows
    to_groups = flows[flows["dst_ip"].isin(["239.255.255.250", "224.0.0.22", "224.0.0.252"])]
    assert sorted(to_groups["dst_role"]) == ["multicast"] * 3
    assert sorted(to_groups["dst_name"]) == ["igmpv3-reports", "llmnr", "ssdp"]
    assert set(to_groups["verdict"]) == {"expected"}
    assert sorted(to_groups["rule"]) == ["", "L03-llmnr", "L05-ssdp-wsd"]  # IGMP: local control


def test_local_noise_never_makes_a_high_finding(bug_5162):
    findings = bug_5162.findings
    local = findings["dst_role"].isin(["multicast", "broadcast", "link_local"])
    assert not (local & findings["severity"].isin(["high", "medium"])).any()
    doc = result_to_dict(bug_5162)
    assert [f for f in doc["findings"] if f["dst_ip"].startswith(("224.", "239.", "ff0"))] == []


def test_igmp_has_its_name_and_a_state_that_fits_it():
    flows = build_flows(read_packets([BUG_5162]))
    igmp = flows[flows["proto"] == "igmp"].iloc[0]
    assert (igmp.dst_ip, igmp.state, igmp.orientation) == ("224.0.0.22", "multicast", "multicast")


def test_icmp_finding_names_the_icmp_type_not_port_zero():
    assert _detail("unexpected", "client", "internet", 0, "icmp", "", "8/0", False, "") == (
        "no catalogue rule allows client -> internet on icmp echo")
    assert _detail("rejected", "client", "internet", 0, "icmp", "", "3/13", False, "").startswith(
        "client -> internet on icmp unreachable 3/13 refused")
    assert _detail("unexpected", "client", "internet", 0, "gre", "", "/", False, "") == (
        "no catalogue rule allows client -> internet on gre")
