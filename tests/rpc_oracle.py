"""tshark as the RPC oracle: EPM towers, binds and their answers, DCOM bindings, CL activities.

Read from tshark's PDML (`-T pdml`), which keeps the protocol tree as it is: one element per
tower, per floor, per presentation context and per string binding, so nothing is paired up by
position across flattened `-T fields` lists. Nothing here imports auditor.dissect: this walks
tshark's own tree, field names from tshark 4.0 (`tshark -G fields`).
"""

from __future__ import annotations

import bz2
import ipaddress
import lzma
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# what auditor reads as a capture (container formats and compressions)
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz", ".gzip", ".bz2", ".xz", ".zst", ".lz4")
# tshark 4.0 reads gzip, zstd and lz4 itself but not these: decompress them first (a stream
# decompressor gives what a cut-short file holds, as auditor and tshark do for the others)
_DECOMPRESS = {".bz2": lambda data: bz2.BZ2Decompressor().decompress(data),
               ".xz": lambda data: lzma.LZMADecompressor().decompress(data)}

ORACLE_FILTER = ("epm || dcom.dualstringarray.string || isystemactivator || remact"
                 " || dcerpc.cn_bind_to_uuid"
                 " || dcerpc.pkt_type == 12 || dcerpc.pkt_type == 13 || dcerpc.pkt_type == 15"
                 " || dcerpc.ver == 4")

_BIND, _BIND_ACK, _BIND_NAK, _ALTER, _ALTER_RESP = 11, 12, 13, 14, 15
_BINDING = re.compile(r"^(?P<host>[^\[]*)\[(?P<port>\d+)\]$")


def repo_captures() -> list[Path]:
    """Every capture file under fixtures/, whatever its format or compression."""
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file()
                  and p.suffix.lower() in CAPTURE_SUFFIXES)


@dataclass
class Oracle:
    """What tshark decodes in one capture (see `read`)."""

    # (server ip, port, proto, interface uuid) from EPM towers with status 0 (tcp/udp floors)
    epm: set[tuple[str, int, str, str]] = field(default_factory=set)
    # every tower of every EPM reply (any protocol), and each failed ept_map without towers
    towers: list[dict] = field(default_factory=list)
    asked: dict[int, str] = field(default_factory=dict)  # ept_map request frame -> interface
    # one entry per (bind or alter_context PDU, interface): keys below, result accepted/...
    binds: list[dict] = field(default_factory=list)
    # (host-or-sender, port, interface) of ncacn_ip_tcp (tower id 7) DCOM string bindings; the
    # interface is what an ISystemActivator reply handed out ("" for an OXID resolver reply)
    dcom: set[tuple[str, int, str]] = field(default_factory=set)
    activations: dict[int, list[str]] = field(default_factory=dict)  # request frame -> IIDs
    # connectionless PDUs: frame number, ptype, activity id, addresses and ports
    cl: list[dict] = field(default_factory=list)
    packets: int = 0  # packets matching ORACLE_FILTER

    def endpoints(self) -> set[tuple[str, int, str, str]]:
        """The endpoint set discovery must give: EPM towers, binds not refused, DCOM bindings
        where nothing names an interface on that port."""
        named = set(self.epm) | {(b["server_ip"], b["server_port"], "tcp", b["interface_uuid"])
                                 for b in self.binds
                                 if b["transport"] != "smb" and b["result"] != "rejected"}
        named |= {(s, p, "tcp", iid) for s, p, iid in self.dcom if iid}
        keys = {(s, p, proto) for s, p, proto, _ in named}
        return named | {(s, p, "tcp", "") for s, p, _ in self.dcom if (s, p, "tcp") not in keys}


@cache
def oracles() -> dict[Path, Oracle]:
    """tshark over every repo capture, once per test session; tshark's start-up dominates, so a
    few run side by side."""
    captures = repo_captures()
    with tempfile.TemporaryDirectory(prefix="rpc-oracle-") as tmp, \
            ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(captures, pool.map(lambda p: read(p, Path(tmp)), captures), strict=True))


def read(path: Path, tmp_dir: Path | None = None) -> Oracle:
    """Run tshark once over `path` (decompressing what tshark cannot) and read its trees."""
    source = path
    if path.suffix in _DECOMPRESS:
        assert tmp_dir is not None, "a compressed capture needs a temporary directory"
        # one name per compressed file: truncated_tail.bz2 and .xz are read side by side
        source = tmp_dir / f"{path.name}.pcap"
        source.write_bytes(_DECOMPRESS[path.suffix](path.read_bytes()))
    run = subprocess.run(["tshark", "-n", "-r", str(source), "-Y", ORACLE_FILTER, "-T", "pdml"],
                         capture_output=True, check=False)
    # a capture cut short still gives its complete packets (exit 2 with that message)
    assert run.returncode == 0 or b"cut short" in run.stderr, run.stderr.decode()[-300:]
    text = run.stdout
    if not text.rstrip().endswith(b"</pdml>"):  # tshark stopped at a cut-short record
        text = text + b"</pdml>"
    oracle, open_binds = Oracle(), {}
    for pkt in ET.fromstring(text):
        oracle.packets += 1
        _packet(pkt, oracle, open_binds)
    for pdu in open_binds.values():  # no answer in the capture
        oracle.binds.extend(_results(pdu, "missing"))
    return oracle


# --- one packet -----------------------------------------------------------------------------------


def _fields(elem: ET.Element) -> list[ET.Element]:
    return [c for c in elem if c.tag in ("field", "proto")]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in _fields(elem) if c.get("name") == name), None)


def _show(elem: ET.Element, name: str, default: str = "") -> str:
    child = _child(elem, name)
    return default if child is None else str(child.get("show"))


def _first(pkt: ET.Element, name: str) -> str:
    found = next((e for e in pkt.iter("field") if e.get("name") == name), None)
    return "" if found is None else str(found.get("show"))


def _packet(pkt: ET.Element, oracle: Oracle, open_binds: dict) -> None:
    frame = int(_first(pkt, "frame.number"))
    src = _first(pkt, "ip.src") or _first(pkt, "ipv6.src")
    dst = _first(pkt, "ip.dst") or _first(pkt, "ipv6.dst")
    tcp = _first(pkt, "tcp.stream") != ""
    sport = int(_first(pkt, "tcp.srcport" if tcp else "udp.srcport") or -1)
    dport = int(_first(pkt, "tcp.dstport" if tcp else "udp.dstport") or -1)
    stream = int(_first(pkt, "tcp.stream") or -1)
    names = {e.get("name") for e in pkt.iter("proto")}
    transport = "smb" if names & {"smb", "smb2"} else "tcp"
    where = {"src": src, "dst": dst, "sport": sport, "dport": dport}
    ptype = None
    # document order: each interface layer (epm, oxid, ...) follows the dcerpc PDU it rides in
    for proto in pkt.iter("proto"):
        name = proto.get("name")
        if name == "dcerpc":
            ptype = int(_show(proto, "dcerpc.pkt_type", "-1"))
            call = (stream, int(_show(proto, "dcerpc.cn_call_id", "-1")))
            if _show(proto, "dcerpc.ver") == "4":
                oracle.cl.append(where | {"frame": frame, "ptype": ptype,
                                          "activity": _show(proto, "dcerpc.dg_act_id").lower()})
            elif ptype in (_BIND, _ALTER):
                if call in open_binds:  # a second PDU before any answer: the first got none
                    oracle.binds.extend(_results(open_binds.pop(call), "missing"))
                open_binds[call] = where | {
                    "ptype": "bind" if ptype == _BIND else "alter_context",
                    "transport": transport, "items": _contexts(proto)}
            elif ptype in (_BIND_ACK, _ALTER_RESP, _BIND_NAK) and call in open_binds:
                # an answer pairs with the PDU before it in its stream (same call id); one with
                # nothing before it answers a PDU the capture lacks or tshark did not decode
                oracle.binds.extend(_results(open_binds.pop(call), None if ptype == _BIND_NAK else
                                             [int(e.get("show")) for e in proto.iter("field")
                                              if e.get("name") == "dcerpc.cn_ack_result"]))
        elif name == "epm" and ptype == 0 and _show(proto, "epm.opnum") == "3":
            asked = [_tower(t) for t in proto.iter()
                     if _child(t, "epm.tower.num_floors") is not None]
            oracle.asked[frame] = asked[0]["interface_uuid"] if asked else ""
        elif name == "epm" and ptype == 2:
            _epm_reply(proto, where, oracle)
    iids = [""]
    for proto in pkt.iter("proto"):
        if proto.get("name") in ("isystemactivator", "remact"):
            iids = _activation(proto, frame, oracle.activations) or [""]
    for string in pkt.iter("field"):
        if string.get("name") == "dcom.dualstringarray.string":
            tower = int(_show(string, "dcom.dualstringarray.tower_id", "0"), 0)
            match = _BINDING.match(_show(string, "dcom.dualstringarray.network_addr"))
            if tower == 7 and match:
                host = match["host"] if _is_ip(match["host"]) else src
                oracle.dcom |= {(host, int(match["port"]), iid) for iid in iids}


def _all(elem: ET.Element, name: str) -> list[str]:
    return [str(e.get("show")).lower() for e in elem.iter("field") if e.get("name") == name]


def _activation(proto: ET.Element, frame: int, asked: dict[int, list[str]]) -> list[str]:
    """An activation request's IIDs (kept by frame), or the IIDs its reply returned: with S_OK
    in an ISystemActivator PropsOutInfo ([MS-DCOM] 2.2.22.2.9), or as an OBJREF_STANDARD in an
    IActivation (remact) reply; without either, the request's."""
    remact = proto.get("name") == "remact"
    request_in = _show(proto, "dcerpc.request_in")
    if not request_in:
        asked[frame] = _all(proto, "dcom.iid" if remact
                            else "isystemactivator.properties.instninfo.iid")
        return []
    if remact:
        iids = [_show(e, "dcom.iid").lower() for e in proto.iter("field")
                if e.get("name") == "dcom.objref" and _child(e, "dcom.stdobjref") is not None]
        return iids or asked.get(int(request_in), [])
    iids = _all(proto, "isystemactivator.properties.iid")
    results = _all(proto, "isystemactivator.properties.retval")
    if not iids:
        return asked.get(int(request_in), [])
    return [iid for iid, result in zip(iids, results, strict=False) if int(result, 0) == 0]


def _contexts(proto: ET.Element) -> list[str]:
    """The abstract syntax of each presentation context, in order."""
    out = []
    for item in proto.iter("field"):
        if item.get("name") == "dcerpc.cn_ctx_item":
            syntax = _child(item, "dcerpc.cn_bind_abstract_syntax")
            out.append(_show(syntax, "dcerpc.cn_bind_to_uuid").lower() if syntax is not None
                       else "")
    return out


def _results(pdu: dict, results: list[int] | None | str) -> list[dict]:
    """One row per interface of a bind PDU with its result: None is a bind_nak, "missing" no
    answer in the capture; result 3 (negotiate_ack) answers the bind-time feature negotiation
    context, not the interface ([C706] 12.6.4.4 p_cont_def_result; [MS-RPCE] 3.3.1.5.3)."""
    rows = []
    for uuid in dict.fromkeys(pdu["items"]):
        mine = ([] if not isinstance(results, list) else
                [r for u, r in zip(pdu["items"], results, strict=False) if u == uuid and r != 3])
        result = ("rejected" if results is None else
                  "accepted" if 0 in mine else "rejected" if mine else "unknown")
        rows.append({"client_ip": pdu["src"], "client_port": pdu["sport"],
                     "server_ip": pdu["dst"], "server_port": pdu["dport"],
                     "transport": pdu["transport"], "ptype": pdu["ptype"],
                     "interface_uuid": uuid, "result": result})
    return rows


_TOWER_KINDS = ((0x07, "tcp", "epm.proto.tcp_port"), (0x08, "udp", "epm.proto.udp_port"),
                (0x1F, "http", "epm.proto.http_port"), (0x0F, "pipe", None), (0x10, "lrpc", None))


def _tower(tower: ET.Element) -> dict:
    """Interface, protocol (the first of tcp, udp, http, pipe, lrpc its floors hold), address,
    port or endpoint name of one tower ([C706] appendix L; [MS-RPCE] 2.2.1.2)."""
    floors = [f for f in _fields(tower) if _child(f, "epm.tower.proto_id") is not None]
    ids = [int(_show(f, "epm.tower.proto_id"), 0) for f in floors]

    def value(name: str) -> str:
        return next((_show(f, name) for f in floors if _child(f, name) is not None), "")

    kind, port = "other", None
    for floor_id, name, port_field in _TOWER_KINDS:
        if floor_id in ids:
            kind = name
            port = int(_show(floors[ids.index(floor_id)], port_field)) if port_field else None
            break
    return {"interface_uuid": value("epm.uuid").lower(), "tower_proto": kind,
            "tower_ip": value("epm.proto.ip"), "port": port,
            "endpoint": value("epm.proto.named_pipe")}


def _epm_reply(proto: ET.Element, where: dict, oracle: Oracle) -> None:
    opnum = _show(proto, "epm.opnum")
    if opnum not in ("2", "3") or _child(proto, "epm.rc") is None:
        return
    status = int(_show(proto, "epm.rc"), 0)
    base = {"client_ip": where["dst"], "server_ip": where["src"], "status": status,
            "operation": "ept_map" if opnum == "3" else "ept_lookup"}
    towers = [_tower(t) for t in proto.iter() if _child(t, "epm.tower.num_floors") is not None]
    oracle.towers.extend(base | t for t in towers)
    if status != 0 and opnum == "3" and not towers:  # the interface asked for, nothing found
        asked = oracle.asked.get(int(_show(proto, "dcerpc.request_in", "-1")), "")
        oracle.towers.append(base | {"interface_uuid": asked, "tower_proto": "", "tower_ip": "",
                                     "port": None, "endpoint": ""})
    if status != 0:
        return
    for t in towers:
        if t["tower_proto"] in ("tcp", "udp"):
            ip = t["tower_ip"] if t["tower_ip"] not in ("", "0.0.0.0") else where["src"]
            oracle.epm.add((ip, t["port"], t["tower_proto"], t["interface_uuid"]))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
