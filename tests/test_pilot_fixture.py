"""The committed pilot capture still shows what its ground truth and inventory say, per tshark.

Uses tshark only (not the auditor library): one field run over every TCP/ICMP packet and one
JSON run over the endpoint-mapper replies, both cached for the module.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
CAPTURE = PILOT / "pilot.pcapng"
TRUTH = json.loads((PILOT / "ground_truth.json").read_text())
SYN, SYN_ACK, RST_ACK = 0x002, 0x012, 0x014


def needs_tshark(test):
    """Mark a test as reading the capture through tshark."""
    skip = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
    return pytest.mark.tshark(skip(test))


def _anomalies(kind: str) -> list:
    rows = [a for a in TRUTH["anomalies"] if a["kind"] == kind]
    return [pytest.param(a, id=f"{a['src_ip']}-{a['dst_ip']}-{a['dst_port']}") for a in rows]


def _tshark(*args: str) -> str:
    cmd = ["tshark", "-n", "-r", str(CAPTURE), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def packets() -> list[dict]:
    """Every TCP/ICMP packet: outer addresses, ports, flags, ICMP quote, DCE/RPC binds."""
    fields = [
        "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.flags", "icmp.type",
        "icmp.code", "dcerpc.pkt_type", "dcerpc.cn_bind_to_uuid", "frame.protocols",
    ]  # fmt: skip
    args = ["-Y", "tcp || icmp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in fields:
        args += ["-e", field]
    rows = []
    for line in _tshark(*args).splitlines():
        src, dst, sport, dport, flags, itype, icode, pdu, uuids, protos = line.split("\t")
        src, dst, sport, dport = (v.split(",") for v in (src, dst, sport, dport))
        row = {"src": src[0], "dst": dst[0], "protos": protos.split(":")}
        if itype:
            # tshark lists the ICMP header's addresses first, then the quoted packet's.
            row["icmp"] = (int(itype.split(",")[0]), int(icode.split(",")[0]))
            row["quoted"] = (src[-1], dst[-1], int(sport[-1]), int(dport[-1]))
        else:
            row.update(sport=int(sport[0]), dport=int(dport[0]), flags=int(flags, 16))
        row["binds"] = uuids.split(",") if "11" in pdu.split(",") else []
        rows.append(row)
    return rows


def _pairs(pairs: list) -> list:
    # tshark's JSON repeats keys (one "Entry: Service:mgmt" per tower); keep them all.
    return pairs


def _get(node: list, key: str):
    return next(v for k, v in node if k == key)


def _floors(node) -> list:
    """Every tower under node, as its list of floors."""
    if not isinstance(node, list):
        return []
    if any(isinstance(k, str) and k.startswith("Floor 1") for k, _ in node):
        return [[v for k, v in node if k.startswith("Floor ")]]
    return [t for _, v in node for t in _floors(v)]


@pytest.fixture(scope="module")
def epm_towers() -> set[tuple[str, int, str]]:
    """(server_ip, tcp_port, interface uuid) for every TCP tower in an EPM reply."""
    out = _tshark("-Y", "epm && dcerpc.pkt_type == 2", "-T", "json", "-J", "ip epm")
    found = set()
    for packet in json.loads(out, object_pairs_hook=_pairs):
        layers = _get(_get(packet, "_source"), "layers")
        server = _get(_get(layers, "ip"), "ip.src")
        for floors in _floors(_get(layers, "epm")):
            ports = [v for f in floors for k, v in f if k == "epm.proto.tcp_port"]
            if ports and int(ports[0]):
                found.add((server, int(ports[0]), _get(floors[0], "epm.uuid")))
    return found


def _flow(packets, a) -> tuple[list, list, list]:
    """Packets of anomaly a: client to server, server to client, ICMP errors quoting it.

    `quoted` is (src, dst, sport, dport) of the packet an ICMP error quotes.
    """
    src, dst, port = a["src_ip"], a["dst_ip"], a["dst_port"]
    fwd = [p for p in packets if (p["src"], p["dst"], p.get("dport")) == (src, dst, port)]
    back = [p for p in packets if (p["src"], p["dst"], p.get("sport")) == (dst, src, port)]
    icmp = [p for p in packets if "quoted" in p and p["quoted"][::3] == (src, port)]
    return fwd, back, icmp


@needs_tshark
@pytest.mark.parametrize("anomaly", _anomalies("unexpected"))
def test_unexpected_flow_completes_the_handshake(packets, anomaly):
    fwd, back, _ = _flow(packets, anomaly)
    assert [p["flags"] for p in fwd][:2] == [SYN, 0x010]
    assert back[0]["flags"] == SYN_ACK
    assert any(p["flags"] & 0x008 for p in back), "the server sent data (PSH)"


@needs_tshark
@pytest.mark.parametrize("anomaly", _anomalies("rejected"))
def test_rejected_syn_gets_rst_ack_or_admin_prohibited_icmp(packets, anomaly):
    fwd, back, icmp = _flow(packets, anomaly)
    assert [p["flags"] for p in fwd] == [SYN]
    by_reset = [p["flags"] for p in back] == [RST_ACK] and icmp == []
    by_icmp = back == [] and [(p["src"], p["dst"], p["icmp"]) for p in icmp] == [
        (anomaly["dst_ip"], anomaly["src_ip"], (3, 13))
    ]
    assert by_reset or by_icmp


@needs_tshark
def test_client_rpc_to_mailbox_is_refused_by_icmp_quoting_the_syn(packets):
    (icmp,) = [p for p in packets if "icmp" in p]
    assert (icmp["src"], icmp["dst"], icmp["icmp"]) == ("198.18.1.21", "198.18.10.101", (3, 13))
    src, dst, _sport, dport = icmp["quoted"]
    assert (src, dst, dport) == ("198.18.10.101", "198.18.1.21", 135)


@needs_tshark
@pytest.mark.parametrize("anomaly", _anomalies("unanswered"))
def test_unanswered_syns_get_nothing_back(packets, anomaly):
    fwd, back, icmp = _flow(packets, anomaly)
    assert len(fwd) >= 2, "the client retransmitted its SYN"
    assert {p["flags"] for p in fwd} == {SYN}
    assert back == [] and icmp == []


@needs_tshark
@pytest.mark.parametrize("anomaly", _anomalies("missing"))
def test_missing_path_has_no_packet_at_all(packets, anomaly):
    src, dst = anomaly["src_ip"], anomaly["dst_ip"]
    port = anomaly["dst_port"]
    between = [p for p in packets if {p["src"], p["dst"]} == {src, dst}]
    assert not [p for p in between if port in (p.get("sport"), p.get("dport"))]


def test_every_anomaly_kind_is_present():
    kinds = sorted(a["kind"] for a in TRUTH["anomalies"])
    assert kinds == ["missing", "rejected", "rejected", "unanswered", "unexpected", "unexpected"]


@needs_tshark
def test_epm_endpoints_are_what_tshark_reads_in_the_epm_replies(epm_towers):
    truth = {
        (e["server_ip"], e["port"], e["interface_uuid"])
        for e in TRUTH["rpc_endpoints"]
        if e["evidence"] == "epm"
    }
    assert truth == epm_towers


@needs_tshark
def test_bind_endpoints_are_the_binds_tshark_sees_over_tcp(packets):
    seen = {
        (p["dst"], p["dport"], uuid)
        for p in packets
        if p["binds"] and "smb2" not in p["protos"]
        for uuid in p["binds"]
    }
    truth = {
        (e["server_ip"], e["port"], e["interface_uuid"])
        for e in TRUTH["rpc_endpoints"]
        if e["evidence"] == "bind"
    }
    assert truth == seen


def test_dc_rpc_interfaces_sit_on_dynamic_ports_named_from_the_reference():
    binds = {
        e["interface"]: e["port"]
        for e in TRUTH["rpc_endpoints"]
        if e["evidence"] == "bind" and e["server_ip"] == "198.18.1.10"
    }
    assert binds["EPM"] == 135
    for name in ("LSARPC", "DRSUAPI", "SAMR", "NETLOGON", "DSSETUP"):
        assert 49152 <= binds[name] <= 65535, name
    by_uuid = {e["interface_uuid"]: e["interface"] for e in TRUTH["rpc_endpoints"]}
    assert by_uuid["12345778-1234-abcd-ef00-0123456789ab"] == "LSARPC"
    assert by_uuid["e3514235-4b06-11d1-ab04-00c04fc2dcd2"] == "DRSUAPI"


@needs_tshark
def test_no_packet_leaves_the_pilot_range(packets):
    pilot = ipaddress.ip_network("198.18.0.0/15")
    addresses = {p["src"] for p in packets} | {p["dst"] for p in packets}
    assert all(ipaddress.ip_address(a) in pilot for a in addresses)


@needs_tshark
def test_edge_never_talks_to_the_domain_controller(packets):
    assert not [p for p in packets if {p["src"], p["dst"]} == {"198.18.2.61", "198.18.1.10"}]


def test_inventory_names_the_pilot_hosts_and_networks():
    inventory = yaml.safe_load((PILOT / "inventory.yaml").read_text())
    hosts = {h["name"]: h for h in inventory["hosts"]}
    assert hosts["DC1"] == {
        "name": "DC1",
        "addresses": ["198.18.1.10"],
        "roles": ["domain_controller", "dns"],
    }
    assert hosts["ADMIN1"]["roles"] == ["admin"]
    assert "ROGUE" not in hosts and "CLIENT1" not in hosts
    assert "default_roles" not in inventory
    assert inventory["networks"] == [
        {"cidr": "198.18.10.0/24", "roles": ["client"]},
        {"cidr": "198.19.0.0/16", "roles": ["internet"]},
    ]


def _pcapng_packets(path: Path) -> list[bytes]:
    """Raw enhanced-packet blocks of a little-endian pcapng file, in order."""
    data = path.read_bytes()
    blocks, offset = [], 0
    while offset < len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        if block_type == 6:
            blocks.append(data[offset + 8 : offset + length - 4])
        offset += length
    return blocks


def test_ring_split_holds_the_same_packets_in_order():
    ring = sorted((PILOT / "ring").glob("pilot_*.pcapng"))
    assert len(ring) == 4
    assert [b for f in ring for b in _pcapng_packets(f)] == _pcapng_packets(CAPTURE)


def test_capture_stays_small():
    assert CAPTURE.stat().st_size < 5 * 1024 * 1024
    assert 1000 < len(_pcapng_packets(CAPTURE)) < 10000
