"""Deep dissection of a few selected packets with tshark: EPM, binds, DCOM, CL RPC, host names.

tshark parses a few thousand packets per second, so callers hand it a small pcap of pre-selected
packets (rpc.py does). tshark reassembles TCP segments and DCE/RPC fragments itself; the JSON trees
it prints are walked generically, so multi-tower replies, several PDUs per segment and reassembled
PDUs all read alike. tshark runs directly (`-T json`): pyshark's FileCapture gives the same trees
but first runs `tshark -v` and wraps every packet, which cost 0.4-0.9 s more per call here.
Running tshark and the generic tree walking live in tshark.py; this module reads what trees mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from auditor.dissect.names import NAMES_FILTER, host_rows
from auditor.dissect.prestart import (  # noqa: F401 (RPC_FILTER, display_filter_for: API here too)
    _ALTER,
    _ALTER_RESP,
    _BIND,
    _BIND_ACK,
    _BIND_NAK,
    RPC_FILTER,
    display_filter_for,
)
from auditor.dissect.tshark import _first, _int, _nodes, _Packet, _packets, _tshark, _values
from auditor.errors import DissectError
from auditor.schema import (
    HOST_NAME_COLUMNS,
    RPC_BIND_COLUMNS,
    RPC_CL_COLUMNS,
    RPC_DCOM_COLUMNS,
    RPC_EPM_COLUMNS,
    empty_frame,
    typed_frame,
)

EPT_S_NOT_REGISTERED = 0x16C9A0D6
STATUS_NAMES = {0: "ok", EPT_S_NOT_REGISTERED: "EPT_S_NOT_REGISTERED"}

_CL_PTYPES = ("request", "ping", "response", "fault", "working", "nocall", "reject", "ack",
              "cl_cancel", "fack", "cancel_ack")
# Tower floor protocol ids ([C706] appendix L; [MS-RPCE] 2.2.1.2)
_FLOOR_TCP, _FLOOR_UDP, _FLOOR_IP, _FLOOR_PIPE, _FLOOR_LRPC, _FLOOR_HTTP = 7, 8, 9, 15, 16, 31
_EPM_OPS = {2: "ept_lookup", 3: "ept_map"}
_PLUMBING = frozenset({"frame", "eth", "sll", "vlan", "ip", "ipv6", "tcp", "udp", "dcerpc", "epm",
                       "nbss", "smb", "smb2", "http"})

@dataclass(frozen=True)
class RpcFacts:
    """What tshark says about DCE/RPC in one capture; each frame follows its schema table."""

    epm: pd.DataFrame  # schema.RPC_EPM_COLUMNS
    binds: pd.DataFrame  # schema.RPC_BIND_COLUMNS
    dcom: pd.DataFrame  # schema.RPC_DCOM_COLUMNS
    cl_rpc: pd.DataFrame  # schema.RPC_CL_COLUMNS


def empty_rpc_facts() -> RpcFacts:
    """Return RpcFacts with every frame empty (nothing was dissected)."""
    return RpcFacts(
        epm=empty_frame(RPC_EPM_COLUMNS),
        binds=empty_frame(RPC_BIND_COLUMNS),
        dcom=empty_frame(RPC_DCOM_COLUMNS),
        cl_rpc=empty_frame(RPC_CL_COLUMNS),
    )


def tshark_available(tshark_path: str | None = None) -> bool:
    """Return True when a tshark binary is found (on PATH, or at tshark_path)."""
    try:
        _tshark(tshark_path)
    except DissectError:
        return False
    return True


def dissect_rpc(pcap_path, *, tshark_path: str | None = None) -> RpcFacts:
    """Return the EPM towers, binds, DCOM bindings and connectionless RPC of a (small) capture."""
    return dissect_capture(pcap_path, names=False, tshark_path=tshark_path)[0]


def dissect_names(pcap_path, *, tshark_path: str | None = None) -> pd.DataFrame:
    """Return (ip, name, source, hint) rows: host names and role hints (see dissect/names.py)."""
    rows: list[dict] = []
    for pkt in _packets(pcap_path, NAMES_FILTER, tshark_path):
        rows.extend(host_rows(pkt))
    return typed_frame(rows, HOST_NAME_COLUMNS).drop_duplicates(ignore_index=True)


def dissect_capture(pcap_path, *, names: bool = True,
                    tshark_path: str | None = None) -> tuple[RpcFacts, pd.DataFrame]:
    """Return RPC facts and (when `names`) host names from a single tshark pass.

    `pcap_path` may also be a tshark.PrestartedTshark started with display_filter_for(names).
    """
    display_filter = display_filter_for(names)
    collector = _RpcCollector()
    name_rows: list[dict] = []
    for pkt in _packets(pcap_path, display_filter, tshark_path):
        collector.add(pkt)
        if names:
            name_rows.extend(host_rows(pkt))
    frame = typed_frame(name_rows, HOST_NAME_COLUMNS).drop_duplicates(ignore_index=True)
    return collector.facts(), frame


class _RpcCollector:
    """Accumulates RPC facts packet by packet."""

    def __init__(self) -> None:
        self.epm: list[dict] = []
        self.requests: dict[int, dict] = {}  # frame number -> interface an ept_map asked for
        self.dcom: list[dict] = []
        self.activations: dict[int, list[str]] = {}  # frame number -> IIDs an activation asked
        self.cl: list[dict] = []
        self.binds = _BindTracker()

    def add(self, pkt: _Packet) -> None:
        for tree in pkt.layers.get("epm", ()):
            _read_epm(pkt, tree, self.requests, self.epm)
        for tree in pkt.layers.get("dcerpc", ()):
            ptype = _int(tree.get("dcerpc.pkt_type"))
            if tree.get("dcerpc.ver") == "4":
                self.cl.append(_cl_row(pkt, tree, ptype))
            elif ptype in (_BIND, _ALTER):
                self.binds.bind(pkt, tree, ptype)
            elif ptype in (_BIND_ACK, _ALTER_RESP, _BIND_NAK):
                self.binds.answer(pkt, tree, ptype)
        if "dcerpc" not in pkt.layers:
            return
        # DCOM string bindings sit in the interface layer (oxid, remact, ...) above DCE/RPC
        for name, trees in pkt.layers.items():
            if name in _PLUMBING:
                continue
            iids = (_activated(pkt, name, trees, self.activations)
                    if name in ("isystemactivator", "remact") else [])
            for node in _nodes(trees):
                if "dcom.dualstringarray.network_addr" in node:
                    row = _dcom_row(pkt, node)
                    self.dcom.extend(row | {"interface_uuid": iid} for iid in iids or [""])

    def facts(self) -> RpcFacts:
        epm = [_epm_failure(row, self.requests) if "request_in" in row else row
               for row in self.epm]
        return RpcFacts(
            epm=typed_frame(epm, RPC_EPM_COLUMNS),
            binds=typed_frame(self.binds.rows(), RPC_BIND_COLUMNS),
            dcom=typed_frame(self.dcom, RPC_DCOM_COLUMNS),
            cl_rpc=typed_frame(self.cl, RPC_CL_COLUMNS),
        )


# --- versions and status codes --------------------------------------------------------------------


def _version(major: int, minor: int) -> str:
    return f"{major}.{minor}"


def _swap16(value: int) -> int:
    # tshark 4.0 reads the little-endian version words of tower floors as big-endian; versions
    # never exceed 255, so a larger value is a swapped one (a fixed tshark reads them right)
    return ((value & 0xFF) << 8) | (value >> 8) if value > 0xFF else value


def _status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08x}")


# --- EPM ------------------------------------------------------------------------------------------


def _tower(node: dict) -> dict:
    """Interface, protocol and endpoint of one tower (a node holding epm.tower.num_floors)."""
    floors = [child for child in node.values() if isinstance(child, dict)
              and "epm.tower.proto_id" in child]
    ids = [_int(f["epm.tower.proto_id"]) for f in floors]
    uuid_floor = next((f for f in floors if "epm.uuid" in f), {})
    proto = "other"
    for floor_id, name in ((_FLOOR_TCP, "tcp"), (_FLOOR_UDP, "udp"), (_FLOOR_HTTP, "http"),
                           (_FLOOR_PIPE, "pipe"), (_FLOOR_LRPC, "lrpc")):
        if floor_id in ids:
            proto = name
            break
    port = None
    for key in ("epm.proto.tcp_port", "epm.proto.udp_port", "epm.proto.http_port"):
        if _first(floors, key) is not None:
            port = _int(_first(floors, key))
    return {
        "interface_uuid": str(uuid_floor.get("epm.uuid", "")).lower(),
        "interface_version": _version(_swap16(_int(uuid_floor.get("epm.uuid_version"))),
                                      _swap16(_int(uuid_floor.get("epm.ver_min")))),
        "tower_proto": proto,
        "tower_ip": _first(floors, "epm.proto.ip", ""),
        "port": port,
        "endpoint": _first(floors, "epm.proto.named_pipe", ""),
    }


def _read_epm(pkt: _Packet, tree: dict, requests: dict, rows: list) -> None:
    opnum = _int(tree.get("epm.opnum"), -1)
    if opnum not in _EPM_OPS:
        return
    towers = [node for node in _nodes(tree) if "epm.tower.num_floors" in node]
    if "epm.rc" not in tree:  # a request: remember which interface it asked for
        if opnum == 3 and towers:
            requests[pkt.number] = _tower(towers[0])
        return
    status = _int(tree["epm.rc"])
    base = {
        "ts": pkt.ts_ns, "client_ip": pkt.dst, "client_port": pkt.dport, "server_ip": pkt.src,
        "server_port": pkt.sport, "operation": _EPM_OPS[opnum], "status": status,
        "status_name": _status_name(status),
    }
    for node in towers:
        rows.append(base | _tower(node))
    if status != 0 and opnum == 3 and not towers:
        # filled in from the request once every packet is read
        rows.append(base | {"request_in": _int(tree.get("dcerpc.request_in"), -1)})


def _epm_failure(row: dict, requests: dict) -> dict:
    asked = requests.get(row.pop("request_in"), {})
    return row | {
        "interface_uuid": asked.get("interface_uuid", ""),
        "interface_version": asked.get("interface_version", ""),
        "tower_proto": "", "tower_ip": "", "port": None, "endpoint": "",
    }


# --- binds ----------------------------------------------------------------------------------------


class _BindTracker:
    """Pairs bind/alter_context PDUs with their answers by (TCP stream, call id).

    An answer pairs with the open PDU before it; one with nothing before it answers a PDU the
    capture lacks or tshark did not decode (a bind in a capture's first segment, after a lost
    segment: kerberos.pcap), so it is dropped rather than lent to a later PDU of the same call.
    """

    def __init__(self) -> None:
        self._binds: list[dict] = []
        self._open: dict[tuple[int, int], dict] = {}

    def bind(self, pkt: _Packet, tree: dict, ptype: int) -> None:
        items = [
            (str(node.get("dcerpc.cn_bind_to_uuid", "")).lower(),
             _version(_int(node.get("dcerpc.cn_bind_if_ver")),
                      _int(node.get("dcerpc.cn_bind_if_ver_minor"))))
            for node in _nodes(tree) if "dcerpc.cn_bind_to_uuid" in node
        ]
        bind = {
            "ts": pkt.ts_ns, "client_ip": pkt.src, "client_port": pkt.sport,
            "server_ip": pkt.dst, "server_port": pkt.dport, "transport": _transport(pkt),
            "ptype": "bind" if ptype == _BIND else "alter_context", "items": items,
            "results": None,
        }
        self._binds.append(bind)
        # a PDU still open under the same key got no answer in the capture: it stays unknown
        self._open[(pkt.stream, _int(tree.get("dcerpc.cn_call_id")))] = bind

    def answer(self, pkt: _Packet, tree: dict, ptype: int) -> None:
        bind = self._open.pop((pkt.stream, _int(tree.get("dcerpc.cn_call_id"))), None)
        if bind is None:
            return
        # a bind_nak refuses every context: an empty list stands for "all rejected"
        results = [] if ptype == _BIND_NAK else [
            _int(v) for v in _values(tree, "dcerpc.cn_ack_result")]
        bind["results"] = results if results else [2] * len(bind["items"])

    def rows(self) -> list[dict]:
        out = []
        for bind in self._binds:
            items, results = bind.pop("items"), bind.pop("results")
            for uuid, version in dict.fromkeys(items):
                out.append(bind | {"interface_uuid": uuid, "interface_version": version,
                                   "result": _bind_result(items, results, uuid)})
        return out


def _bind_result(items: list, results: list | None, uuid: str) -> str:
    if results is None:
        return "unknown"
    # result 3 (negotiate_ack) answers the bind-time-feature pseudo context, not the interface
    mine = [r for (u, _), r in zip(items, results, strict=False) if u == uuid and r != 3]
    if 0 in mine:
        return "accepted"
    return "rejected" if mine else "unknown"


def _transport(pkt: _Packet) -> str:
    if "smb2" in pkt.layers or "smb" in pkt.layers:
        return "smb"
    if "http" in pkt.layers or pkt.dport == 593 or pkt.sport == 593:
        return "http"
    return "tcp"


# --- DCOM and connectionless RPC ------------------------------------------------------------------

_BINDING = re.compile(r"^(?P<host>[^\[]*)\[(?P<port>\d+)\]$")


def _dcom_row(pkt: _Packet, node: dict) -> dict:
    binding = str(node["dcom.dualstringarray.network_addr"])
    match = _BINDING.match(binding)
    return {
        "ts": pkt.ts_ns, "client_ip": pkt.dst, "server_ip": pkt.src,
        "tower_id": _int(node.get("dcom.dualstringarray.tower_id")), "binding": binding,
        "host": match["host"] if match else binding,
        "port": int(match["port"]) if match else None,
    }


def _activated(pkt: _Packet, layer: str, trees: list[dict],
               requests: dict[int, list[str]]) -> list[str]:
    """Interfaces a DCOM activation reply hands out, and so its OXID bindings serve.

    ISystemActivator (RemoteCreateInstance, RemoteGetClassObject): the request's InstantiationInfo
    lists the IIDs asked for, the reply's PropsOutInfo each with its result ([MS-DCOM]
    2.2.22.2.1, 2.2.22.2.9). IActivation RemoteActivation (pre-XP, `remact`): the request lists
    IIDs, the reply an OBJREF per interface it returned (3.1.2.5.2.3.1). The IIDs that succeeded,
    or, when tshark shows none, those asked for. A request: [] (and it is remembered).
    """
    request_in = _int(_first(trees, "dcerpc.request_in"), -1)
    if request_in < 0:  # a request: remember what it asked for
        key = ("isystemactivator.properties.instninfo.iid" if layer == "isystemactivator"
               else "dcom.iid")
        requests[pkt.number] = list(dict.fromkeys(str(v).lower() for v in _values(trees, key)))
        return []
    if layer == "remact":  # OBJREF_STANDARDs of the returned interfaces
        iids = [str(node["dcom.iid"]).lower() for node in _nodes(trees)
                if "dcom.iid" in node and "dcom.stdobjref" in node]
        return list(dict.fromkeys(iids)) or requests.get(request_in, [])
    iids = [str(v).lower() for v in _values(trees, "isystemactivator.properties.iid")]
    results = [_int(v, -1) for v in _values(trees, "isystemactivator.properties.retval")]
    if not iids:
        return requests.get(request_in, [])
    return list(dict.fromkeys(i for i, r in zip(iids, results, strict=False) if r == 0))


def _cl_row(pkt: _Packet, tree: dict, ptype: int) -> dict:
    from_client = ptype in (0, 1)  # request and ping come from the caller
    version = _int(tree.get("dcerpc.dg_if_ver"))
    return {
        "ts": pkt.ts_ns,
        "client_ip": pkt.src if from_client else pkt.dst,
        "client_port": pkt.sport if from_client else pkt.dport,
        "server_ip": pkt.dst if from_client else pkt.src,
        "server_port": pkt.dport if from_client else pkt.sport,
        "ptype": _CL_PTYPES[ptype] if 0 <= ptype < len(_CL_PTYPES) else str(ptype),
        "interface_uuid": str(tree.get("dcerpc.dg_if_id", "")).lower(),
        # if_vers: major in the low 16 bits, minor in the high ones ([C706] 12.5.3.2)
        "interface_version": _version(version & 0xFFFF, version >> 16),
        "activity_uuid": str(tree.get("dcerpc.dg_act_id", "")).lower(),
    }
