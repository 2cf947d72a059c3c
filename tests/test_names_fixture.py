"""Host names from real implementations: every name source of dissect/names.py on the recorded
names capture (fixtures/pcaps/names/, record_names.sh), with tshark's own fields as the oracle.

Each host of the capture was configured with one name, and is reached by one source that names
it best (ground_truth.json `hosts`, from recorder/hosts-names.tsv): Samba's DC-locator reply,
its DNS answers and LDAP rootDSE, Kerberos (realm, service principals, a machine account),
aiosmtpd's greeting, swaks' EHLO, openssl's certificate (TLS 1.2) and SNI (TLS 1.3), nmbd's
NBNS and browser announcements, smbclient's tree connect, busybox udhcpc's host name, avahi's
mDNS and llmnrd's LLMNR answers.
"""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner
from tshark_helpers import ROOT, tshark_fields

from auditor import assign_roles, audit_captures, load_catalogue, observe, propose_from_observation
from auditor.cli import cli
from auditor.dissect.dcerpc import dissect_names
from auditor.inventory.roles import load_inventory

FIXTURE = ROOT / "fixtures" / "pcaps" / "names"
CAPTURE = FIXTURE / "names.pcap"
TRUTH = json.loads((FIXTURE / "ground_truth.json").read_text())
HOSTS = TRUTH["hosts"]
NAME_OF = {h["ip"]: h["configured_name"] for h in HOSTS}
SOURCE_OF = {h["ip"]: h["name_source"] for h in HOSTS}
# networks only: no inventory name, so every name the audit shows comes from the capture
NETWORKS_ONLY = "networks:\n  - cidr: 198.18.0.0/15\n    roles: [client]\n"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # discovery notes are not what these tests are about
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def names():
    return dissect_names(CAPTURE)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    path = tmp_path_factory.mktemp("names") / "inventory.yaml"
    path.write_text(NETWORKS_ONLY)
    return _quiet(audit_captures, [CAPTURE], load_inventory(path), load_catalogue())


def _text(value: str) -> str:
    """tshark -T fields prints a byte field (LDAP AttributeValue) as plain hex."""
    try:
        return bytes.fromhex(value).decode("ascii")
    except ValueError:
        return value


# What the dissection makes of each piece of tshark evidence (ground_truth.json `evidence`):
# (source, host, what tshark shows) -> (address, name, hint) of a dissect_names row.
DISSECTED = {
    ("cldap", "DC1", "dc1.pilot.test"): ("198.18.1.10", "dc1.pilot.test",
                                         "dc-locator:dc1.pilot.test"),
    ("dns", "DC1", "dc1.pilot.test"): ("198.18.1.10", "dc1.pilot.test", ""),
    ("ldap", "DC1", "dc1.pilot.test"): ("198.18.1.10", "dc1.pilot.test",
                                        "ldap-rootdse:dc1.pilot.test"),
    ("kerberos", "DC1", "PILOT.TEST"): ("198.18.1.10", "", "kdc:PILOT.TEST"),
    ("kerberos", "MAIL1", "SMTPSVC,mail1.pilot.test"): ("", "mail1.pilot.test", "spn:SMTPSVC"),
    ("kerberos", "WEB1", "exchangeMDB,web1.pilot.test"): ("", "web1.pilot.test",
                                                          "spn:exchangeMDB"),
    ("smtp-banner", "MAIL1", "mail1.pilot.test"): ("198.18.1.40", "mail1.pilot.test", ""),
    ("tls-certificate", "WEB1", "web1.pilot.test"): ("198.18.1.50", "web1.pilot.test", ""),
    ("tls-certificate", "WEB1", "autodiscover.pilot.test"): (
        "198.18.1.50", "autodiscover.pilot.test", "exchange-cert:autodiscover.pilot.test"),
    ("tls-sni", "WEB1", "web1.pilot.test"): ("198.18.1.50", "web1.pilot.test", ""),
    ("tls-sni", "WEB2", "web2.pilot.test"): ("198.18.1.51", "web2.pilot.test", ""),
    ("dns", "APP1", "app1.pilot.test"): ("198.18.1.60", "app1.pilot.test", ""),
    ("nbns", "FS1", "FS1<00>"): ("198.18.1.70", "FS1", ""),
    ("browser", "FS1", "FS1"): ("198.18.1.70", "FS1", ""),
    ("smb", "FS2", "\\\\fs2.pilot.test\\public"): ("198.18.1.71", "fs2.pilot.test", ""),
    ("dhcp", "WS1", "WS1"): ("198.18.10.11", "WS1", ""),
    ("smtp-ehlo", "WS2", "ws2.pilot.test"): ("198.18.10.12", "ws2.pilot.test", ""),
    ("kerberos", "WS3", "WS3$"): ("198.18.10.13", "WS3", ""),
    ("mdns", "PRN1", "prn1.local"): ("198.18.10.30", "prn1.local", ""),
    ("llmnr", "LAPTOP1", "laptop1"): ("198.18.10.31", "laptop1", ""),
}
# the DC's SRV record names it by its target alone (no address)
DISSECTED_SRV = ("", "dc1.pilot.test", "srv-dc:dc1.pilot.test")


def test_the_fixture_names_every_source_once_as_the_best_one():
    from auditor.dissect.names import NAME_SOURCES

    # every source but the ones a better source always outranks on its own host (LDAP rootDSE
    # and browser announcements come from hosts CLDAP and NBNS already name)
    assert set(SOURCE_OF.values()) == set(NAME_SOURCES) - {"ldap", "browser"}
    assert {e["source"] for e in TRUTH["evidence"]} == set(NAME_SOURCES)


@pytest.mark.tshark
@pytest.mark.parametrize("evidence", TRUTH["evidence"],
                         ids=[f"{e['source']}-{e['host']}-{e['tshark_field']}"
                              for e in TRUTH["evidence"]])
def test_tshark_decodes_each_configured_name_and_the_dissection_reads_it(names, evidence):
    rows = tshark_fields(CAPTURE, evidence["tshark_filter"], "ip.src", "ip.dst",
                         evidence["tshark_field"])
    end = {"src": 0, "dst": 1}.get(evidence["end"])
    hits = [r for r in rows if (end is None or r[end] == evidence["ip"])
            and evidence["name"].lower() in _text(r[2]).lower()]
    assert hits, f"tshark shows no {evidence['tshark_field']} {evidence['name']}"
    want = DISSECTED[(evidence["source"], evidence["host"], evidence["name"])]
    if evidence["tshark_field"] == "dns.srv.target":
        want = DISSECTED_SRV
    got = {(r.ip, r.name, r.hint) for r in names.itertuples() if r.source == evidence["source"]}
    assert want in got


@pytest.mark.tshark
@pytest.mark.parametrize("host", HOSTS, ids=[h["name"] for h in HOSTS])
def test_each_host_is_named_as_configured_by_its_own_source(names, host):
    rows = names[(names["ip"] == host["ip"]) & (names["source"] == host["name_source"])]
    assert host["configured_name"] in set(rows["name"])


@pytest.mark.tshark
def test_no_name_of_the_real_capture_lands_on_another_host(names):
    # a DHCP server's ACK echoes the client's host name, a workgroup announcement names the
    # workgroup: neither may name the packet's sender
    named = names[(names["ip"] != "") & (names["name"] != "")]
    wrong = [(ip, name, source) for ip, name, source in
             zip(named["ip"], named["name"], named["source"], strict=True)
             if name.lower() not in {NAME_OF[ip].lower(), NAME_OF[ip].split(".")[0].lower(),
                                     "autodiscover.pilot.test"}]
    assert wrong == []


@pytest.mark.tshark
def test_role_hints_match_tsharks_reading_of_the_capture(names):
    hints = {h for h in names["hint"] if h}
    # a TGS-REQ carries the TGT's sname (krbtgt/REALM) before the one it asks for
    spns = {tuple(v.split(",")[-2:]) for (v,) in
            tshark_fields(CAPTURE, "kerberos.msg_type == 12", "kerberos.SNameString")}
    assert {("SMTPSVC", "mail1.pilot.test"), ("exchangeMDB", "web1.pilot.test")} <= spns
    realms = {v for (v,) in tshark_fields(CAPTURE, "kerberos.msg_type == 11", "kerberos.realm")}
    srv = {v for (v,) in tshark_fields(CAPTURE, 'dns.srv.service == "_ldap"', "dns.srv.target")}
    assert hints == {"spn:SMTPSVC", "spn:exchangeMDB", *(f"kdc:{r}" for r in realms),
                     *(f"srv-dc:{t}" for t in srv), "dc-locator:dc1.pilot.test",
                     "ldap-rootdse:dc1.pilot.test", "exchange-cert:autodiscover.pilot.test"}
    spn_rows = names[names["hint"].str.startswith("spn:")]
    assert set(zip(spn_rows["hint"], spn_rows["name"], strict=True)) == {
        ("spn:SMTPSVC", "mail1.pilot.test"), ("spn:exchangeMDB", "web1.pilot.test")}


@pytest.mark.tshark
def test_the_audit_names_every_host_as_configured_with_the_source_that_named_it(audited):
    hosts = audited.hosts.set_index("ip")
    got = {ip: (hosts.at[ip, "name"], hosts.at[ip, "name_source"]) for ip in NAME_OF}
    assert got == {ip: (NAME_OF[ip], SOURCE_OF[ip]) for ip in NAME_OF}


@pytest.mark.tshark
def test_json_findings_name_both_ends_with_their_name_source(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(NETWORKS_ONLY)
    result = CliRunner().invoke(cli, ["audit", str(CAPTURE), "--inventory", str(inventory),
                                      "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    findings = [f for f in json.loads(result.stdout)["findings"] if f["src_ip"]]
    assert findings
    for f in findings:
        for side in ("src", "dst"):
            ip = f[f"{side}_ip"]
            if ip in NAME_OF:
                assert (f[f"{side}_name"], f[f"{side}_name_source"]) == (
                    NAME_OF[ip], SOURCE_OF[ip]), f
    seen = {f[f"{side}_ip"] for f in findings for side in ("src", "dst")}
    assert len(seen & set(NAME_OF)) >= 6  # the client-to-client findings reach most hosts


@pytest.mark.tshark
def test_terminal_table_shows_the_capture_names(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(NETWORKS_ONLY)
    result = CliRunner().invoke(cli, ["audit", str(CAPTURE), "--inventory", str(inventory)],
                                catch_exceptions=False)
    shown = [name for name in NAME_OF.values() if name in result.stdout]
    # the hosts of findings (prn1 and laptop1 only answer LLMNR/mDNS: link traffic, no finding)
    assert {"ws2.pilot.test", "web2.pilot.test", "fs2.pilot.test"} <= set(shown)


@pytest.mark.tshark
def test_role_proposal_names_the_dc_the_mail_server_and_the_cas():
    seen = _quiet(observe, [CAPTURE])
    inv, evidence = propose_from_observation(seen)
    by_ip = {h.addresses[0]: h for h in inv.hosts}
    for role, ips in TRUTH["roles"].items():
        for ip in ips:
            assert role in by_ip[ip].roles, evidence.to_string()
            assert by_ip[ip].name == NAME_OF[ip]
    # every host seen is named as configured, by the capture alone
    assert {ip: h.name for ip, h in by_ip.items() if ip in NAME_OF} == NAME_OF
    roles = assign_roles(inv, ["198.18.1.10"])
    assert "domain_controller" in roles["roles"].iloc[0]


@pytest.mark.tshark
def test_zero_config_audit_says_which_capture_source_named_each_proposed_host():
    # the proposal takes its names from the capture: they are no inventory's names
    result = _quiet(audit_captures, [CAPTURE], None, load_catalogue())
    assert result.summary["inventory"] == "proposed"
    hosts = result.hosts.set_index("ip")
    got = {ip: (hosts.at[ip, "name"], hosts.at[ip, "name_source"]) for ip in NAME_OF}
    assert got == {ip: (NAME_OF[ip], SOURCE_OF[ip]) for ip in NAME_OF}
    findings = result.findings[result.findings["src_ip"] != ""]
    for side in ("src", "dst"):
        rows = findings[findings[f"{side}_ip"].isin(list(NAME_OF))]
        assert list(rows[f"{side}_name_source"]) == [SOURCE_OF[ip] for ip in rows[f"{side}_ip"]]


@pytest.mark.tshark
def test_markdown_and_html_reports_name_the_hosts_from_the_capture(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(NETWORKS_ONLY)
    md, html = tmp_path / "report.md", tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["audit", str(CAPTURE), "--inventory", str(inventory),
                                      "--format", "json", "--report", str(md), "--report",
                                      str(html)], catch_exceptions=False)
    findings = [f for f in json.loads(result.stdout)["findings"] if f["src_ip"]]
    named = {f[f"{side}_name"] for f in findings for side in ("src", "dst")} - {""}
    assert {"ws2.pilot.test", "web2.pilot.test", "fs2.pilot.test"} <= named
    for report in (md, html):
        text = report.read_text()
        assert [n for n in sorted(named) if n not in text] == []


@pytest.mark.tshark
def test_unicast_llmnr_and_mdns_answers_between_lan_hosts_are_link_traffic(audited, tmp_path):
    # laptop1 answers LLMNR and prn1 mDNS by unicast (RFC 4795 2.1.1, RFC 6762 6.7)
    answers = {"198.18.10.31": 5355, "198.18.10.30": 5353}
    lan = audited
    inventory = tmp_path / "outside.yaml"  # the same answers from a host said to be outside
    inventory.write_text(NETWORKS_ONLY + "hosts:\n  - name: OUT\n    addresses: [198.18.10.31]\n"
                         "    roles: [internet]\n")
    outside = _quiet(audit_captures, [CAPTURE], load_inventory(inventory), load_catalogue())
    for result, laptop_verdict in ((lan, "expected"), (outside, "unexpected")):
        flows = result.flows
        for ip, port in answers.items():
            row = flows[(flows["dst_ip"] == ip) & (flows["dst_port"] == port)
                        & (flows["proto"] == "udp")]
            assert len(row) == 1, flows[["src_ip", "dst_ip", "dst_port"]].to_string()
            want = laptop_verdict if ip == "198.18.10.31" else "expected"
            assert row["verdict"].iloc[0] == want
