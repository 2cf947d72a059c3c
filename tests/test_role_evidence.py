"""Role heuristics on hand-made flows and hints: each kind of evidence decides what it should."""

from __future__ import annotations

import pandas as pd
from test_roles import flows_frame

from auditor import propose_inventory

EST, ANS = "established", "udp_answered"


def hints(*rows):
    return pd.DataFrame(rows, columns=["ip", "name", "source", "hint"])


def proposed(rows, names=None, internal=("10.0.0.0/8",)):
    _, evidence = propose_inventory(flows_frame(rows), names, internal=list(internal))
    return {(r.ip, r.role): (r.confidence, r.evidence) for r in evidence.itertuples()}


def roles(found) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ip, role in found:
        out.setdefault(ip, set()).add(role)
    return out


def test_exchange_smtp_extensions_make_a_hub_and_with_the_internet_an_edge():
    got = proposed([("10.0.0.5", "10.0.0.25", 25, "tcp", EST),
                    ("10.0.0.25", "10.0.0.9", 88, "tcp", EST),
                    ("10.0.0.26", "203.0.113.9", 25, "tcp", EST),
                    ("203.0.113.8", "10.0.0.26", 25, "tcp", EST)],
                   hints(("10.0.0.25", "", "smtp-ehlo", "exchange-smtp:X-ANONYMOUSTLS"),
                         ("10.0.0.26", "", "smtp-ehlo", "exchange-smtp:X-EXPS")))
    assert got[("10.0.0.25", "hub_transport")] == (0.85, "Exchange SMTP X-ANONYMOUSTLS")
    assert got[("10.0.0.26", "edge_transport")] == (
        0.85, "Exchange SMTP X-EXPS; SMTP with 2 outside hosts, no directory traffic")
    # the Edge's Internet peers stay internet
    assert ("203.0.113.9", "internet") in got


def test_a_mail_client_doing_smtp_auth_to_one_outside_server_is_a_client():
    got = proposed([("10.0.0.7", "198.51.100.25", 25, "tcp", EST)],
                   hints(("10.0.0.7", "", "smtp-ehlo", "smtp-auth")))
    assert roles(got)["10.0.0.7"] == {"client"}
    assert got[("10.0.0.7", "client")][1].endswith("; SMTP AUTH as a mail client")


def test_server_evidence_wins_over_a_public_address():
    got = proposed([("10.0.0.7", "198.51.100.10", 88, "tcp", EST),
                    ("10.0.0.7", "198.51.100.10", 389, "udp", ANS),
                    ("10.0.0.7", "198.51.100.20", 443, "tcp", EST)],
                   hints(("198.51.100.20", "autodiscover.example.test", "tls-certificate",
                          "exchange-cert:autodiscover.example.test")))
    assert roles(got)["198.51.100.10"] == {"domain_controller"}
    # a certificate name alone is not server evidence enough for an outside host
    assert roles(got)["198.51.100.20"] == {"internet"}


def test_an_edge_smtp_peer_without_directory_traffic_is_the_internet_not_a_hub():
    got = proposed([("10.0.0.41", "10.0.0.61", 50636, "tcp", EST),
                    ("10.0.0.41", "10.0.0.61", 25, "tcp", EST),
                    ("10.0.0.41", "10.0.0.10", 389, "tcp", EST),
                    ("10.0.0.61", "10.0.0.99", 25, "tcp", EST)])
    assert roles(got)["10.0.0.61"] == {"edge_transport"}
    assert got[("10.0.0.99", "internet")][1] == (
        "SMTP peer of the Edge 10.0.0.61 that is not a Hub (no directory traffic)")
    assert "internet" not in roles(got)["10.0.0.41"]


def test_browser_srv_and_spn_hints_reach_the_host_they_name():
    got = proposed([("10.0.0.7", "10.0.0.10", 445, "tcp", EST),
                    ("10.0.0.7", "10.0.0.31", 443, "tcp", EST)],
                   hints(("10.0.0.10", "DC1", "browser", "browser-dc:DC1"),
                         ("10.0.0.10", "dc1.corp.test", "dns", ""),
                         ("", "dc1.corp.test", "dns", "srv-dc:dc1.corp.test"),
                         ("10.0.0.31", "cas1.corp.test", "dns", ""),
                         ("", "CAS1", "kerberos", "spn:exchangeMDB")))
    conf, text = got[("10.0.0.10", "domain_controller")]
    assert conf == 0.72 and "named by DNS SRV _ldap._tcp.dc._msdcs answers: dc1.corp.test" in text
    assert got[("10.0.0.31", "client_access")] == (
        0.6, "Kerberos service principals exchangeMDB")


def test_sip_without_directory_traffic_is_a_gateway_with_it_a_um_server():
    got = proposed([("10.0.0.70", "10.0.0.51", 5060, "udp", ANS),
                    ("10.0.0.51", "10.0.0.10", 389, "tcp", EST)])
    assert roles(got)["10.0.0.51"] == {"unified_messaging"}
    assert roles(got)["10.0.0.70"] == {"voip_gateway"}


def test_an_smtpsvc_service_principal_makes_an_smtp_server_an_exchange_transport():
    got = proposed([("10.0.0.5", "10.0.0.25", 25, "tcp", EST),
                    ("10.0.0.25", "10.0.0.10", 389, "tcp", EST)],
                   hints(("10.0.0.25", "hub1.corp.test", "dns", ""),
                         ("", "hub1.corp.test", "kerberos", "spn:SMTPSVC")))
    assert got[("10.0.0.25", "hub_transport")] == (0.85, "Kerberos service principal SMTPSVC")
