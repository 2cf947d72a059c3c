"""The role proposal against the known servers of the public captures (fixtures/pcaps/public).

Which host is what comes from each capture's description (fixtures/pcaps/public/README.md) and
from tshark: the DC answers Kerberos/LDAP or serves DRSUAPI/NETLOGON, the CLDAP server's reply
says it is a DC, and so on. The table is the measure of the proposal: every row must hold.
"""

from __future__ import annotations

import warnings

import pytest
from tshark_helpers import CAPTURES, RPC, tshark_fields

from auditor import assign_roles, observe, propose_from_observation

# capture -> {address: role the proposal must give it}
KNOWN_SERVERS = {
    "CVE-2020-1472_exploit_win2019.pcap": {"172.16.5.58": "domain_controller",
                                           "172.16.0.10": "client"},
    "suricata-verify_bug-5162_input.pcap": {"192.168.56.102": "domain_controller",
                                            "192.168.56.104": "client"},
    "dcerpc_privacy_krb.pcapng": {"192.168.0.100": "domain_controller"},
    "dcerpc_msnrpc.pcapng": {"192.168.122.17": "domain_controller"},  # mid-stream only
    "kerberos.pcap": {"172.16.8.8": "domain_controller"},  # mid-stream only
    "aduser1.pcap": {"192.168.226.136": "domain_controller", "192.168.226.131": "client"},
    "kerberos_tso.pcapng": {"172.16.0.100": "domain_controller"},  # the TEST.LOCAL KDC
    "cldap-leak.pcap": {"192.168.122.3": "domain_controller"},  # its netlogon reply says so
    "NTP_sync.pcap": {"192.168.0.1": "dns", "192.168.50.50": "client"},
    # a mail client doing AUTH LOGIN with one sender, and the server it submits to
    "smtp.pcap": {"10.10.1.4": "client", "192.168.133.100": "client",
                  "192.168.133.102": "hub_transport"},
    "smtp-starttls.pcap": {"10.0.0.1": "client"},
    "sip.pcap": {"192.168.1.2": "voip_gateway"},  # SIP without directory traffic
}
# Hand-made Exchange RPC captures (fixtures/pcaps/rpc/README.md): the CAS serves EMSMDB and NSPI.
RPC_SERVERS = {("rpc_scenario_day1.pcap", "rpc_scenario_day2.pcap"): {
    "198.18.1.10": "client_access"}}


def _propose(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # discovery notes are not what this test is about
        seen = observe(paths)
    return seen, propose_from_observation(seen)


def _roles(inv, ips) -> dict[str, tuple[str, ...]]:
    frame = assign_roles(inv, list(ips))
    return dict(zip(frame["ip"], frame["roles"], strict=True))


@pytest.mark.tshark
@pytest.mark.parametrize("capture", sorted(KNOWN_SERVERS))
def test_proposal_finds_the_known_servers_of_each_public_capture(capture):
    _, (inv, evidence) = _propose([CAPTURES / capture])
    expected = KNOWN_SERVERS[capture]
    got = _roles(inv, expected)
    assert {ip: role for ip, role in expected.items() if role in got[ip]} == expected, (
        evidence.to_string())


@pytest.mark.tshark
def test_proposal_finds_the_exchange_cas_from_the_rpc_interfaces_it_serves():
    for files, expected in RPC_SERVERS.items():
        _, (inv, evidence) = _propose([RPC / f for f in files])
        assert {ip: r[0] for ip, r in _roles(inv, expected).items()} == expected
        row = evidence[evidence["ip"] == "198.18.1.10"].iloc[0]
        assert row["evidence"].startswith("serves EMSMDB (bound), NSPI (advertised by EPM)")


@pytest.mark.tshark
def test_every_host_seen_gets_an_evidence_row():
    seen, (_, evidence) = _propose([CAPTURES / "smtp.pcap"])
    # tshark's own list of unicast addresses is the oracle
    rows = tshark_fields(CAPTURES / "smtp.pcap", "ip", "ip.src", "ip.dst")
    seen_ips = {a for row in rows for field in row for a in field.split(",") if a}
    unicast = {a for a in seen_ips if not a.endswith(".255") and not a.startswith("224.")}
    assert unicast <= set(evidence["ip"])


@pytest.mark.tshark
def test_dc_confidence_is_graded_by_how_much_of_its_evidence_the_capture_shows():
    def dc_confidence(capture):
        _, (_, evidence) = _propose([CAPTURES / capture])
        return evidence.loc[evidence["role"] == "domain_controller", "confidence"].iloc[0]

    # NETLOGON and EPM only < Kerberos, LDAP, SMB < DRSUAPI + NETLOGON + DNS + EPM + SMB
    assert dc_confidence("dcerpc_msnrpc.pcapng") < dc_confidence("aduser1.pcap") < (
        dc_confidence("suricata-verify_bug-5162_input.pcap"))
