"""Findings a user can act on: each says which rule, or which missing rule, decided it."""

from __future__ import annotations

from packet_factory import ACK, RST, SYN, pkt, table

from auditor import audit_flows, build_flows, load_catalogue
from auditor.inventory.roles import Host, Inventory, Network

CLIENT, MBX, ADMIN = "198.18.10.7", "198.18.1.21", "198.18.5.99"
INVENTORY = Inventory(hosts=(Host("MBX1", (MBX,), ("mailbox",)),),
                      networks=(Network("198.18.10.0/24", ("client",)),), source="test")


def connection(client, server, port, t, refused=False):
    answer = RST | ACK if refused else SYN | ACK
    rows = [pkt(t, client, 50000 + port % 1000, server, port, flags=SYN, tcp_seq=1),
            pkt(t + 0.001, server, port, client, 50000 + port % 1000, flags=answer)]
    if not refused:
        rows.append(pkt(t + 0.002, client, 50000 + port % 1000, server, port, flags=ACK))
    return rows


def details():
    flows = build_flows(table(connection(ADMIN, MBX, 3389, 1.0) + connection(CLIENT, MBX, 8081, 2.0)
                              + connection(CLIENT, MBX, 3389, 3.0, refused=True)))
    findings = audit_flows(flows, INVENTORY, load_catalogue()).findings
    return {(r.src_ip, r.kind, int(r.dst_port)): r.detail for r in findings.itertuples()}


def test_unexpected_finding_names_the_rules_that_cover_its_port_for_other_roles():
    detail = details()[(ADMIN, "unexpected", 3389)]
    assert detail.startswith("no catalogue rule allows unknown -> mailbox on 3389/tcp; 3389/tcp is "
                             "documented only for other roles: ")
    assert "G04-admin-rdp (admin -> " in detail and "check the inventory roles" in detail


def test_unexpected_finding_on_a_port_no_rule_knows_says_so():
    assert details()[(CLIENT, "unexpected", 8081)] == (
        "no catalogue rule allows client -> mailbox on 8081/tcp; no catalogue rule covers "
        "8081/tcp for any roles")


def test_refused_undocumented_path_says_which_rules_document_its_port():
    detail = details()[(CLIENT, "rejected", 3389)]
    assert detail.startswith("client -> mailbox on 3389/tcp refused (TCP RST); undocumented path; "
                             "3389/tcp is documented only for other roles: ")
