"""dissect/select.py and dissect/rpc.py: packet selection, endpoints, flow annotation, range advice."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from packet_factory import ACK, PSH, SYN, pkt, table
from tshark_helpers import CAPTURES, CAS, CLIENT, EMSMDB, NSPI, ROOT, RPC

from auditor import RpcOptions, annotate_flows, discover_endpoints, dynamic_ranges, interface_name
from auditor.capture.packets import read_packets
from auditor.dissect.rpc import interface_table
from auditor.dissect.rpc_use import endpoint_use
from auditor.dissect.select import rpc_selection, select_name_rows, select_rpc_rows
from auditor.errors import DissectError, DissectWarning
from auditor.flows.build import build_flows_labelled
from auditor.schema import RPC_ENDPOINT_COLUMNS, RPC_RANGE_COLUMNS, column_names, empty_frame

EPM = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
DC, CLIENT_B, CLIENT_C = "198.18.1.2", "198.18.10.22", "198.18.10.23"
BIND_HEAD = 0x05000B03  # DCE/RPC CO v5.0 bind, flags first|last
ACK_HEAD = 0x05000C03
REQUEST_HEAD = 0x05000003


def flows_of(*paths: Path):
    packets = read_packets(list(paths))
    flows, labels = build_flows_labelled(packets)
    return packets, flows, labels


@functools.cache
def discovered(*paths: Path):
    """One discovery per capture set for the whole module; warnings are returned, not raised."""
    packets, flows, labels = flows_of(*paths)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = discover_endpoints(packets, flows, labels)
    return packets, flows, found, [str(w.message) for w in caught if w.category is DissectWarning]


def triples(endpoints: pd.DataFrame) -> set[tuple[str, int, str]]:
    return {(s, int(p), u) for s, p, u in endpoints[["server_ip", "port", "interface_uuid"]].values}


# --- interface names (no tshark) -------------------------------------------------------------------


def test_interface_name_matches_the_full_uuid_only():
    assert interface_name(EMSMDB) == "EMSMDB"
    # one hex digit apart: b31f is EMSMDB, b31e the legacy store admin interface
    assert interface_name("a4f1db00-ca47-1067-b31e-00dd010662da") == "Exchange store admin (b31e)"
    assert interface_name(NSPI) == "NSPI"
    assert interface_name("f5cc59b4-4264-101a-8c59-08002b2f8426") == "FRS"
    assert interface_name("f5cc5a7c-4264-101a-8c59-08002b2f8426") == "XDS"
    assert interface_name("{A4F1DB00-CA47-1067-B31F-00DD010662DA}") == "EMSMDB"
    assert interface_name("a4f1db00-ca47-1067-b31f") == ""
    assert interface_name("00000000-0000-0000-0000-000000000000") == ""


def test_interface_catalogue_rows_are_unique_and_sourced():
    cat = interface_table()
    assert list(cat.columns) == ["uuid", "version", "name", "description", "served_by", "source"]
    assert cat["uuid"].is_unique and cat["name"].is_unique
    assert cat["uuid"].str.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}").all()
    assert cat["version"].str.fullmatch(r"\d+\.\d+").all()
    assert (cat["source"].str.len() > 0).all() and (cat["name"].str.len() > 0).all()
    assert {"EMSMDB", "AsyncEMSMDB", "NSPI", "RFR", "DRSUAPI", "NETLOGON"} <= set(cat["name"])


# --- packet selection (no tshark) ------------------------------------------------------------------


def _session(t, client, sport, server, dport, heads, *, syn=True):
    """A TCP session whose payload packets start with the given heads, alternating directions."""
    rows = []
    if syn:
        rows += [pkt(t, client, sport, server, dport, flags=SYN),
                 pkt(t + 0.001, server, dport, client, sport, flags=SYN | ACK),
                 pkt(t + 0.002, client, sport, server, dport, flags=ACK)]
    for i, head in enumerate(heads):
        src, sp, dst, dp = ((client, sport, server, dport) if i % 2 == 0
                            else (server, dport, client, sport))
        rows.append(pkt(t + 0.01 + i * 0.001, src, sp, dst, dp, flags=PSH | ACK, payload=100,
                        head=head, length=154))
    return rows


def _selected(rows, **options):
    packets = table(rows)
    flows, labels = build_flows_labelled(packets)
    picked = select_rpc_rows(packets, flows, labels, RpcOptions(**options))
    return packets, flows, labels, picked


def test_a_heavy_bind_flow_gives_tshark_only_its_first_payload_packets():
    rows = _session(0, CLIENT, 50000, CAS, 59532, [BIND_HEAD, ACK_HEAD] + [REQUEST_HEAD] * 3000)
    packets, _, _, picked = _selected(rows)
    assert len(packets.packets) == 3005
    assert len(picked) == RpcOptions().bind_packets == 4
    assert packets.packets.loc[picked[:2], "payload_head"].tolist() == [BIND_HEAD, ACK_HEAD]


def test_an_alter_context_in_a_midstream_flow_is_selected():
    heads = [REQUEST_HEAD, 0x05000203, REQUEST_HEAD, 0x05000E03, 0x05000F03, REQUEST_HEAD]
    packets, _, _, picked = _selected(_session(0, CLIENT, 50000, DC, 49155, heads, syn=False))
    assert packets.packets.loc[picked, "payload_head"].tolist() == heads[3:]


def test_repeated_bind_flows_to_one_port_are_sampled_round_robin_over_clients():
    rows = []
    for i in range(30):  # the same client 30 times, then 12 other clients once each
        rows += _session(i, CLIENT, 50000 + i, CAS, 59532, [BIND_HEAD, ACK_HEAD])
    for i in range(12):
        rows += _session(100 + i, f"198.18.20.{i + 1}", 50000, CAS, 59532, [BIND_HEAD, ACK_HEAD])
    packets, flows, labels, picked = _selected(rows)
    chosen = flows.loc[np.unique(labels[picked])]
    assert len(chosen) == RpcOptions().bind_flows_per_port == 16
    # round-robin: every client's first flow, then the busy client's next ones, 4 at most
    counts = chosen["src_ip"].value_counts()
    assert counts[CLIENT] == RpcOptions().bind_flows_per_client == 4
    assert len(counts) == 13 and (counts.drop(CLIENT) == 1).all()
    assert chosen.loc[chosen["src_ip"] == CLIENT, "src_port"].tolist() == [50000, 50001, 50002,
                                                                          50003]


def test_epm_conversations_keep_the_first_ones_and_the_last_per_client():
    rows = []
    for i in range(10):
        rows += _session(i * 10, CLIENT, 50000 + i, CAS, 135, [BIND_HEAD, ACK_HEAD, REQUEST_HEAD,
                                                               0x05000203])
    packets, flows, labels, picked = _selected(rows, epm_flows_per_client=4)
    kept = sorted(flows.loc[np.unique(labels[picked]), "src_port"].tolist())
    assert kept == [50000, 50001, 50002, 50009]  # epm_flows_per_client=4: three first, the last
    notes = rpc_selection(packets, flows, labels, RpcOptions(epm_flows_per_client=4)).notes
    assert notes == ("6 of 10 endpoint-mapper conversations were not read (sampled per client "
                     "and server); their replies may name more ports; run with --rpc-packets all "
                     "(or a larger number) to read them",)


def test_every_packet_of_every_epm_conversation_is_read_by_default():
    # one conversation with 300 lookups (a reply each), and ten conversations from one client
    rows = _session(0, CLIENT, 49999, DC, 135, [BIND_HEAD, ACK_HEAD] + [REQUEST_HEAD] * 600)
    for i in range(10):
        rows += _session(10 + i, CLIENT, 50000 + i, CAS, 135, [BIND_HEAD, ACK_HEAD])
    packets, flows, labels, picked = _selected(rows)
    assert len(picked) == 602 + 10 * 2
    assert rpc_selection(packets, flows, labels).notes == ()


def test_a_capped_epm_conversation_warns_in_plain_words():
    rows = _session(0, CLIENT, 49999, DC, 135, [BIND_HEAD, ACK_HEAD] + [REQUEST_HEAD] * 40)
    packets, flows, labels, _ = _selected(rows)
    notes = rpc_selection(packets, flows, labels, RpcOptions(epm_packets=16)).notes
    assert notes == ("1 endpoint-mapper conversations were read only in part (their first 16 "
                     "payload packets); later replies may name more ports; run with --rpc-packets "
                     "all (or a larger number) to read them",)
    notes = rpc_selection(packets, flows, labels, RpcOptions(max_packets=10)).notes
    assert notes == ("RPC discovery stopped at its budget of 10 packets and left 1 "
                     "endpoint-mapper conversations unread; run with --rpc-packets all (or a "
                     "larger number) to read them",)
    assert not any("RpcOptions" in n or "max_packets" in n for n in notes)


def test_other_protocols_are_not_selected():
    rows = _session(0, CLIENT, 50000, CAS, 443, [0x16030100, 0x16030300])
    rows += _session(1, CLIENT, 50001, DC, 49160, [0x504F5354, 0x48545450])  # HTTP on a high port
    assert len(_selected(rows)[3]) == 0


def test_the_packet_budget_cuts_whole_flows_in_priority_order():
    rows = []
    for i in range(6):
        rows += _session(i, f"198.18.20.{i + 1}", 50000, CAS, 135, [BIND_HEAD, ACK_HEAD] * 3)
    packets, flows, labels, picked = _selected(rows, max_packets=14)
    per_flow = np.bincount(labels[picked])
    assert per_flow[per_flow > 0].tolist() == [6, 6]  # a third flow would pass 14


def test_name_rows_take_dns_smtp_nbns_kerberos_and_tls():
    rows = [pkt(0, CLIENT, 53000, DC, 53, proto=17, payload=40, head=0x12340100),
            pkt(0.001, DC, 53, CLIENT, 53000, proto=17, payload=80, head=0x12348180),
            pkt(1, CLIENT, 137, "198.18.255.255", 137, proto=17, payload=68, head=0xABCD2910)]
    rows += _session(2, CLIENT, 50000, DC, 88, [0x000005A0, 0x00000600])
    rows += _session(3, CLIENT, 50001, CAS, 25, [0x45484C4F, 0x32353020])
    rows += _session(4, CLIENT, 50002, CAS, 443, [0x16030100, 0x16030300])
    packets = table(rows)
    flows, labels = build_flows_labelled(packets)
    picked = select_name_rows(packets, flows, labels)
    ports = set(flows.loc[np.unique(labels[picked]), "dst_port"])
    assert ports == {53, 137, 88, 25, 443} and len(picked) == 3 + 2 + 2 + 2


# --- discovery on the hand-crafted scenario ---------------------------------------------------------


@pytest.mark.tshark
def test_scenario_endpoints_come_from_epm_binds_and_timing():
    _, _, found, notes = discovered(RPC / "rpc_scenario_day1.pcap")
    ep = found.endpoints
    assert list(ep.columns) == column_names(RPC_ENDPOINT_COLUMNS)
    got = ep[["server_ip", "port", "proto", "interface", "evidence", "advertised", "bound",
              "used", "unanswered", "rejected", "clients", "flows"]].values.tolist()
    assert got == [
        [CAS, 135, "tcp", "EPM", "bind", False, True, True, False, False, 1, 2],
        [CAS, 59532, "tcp", "EMSMDB", "epm", True, True, True, False, False, 2, 2],
        [CAS, 59533, "tcp", "NSPI", "epm", True, False, False, True, False, 1, 1],
        [DC, 49158, "tcp", "", "inferred", False, False, False, True, False, 1, 1],
    ]
    # the ncacn_http tower (6001) is reached through the RPC proxy, not on the wire; the
    # connectionless request to udp/49200 and WinRM on 5985 are no RPC endpoints either
    assert found.facts.epm["port"].isin([6001]).any()
    assert not ep["port"].isin([6001, 49200, 5985]).any()
    assert found.facts.cl_rpc["server_port"].tolist() == [49200]
    assert any("connectionless DCE/RPC" in n for n in notes)
    assert any("1 EPM conversations started before the capture" in n for n in notes)
    assert found.warnings == tuple(notes)


@pytest.mark.tshark
def test_annotation_labels_flows_that_started_before_the_epm_reply():
    _, flows, found, _ = discovered(RPC / "rpc_scenario_day1.pcap")
    out = annotate_flows(flows, found.endpoints)
    assert list(out.columns) == list(flows.columns) + ["rpc_interface", "rpc_evidence"]
    labelled = {(r.src_ip, r.dst_port, r.proto): (r.rpc_interface, r.rpc_evidence)
                for r in out.itertuples()}
    early = flows.loc[flows["src_ip"] == CLIENT_B].iloc[0]
    assert early["state"] == "midstream" and early["first_seen"] < found.facts.epm["ts"].min()
    assert labelled[(CLIENT_B, 59532, "tcp")] == ("EMSMDB", "epm")
    assert labelled[(CLIENT, 59532, "tcp")] == ("EMSMDB", "epm")
    assert labelled[(CLIENT, 59533, "tcp")] == ("NSPI", "epm")
    assert labelled[(CLIENT, 135, "tcp")] == ("EPM", "bind")
    assert labelled[(CLIENT_C, 49158, "tcp")] == ("", "inferred")
    assert labelled[(CLIENT_C, 5985, "tcp")] == ("", "")
    assert labelled[(CLIENT_C, 49200, "udp")] == ("", "")


@pytest.mark.tshark
def test_inference_needs_the_135_exchange_to_be_recent():
    _, flows, found, _ = discovered(RPC / "rpc_scenario_day1.pcap")
    evidenced = found.endpoints[found.endpoints["evidence"] != "inferred"]
    out = annotate_flows(flows, evidenced, infer_window_s=0.5)
    assert out.loc[out["dst_port"] == 49158, "rpc_evidence"].tolist() == [""]
    out = annotate_flows(flows, evidenced, infer_window_s=30)
    assert out.loc[out["dst_port"] == 49158, "rpc_evidence"].tolist() == ["inferred"]


@pytest.mark.tshark
def test_two_days_show_the_rpc_client_access_port_pinned():
    _, _, found, _ = discovered(RPC / "rpc_scenario_day1.pcap", RPC / "rpc_scenario_day2.pcap")
    ep = found.endpoints.set_index("port")
    assert ep.loc[59532, "captures"] == "rpc_scenario_day1.pcap;rpc_scenario_day2.pcap"
    ranges = dynamic_ranges(found.endpoints)
    assert list(ranges.columns) == column_names(RPC_RANGE_COLUMNS)
    cas = ranges.set_index("server_ip").loc[CAS]
    assert (cas["lowest_port"], cas["highest_port"], cas["ports"]) == (59532, 59533, 2)
    assert cas["expected_range"] == "6005-59530" and "Client Access" in cas["expected_basis"]
    assert cas["outside_ports"] == "59532;59533" and cas["pinned_ports"] == "59532;59533"
    assert 'MSExchangeRPC\\ParametersSystem "TCP/IP Port"' in cas["recommendation"]
    assert 'MSExchangeAB\\Parameters "RpcTcpPort"' in cas["recommendation"]
    assert DC not in set(ranges["server_ip"])  # its only port is inferred


# --- discovery on public captures, checked against tshark -----------------------------------------


# Endpoints against tshark on every capture: tests/test_rpc_oracle.py (tshark's PDML trees, one
# tower per element; the flattened `-T fields` lists mis-pair multi-tower replies).


@pytest.mark.tshark
@pytest.mark.parametrize("name", ["CVE-2020-1472_exploit_win2019.pcap",
                                  "suricata-verify_bug-5162_input.pcap",
                                  "dcerpc_privacy_krb.pcapng", "dcerpc_msnrpc.pcapng",
                                  "kerberos.pcap", "../midstream/midstream.pcap"])
def test_complete_evidence_needs_no_inference_and_few_packets(name):
    _, _, found, _ = discovered(CAPTURES / name)
    ep = found.endpoints
    assert len(ep) and (ep["evidence"] != "inferred").all()
    # every EPM reply (midstream.pcap: one conversation of 64 lookups, 128 payload packets),
    # plus a few packets per bind and the name packets
    assert found.packets < (250 if "midstream" in name else 150)


@pytest.mark.tshark
def test_zerologon_pattern_is_netlogon_on_the_dc():
    _, flows, found, _ = discovered(CAPTURES / "CVE-2020-1472_exploit_win2019.pcap")
    out = annotate_flows(flows, found.endpoints)
    dyn = out[out["dst_port"] == 49668]
    assert len(dyn) == 21 and set(dyn["rpc_interface"]) == {"NETLOGON"}
    assert set(dyn["rpc_evidence"]) == {"epm"} and set(dyn["dst_ip"]) == {"172.16.5.58"}
    ranges = dynamic_ranges(found.endpoints).set_index("server_ip").loc["172.16.5.58"]
    assert ranges["expected_range"] == "49152-65535" and ranges["outside_ports"] == ""
    assert 'Netlogon\\Parameters "DCTcpipPort"' in ranges["recommendation"]


@pytest.mark.tshark
def test_connectionless_rpc_is_not_a_tcp_endpoint():
    _, flows, found, notes = discovered(CAPTURES / "dcerpc.pcap")
    assert found.endpoints.empty and list(found.endpoints.columns) == column_names(
        RPC_ENDPOINT_COLUMNS)
    assert len(found.facts.cl_rpc) > 0 and found.facts.binds.empty
    assert any("connectionless DCE/RPC over UDP to 2 server ports" in n for n in notes)
    assert set(annotate_flows(flows, found.endpoints)["rpc_evidence"]) == {""}


@pytest.mark.tshark
def test_an_oxid_resolver_reply_makes_a_dcom_endpoint():
    _, _, found, _ = discovered(RPC / "oxid_resolve.pcap")
    got = found.endpoints[["server_ip", "port", "interface", "evidence", "advertised", "bound",
                           "clients"]].values.tolist()
    assert got == [[DC, 135, "IOXIDResolver", "bind", False, True, 1],
                   [DC, 49712, "DCOM object exporter", "dcom", False, False, 1]]


@pytest.mark.tshark
def test_a_dcom_activation_names_the_interface_it_handed_out():
    # RemoteCreateInstance for IWbemLevel1Login (SYNs to its port unanswered), RemoteGetClassObject
    # for IClassFactory, whose port the client then binds IRemUnknown2 on, and the pre-XP
    # IActivation RemoteActivation for IWbemLevel1Login
    _, flows, found, _ = discovered(RPC / "dcom_activation.pcap")
    got = found.endpoints[["server_ip", "port", "interface", "evidence", "bound", "use"]]
    assert got.values.tolist() == [
        [DC, 135, "ISystemActivator", "bind", True, "used"],
        [DC, 135, "IActivation", "bind", True, "used"],
        [DC, 49712, "IWbemLevel1Login", "dcom", False, "never answered"],
        [DC, 49713, "IClassFactory", "dcom", False, "used"],
        [DC, 49713, "IRemUnknown2", "bind", True, "used"],
        [DC, 49714, "IWbemLevel1Login", "dcom", False, "used"]]  # the legacy RemoteActivation
    assert set(found.facts.dcom["binding"]) == {f"{host}[{port}]" for host in ("DC01", DC)
                                                for port in (49712, 49713, 49714)}
    out = annotate_flows(flows, found.endpoints)
    assert out.loc[out["dst_port"] == 49712, ["rpc_interface", "rpc_evidence"]].values.tolist() \
        == [["IWbemLevel1Login", "dcom"]]


@pytest.mark.tshark
def test_discovery_also_returns_host_names():
    _, _, found, _ = discovered(CAPTURES / "kerberos.pcap")
    assert found.names.values.tolist() == [["172.16.8.201", "JOHNSON-PC", "kerberos", ""],
                                           ["172.16.8.8", "", "kerberos", "kdc:HAPPYCRAFT.ORG"]]


@pytest.mark.tshark
def test_discovery_warns_through_dissect_warning():
    packets, flows, labels = flows_of(CAPTURES / "dcerpc.pcap")
    with pytest.warns(DissectWarning, match="connectionless DCE/RPC"):
        discover_endpoints(packets, flows, labels, options=RpcOptions(names=False))


def test_missing_tshark_raises_dissect_error(monkeypatch, tmp_path):
    packets, flows, labels = flows_of(RPC / "bind_nak.pcap")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DissectError, match="tshark not found"):
        discover_endpoints(packets, flows, labels)


def test_nothing_to_dissect_needs_no_tshark(monkeypatch, tmp_path):
    packets, flows, labels = flows_of(CAPTURES / "NTP_sync.pcap")
    monkeypatch.setenv("PATH", str(tmp_path))
    found = discover_endpoints(packets, flows, labels, options=RpcOptions(names=False))
    assert found.packets == 0 and found.endpoints.empty and found.warnings == ()


# --- dynamic ranges (no tshark) --------------------------------------------------------------------


def _endpoints(rows):
    frame = pd.DataFrame(rows, columns=["server_ip", "port", "interface_uuid", "evidence",
                                        "captures"])
    base = empty_frame(RPC_ENDPOINT_COLUMNS)
    full = pd.concat([base, frame.assign(proto="tcp", interface=frame["interface_uuid"].map(
        interface_name))], ignore_index=True)
    return full.fillna({"advertised": False, "bound": False, "used": True, "unanswered": False,
                        "rejected": False, "clients": 1, "flows": 1, "bytes": 100,
                        "first_seen": pd.Timestamp("2011-03-13", tz="UTC"),
                        "last_seen": pd.Timestamp("2011-03-13 00:10", tz="UTC")})


def test_a_windows_2003_server_is_expected_in_1025_to_5000():
    drsuapi = "e3514235-4b06-11d1-ab04-00c04fc2dcd2"
    ep = _endpoints([["198.18.1.3", 1026, drsuapi, "epm", "a.pcap"],
                     ["198.18.1.3", 1029, "12345678-1234-abcd-ef00-01234567cffb", "epm", "a.pcap"],
                     ["198.18.1.3", 49200, "12345778-1234-abcd-ef00-0123456789ac", "bind",
                      "a.pcap"]])
    row = dynamic_ranges(ep).iloc[0]
    assert (row["expected_range"], row["outside_ports"], row["pinned_ports"]) == (
        "1025-5000", "49200", "49200")
    assert "NTDS\\Parameters" in row["recommendation"] and "SAMR" in row["recommendation"]


def test_range_advice_for_a_windows_2003_host_names_its_own_settings_and_the_legacy_option():
    ep = _endpoints([["198.18.1.3", 1026, "12345778-1234-abcd-ef00-0123456789ac", "epm", ""],
                     ["198.18.1.3", 1031, "12345778-1234-abcd-ef00-0123456789ac", "bind", ""]])
    advice = dynamic_ranges(ep).iloc[0]["recommendation"]
    assert "on Windows 2003 narrow the RPC range" in advice and "UseInternetPorts" in advice
    assert "netsh int ipv4 set dynamicport" not in advice  # no such command before 2008
    assert "audit with --legacy-rpc-range" in advice
    modern = _endpoints([[DC, 49700, "12345778-1234-abcd-ef00-0123456789ac", "epm", ""]])
    advice = dynamic_ranges(modern).iloc[0]["recommendation"]
    assert "netsh int ipv4 set dynamicport" in advice and "--legacy-rpc-range" not in advice


def test_endpoint_use_tells_used_refused_never_answered_and_advertised_only_apart():
    ep = _endpoints([[DC, 49701, "", "epm", ""], [DC, 49702, "", "epm", ""],
                     [DC, 49703, "", "epm", ""], [DC, 49704, "", "epm", ""]])
    ep["used"] = [True, False, False, False]
    ep["rejected"] = [False, True, False, False]
    ep["unanswered"] = [False, False, True, False]
    assert list(endpoint_use(ep)) == ["used", "refused", "never answered", "advertised only"]


@pytest.mark.tshark
def test_an_endpoint_the_epm_named_and_nobody_tried_is_advertised_only():
    _, _, found, _ = discovered(CAPTURES / "dcerpc_msnrpc.pcapng")
    use = dict(zip(found.endpoints["port"].astype(int), found.endpoints["use"], strict=True))
    assert use == {135: "used", 49667: "advertised only", 49676: "used"}


def test_pinned_ports_come_from_several_captures_days_apart():
    day1 = _endpoints([[DC, 49667, "e3514235-4b06-11d1-ab04-00c04fc2dcd2", "epm", ""],
                       [DC, 49671, "12345678-1234-abcd-ef00-01234567cffb", "epm", ""]])
    day2 = _endpoints([[DC, 49667, "e3514235-4b06-11d1-ab04-00c04fc2dcd2", "bind", ""],
                       [DC, 49702, "12345678-1234-abcd-ef00-01234567cffb", "epm", ""]])
    both = pd.concat([day1, day2], ignore_index=True)
    row = dynamic_ranges(both, captures=[day1, day2]).iloc[0]
    assert row["pinned_ports"] == "49667"  # NETLOGON moved after a restart: not pinned
    assert (row["lowest_port"], row["highest_port"], row["ports"]) == (49667, 49702, 3)
    assert row["interfaces"] == "DRSUAPI;NETLOGON" and row["outside_ports"] == ""


def test_epm_fixed_and_inferred_ports_do_not_make_a_range():
    ep = _endpoints([[CAS, 135, EPM, "bind", ""], [CAS, 6001, EMSMDB, "epm", ""],
                     [DC, 49158, "", "inferred", ""]])
    assert dynamic_ranges(ep).empty
    assert dynamic_ranges(empty_frame(RPC_ENDPOINT_COLUMNS)).empty


# --- the recorded pilot (fixtures/pcaps/pilot, ground_truth.json) ----------------------------------

PILOT = ROOT / "fixtures" / "pcaps" / "pilot"


@pytest.mark.tshark
@pytest.mark.parametrize("ring", [False, True], ids=["pilot.pcapng", "ring of four files"])
def test_pilot_endpoints_equal_the_ground_truth(ring):
    sources = sorted((PILOT / "ring").glob("*.pcapng")) if ring else [PILOT / "pilot.pcapng"]
    _, flows, found, _ = discovered(*sources)
    truth: dict[tuple[str, int, str], dict] = {}
    for row in json.loads((PILOT / "ground_truth.json").read_text())["rpc_endpoints"]:
        key = (row["server_ip"], row["port"], row["interface_uuid"])
        truth.setdefault(key, {"interface": row["interface"] or "", "evidence": set()})
        truth[key]["evidence"].add(row["evidence"])
    ep = found.endpoints
    assert triples(ep) == set(truth) and len(ep) == len(truth) == 16
    for row in ep.itertuples():
        want = truth[(row.server_ip, row.port, row.interface_uuid)]
        assert row.interface == want["interface"]
        assert row.evidence == min(want["evidence"], key=["epm", "bind"].index)
        assert row.bound == ("bind" in want["evidence"])
        assert row.proto == "tcp" and row.used
    # flows to lsass's shared port are named by what clients bound there, not all 9 interfaces
    out = annotate_flows(flows, ep)
    assert set(out.loc[out["dst_port"] == 49153, "rpc_interface"]) == {"DRSUAPI, DSSETUP, LSARPC"}
    # the refused DCE/RPC to MBX1 (ICMP 3/13) is not an endpoint; nothing is inferred
    assert set(ep["server_ip"]) == {"198.18.1.10"} and "inferred" not in set(ep["evidence"])
    names = set(map(tuple, found.names[["ip", "name", "source"]].values.tolist()))
    assert {("198.18.1.10", "dc1.pilot.test", "dns"),
            ("198.18.1.41", "hub1.pilot.test", "smtp-banner"),
            ("198.18.10.101", "client1.pilot.test", "smtp-ehlo")} <= names
    ranges = dynamic_ranges(ep)
    assert ranges[["server_ip", "lowest_port", "highest_port", "ports", "expected_range",
                   "outside_ports", "pinned_ports"]].values.tolist() == [
        ["198.18.1.10", 49152, 49154, 3, "49152-65535", "", ""]]  # a ring is not several days


def test_mdns_and_llmnr_chatter_never_crowds_tls_names_out_of_the_budget():
    # 40 hosts announcing over mDNS, each answering a query, and one TLS handshake: the budget
    # takes the TLS handshake first (a stronger name source), the local flows with what is left
    rows = []
    for i in range(40):
        host = f"198.18.10.{i + 1}"
        rows += [pkt(i + 0.1 * k, host, 5353, "224.0.0.251", 5353, proto=17, payload=60,
                     head=0x00000000) for k in range(6)]
        rows += [pkt(i + 0.7, CLIENT, 40000 + i, "224.0.0.251", 5353, proto=17, payload=40,
                     head=0x12340000),
                 pkt(i + 0.8, host, 5353, CLIENT, 40000 + i, proto=17, payload=80,
                     head=0x12348400)]
    rows += _session(50, CLIENT, 50002, CAS, 443, [0x16030100, 0x16030300])
    packets = table(rows)
    flows, labels = build_flows_labelled(packets)
    picked = select_name_rows(packets, flows, labels, RpcOptions(max_name_packets=30))
    ports = flows.loc[labels[picked], "dst_port"]
    assert (ports == 443).sum() == 2 and len(picked) <= 30
    assert (ports == 5353).sum() == len(picked) - 2  # the rest of the budget goes to mDNS
