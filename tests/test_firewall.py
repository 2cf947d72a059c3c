"""Firewall rule requests from the catalogue x inventory, from audited flows, and their writers."""

import io
import json
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from auditor.audit.pipeline import audit_captures
from auditor.audit.verdicts import AuditResult
from auditor.catalogue.loader import load_catalogue
from auditor.firewall.requests import (
    asbuilt_requests,
    design_requests,
    format_ports,
    merge_requests,
    parse_ports,
    write_requests,
)
from auditor.inventory.roles import load_inventory
from auditor.schema import AUDIT_FLOW_COLUMNS, FIREWALL_COLUMNS, column_names

PILOT_HOSTS = """\
hosts:
  - {name: DC1, addresses: [198.18.1.10], roles: [domain_controller, dns]}
  - {name: MBX1, addresses: [198.18.1.21], roles: [mailbox]}
  - {name: MBX2, addresses: [198.18.1.22], roles: [mailbox]}
  - {name: CAS1, addresses: [198.18.1.31], roles: [client_access]}
  - {name: HUB1, addresses: [198.18.1.41], roles: [hub_transport]}
  - {name: UM1, addresses: [198.18.1.51], roles: [unified_messaging]}
  - {name: EDGE1, addresses: [198.18.2.61], roles: [edge_transport]}
  - {name: GW1, addresses: [198.18.2.70], roles: [voip_gateway]}
  - {name: ADMIN1, addresses: [198.18.10.50], roles: [admin]}
"""
PILOT_NETWORKS = """\
networks:
  - {cidr: 198.18.10.0/24, roles: [client], name: clients}
  - {cidr: 198.19.0.0/16, roles: [internet], name: internet}
"""
CLIENTS = "198.18.10.0/24"
DC1, MBX1, CAS1, HUB1, EDGE1 = "198.18.1.10", "198.18.1.21", "198.18.1.31", "198.18.1.41", \
    "198.18.2.61"


def inventory(tmp_path, text=PILOT_HOSTS + PILOT_NETWORKS):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture
def pilot(tmp_path):
    return inventory(tmp_path)


def rows(frame, source, destination, proto=None):
    found = frame[(frame["source"] == source) & (frame["destination"] == destination)]
    return found if proto is None else found[found["proto"] == proto]


def one(frame, source, destination, proto="tcp"):
    found = rows(frame, source, destination, proto)
    assert len(found) == 1, found
    return found.iloc[0]


# ---- ports ----


def test_port_text_merges_adjacent_and_overlapping_ranges():
    assert format_ports([(5065, 5068), (5060, 5061)]) == "5060-5061,5065-5068"
    assert format_ports([(25, 25), (26, 30), (24, 24)]) == "24-30"
    assert format_ports([(49152, 65535), (50000, 50010), (135, 135)]) == "135,49152-65535"
    assert parse_ports("25,5060-5061") == [(25, 25), (5060, 5061)]
    assert parse_ports("") == []


# ---- design ----


def test_hub_to_edge_needs_smtp_and_edgesync(pilot, catalogue):
    design = design_requests(pilot, catalogue)
    hub_edge = rows(design, HUB1, EDGE1)
    assert dict(zip(hub_edge["rules"], hub_edge["ports"], strict=True)) == {
        "T02-hub-edge-smtp": "25", "T08-hub-edge-edgesync": "50636"}
    assert set(hub_edge["scope"]) == {"strict"}
    merged = one(merge_requests(design), HUB1, EDGE1)
    assert (merged.ports, merged.rules, merged.source_name, merged.destination_name) == (
        "25,50636", "T02-hub-edge-smtp;T08-hub-edge-edgesync", "HUB1", "EDGE1")
    assert merged.service == "ldap;smtp"


def test_client_network_to_cas_gets_the_catalogued_client_ports(pilot, catalogue):
    merged = merge_requests(design_requests(pilot, catalogue))
    cas = one(merged, CLIENTS, CAS1)
    assert cas.source_name == "clients"
    assert cas.ports == "80,110,135,143,443,993,995,49152-65535"
    assert cas.rules == ("C01-client-cas-http;C01-client-cas-https;C08-client-cas-mapi-rpc;"
                         "C10-client-cas-pop3;C11-client-cas-imap4")
    assert cas.scope == "strict" and bool(cas.justified)
    assert one(merged, CLIENTS, HUB1).ports == "25,587"


def test_hub_to_dc_ports_merge_into_sorted_ranges(pilot, catalogue):
    merged = merge_requests(design_requests(pilot, catalogue))
    assert one(merged, HUB1, DC1).ports == "53,88,135,139,389,445,464,636,3268-3269,49152-65535"
    assert one(merged, HUB1, DC1, "udp").ports == "53,88,123,137-138,389,464"


def test_gateway_to_um_sip_ranges_stay_apart(pilot, catalogue):
    merged = merge_requests(design_requests(pilot, catalogue))
    assert one(merged, "198.18.2.70", "198.18.1.51").ports == "5060-5061,5065-5068"
    assert one(merged, "198.18.2.70", "198.18.1.51", "udp").ports == "1024-65535"


def test_dynamic_rpc_without_discovery_opens_the_range_and_names_the_pinning_setting(
        pilot, catalogue):
    design = design_requests(pilot, catalogue)
    mapi = design[design["rules"] == "C08-client-cas-mapi-rpc"].iloc[0]
    assert mapi.ports == "135,49152-65535"
    assert 'MSExchangeRPC "TCP/IP Port"' in mapi.note and '"RpcTcpPort"' in mapi.note
    assert "recommend pinning" in mapi.note
    dc_rpc = design[design["rules"] == "A08-client-dc-rpc"].iloc[0]
    assert 'NTDS "TCP/IP Port"' in dc_rpc.note and '"DCTcpipPort"' in dc_rpc.note
    store = design[(design["rules"] == "T06-hub-mbx-storedriver")
                   & (design["destination"] == MBX1)].iloc[0]
    assert "netsh int ipv4 set dynamicport tcp" in store.note
    smtp = design[design["rules"] == "T02-hub-edge-smtp"].iloc[0]
    assert smtp.note == ""


def test_discovered_rpc_ports_replace_the_range_for_that_server_only(pilot, catalogue):
    design = design_requests(pilot, catalogue, rpc_ports={"CAS1": [59532, 59531],
                                                          DC1: [49712]})
    mapi = one(design[design["rules"] == "C08-client-cas-mapi-rpc"], CLIENTS, CAS1)
    assert mapi.ports == "135,59531-59532"
    assert "ports discovered for this server (59531-59532)" in mapi.note
    assert one(design[design["rules"] == "A08-client-dc-rpc"], CLIENTS, DC1).ports == "135,49712"
    pf = one(design[design["rules"] == "C09-client-mbx-publicfolder-rpc"], CLIENTS, MBX1)
    assert pf.ports == "135,49152-65535"


def test_legacy_rpc_range_adds_the_windows_2003_range(pilot, catalogue):
    design = design_requests(pilot, catalogue, legacy_rpc_range=True)
    mapi = one(design[design["rules"] == "C08-client-cas-mapi-rpc"], CLIENTS, CAS1)
    assert mapi.ports == "135,1025-5000,49152-65535"


def test_roles_without_inventory_entries_are_skipped_but_internet_becomes_any(tmp_path, catalogue):
    inv = inventory(tmp_path, PILOT_HOSTS.replace(
        "  - {name: GW1, addresses: [198.18.2.70], roles: [voip_gateway]}\n", ""))
    design = design_requests(inv, catalogue)
    assert not design["rules"].str.startswith(("U01", "U02", "U03", "U04")).any()
    assert not (design["source"] == CLIENTS).any()  # no client network in this inventory
    inbound = one(design, "any", EDGE1)
    assert (inbound.rules, inbound.ports, inbound.source_name) == (
        "T13-inet-edge-smtp", "25", "internet")
    assert design["source"].iloc[-1] == "any"  # sorted after every address


def test_multi_role_host_gets_one_row_per_destination_and_proto(tmp_path, catalogue):
    inv = inventory(tmp_path, """\
hosts:
  - {name: CAS1, addresses: [198.18.1.31], roles: [client_access]}
  - {name: EXMB1, addresses: [198.18.1.25], roles: [mailbox, hub_transport]}
""")
    design = design_requests(inv, catalogue)
    # G05 names both roles as destination: still one row for the host.
    assert len(design[design["rules"] == "G05-cas-rpc-admin"]) == 1
    assert not (design["source"] == design["destination"]).any()
    merged = merge_requests(design)
    row = one(merged, CAS1, "198.18.1.25")
    assert row.ports == "80,135,139,443,445,808,49152-65535"
    assert {"C15-cas-mbx-mapi", "G05-cas-rpc-admin"} <= set(row.rules.split(";"))
    assert len(rows(merged, CAS1, "198.18.1.25", "tcp")) == 1


def test_design_and_merge_are_deterministic(pilot, catalogue):
    design = design_requests(pilot, catalogue)
    assert list(design.columns) == column_names(FIREWALL_COLUMNS)
    pd.testing.assert_frame_equal(design, design_requests(pilot, catalogue))
    shuffled = design.sample(frac=1, random_state=7).reset_index(drop=True)
    pd.testing.assert_frame_equal(merge_requests(shuffled), merge_requests(design))
    # numeric address order, lowest source first (DC1: its forwarders and external time source)
    assert design.iloc[0]["source"] == DC1


# ---- as built ----


def flow(src, dst, port, *, proto="tcp", state="established", verdict="expected", rule="",
         service="", src_role="", dst_role="", src_name="", dst_name="", rpc_interface=""):
    return {"src_ip": src, "dst_ip": dst, "dst_port": port, "proto": proto, "state": state,
            "verdict": verdict, "rule": rule, "service": service, "src_role": src_role,
            "dst_role": dst_role, "src_name": src_name, "dst_name": dst_name,
            "rpc_interface": rpc_interface, "documented": bool(rule)}


def audit_result(flows):
    frame = pd.DataFrame(flows)
    for col in AUDIT_FLOW_COLUMNS:
        if col.name not in frame:
            frame[col.name] = 0 if col.dtype.startswith(("int", "uint")) else ""
    frame["flow_id"] = range(len(frame))
    empty = pd.DataFrame()
    return AuditResult(flows=frame[column_names(AUDIT_FLOW_COLUMNS)], findings=empty,
                       rules=empty, rpc=empty, rpc_ranges=empty, hosts=empty)


PILOT_FLOWS = [
    flow(HUB1, EDGE1, 25, rule="T02-hub-edge-smtp", service="smtp", src_role="hub_transport",
         dst_role="edge_transport", src_name="HUB1", dst_name="EDGE1"),
    flow(HUB1, EDGE1, 25, rule="T02-hub-edge-smtp", service="smtp", src_role="hub_transport",
         dst_role="edge_transport", src_name="HUB1", dst_name="EDGE1"),
    flow(HUB1, EDGE1, 50636, rule="T08-hub-edge-edgesync", service="ldap",
         src_role="hub_transport", dst_role="edge_transport"),
    flow("198.18.10.101", CAS1, 443, rule="C01-client-cas-https", service="http",
         src_role="client", dst_role="client_access", dst_name="CAS1"),
    flow("198.18.10.102", CAS1, 443, rule="C01-client-cas-https", service="http",
         src_role="client", dst_role="client_access", dst_name="CAS1"),
    flow("198.18.10.102", CAS1, 59531, rule="C08-client-cas-mapi-rpc", service="rpc",
         src_role="client", dst_role="client_access", rpc_interface="EMSMDB"),
    flow(HUB1, DC1, 53, proto="udp", state="udp_answered", rule="A07-dns-udp", service="dns",
         src_role="hub_transport", dst_role="dns"),
    flow(HUB1, DC1, 9389, verdict="unexpected", src_role="hub_transport",
         dst_role="domain_controller"),
    flow("198.18.3.99", MBX1, 445, verdict="unexpected", src_role="unknown", dst_role="mailbox",
         src_name="=HYPERLINK(\"http://x\")"),
    # Refused and silent attempts are not what the pilot needed.
    flow(HUB1, EDGE1, 3389, state="rejected", verdict="rejected", src_role="hub_transport",
         dst_role="edge_transport"),
    flow(HUB1, DC1, 636, state="unanswered", verdict="unanswered", rule="A04-ldaps",
         src_role="hub_transport", dst_role="domain_controller"),
    flow(MBX1, DC1, 0, proto="icmp", state="udp_unanswered", service="icmp",
         src_role="mailbox", dst_role="domain_controller"),
]


def test_asbuilt_keeps_successful_flows_and_marks_the_unjustified(pilot, catalogue):
    built = asbuilt_requests(audit_result(PILOT_FLOWS), pilot, catalogue)
    smtp = built[built["rules"] == "T02-hub-edge-smtp"].iloc[0]
    assert (smtp.source, smtp.destination, smtp.ports, bool(smtp.justified)) == (
        HUB1, EDGE1, "25", True)
    assert smtp.note == "2 successful flows observed"
    assert smtp.justification.startswith("Outbound mail from the organization to the Edge")
    adws = one(built, HUB1, DC1)
    assert not adws.justified and adws.rules == ""
    assert adws.justification == (
        "not in the catalogue: no rule allows hub_transport -> domain_controller on tcp/9389")
    assert adws.scope == "internal"
    stranger = one(built, "198.18.3.99", MBX1)
    assert stranger.justification == (
        "not in the catalogue: 198.18.3.99 has no role in the inventory")
    assert stranger.scope == "strict" and stranger.source_name == '=HYPERLINK("http://x")'
    assert "3389" not in set(built["ports"]) and "636" not in set(built["ports"])
    assert not (built["proto"] == "icmp").any()


def test_asbuilt_folds_clients_into_their_network_and_merges(pilot, catalogue):
    merged = merge_requests(asbuilt_requests(audit_result(PILOT_FLOWS), pilot, catalogue))
    cas = one(merged, CLIENTS, CAS1)
    assert (cas.source_name, cas.destination_name, cas.ports) == ("clients", "CAS1", "443,59531")
    assert cas.rules == "C01-client-cas-https;C08-client-cas-mapi-rpc"
    assert "RPC interface EMSMDB" in cas.note
    assert one(merged, HUB1, EDGE1).ports == "25,50636"
    # The unjustified port stays on its own row instead of hiding inside a justified one.
    hub_dc = rows(merged, HUB1, DC1)
    assert sorted(zip(hub_dc["proto"], hub_dc["ports"], hub_dc["justified"], strict=True)) == [
        ("tcp", "9389", False), ("udp", "53", True)]


def test_asbuilt_without_inventory_keeps_each_address(catalogue):
    built = asbuilt_requests(audit_result(PILOT_FLOWS))
    assert set(rows(built, "198.18.10.101", CAS1)["ports"]) == {"443"}
    assert set(rows(built, "198.18.10.102", CAS1)["ports"]) == {"443", "59531"}
    smtp = built[built["rules"] == "T02-hub-edge-smtp"].iloc[0]
    assert smtp.justification == "catalogue rule T02-hub-edge-smtp"


def test_asbuilt_of_no_successful_flows_is_an_empty_table(pilot, catalogue):
    built = asbuilt_requests(audit_result(PILOT_FLOWS[-3:]), pilot, catalogue)
    assert built.empty and list(built.columns) == column_names(FIREWALL_COLUMNS)
    assert merge_requests(built).empty


# ---- writers ----

HOSTILE = ['=cmd|" /C calc"!A0', "+1+1", "-2+3", "@SUM(1,1)", "\tTAB"]


def hostile_frame(pilot, catalogue):
    design = merge_requests(design_requests(pilot, catalogue)).head(len(HOSTILE)).copy()
    design["source_name"] = HOSTILE
    design.loc[0, "justified"] = False
    return design


def records(frame):
    return [{k: (bool(v) if k == "justified" else str(v)) for k, v in r.items()}
            for r in frame.to_dict("records")]


def json_records(frame):
    """What JSON should hold: lists as arrays (single ports as numbers), the rest as text."""
    def value(k, v):
        if k == "justified":
            return bool(v)
        if k == "ports":
            return [int(p) if p.isdigit() else p for p in str(v).split(",") if p]
        if k in ("service", "rules", "icmp_types"):
            return [p for p in str(v).split(";") if p]
        return str(v)
    return [{k: value(k, v) for k, v in r.items()} for r in frame.to_dict("records")]


def test_json_round_trips_with_lists_as_arrays(pilot, catalogue):
    frame = merge_requests(design_requests(pilot, catalogue))
    out = io.StringIO()
    write_requests(frame, out, "json")
    doc = json.loads(out.getvalue())
    assert doc == json_records(frame)
    dc = next(r for r in doc if r["source_name"] == "MBX1" and r["destination_name"] == "DC1"
              and r["proto"] == "tcp")
    assert dc["ports"][:3] == [53, 88, 135] and "49152-65535" in dc["ports"]


def test_csv_round_trips_and_neutralises_formulas(pilot, catalogue, tmp_path):
    frame = hostile_frame(pilot, catalogue)
    path = tmp_path / "rules.csv"
    write_requests(frame, path, "csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns) == column_names(FIREWALL_COLUMNS)
    assert list(back["source_name"]) == ["'" + v for v in HOSTILE]
    expected = frame.assign(justified=frame["justified"].map(str))
    pd.testing.assert_frame_equal(back.drop(columns="source_name"),
                                  expected.drop(columns="source_name").astype(str),
                                  check_dtype=False)


def test_xlsx_round_trips_with_formulas_kept_as_text(pilot, catalogue):
    frame = hostile_frame(pilot, catalogue)
    frame.loc[1, "destination_name"] = "bad\x01name"
    out = io.BytesIO()
    write_requests(frame, out, "xlsx")
    sheet_xml = zipfile.ZipFile(io.BytesIO(out.getvalue())).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet_xml
    ws = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    # Excel has no empty-string cells: empty text comes back as an empty cell (None).
    got = [["" if c.value is None else c.value for c in row] for row in ws.iter_rows()]
    assert got[0] == column_names(FIREWALL_COLUMNS)
    want = records(frame)
    want[1]["destination_name"] = "bad\\x01name"
    assert [dict(zip(got[0], row, strict=True)) for row in got[1:]] == want
    names = [ws.cell(row=r, column=2) for r in range(2, len(HOSTILE) + 2)]
    assert all(c.data_type == "s" and c.quotePrefix for c in names)


def test_unknown_format_is_refused(pilot, catalogue):
    with pytest.raises(ValueError, match="unknown format 'html'"):
        write_requests(design_requests(pilot, catalogue), io.StringIO(), "html")


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_empty_request_table_writes_only_the_header(fmt, tmp_path):
    path = tmp_path / f"rules.{fmt}"
    write_requests(merge_requests(asbuilt_requests(audit_result(PILOT_FLOWS[-3:]))), path, fmt)
    if fmt == "csv":
        assert path.read_text() == ",".join(column_names(FIREWALL_COLUMNS)) + "\n"
    elif fmt == "json":
        assert json.loads(path.read_text()) == []
    else:
        ws = openpyxl.load_workbook(path).active
        assert [[c.value for c in row] for row in ws.iter_rows()] == [
            column_names(FIREWALL_COLUMNS)]


def test_icmp_requests_open_only_the_types_their_rule_or_traffic_names(catalogue):
    """A ping rule opens echo, not every ICMP type: design rows carry the rule's icmp_types,
    as-built rows the query types the capture showed (the midstream ping of a client to DC1),
    and a merge with a row allowing every type allows every type."""
    fixture = Path(__file__).parent.parent / "fixtures" / "pcaps" / "midstream"
    inv = load_inventory(fixture / "inventory.yaml")
    design = design_requests(inv, catalogue)
    echo = design[design["rules"] == "N01-client-dc-icmp-echo"]
    assert not echo.empty and set(echo["icmp_types"]) == {"echo"}
    assert set(design.loc[~design["proto"].isin(["icmp", "icmpv6"]), "icmp_types"]) == {""}
    result = audit_captures([fixture / "midstream.pcap"], inv, catalogue)
    built = merge_requests(asbuilt_requests(result, inv, catalogue))
    icmp = built[built["proto"] == "icmp"]
    assert icmp[["destination", "icmp_types", "rules"]].values.tolist() == [
        ["198.18.1.10", "echo", "N01-client-dc-icmp-echo"]]
    any_type = icmp.assign(icmp_types="", rules="X01")
    both = merge_requests(pd.concat([icmp, any_type], ignore_index=True))
    assert both["icmp_types"].tolist() == [""]
