"""Orientation of flows without a handshake: payload evidence, listeners, ports, first packet."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest
from packet_factory import ACK, PSH, SYN, pkt, table

from auditor import build_flows, read_packets
from auditor.audit.pipeline import _second_pass
from auditor.dissect.dcerpc import empty_rpc_facts
from auditor.dissect.rpc import RpcDiscovery, build_endpoints
from auditor.flows.orient import KEPT, payload_matrix, sender_role
from auditor.options import PipelineOptions
from auditor.schema import HOST_NAME_COLUMNS, RPC_EPM_COLUMNS, empty_frame, typed_frame

CLIENT, SERVER = "198.18.10.21", "198.18.1.10"
PUBLIC = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "public"


def data(payload: bytes) -> dict:
    """Packet-table payload columns (payload_len, head, b4, b12, b20) for these bytes."""
    kept = payload[:KEPT].ljust(KEPT, b"\0")
    head, b4, b12, b20 = struct.unpack(">IQQQ", kept)
    return dict(payload=len(payload), head=head, payload_b4=b4, payload_b12=b12, payload_b20=b20)


def role_of(payload: bytes, proto=6, sport=50000, dport=50001) -> int:
    """sender_role of one packet's payload."""
    d = data(payload)
    m = payload_matrix(np.array([d["head"]]), np.array([d["payload_b4"]]),
                       np.array([d["payload_b12"]]), np.array([d["payload_b20"]]))
    return int(sender_role(m, np.array([len(payload)]), np.array([proto]), np.array([sport]),
                           np.array([dport]))[0])


DCE_RESPONSE = bytes([5, 0, 2, 3, 0x10, 0, 0, 0]) + struct.pack("<HHI", 40, 0, 1) + bytes(24)
DCE_REQUEST = bytes([5, 0, 0, 3, 0x10, 0, 0, 0]) + struct.pack("<HHI", 40, 0, 1) + bytes(24)
SMB2_RESPONSE = b"\0\0\0\x40" + b"\xfeSMB" + bytes(12) + b"\x01\0\0\0" + bytes(44)
SMB2_REQUEST = b"\0\0\0\x40" + b"\xfeSMB" + bytes(12) + b"\x00\0\0\0" + bytes(44)
LDAP_SEARCH = bytes.fromhex("3084000000450201036384000000") + bytes(30)
LDAP_RESULT = bytes.fromhex("300c02010365070a010004000400")
KRB_TCP_ASREQ = struct.pack(">I", 200) + b"\x6a\x81\xc5" + bytes(20)


@pytest.mark.parametrize(("payload", "proto", "ports", "expected"), [
    (DCE_REQUEST, 6, (50000, 50001), 1),
    (DCE_RESPONSE, 6, (50000, 50001), -1),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 6, (50000, 50001), 1),
    (b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03", 6, (50000, 50001), -1),
    (b"220 mail.example ESMTP\r\n", 6, (25, 50000), -1),
    (b"EHLO client\r\n", 6, (50000, 25), 1),
    (b"RPC_IN_DATA /rpc/rpcproxy.dll HTTP/1.1\r\n", 6, (50000, 50001), 1),
    (b"HTTP/1.1 200 OK\r\n", 6, (50000, 50001), -1),
    (SMB2_RESPONSE, 6, (445, 50000), -1),
    (SMB2_REQUEST, 6, (50000, 445), 1),
    (LDAP_SEARCH, 6, (50000, 389), 1),
    (LDAP_RESULT, 17, (389, 50000), -1),
    (KRB_TCP_ASREQ, 6, (50000, 88), 1),
    (b"\x12\x34\x81\x80" + bytes(8), 17, (53, 53), -1),
    (b"\x12\x34\x01\x00" + bytes(8), 17, (53, 53), 1),
    (b"\x23" + bytes(47), 17, (123, 123), 1),  # NTP v4 client
    (b"\x24" + bytes(47), 17, (123, 123), -1),  # NTP v4 server
    (b"\x05\x00\x02\x03" + bytes(20), 17, (50000, 50001), 0),  # CO header over UDP: no evidence
    (b"\x00\x01\x02\x03 random", 6, (50000, 50001), 0),
])
def test_first_payload_bytes_say_which_side_is_the_client(payload, proto, ports, expected):
    assert role_of(payload, proto, *ports) == expected


def test_midstream_rpc_session_to_a_pinned_port_is_oriented_by_its_response_pdu():
    # the first captured packet is the CAS's response on its pinned port 59531 to the client's 51234
    rows = [
        pkt(0.0, SERVER, 59531, CLIENT, 51234, flags=ACK | PSH, **data(DCE_RESPONSE)),
        pkt(0.1, CLIENT, 51234, SERVER, 59531, flags=ACK | PSH, **data(DCE_REQUEST)),
    ]
    f = build_flows(table(rows)).iloc[0]
    assert (f.src_ip, f.src_port, f.dst_ip, f.dst_port) == (CLIENT, 51234, SERVER, 59531)
    assert (f.orientation, f.state) == ("payload", "midstream")
    assert f.src_payload_prefix == DCE_REQUEST[:KEPT].hex()
    assert f.dst_payload_prefix == DCE_RESPONSE[:KEPT].hex()
    assert f.client_payload_head == int.from_bytes(DCE_REQUEST[:4], "big")


def test_endpoint_that_accepted_a_handshake_orients_a_later_midstream_flow():
    rows = [  # a handshake to 59531, then another client's session seen mid-stream, server first
        pkt(0.0, CLIENT, 51000, SERVER, 59531, flags=SYN),
        pkt(0.1, SERVER, 59531, CLIENT, 51000, flags=SYN | ACK),
        pkt(0.2, CLIENT, 51000, SERVER, 59531, flags=ACK),
        pkt(1.0, SERVER, 59531, "198.18.10.22", 60000, flags=ACK | PSH, **data(b"\x00" * 30)),
        pkt(1.1, "198.18.10.22", 60000, SERVER, 59531, flags=ACK),
    ]
    flows = build_flows(table(rows)).set_index("src_port")
    assert flows.loc[51000, "orientation"] == "handshake"
    assert flows.loc[60000, ["dst_ip", "dst_port", "orientation"]].tolist() == [
        SERVER, 59531, "listener"]


def test_flow_without_any_evidence_is_marked_a_first_packet_guess():
    rows = [pkt(0.0, SERVER, 59531, CLIENT, 51234, flags=ACK | PSH, **data(b"\x00" * 30)),
            pkt(0.1, CLIENT, 51234, SERVER, 59531, flags=ACK)]
    f = build_flows(table(rows)).iloc[0]
    assert (f.src_ip, f.orientation) == (SERVER, "first_packet")


def test_service_port_orients_a_midstream_flow_without_payload_evidence():
    rows = [pkt(0.0, SERVER, 445, CLIENT, 51234, flags=ACK | PSH, **data(b"\x00" * 30))]
    f = build_flows(table(rows)).iloc[0]
    assert (f.src_ip, f.dst_port, f.orientation) == (CLIENT, 445, "port")


def test_ntp_between_two_servers_on_port_123_is_oriented_by_its_mode():
    rows = [pkt(0.0, SERVER, 123, CLIENT, 123, proto=17, **data(b"\x24" + bytes(47))),
            pkt(0.1, CLIENT, 123, SERVER, 123, proto=17, **data(b"\x23" + bytes(47)))]
    f = build_flows(table(rows)).iloc[0]
    assert (f.src_ip, f.dst_ip, f.orientation) == (CLIENT, SERVER, "payload")


def test_connectionless_rpc_answer_from_another_port_ties_to_its_request_flow():
    flows = build_flows(read_packets([PUBLIC / "dcerpc.pcap"]))
    got = sorted(zip(flows["src_ip"], flows["dst_ip"], flows["dst_port"], flows["src_packets"],
                     flows["dst_packets"], flows["state"], flows["orientation"], strict=True))
    # tshark: requests to 34964 answered from 49161 / 49154 (same activity id and sequence)
    assert got == [("192.168.1.11", "192.168.1.20", 34964, 6, 6, "udp_answered", "payload"),
                   ("192.168.1.20", "192.168.1.11", 34964, 2, 2, "udp_answered", "payload")]


def _epm_facts(server: str, port: int):
    """RpcFacts holding one EPM reply that advertises EMSMDB on server:port/tcp."""
    epm = typed_frame([dict(
        ts=0, client_ip=CLIENT, client_port=50100, server_ip=server, server_port=135,
        operation="ept_map", interface_uuid="a4f1db00-ca47-1067-b31f-00dd010662da",
        interface_version="0.81", tower_proto="tcp", tower_ip=server, port=port, endpoint="",
        status=0, status_name="ok")], RPC_EPM_COLUMNS)
    return dataclasses.replace(empty_rpc_facts(), epm=epm)


def test_endpoint_an_epm_reply_advertised_turns_a_guessed_flow_round_and_is_used():
    # the CAS's pinned port 59531 vs the client's 51234: both ephemeral, server speaks first,
    # and the data is the middle of a PDU (no evidence); EPM named 59531 elsewhere
    rows = [pkt(0.0, SERVER, 59531, CLIENT, 51234, flags=ACK | PSH, **data(b"\x00" * 30)),
            pkt(0.1, CLIENT, 51234, SERVER, 59531, flags=ACK)]
    flows = build_flows(table(rows))
    assert flows.loc[0, "orientation"] == "first_packet"
    facts = _epm_facts(SERVER, 59531)
    before = build_endpoints(facts, flows)
    discovery = RpcDiscovery(endpoints=before, facts=facts, names=empty_frame(HOST_NAME_COLUMNS),
                             packets=0)
    turned, found = _second_pass(flows, discovery, PipelineOptions())
    f = turned.iloc[0]
    assert (f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.orientation) == (
        CLIENT, 51234, SERVER, 59531, "epm")
    assert (f.src_packets, f.dst_packets, f.dst_payload_prefix) == (1, 1, "00" * KEPT)
    assert before["used"].tolist() == [False]  # the guess made it look "never used"
    assert found.endpoints[["port", "used", "flows"]].values.tolist() == [[59531, True, 1]]


def test_midstream_sessions_count_as_successful_traffic_for_asbuilt_requests_and_matrix():
    from auditor import asbuilt_requests, audit_flows, load_catalogue
    from auditor.inventory.roles import Host, Inventory, Network
    from auditor.render.plots import _cells

    dc = "198.18.1.20"
    rows = [  # every flow began before the capture: no SYN anywhere, servers speak first
        pkt(0.0, SERVER, 59531, CLIENT, 51234, flags=ACK | PSH, **data(DCE_RESPONSE)),
        pkt(0.1, CLIENT, 51234, SERVER, 59531, flags=ACK | PSH, **data(DCE_REQUEST)),
        pkt(0.2, dc, 389, CLIENT, 51300, flags=ACK | PSH, **data(LDAP_RESULT)),
        pkt(0.3, CLIENT, 51300, dc, 389, flags=ACK | PSH, **data(LDAP_SEARCH)),
    ]
    flows = build_flows(table(rows))
    assert set(flows["state"]) == {"midstream"}
    inventory = Inventory(hosts=(Host("CAS1", (SERVER,), ("client_access",)),
                                 Host("DC1", (dc,), ("domain_controller",))),
                          networks=(Network("198.18.10.0/24", ("client",), "clients"),))
    catalogue = load_catalogue()
    result = audit_flows(flows, inventory, catalogue)
    requests = asbuilt_requests(result, inventory, catalogue)
    got = sorted(zip(requests["source"], requests["destination"], requests["ports"], strict=True))
    assert ("198.18.10.0/24", dc, "389") in got or (CLIENT, dc, "389") in got
    assert any(dst == SERVER and ports == "59531" for _, dst, ports in got)
    audited = result.flows
    cells = _cells(audited, audited["src_role"], audited["dst_role"])
    assert cells.loc[("client", "client_access"), "flows"] == 1
    assert cells.loc[("client", "domain_controller"), "flows"] == 1
