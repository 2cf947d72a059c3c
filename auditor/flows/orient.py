"""Which side of a flow is the client: the handshake, else evidence, else ports, else time.

A flow caught mid-stream has no SYN to say who started it. Its first payload bytes usually do:
a DCE/RPC bind or request, a TLS ClientHello, an SMTP greeting (sent by the server), an HTTP
status line, SMB2's response flag, an LDAP or Kerberos request tag, the DNS/NBNS QR bit, the NTP
mode. Each direction's first bytes are classified column-wise (numpy over the flows, no loop over
packets), then endpoints that accepted a handshake elsewhere in the capture set, then service
ports, then the first packet. `ORIENTATIONS` is the vocabulary of the flow table's
`orientation` column; `apply_endpoints` is the second pass with RPC endpoints that EPM replies
and DCOM bindings advertised (learned after the flows are built).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from auditor.flows.text import hex_prefix, taken
from auditor.schema import ORIENTATIONS

__all__ = ["ORIENTATIONS", "choose_initiator", "decide_initiator", "known_initiator",
           "listener_keys", "sender_role"]


KEPT = 28  # first payload bytes kept per packet and per flow direction
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
CLIENT, SERVER = 1, -1  # what a direction's first bytes say about its sender

_DCE_CO_CLIENT = (0, 11, 14, 16, 18, 19)  # request, bind, alter_context, auth3, cancel, orphaned
_DCE_CO_SERVER = (2, 3, 12, 13, 15, 17)  # response, fault, bind_ack/nak, alter_context_resp, shutdown
_DCE_CL_CLIENT = (0, 1, 7, 8)  # request, ping, ack, cl_cancel
_DCE_CL_SERVER = (2, 3, 4, 5, 6, 10)  # response, fault, working, nocall, reject, cancel_ack
_LDAP_REQUEST = (0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77)
_LDAP_RESPONSE = (0x61, 0x64, 0x65, 0x73, 0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x78, 0x79)
_KRB_REQUEST = (0x6A, 0x6C, 0x6E)  # AS-REQ, TGS-REQ, AP-REQ
_KRB_RESPONSE = (0x6B, 0x6D, 0x6F, 0x7E)  # AS-REP, TGS-REP, AP-REP, KRB-ERROR
_HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"CONN", b"PATC",
                 b"PROP", b"RPC_", b"M-SE", b"NOTI", b"SUBS", b"MKCO", b"MOVE", b"COPY",
                 b"LOCK", b"UNLO", b"SEAR", b"BPRO", b"REPO",
                 b"INVI", b"REGI", b"ACK ", b"BYE ", b"CANC", b"INFO", b"MESS", b"PRAC",
                 b"UPDA", b"REFE", b"PUBL")  # HTTP, WebDAV, RPC over HTTP, SSDP and SIP requests
_DNS_LIKE_PORTS = (53, 137, 5353, 5355)
_LDAP_PORTS = (389, 3268)


def _u32(text: bytes) -> int:
    return int.from_bytes(text, "big")


def payload_matrix(head: np.ndarray, b4: np.ndarray, b12: np.ndarray, b20: np.ndarray) -> np.ndarray:
    """The (n, 28) uint8 matrix of first payload bytes from the packet table's four columns."""
    n = len(head)
    out = np.empty((n, KEPT), np.uint8)
    out[:, :4] = np.asarray(head, np.uint32).astype(">u4").view(np.uint8).reshape(n, 4)
    for at, col in ((4, b4), (12, b12), (20, b20)):
        out[:, at : at + 8] = np.asarray(col, np.uint64).astype(">u8").view(np.uint8).reshape(n, 8)
    return out


def sender_role(b: np.ndarray, length: np.ndarray, proto: np.ndarray, sport: np.ndarray,
                dport: np.ndarray) -> np.ndarray:
    """Per row: CLIENT (+1), SERVER (-1) or 0, from the first payload bytes its sender sent."""
    n = len(b)
    role = np.zeros(n, np.int8)
    if n == 0:
        return role
    length = np.asarray(length, np.int64)
    b = b.astype(np.int16)  # room for the arithmetic below; int64 would be 8 bytes a cell
    tcp, udp = proto == TCP, proto == UDP
    u32 = ((b[:, 0].astype(np.int64) << 24) | (b[:, 1].astype(np.int64) << 16)
           | (b[:, 2].astype(np.int64) << 8) | b[:, 3])
    sport, dport = _as_u16(sport), _as_u16(dport)
    either = lambda ports: _member(sport, ports) | _member(dport, ports)  # noqa: E731

    def mark(cond, client):
        nonlocal role
        take = cond & (role == 0)
        role = np.where(take & client, CLIENT, np.where(take & ~client, SERVER, role)).astype(np.int8)

    member = _member

    drep_ok = (b[:, 4] & 0xEE) == 0  # data representation: integer and character formats
    # DCE/RPC connection-oriented (ncacn_ip_tcp, ncacn_http): version 5.0, PDU type in byte 2
    co = tcp & (length >= 16) & (b[:, 0] == 5) & (b[:, 1] == 0) & drep_ok
    mark(co & member(b[:, 2], _DCE_CO_CLIENT + _DCE_CO_SERVER), member(b[:, 2], _DCE_CO_CLIENT))
    # DCE/RPC connectionless (ncadg_ip_udp): version 4, PDU type in byte 1
    cl = udp & (length >= 80) & (b[:, 0] == 4) & drep_ok
    mark(cl & member(b[:, 1], _DCE_CL_CLIENT + _DCE_CL_SERVER), member(b[:, 1], _DCE_CL_CLIENT))
    # TLS handshake record: ClientHello (1) or ServerHello (2)
    tls = tcp & (length >= 6) & (b[:, 0] == 0x16) & (b[:, 1] == 3) & (b[:, 2] <= 4)
    mark(tls & member(b[:, 5], (1, 2)), b[:, 5] == 1)
    # SMB over NetBIOS session service: SMB2 flags bit 0 / SMB1 flags 0x80 mark a response
    nbss = tcp & (b[:, 0] == 0)
    smb2 = nbss & (length >= 24) & (b[:, 4] == 0xFE) & (b[:, 5] == ord("S")) & (b[:, 6] == ord("M"))
    mark(smb2 & (b[:, 7] == ord("B")), (b[:, 20] & 1) == 0)
    smb1 = nbss & (length >= 14) & (b[:, 4] == 0xFF) & (b[:, 5] == ord("S")) & (b[:, 6] == ord("M"))
    mark(smb1 & (b[:, 7] == ord("B")), (b[:, 13] & 0x80) == 0)
    mark(tcp & (length >= 4) & member(b[:, 0], (0x81, 0x82, 0x83)) & either((139,)), b[:, 0] == 0x81)
    # SMTP (and FTP) greeting "220 " / "220-" comes from the server; EHLO/HELO from the client
    greeting = member(u32, (_u32(b"220 "), _u32(b"220-")))
    hello = member(u32 & 0xDFDFDFDF, (_u32(b"EHLO"), _u32(b"HELO")))
    mark(tcp & (length >= 4) & (greeting | hello), hello)
    # HTTP (and SSDP, SIP over UDP): a request line or a status line
    status = member(u32, (_u32(b"HTTP"), _u32(b"SIP/"))) & member(b[:, 4], (ord("/"), ord("2")))
    method = member(u32, [_u32(m) for m in _HTTP_METHODS])
    mark((tcp | udp) & (length >= 8) & (status | method), method)
    # Kerberos: UDP carries the message, TCP a 4-byte length first (port 88 only)
    krb = either((88,))
    mark(udp & krb & member(b[:, 0], _KRB_REQUEST + _KRB_RESPONSE), member(b[:, 0], _KRB_REQUEST))
    krb_tcp = tcp & krb & (length >= 6) & (b[:, 0] == 0)
    mark(krb_tcp & member(b[:, 4], _KRB_REQUEST + _KRB_RESPONSE), member(b[:, 4], _KRB_REQUEST))
    # LDAP and CLDAP: SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n] }
    ldap_tag = _ldap_op(b)
    ldap = (tcp | udp) & either(_LDAP_PORTS) & (length >= 7)
    mark(ldap & member(ldap_tag, _LDAP_REQUEST + _LDAP_RESPONSE), member(ldap_tag, _LDAP_REQUEST))
    # DNS, NBNS, mDNS, LLMNR: the QR bit (TCP DNS has a 2-byte length first)
    dns_like = udp & either(_DNS_LIKE_PORTS) & (length >= 12)
    mark(dns_like, (b[:, 2] & 0x80) == 0)
    mark(tcp & either((53,)) & (length >= 14), (b[:, 4] & 0x80) == 0)
    # NTP mode: 1 symmetric active, 3 client and 5 broadcast start; 2 and 4 answer
    ntp = udp & either((123,)) & (length >= 48) & member((b[:, 0] >> 3) & 7, (1, 2, 3, 4))
    mark(ntp & member(b[:, 0] & 7, (1, 2, 3, 4, 5)), member(b[:, 0] & 7, (1, 3, 5)))
    # DHCP: BOOTREQUEST (1) from the client, BOOTREPLY (2) from the server
    dhcp = udp & either((67, 68)) & (length >= 240) & (b[:, 1] == 1) & (b[:, 2] == 6)
    mark(dhcp & member(b[:, 0], (1, 2)), b[:, 0] == 1)
    return role


def _as_u16(values) -> np.ndarray:
    """Values as uint16 when they all fit (ports do), so that _member can look them up."""
    values = np.asarray(values)
    if values.dtype.kind in "ui" and values.dtype.itemsize > 2 and len(values) and (
            values.min() >= 0 and values.max() <= 0xFFFF):
        return values.astype(np.uint16)
    return values


def _member(values: np.ndarray, choices) -> np.ndarray:
    """np.isin(values, choices), by a 65536-entry table for 8- and 16-bit values (a byte of the
    payload, a port): one lookup per row instead of a comparison per choice."""
    if values.dtype.kind not in "ui" or values.dtype.itemsize > 2:
        return np.isin(values, choices)
    signed = values.dtype.kind == "i"
    table = _member_table(tuple(int(c) for c in choices), signed)
    if signed:  # an int16 value sits at its uint16 bit pattern
        return table[values.astype(np.int16, copy=False).view(np.uint16)]
    return table[values.astype(np.uint16, copy=False)]


@functools.lru_cache(maxsize=64)
def _member_table(choices: tuple[int, ...], signed: bool) -> np.ndarray:
    """The lookup table of _member: True at each choice's 16-bit pattern (read-only)."""
    table = np.zeros(1 << 16, bool)
    want = np.asarray(choices, np.int64)
    if signed:
        want = want[(want >= -(1 << 15)) & (want < (1 << 15))].astype(np.int16).view(np.uint16)
    else:
        want = want[(want >= 0) & (want <= 0xFFFF)]
    table[want] = True
    table.flags.writeable = False
    return table


def _ldap_op(b: np.ndarray) -> np.ndarray:
    """The protocolOp tag of an LDAPMessage in each row's first bytes, else -1."""
    n = len(b)
    rows = np.arange(n)
    ln = b[:, 1]
    at = np.where(ln < 0x80, 2, np.where((ln >= 0x81) & (ln <= 0x84), 2 + (ln & 0x7F), KEPT))
    ok = (b[:, 0] == 0x30) & (at < KEPT - 2)
    at = np.minimum(at, KEPT - 3)
    idlen = b[rows, at + 1]
    ok &= (b[rows, at] == 0x02) & (idlen >= 1) & (idlen <= 4)
    tag_at = np.minimum(at + 2 + idlen, KEPT - 1)
    return np.where(ok, b[rows, tag_at], -1)


def evidence_initiator(role0: np.ndarray, role1: np.ndarray) -> np.ndarray:
    """0 or 1 (the canonical side that started the flow) where evidence agrees, else -1."""
    says0 = (role0 == CLIENT) | (role1 == SERVER)
    says1 = (role1 == CLIENT) | (role0 == SERVER)
    return np.where(says0 & ~says1, 0, np.where(says1 & ~says0, 1, -1))


def icmp_initiator(proto: np.ndarray, icmp_type: np.ndarray, first_dir: np.ndarray) -> np.ndarray:
    """For ICMP flows that start with a query (echo, timestamp, ...) or its reply: who asked."""
    query = np.where(proto == ICMP, np.isin(icmp_type, (8, 13, 15, 17)),
                     np.isin(icmp_type, (128, 130, 133, 135)))
    reply = np.where(proto == ICMP, np.isin(icmp_type, (0, 14, 16, 18)),
                     np.isin(icmp_type, (129, 131, 134, 136)))
    is_icmp = (proto == ICMP) | (proto == ICMPV6)
    return np.where(is_icmp & query, first_dir, np.where(is_icmp & reply, 1 - first_dir, -1))


def listener_keys(f, handshake: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """The endpoints (address code, port, protocol) some decided TCP/UDP flow answered on.

    `handshake`/`evidence` are `known_initiator`'s: a flow they decide names its responder a
    listener for every other flow. Sorted and unique, so that pieces of a flow table can share it.
    """
    proto = _col(f, "proto_num").astype(np.int64)
    init = np.where(handshake >= 0, handshake, evidence)
    take = ((handshake >= 0) | (evidence >= 0)) & ((proto == TCP) | (proto == UDP))
    a = _endpoint_key(_col(f, "a_code")[take], _col(f, "a_port")[take], proto[take])
    b = _endpoint_key(_col(f, "b_code")[take], _col(f, "b_port")[take], proto[take])
    return np.unique(np.where(init[take] == 0, b, a))


def listener_initiator(f, known: np.ndarray) -> np.ndarray:
    """0/1 where exactly one side is a `listener_keys` endpoint (`known`), else -1."""
    proto = _col(f, "proto_num").astype(np.int64)
    if not len(known):
        return np.full(len(proto), -1)
    a = _endpoint_key(_col(f, "a_code"), _col(f, "a_port"), proto)
    b = _endpoint_key(_col(f, "b_code"), _col(f, "b_port"), proto)
    ported = (proto == TCP) | (proto == UDP)
    a_listens, b_listens = _sorted_isin(a, known), _sorted_isin(b, known)
    return np.where(ported & b_listens & ~a_listens, 0,
                    np.where(ported & a_listens & ~b_listens, 1, -1))


def _sorted_isin(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """np.isin(values, known) for a sorted, unique `known`: a binary search per value."""
    at = np.minimum(np.searchsorted(known, values), len(known) - 1)
    return known[at] == values


def _col(f, name: str) -> np.ndarray:
    """A column of a frame or of a dict of arrays, as a numpy array."""
    return np.asarray(f[name])


def _endpoint_key(code: np.ndarray, port: np.ndarray, proto: np.ndarray) -> np.ndarray:
    return (code.astype(np.int64) << 24) | (port.astype(np.int64) << 8) | proto


def payload_hex(b: np.ndarray, length: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Each row's first min(length, 28) bytes as lower-case hex text ('' when none).

    Built as one Arrow string array from the hex digits (no Python string per row): the flow
    table of a big capture holds two of these columns.
    """
    return hex_prefix(b, length, KEPT)


def known_initiator(f, role0: np.ndarray, role1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per flow, the initiator side (0 = a, 1 = b) its handshake names and the one its payload
    evidence (or ICMP query) names, -1 where they say nothing: the facts every other flow's
    `listener_initiator` needs, as two int8 arrays."""
    proto = _col(f, "proto_num").astype(np.int64)
    first_dir = _col(f, "first_dir").astype(np.int64)
    syn_dir = _col(f, "syn_dir")
    # a SYN/ACK without its SYN in the capture still names the server
    synack = np.where(_col(f, "synack1") > 0, 0, np.where(_col(f, "synack0") > 0, 1, -1))
    handshake = np.where(syn_dir >= 0, syn_dir, synack)
    evidence = evidence_initiator(role0, role1)
    evidence = np.where(evidence >= 0, evidence,
                        icmp_initiator(proto, _col(f, "icmp_type0"), first_dir))
    return handshake.astype(np.int8), evidence.astype(np.int8)


def choose_initiator(f, handshake: np.ndarray, evidence: np.ndarray, known: np.ndarray,
                     a_rank: np.ndarray, b_rank: np.ndarray,
                     group: tuple[np.ndarray, np.ndarray] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Initiator side (0 = a, 1 = b) and the `orientation` that decided it, per flow, from
    `known_initiator`'s facts and the table's `listener_keys` (`known`)."""
    proto = _col(f, "proto_num").astype(np.int64)
    listener = listener_initiator(f, known)
    by_port = np.where(a_rank > b_rank, 1, np.where(b_rank > a_rank, 0, -1))
    by_port = np.where((proto == ICMP) | (proto == ICMPV6), -1, by_port)
    a_group, b_group = group if group is not None else (np.zeros(len(proto), bool),) * 2
    to_group = np.where(b_group & ~a_group, 0, np.where(a_group & ~b_group, 1, -1))
    choices = [handshake, to_group, evidence, listener, by_port]
    decides = [c >= 0 for c in choices]
    out = np.select(decides, choices, default=_col(f, "first_dir").astype(np.int64))
    # the orientation as codes into _DECIDED: one Arrow take, no string per flow
    code = np.select(decides, list(range(len(choices))), default=len(choices))
    return out.astype(np.int64), taken(_DECIDED, code)


def decide_initiator(f, a_rank: np.ndarray, b_rank: np.ndarray,
                     role0: np.ndarray, role1: np.ndarray,
                     group: tuple[np.ndarray, np.ndarray] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Initiator side (0 = a, 1 = b) and the `orientation` that decided it, per flow.

    `a_rank`/`b_rank` rank each side's port as a service port (higher = more likely the server);
    `role0`/`role1` are `sender_role` of each side's first payload bytes; `group` marks the sides
    that are multicast or broadcast addresses (they never start anything). The flows are the
    whole table: their decided responders are the listeners (`listener_keys`).
    """
    handshake, evidence = known_initiator(f, role0, role1)
    known = listener_keys(f, handshake, evidence)
    return choose_initiator(f, handshake, evidence, known, a_rank, b_rank, group)


# what decided the initiator, in decide_initiator's order of choices (ORIENTATIONS' words)
_DECIDED = ("handshake", "multicast", "payload", "listener", "port", "first_packet")


def orientation_rank(orientation: pd.Series) -> np.ndarray:
    """Position of each orientation in ORIENTATIONS (higher = weaker evidence); 0 when unknown."""
    codes = pd.Categorical(orientation, categories=ORIENTATIONS).codes.astype(np.int64)
    return np.maximum(codes, 0)


_NOTES = {
    "port": " (direction from the service port: the flow began before the capture)",
    "first_packet": " (direction guessed from the first captured packet: the flow began before "
                    "the capture and no evidence says which side is the client)",
}


def orientation_note(orientation: pd.Series) -> pd.Series:
    """Text to append to a finding's detail when its direction is a guess, else ''."""
    return orientation.map(_NOTES).fillna("").astype(object)


def tie_connectionless_rpc(pk: pd.DataFrame, s_code: np.ndarray, d_code: np.ndarray,
                           src_port: np.ndarray, dst_port: np.ndarray) -> np.ndarray:
    """Source ports with connectionless DCE/RPC answers moved onto their request's server port.

    A ncadg_ip_udp server may answer from another port than the one the request went to
    ([MS-RPCE] 2.1.1.2; `dcerpc.pcap`). Such a response (response, fault, working, nocall,
    reject) counts to the flow of the latest request its receiver (address and port) sent to its
    sender's address within 30 s, instead of becoming a one-way flow of its own.
    """
    proto = pk["proto"].to_numpy()
    head = pk["payload_head"].to_numpy().astype(np.int64)
    cl = ((proto == UDP) & ((head >> 24) == 4) & (pk["payload_len"].to_numpy() >= 80)
          & (((pk["payload_b4"].to_numpy() >> np.uint64(56)) & np.uint64(0xEE)) == 0))
    if not cl.any():
        return src_port
    ptype = (head >> 16) & 0xFF
    req = np.flatnonzero(cl & np.isin(ptype, _DCE_CL_CLIENT))
    resp = np.flatnonzero(cl & np.isin(ptype, _DCE_CL_SERVER))
    if not (len(req) and len(resp)):
        return src_port
    ts = pk["ts_ns"].to_numpy()
    asked = pd.DataFrame({"ts": ts[req], "c": s_code[req], "cp": src_port[req], "s": d_code[req],
                          "sp": dst_port[req]}).sort_values("ts", kind="stable")
    answers = pd.DataFrame({"ts": ts[resp], "c": d_code[resp], "cp": dst_port[resp],
                            "s": s_code[resp], "rp": src_port[resp], "row": resp})
    tied = pd.merge_asof(answers.sort_values("ts", kind="stable"), asked, on="ts",
                         by=["c", "cp", "s"], direction="backward", tolerance=30_000_000_000)
    tied = tied[tied["sp"].notna() & (tied["sp"] != tied["rp"])]
    if tied.empty:
        return src_port
    out = src_port.copy()
    out[tied["row"].to_numpy()] = tied["sp"].to_numpy().astype(out.dtype)
    return out


_SIDES = ("ip", "port", "packets", "bytes", "payload_bytes", "payload_prefix")
_WEAK = ("port", "first_packet")


def apply_endpoints(flows: pd.DataFrame, endpoints: pd.DataFrame) -> pd.DataFrame:
    """Second pass: re-orient guessed flows (port, first_packet) that touch an advertised endpoint.

    `endpoints` has server_ip, port, proto and evidence (schema.RPC_ENDPOINT_COLUMNS); endpoints
    an EPM reply, a bind or a DCOM binding named anywhere in the captures count, inferred ones
    do not. A flow whose src is such an endpoint (and whose dst is not) is turned round; either
    way its orientation becomes `epm`. Returns the same frame when nothing changes.
    """
    if flows.empty or endpoints is None or endpoints.empty:
        return flows
    weak = flows["orientation"].isin(_WEAK).to_numpy()
    if not weak.any():
        return flows
    known = endpoints[endpoints["evidence"].isin(("epm", "bind", "dcom"))]
    keys = set(zip(known["server_ip"], known["port"].astype(int), known["proto"], strict=True))
    if not keys:
        return flows
    sub = flows.loc[weak, ["src_ip", "src_port", "dst_ip", "dst_port", "proto"]]
    src_is = np.array([k in keys for k in zip(sub["src_ip"], sub["src_port"].astype(int),
                                              sub["proto"], strict=True)], dtype=bool)
    dst_is = np.array([k in keys for k in zip(sub["dst_ip"], sub["dst_port"].astype(int),
                                              sub["proto"], strict=True)], dtype=bool)
    rows = np.flatnonzero(weak)
    turn, confirm = rows[src_is & ~dst_is], rows[dst_is & ~src_is]
    if not (len(turn) or len(confirm)):
        return flows
    out = flows.copy()
    if len(turn):
        out = turn_round(out, turn)
    out.iloc[np.concatenate([turn, confirm]), out.columns.get_loc("orientation")] = "epm"
    return out


def turn_round(flows: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """Swap initiator and responder of the given rows (positions); UDP states follow the swap."""
    out = flows.copy()
    for side in _SIDES:
        s, d = out.columns.get_loc(f"src_{side}"), out.columns.get_loc(f"dst_{side}")
        a, b = out.iloc[rows, s].to_numpy(copy=True), out.iloc[rows, d].to_numpy(copy=True)
        out.iloc[rows, s], out.iloc[rows, d] = b, a
    prefix = out["src_payload_prefix"].to_numpy()[rows].astype(str)
    head = [int((p[:8]).ljust(8, "0"), 16) for p in prefix]
    out.iloc[rows, out.columns.get_loc("client_payload_head")] = np.asarray(head, np.uint32)
    state = out["state"].to_numpy()[rows]
    answered = (out["dst_packets"].to_numpy()[rows] > 0) | (out["src_packets"].to_numpy()[rows] == 0)
    udp = np.isin(state, ("udp_answered", "udp_unanswered"))
    other = np.isin(state, ("answered", "one_way"))
    state = np.where(udp, np.where(answered, "udp_answered", "udp_unanswered"),
                     np.where(other, np.where(answered, "answered", "one_way"), state))
    out.iloc[rows, out.columns.get_loc("state")] = state
    return out
