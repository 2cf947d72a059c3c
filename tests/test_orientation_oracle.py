"""Who started each flow agrees with the protocol evidence tshark decodes, on every capture.

tshark is the oracle: per packet it names request and response PDUs (`dcerpc.pkt_type`,
`tls.handshake.type`, `smb2.flags.response`, `dns.flags.response`, `kerberos.msg_type`,
`ldap.protocolOp`, `ntp.flags.mode`, `http.request`/`http.response`, `smtp.req`/`smtp.response`,
...). A request's sender, or a response's receiver, is the client. Packets are tied to our flows by
record number, and every flow whose evidence names one client endpoint must have it as `src`.
"""

from __future__ import annotations

import subprocess
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from auditor import read_packets
from auditor.capture.packets import format_ip
from auditor.flows.build import build_flows_labelled

ROOT = Path(__file__).resolve().parents[1]
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")

# field -> (values saying "the sender is the client", values saying "the sender is the server")
_CO_CLIENT, _CO_SERVER = {"0", "11", "14", "16", "18", "19"}, {"2", "3", "12", "13", "15", "17"}
_CL_CLIENT, _CL_SERVER = {"0", "1", "7", "8"}, {"2", "3", "4", "5", "6", "10"}
FIELDS = {
    "tls.handshake.type": ({"1"}, {"2"}),
    "smb2.flags.response": ({"0", "False"}, {"1", "True"}),
    "smb.flags.response": ({"0", "False"}, {"1", "True"}),
    "dns.flags.response": ({"0", "False"}, {"1", "True"}),
    "nbns.flags.response": ({"0", "False"}, {"1", "True"}),
    "kerberos.msg_type": ({"10", "12", "14"}, {"11", "13", "15", "30"}),
    "ldap.protocolOp": ({"0", "2", "3", "6", "8", "10", "12", "14", "16", "23"},
                        {"1", "4", "5", "7", "9", "11", "13", "15", "19", "24", "25"}),
    "ntp.flags.mode": ({"1", "3", "5"}, {"2", "4"}),
    "http.request": ({"1", "True"}, set()),
    "http.response": (set(), {"1", "True"}),
    "smtp.req": ({"1", "True"}, set()),
    "dhcp.type": ({"1"}, {"2"}),
}
ADDRESS_FIELDS = ["frame.number", "ip.src", "ipv6.src", "tcp.srcport", "udp.srcport",
                  "ip.proto", "ipv6.nxt", "dcerpc.pkt_type", "smtp.response", "sip.Method", "sip.Status-Code"]


def captures() -> list[Path]:
    """Every capture under fixtures/pcaps/."""
    return sorted(p for p in (ROOT / "fixtures" / "pcaps").rglob("*")
                  if p.is_file() and p.suffix in CAPTURE_SUFFIXES)


def tshark_claims(path: Path) -> dict[int, tuple[str, int, int]]:
    """frame number -> (sender ip, sender port, +1 client / -1 server) for packets with evidence."""
    names = ADDRESS_FIELDS + list(FIELDS)
    cmd = ["tshark", "-n", "-r", str(path), "-o", "ip.defragment:FALSE", "-T", "fields",
           "-E", "occurrence=a", "-E", "separator=\t", "-E", "aggregator=,"]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    claims = {}
    for line in out.splitlines():
        row = dict(zip(names, line.split("\t"), strict=False))
        # an ICMP error quotes the datagram it answers: the quoted request or response says who
        # started that datagram's flow, not who sends the ICMP message (ICMP anywhere in the
        # stack: a tunnel's packet inside may be the ICMP message)
        if "1" in row.get("ip.proto", "").split(",") or (
                "58" in row.get("ipv6.nxt", "").split(",")):
            continue
        says = set()
        udp = bool(row.get("udp.srcport"))
        for v in filter(None, row.get("dcerpc.pkt_type", "").split(",")):
            client, server = (_CL_CLIENT, _CL_SERVER) if udp else (_CO_CLIENT, _CO_SERVER)
            says |= {1} if v in client else {-1} if v in server else set()
        if row.get("smtp.response") or row.get("sip.Status-Code"):
            says.add(-1)
        if row.get("sip.Method"):
            says.add(1)
        for field, (client, server) in FIELDS.items():
            for v in filter(None, row.get(field, "").split(",")):
                says |= {1} if v in client else {-1} if v in server else set()
        if len(says) != 1:
            continue
        ip = (row.get("ip.src") or row.get("ipv6.src") or "").split(",")[-1]
        # the innermost sender (the packet inside a tunnel), as the auditor reads it
        port = (row.get("tcp.srcport") or row.get("udp.srcport") or "0").split(",")[-1]
        claims[int(row["frame.number"])] = (ip, int(port), says.pop())
    return claims


def orientation_check(path: Path) -> tuple[Counter, Counter, list]:
    """Per orientation: flows evidence decides, of those how many agree, and the disagreements."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = read_packets([path])
    flows, labels = build_flows_labelled(table)
    claims = tshark_claims(path)
    pk = table.packets
    record = pk["record_index"].to_numpy() + 1
    src_text = format_ip(pk["src_ip_hi"].to_numpy(), pk["src_ip_lo"].to_numpy())
    dst_text = format_ip(pk["dst_ip_hi"].to_numpy(), pk["dst_ip_lo"].to_numpy())
    clients: dict[int, set] = {}
    for row, frame in enumerate(record):
        claim = claims.get(int(frame))
        if claim is None:
            continue
        sender, receiver = ((src_text[row], int(pk["src_port"].iat[row])),
                            (dst_text[row], int(pk["dst_port"].iat[row])))
        clients.setdefault(int(labels[row]), set()).add(sender if claim[2] == 1 else receiver)
    decided, agree, wrong = Counter(), Counter(), []
    for flow_id, who in clients.items():
        if len(who) != 1:
            continue
        f = flows.loc[flow_id]
        (ip, port), = who
        decided[f.orientation] += 1
        if (f.src_ip, int(f.src_port)) == (ip, port):
            agree[f.orientation] += 1
        else:
            wrong.append((f.src_ip, int(f.src_port), f.dst_ip, int(f.dst_port), f.proto,
                          f.orientation))
    return decided, agree, wrong


def cut_midstream(path: Path, out: Path) -> Path:
    """A copy of a capture that starts mid-stream: each TCP flow loses every packet before the
    server's first payload packet, so the first packet it keeps is the server's (as when a
    capture starts during a long-lived session). Flows whose server never sends payload stay
    whole. The records are chosen with the packet table and written by editcap."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = read_packets([path])
        flows, labels = build_flows_labelled(table)
    pk = table.packets
    src = format_ip(pk["src_ip_hi"].to_numpy(), pk["src_ip_lo"].to_numpy())
    server = flows["dst_ip"].to_numpy()[labels]
    tcp = (flows["proto"].to_numpy() == "tcp")[labels]
    from_server = (src == server) & (pk["payload_len"].to_numpy() > 0) & tcp
    rows = np.arange(len(pk))
    first = np.full(len(flows), len(pk))  # per flow: the row of the server's first payload
    np.minimum.at(first, labels[from_server], rows[from_server])
    drop = tcp & (first[labels] < len(pk)) & (rows < first[labels])
    keep = sorted(set((pk["record_index"].to_numpy() + 1).tolist())
                  - set((pk["record_index"].to_numpy()[drop] + 1).tolist()))
    subprocess.run(["editcap", "-r", "-F", "pcapng", str(path), str(out), *map(str, keep)],
                   check=True, capture_output=True)
    return out


@pytest.mark.tshark
@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_initiator_agrees_with_tshark_protocol_evidence(path: Path):
    decided, agree, wrong = orientation_check(path)
    assert wrong == [], f"{path.name}: initiator differs from tshark's evidence: {wrong[:5]}"
    assert decided == agree


# per-frame link types (Ethernet, raw IP, 802.11, ETW in one NetMon file): editcap can write them
# into no single output file, so this one cannot be cut
_CANNOT_CUT = {"netmon23_mixed.cap"}


@pytest.mark.tshark
@pytest.mark.parametrize("path", [p for p in captures() if p.name not in _CANNOT_CUT],
                         ids=lambda p: p.name)
def test_initiator_agrees_with_tshark_when_the_capture_starts_mid_stream(path: Path, tmp_path):
    # no handshake and the server's packet first: what evidence, not the first packet, decides
    cut = cut_midstream(path, tmp_path / "cut.pcapng")
    decided, agree, wrong = orientation_check(cut)
    assert wrong == [], f"{path.name} cut mid-stream: initiator differs from tshark: {wrong[:5]}"
    assert decided == agree
