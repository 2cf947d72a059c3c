"""Interface- and protocol-aware rules: a rule documents RPC interfaces and application protocols.

Hand-made flows and RPC facts (no capture) for the matching; sip.pcap for SIP versus RTP; bad
rule files for the format's errors.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from packet_factory import ACK, PSH, RST, SYN, pkt, table

from auditor import audit_flows, build_flows, load_catalogue
from auditor.audit.rpc_rules import app_protocols
from auditor.catalogue.loader import catalogue_frame, check_catalogue
from auditor.errors import CatalogueError
from auditor.inventory.roles import Host, Inventory, Network
from auditor.schema import RPC_BIND_COLUMNS, RPC_ENDPOINT_COLUMNS

CLIENT, DC, DC2 = "198.18.10.7", "198.18.1.10", "198.18.1.11"
INVENTORY = Inventory(
    hosts=(Host("DC1", (DC,), ("domain_controller",)), Host("DC2", (DC2,), ("domain_controller",))),
    networks=(Network("198.18.10.0/24", ("client",)),), default_roles=(), source="test")
UUID = {"SVCCTL": "367abb81-9844-35f1-ad32-98f038001003",
        "NETLOGON": "12345678-1234-abcd-ef00-01234567cffb",
        "DRSUAPI": "e3514235-4b06-11d1-ab04-00c04fc2dcd2",
        "ISystemActivator": "000001a0-0000-0000-c000-000000000046"}
BIND_HEAD = 0x05000B03  # CO DCE/RPC 5.0 bind


def session(client, cport, server, port, t, *, refused=False):
    """A TCP connection with a bind (or a SYN answered by RST)."""
    if refused:
        return [pkt(t, client, cport, server, port, flags=SYN),
                pkt(t + 0.001, server, port, client, cport, flags=RST | ACK)]
    return [pkt(t, client, cport, server, port, flags=SYN),
            pkt(t + 0.001, server, port, client, cport, flags=SYN | ACK),
            pkt(t + 0.002, client, cport, server, port, flags=ACK),
            pkt(t + 0.003, client, cport, server, port, flags=PSH | ACK, payload=120,
                head=BIND_HEAD)]


def binds(*rows):
    frame = pd.DataFrame([{
        "ts": pd.Timestamp(1, unit="s", tz="UTC"), "client_ip": c, "client_port": cp,
        "server_ip": s, "server_port": sp, "transport": "tcp", "interface_uuid": UUID[name],
        "interface_version": "1.0", "ptype": "bind", "result": "accepted"}
        for c, cp, s, sp, name in rows])
    return frame.astype({c.name: c.dtype for c in RPC_BIND_COLUMNS})[[c.name for c in
                                                                      RPC_BIND_COLUMNS]]


def endpoints(*rows):
    """Endpoint rows as discovery gives them: (server, port, interface name, evidence, bound)."""
    defaults = {"bool": False, "str": "", "int64": 1, "uint16": 0,
                "datetime64[ns, UTC]": pd.Timestamp(1, unit="s", tz="UTC")}
    out = []
    for server, port, name, evidence, bound in rows:
        row = {c.name: defaults[c.dtype] for c in RPC_ENDPOINT_COLUMNS}
        row.update(server_ip=server, port=port, proto="tcp", evidence=evidence, interface=name,
                   interface_uuid=UUID[name], advertised=evidence == "epm", bound=bound)
        out.append(row)
    return pd.DataFrame(out).astype({c.name: c.dtype for c in RPC_ENDPOINT_COLUMNS})


def audit(packets, eps, bnds):
    return audit_flows(build_flows(table(packets)), INVENTORY, load_catalogue(),
                       rpc_endpoints=eps, rpc_binds=bnds)


def by_port(result):
    return {int(r.dst_port): r for r in result.flows.itertuples()}


def test_a_bound_interface_the_rule_does_not_list_is_undocumented_and_named():
    packets = (session(CLIENT, 50001, DC, 49667, 1.0) + session(CLIENT, 50002, DC, 49668, 2.0))
    result = audit(packets,
                   endpoints((DC, 49667, "NETLOGON", "bind", True),
                             (DC, 49668, "SVCCTL", "bind", True)),
                   binds((CLIENT, 50001, DC, 49667, "NETLOGON"),
                         (CLIENT, 50002, DC, 49668, "SVCCTL")))
    flows = by_port(result)
    assert (flows[49667].verdict, flows[49667].rule) == ("expected", "A08-client-dc-rpc")
    assert (flows[49668].verdict, flows[49668].rule) == ("unexpected", "")
    assert flows[49668].rpc_interface == "SVCCTL"
    finding = result.findings[result.findings["dst_port"] == 49668].iloc[0]
    assert "SVCCTL" in finding["detail"] and not finding["documented"]


def test_a_flow_names_the_interfaces_it_bound_not_everything_at_its_port():
    # lsass serves NETLOGON and DRSUAPI on one port; this client bound NETLOGON only
    result = audit(session(CLIENT, 50001, DC, 49667, 1.0),
                   endpoints((DC, 49667, "NETLOGON", "epm", False),
                             (DC, 49667, "DRSUAPI", "epm", False)),
                   binds((CLIENT, 50001, DC, 49667, "NETLOGON")))
    flow = by_port(result)[49667]
    assert (flow.rpc_interface, flow.rule) == ("NETLOGON", "A08-client-dc-rpc")


def test_a_refused_unlisted_interface_is_never_a_documented_block():
    # the client learned SVCCTL's port from the DC's endpoint mapper; the connection is refused
    result = audit(session(CLIENT, 50003, DC, 49670, 1.0, refused=True),
                   endpoints((DC, 49670, "SVCCTL", "epm", False)), None)
    finding = result.findings.iloc[0]
    assert (finding["kind"], finding["documented"], finding["rule"]) == ("rejected", False, "")
    assert "likely firewall block" not in finding["detail"]
    assert "undocumented path" in finding["detail"] and "SVCCTL" in finding["detail"]


def test_dcom_activation_on_135_from_a_workstation_is_not_the_endpoint_mapper_rule():
    result = audit(session(CLIENT, 50004, DC, 135, 1.0) + session(CLIENT, 50005, DC, 135, 2.0),
                   endpoints((DC, 135, "ISystemActivator", "bind", True)),
                   binds((CLIENT, 50004, DC, 135, "ISystemActivator")))
    flows = result.flows.set_index("src_port")
    assert flows.loc[50004, "rule"] == "" and flows.loc[50004, "verdict"] == "unexpected"
    # the other connection bound nothing we saw: the port's evidence alone does not condemn it
    assert flows.loc[50005, "rpc_interface"] == "ISystemActivator"


def test_dc_to_dc_drsuapi_is_replication_and_a_member_drsuapi_is_not():
    packets = session(DC2, 50010, DC, 49667, 1.0) + session(CLIENT, 50011, DC, 49667, 2.0)
    result = audit(packets, endpoints((DC, 49667, "DRSUAPI", "bind", True)),
                   binds((DC2, 50010, DC, 49667, "DRSUAPI"), (CLIENT, 50011, DC, 49667, "DRSUAPI")))
    flows = result.flows.set_index("src_ip")
    assert flows.loc[DC2, "rule"] == "A08-dc-dc-replication-rpc"
    assert (flows.loc[CLIENT, "rule"], flows.loc[CLIENT, "verdict"]) == ("", "unexpected")


def test_first_payload_bytes_tell_rtp_sip_tls_http_and_dcerpc_apart():
    heads = np.array([0x80086A2B, int.from_bytes(b"INVI", "big"), int.from_bytes(b"SIP/", "big"),
                      0x16030100, int.from_bytes(b"GET ", "big"), 0x05000B03, 0], dtype=np.uint32)
    found = app_protocols(heads)
    assert found["unknown"].tolist() == [False] * 6 + [True]
    assert found["rtp"].tolist() == [True, False, False, False, False, False, False]
    assert found["sip"].tolist() == [False, True, True, False, False, False, False]
    assert found["tls"].tolist() == [False, False, False, True, False, False, False]
    assert found["http"].tolist() == [False, False, False, False, True, False, False]
    assert found["dcerpc"].tolist() == [False, False, False, False, False, True, False]


def test_sip_over_udp_from_um_is_not_the_rtp_range_rule(public_capture):
    from auditor import audit_captures
    from auditor.options import PipelineOptions

    inventory = Inventory(hosts=(
        Host("UM1", ("192.168.1.2",), ("unified_messaging",)),
        Host("GW1", ("212.242.33.35", "212.242.33.36", "200.68.120.81"), ("voip_gateway",))),
        networks=(), default_roles=(), source="test")
    result = audit_captures([public_capture("sip.pcap")], inventory, load_catalogue(),
                            PipelineOptions(rpc=False))
    rules = {(r.src_ip, r.dst_ip, int(r.dst_port)): r.rule for r in result.flows.itertuples()}
    assert rules[("192.168.1.2", "212.242.33.35", 5060)] == "U04-um-gw-sip-udp"
    assert rules[("192.168.1.2", "200.68.120.81", 5060)] == "U04-um-gw-sip-udp"
    # one-way RTP from the UM to the gateway's media port: the responder's bytes show RTP
    assert rules[("212.242.33.36", "192.168.1.2", 30000)] == "U03-gw-um-rtp"


@pytest.fixture
def public_capture():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps" / "public"
    return lambda name: root / name


# ---- the rule format ----

RULE = """\
rules:
  - id: X01-rpc
    source: client
    destination: domain_controller
    proto: tcp
    ports: [135, rpc-dynamic]
    service: rpc
    description: test
    reference: {source: "X01", status: CONFIRMED}
    configurable: "no"
    expected: false
    severity: low
    scope: strict
"""


@pytest.mark.parametrize(("extra", "line", "message"), [
    ("    interfaces: [NETLOGON, NOSUCH]\n    interface_source: x\n", 14,
     "interfaces: 'NOSUCH' is neither an interface name from auditor/data/rpc_interfaces.csv "
     "nor a UUID"),
    ("    interfaces: [NETLOGON]\n", 14,
     "interfaces need an interface_source (where the list comes from)"),
    ("    interface_source: x\n", 14, "interface_source without interfaces"),
    ("    app_protocol: rdp\n", 14,
     "app_protocol must be one of rtp, sip, dcerpc, tls, http, not 'rdp'"),
])
def test_bad_interface_or_protocol_field_names_file_and_line(tmp_path, extra, line, message):
    path = tmp_path / "local.yaml"
    path.write_text(RULE + extra)
    with pytest.raises(CatalogueError) as err:
        check_catalogue(path)
    assert str(err.value) == f"{path}:{line}: rule 'X01-rpc': {message}"


def test_interfaces_on_a_rule_without_rpc_ports_are_an_error(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(RULE.replace("[135, rpc-dynamic]", "[445]")
                    + "    interfaces: [NETLOGON]\n    interface_source: x\n")
    with pytest.raises(CatalogueError, match=r"local.yaml:14: rule 'X01-rpc': interfaces apply "
                       r"to RPC rules only"):
        check_catalogue(path)


def test_uuids_and_names_are_accepted_and_the_catalogue_shows_them(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(RULE + textwrap.indent(
        "interfaces: [netlogon, 12345778-1234-ABCD-EF00-0123456789AC]\ninterface_source: A08\n",
        "    "))
    cat = check_catalogue(path)
    rule = cat.rule("X01-rpc")
    assert rule.interface_uuids == {UUID["NETLOGON"], "12345778-1234-abcd-ef00-0123456789ac"}
    assert catalogue_frame(cat)["interfaces"].tolist() == [
        "netlogon;12345778-1234-ABCD-EF00-0123456789AC"]


def test_every_bundled_rpc_rule_with_interfaces_names_known_ones_with_a_source():
    cat = load_catalogue()
    listed = [r for r in cat.rules if r.interfaces]
    assert {"C08-client-cas-mapi-rpc", "A08-client-dc-rpc", "A08-rpc-netlogon",
            "A08-dc-dc-replication-rpc"} <= {r.id for r in listed}
    assert set(cat.rule("C08-client-cas-mapi-rpc").interfaces) == {"EMSMDB", "AsyncEMSMDB",
                                                                   "NSPI", "RFR"}
    for rule in listed:
        assert rule.interface_source and all(rule.interface_uuids), rule.id
    assert {r.id for r in cat.rules if r.app_protocol == "rtp"} >= {"U03-gw-um-rtp",
                                                                     "U03-um-gw-rtp"}
