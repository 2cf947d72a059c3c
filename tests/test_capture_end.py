"""The capture's end and length: cut-off requests are not blocks, short captures miss little."""

from __future__ import annotations

import pytest
from packet_factory import SYN, pkt, table

from auditor import audit_flows, build_flows, load_catalogue
from auditor.inventory.roles import Host, Inventory, Network

CLIENT, DC, HUB = "198.18.10.21", "198.18.1.20", "198.18.1.30"
INVENTORY = Inventory(hosts=(Host("DC1", (DC,), ("domain_controller", "dns")),
                             Host("HUB1", (HUB,), ("hub_transport",))),
                      networks=(Network("198.18.10.0/24", ("client",), "clients"),))
DNS_QUERY = dict(payload=30, head=0x12340100)
DNS_ANSWER = dict(payload=46, head=0x12348180)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def audit(rows, catalogue):
    return audit_flows(build_flows(table(rows)), INVENTORY, catalogue)


def test_dns_query_sent_just_before_the_capture_ended_is_cut_off_not_unanswered(catalogue):
    rows = [pkt(0.0, CLIENT, 50000, DC, 53, proto=17, **DNS_QUERY),
            pkt(0.01, DC, 53, CLIENT, 50000, proto=17, **DNS_ANSWER),
            pkt(59.0, CLIENT, 50001, DC, 53, proto=17, **DNS_QUERY),  # 1 s before the end
            pkt(60.0, CLIENT, 50002, DC, 53, proto=17, **DNS_QUERY),
            pkt(60.0, DC, 53, CLIENT, 50002, proto=17, **DNS_ANSWER)]
    result = audit(rows, catalogue)
    late = result.flows[result.flows["src_port"] == 50001].iloc[0]
    assert (late.state, late.verdict) == ("udp_unanswered", "cut_off")
    finding = result.findings[result.findings["kind"] == "cut_off"].iloc[0]
    assert finding.severity == "info"
    assert "cut off by the end of the capture" in finding.detail
    assert "1.0 s before the capture ended" in finding.detail
    assert not (result.findings["kind"] == "unanswered").any()


def test_retried_syn_before_the_end_is_still_unanswered(catalogue):
    rows = [pkt(0.0, CLIENT, 50000, HUB, 25, flags=SYN), pkt(1.0, CLIENT, 50000, HUB, 25, flags=SYN),
            pkt(3.0, CLIENT, 50000, HUB, 25, flags=SYN)]  # retried: the client gave up waiting
    assert audit(rows, catalogue).flows["verdict"].tolist() == ["unanswered"]


def test_syn_long_before_the_end_is_unanswered(catalogue):
    rows = [pkt(0.0, CLIENT, 50000, DC, 389, flags=SYN),
            pkt(30.0, CLIENT, 50001, DC, 53, proto=17, **DNS_QUERY),
            pkt(30.01, DC, 53, CLIENT, 50001, proto=17, **DNS_ANSWER)]
    flows = audit(rows, catalogue).flows
    assert flows.loc[flows["dst_port"] == 389, "verdict"].tolist() == ["unanswered"]


def test_missing_findings_in_a_short_capture_are_info_and_state_its_duration(catalogue):
    rows = [pkt(0.0, HUB, 50000, DC, 53, proto=17, **DNS_QUERY),
            pkt(3.0, DC, 53, HUB, 50000, proto=17, **DNS_ANSWER)]
    result = audit(rows, catalogue)
    missing = result.findings[result.findings["kind"] == "missing"]
    assert len(missing) > 0
    assert set(missing["severity"]) == {"info"}
    assert all("the capture lasts 3.0 s, shorter than 15 min: info only" in d
               for d in missing["detail"])
    assert result.summary["capture_seconds"] == 3.0
    assert "missing paths are info" in result.summary["short_capture"]
