"""Host names in the audit: inventory names win, else the best capture source, and say which."""

from __future__ import annotations

import pandas as pd
import pytest
from tshark_helpers import CAPTURES, tshark_fields

from auditor.audit.host_names import name_hosts
from auditor.dissect.dcerpc import dissect_names
from auditor.dissect.names import host_rows
from auditor.dissect.tshark import _Packet


def names_frame(rows):
    return pd.DataFrame(rows, columns=["ip", "name", "source", "hint"])


def packet(layers, src="198.18.1.10", dst="198.18.10.21", sport=1, dport=2):
    return _Packet(number=1, ts_ns=0, src=src, dst=dst, sport=sport, dport=dport, stream=0,
                   layers=layers)


def test_inventory_names_win_and_capture_names_fill_the_rest_with_their_source():
    hosts = pd.DataFrame({"ip": ["198.18.1.10", "198.18.1.20", "198.18.1.30"],
                          "name": ["DC1", "", ""]})
    names = names_frame([
        ("198.18.1.10", "dc01.corp.test", "dns", ""),
        ("198.18.1.20", "mail.corp.test", "smtp-banner", ""),
        ("::ffff:198.18.1.20", "cas1.corp.test", "dns", ""),  # another spelling, better source
        ("198.18.1.20", "", "smtp-ehlo", "exchange-smtp:X-EXPS"),  # a hint names nothing
    ])
    got = name_hosts(hosts, names)
    assert got[["ip", "name", "name_source"]].values.tolist() == [
        ["198.18.1.10", "DC1", "inventory"],
        ["198.18.1.20", "cas1.corp.test", "dns"],
        ["198.18.1.30", "", ""]]


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "\x1b[31mred", "a b",
                                     "=cmd|' /C calc'!A0", "name\nINJECTED", "10.0.0.1"])
def test_capture_strings_that_are_not_host_names_name_nothing(hostile):
    tree = {"dns.resp.name": hostile, "dns.a": "198.18.1.10"}
    tls = {"tls.handshake.extensions_server_name": hostile}
    dhcp = {"dhcp.option.hostname": hostile, "dhcp.option.requested_ip_address": "198.18.1.9"}
    rows = list(host_rows(packet({"dns": [tree], "tls": [tls], "dhcp": [dhcp]})))
    assert [r for r in rows if r["name"]] == []


def test_tls_certificate_subject_cn_and_san_name_the_server_and_sni_the_destination():
    cert = {"x509af.signedCertificate_element": {
        "x509af.subject_tree": {"x509if.RelativeDistinguishedName_item_element": {
            "x509if.id": "2.5.4.3", "x509sat.DirectoryString_tree": {
                "x509sat.uTF8String": "mail.corp.test"}}},
        "x509af.extensions_tree": {"x509ce.dNSName": ["autodiscover.corp.test", "*.corp.test"]}}}
    server = list(host_rows(packet({"tls": [{"tls.handshake": cert}]})))
    assert [(r["ip"], r["name"], r["source"]) for r in server] == [
        ("198.18.1.10", "mail.corp.test", "tls-certificate"),
        ("198.18.1.10", "autodiscover.corp.test", "tls-certificate")]  # the wildcard names none
    hello = {"tls.handshake.extensions_server_name": "owa.corp.test"}
    client = list(host_rows(packet({"tls": [hello]})))
    assert [(r["ip"], r["name"], r["source"]) for r in client] == [
        ("198.18.10.21", "owa.corp.test", "tls-sni")]


def test_dhcp_ldap_rootdse_browser_srv_and_exchange_smtp_give_names_and_hints():
    layers = {
        "dhcp": [{"dhcp.option.hostname": "WS042", "dhcp.option.requested_ip_address":
                  "198.18.10.42"}],
        # dnsHostName arrives as FT_BYTES, printed colon-hex by tshark
        "ldap": [{"ldap.type": "dnsHostName",
                  "ldap.AttributeValue": ":".join(f"{b:02x}" for b in b"dc1.corp.test")}],
        "browser": [{"browser.server": "DC1", "browser.server_type_tree": {
            "browser.server_type.domain_controller": "1"}}],
        "dns": [{"dns.srv.name": "_ldap._tcp.dc._msdcs.corp.test",
                 "dns.srv.target": "dc1.corp.test"}],
        "smtp": [{"smtp.response.code": "250",
                  "smtp.rsp.parameter": ["hub1.corp.test Hello", "X-ANONYMOUSTLS", "XEXCH50"]}],
    }
    rows = [(r["ip"], r["name"], r["source"], r["hint"]) for r in host_rows(packet(layers))]
    assert rows == [
        ("", "dc1.corp.test", "dns", "srv-dc:dc1.corp.test"),
        ("198.18.1.10", "", "smtp-ehlo", "exchange-smtp:X-ANONYMOUSTLS"),
        ("198.18.1.10", "", "smtp-ehlo", "exchange-smtp:XEXCH50"),
        ("198.18.1.10", "DC1", "browser", "browser-dc:DC1"),
        ("198.18.1.10", "dc1.corp.test", "ldap", "ldap-rootdse:dc1.corp.test"),
        ("198.18.10.42", "WS042", "dhcp", ""),
    ]


@pytest.mark.tshark
def test_dns_names_match_tsharks_answers():
    path = CAPTURES / "NTP_sync.pcap"
    names = dissect_names(path)
    dns = names[names["source"] == "dns"]
    answers = tshark_fields(path, "dns.a", "dns.a", "dns.resp.name")
    oracle = {(ip, name) for ips, resp in answers for ip in ips.split(",")
              for name in resp.split(",")}
    assert set(zip(dns["ip"], dns["name"], strict=True)) <= oracle
    assert set(dns["ip"]) == {ip for ips, _ in answers for ip in ips.split(",")}


def test_exchange_greeting_and_autodiscover_certificate_name_are_exchange_hints():
    smtp = {"smtp.response.code": "220",
            "smtp.rsp.parameter": "hub1.corp.test Microsoft ESMTP MAIL Service ready at Tue"}
    cert = {"x509af.signedCertificate_element": {
        "x509af.extensions_tree": {"x509ce.dNSName": ["autodiscover.corp.test"]}}}
    rows = [(r["name"], r["source"], r["hint"])
            for r in host_rows(packet({"smtp": [smtp], "tls": [{"tls.handshake": cert}]}))]
    assert rows == [("hub1.corp.test", "smtp-banner", ""),
                    ("", "smtp-banner", "exchange-smtp:Microsoft ESMTP banner"),
                    ("autodiscover.corp.test", "tls-certificate",
                     "exchange-cert:autodiscover.corp.test")]


def test_mdns_and_llmnr_answers_name_hosts_with_their_own_source():
    answer = {"dns.resp.name": "printer.local", "dns.a": "198.18.10.60"}
    rows = [(r["ip"], r["name"], r["source"])
            for r in host_rows(packet({"mdns": [answer], "llmnr": [answer]}))]
    assert rows == [("198.18.10.60", "printer.local", "mdns"),
                    ("198.18.10.60", "printer.local", "llmnr")]


def test_srv_owner_split_by_tshark_4_0_into_service_proto_and_name_still_gives_the_dc_hint():
    # tshark 4.0 (Debian 12) gives an SRV answer's owner as three fields, and no dns.resp.name
    answer = {"dns.srv.service": "_ldap", "dns.srv.proto": "_tcp",
              "dns.srv.name": "dc._msdcs.corp.test", "dns.srv.target": "dc1.corp.test"}
    other = {"dns.srv.service": "_kerberos", "dns.srv.proto": "_tcp",
             "dns.srv.name": "corp.test", "dns.srv.target": "dc2.corp.test"}
    rows = [(r["name"], r["hint"]) for r in host_rows(packet({"dns": [answer, other]}))]
    assert rows == [("dc1.corp.test", "srv-dc:dc1.corp.test")]


def test_dhcp_ack_echoing_the_host_name_names_the_client_not_the_server():
    ack = {"dhcp.type": "2", "dhcp.ip.client": "0.0.0.0", "dhcp.ip.your": "198.18.10.11",
           "dhcp.option.hostname": "WS1"}
    request = {"dhcp.type": "1", "dhcp.ip.client": "0.0.0.0", "dhcp.option.hostname": "WS1",
               "dhcp.option.requested_ip_address": "198.18.10.11"}
    for tree, src in ((ack, "198.18.1.10"), (request, "0.0.0.0")):
        rows = [(r["ip"], r["name"]) for r in host_rows(packet({"dhcp": [tree]}, src=src))]
        assert rows == [("198.18.10.11", "WS1")]


def test_workgroup_announcement_names_its_master_browser_not_the_workgroup():
    announcement = {"browser.command": "0x0c", "browser.server": "PILOT",
                    "browser.mb_server": "FS1"}
    rows = [(r["ip"], r["name"], r["source"])
            for r in host_rows(packet({"browser": [announcement]}, src="198.18.1.70"))]
    assert rows == [("198.18.1.70", "FS1", "browser")]
