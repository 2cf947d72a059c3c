"""The per-flow conn.log implementation, before it was vectorised: the oracle of test_zeek.py.

`conn_state` and `history` follow Zeek's definitions (base/protocols/conn): the endpoint states
of each side (inactive, partial, SYN sent, established, closed by FIN, reset) decide the state
in Zeek's order (REJ, RSTO/RSTOS0, RSTR/RSTRH, SF, S2/SH, S3/SHR, S0, S1, OTH; UDP: SF, S0, SHR,
OTH; other protocols OTH). `history` has one letter per event, upper case for the originator,
each at most once per side in order of first occurrence: s (SYN), h (SYN+ACK), a (pure ACK),
d (payload; TCP and UDP), f (FIN), r (RST), q (SYN with FIN or RST), i (FIN with RST). The letters that need
checksums, sequence gaps or windows (c, g, t, w) are not produced. `orig_bytes`/`resp_bytes`
are transport payload bytes; `*_ip_bytes` count from the IP header on (frame length minus the
link-layer header).
"""

from __future__ import annotations

import hashlib
import ipaddress

import numpy as np
import pandas as pd

FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
    ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
    ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
    ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
)
UNSET = "-"
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
# history letters in the order Zeek checks a packet's flags
_LETTERS = ("q", "i", "s", "h", "d", "f", "r", "a")
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _halves(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    value = (0xFFFF << 32 | int(addr)) if addr.version == 4 else int(addr)
    return value >> 64, value & (2**64 - 1)


def _uid(*parts) -> str:
    """A stable Zeek-style connection id: 'C' and 17 base-62 characters."""
    n = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:13], "big")
    out = []
    for _ in range(17):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "C" + "".join(out)


def _packet_letters(flags: np.ndarray, payload: np.ndarray, tcp: np.ndarray,
                    udp: np.ndarray) -> np.ndarray:
    """(packets, letters) booleans: which history letters each packet contributes."""
    syn, fin, rst, ack = ((flags & f) != 0 for f in (_SYN, _FIN, _RST, _ACK))
    multi = tcp & syn & (fin | rst)
    incons = tcp & fin & rst & ~syn
    data = (payload > 0) & (tcp | udp)
    return np.column_stack([
        multi, incons, tcp & syn & ~ack & ~multi, tcp & syn & ack & ~multi, data,
        tcp & fin & ~incons & ~multi, tcp & rst & ~incons & ~multi,
        tcp & ack & ~syn & ~fin & ~rst & ~data,
    ])


def connection_records(table, flows: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """conn_state, history and IP byte counts per flow, from its packets."""
    n = len(flows)
    if n == 0:
        return pd.DataFrame({"conn_state": [], "history": [], "orig_ip_bytes": [],
                             "resp_ip_bytes": [], "orig_icmp": [], "resp_icmp": []})
    pk = table.packets
    src = np.array([_halves(ip) for ip in flows["src_ip"]], dtype=np.uint64).reshape(n, 2)
    lab = np.asarray(labels, dtype=np.int64)
    keep = lab >= 0
    lab = lab[keep]
    sub = {c: pk[c].to_numpy()[keep] for c in ("src_ip_hi", "src_ip_lo", "src_port", "tcp_flags",
                                               "payload_len", "frame_len", "l3_offset", "proto",
                                               "ts_ns", "icmp_type", "icmp_code")}
    orig = ((sub["src_ip_hi"] == src[lab, 0]) & (sub["src_ip_lo"] == src[lab, 1])
            & (sub["src_port"].astype(np.int64) == flows["src_port"].to_numpy().astype(np.int64)[lab]))
    tcp = sub["proto"] == 6
    letters = _packet_letters(sub["tcp_flags"].astype(np.int64), sub["payload_len"], tcp,
                              sub["proto"] == 17)
    ip_bytes = sub["frame_len"].astype(np.int64) - sub["l3_offset"].astype(np.int64)
    # per flow and side: which letters were seen, and where each first appeared
    order = np.lexsort((sub["ts_ns"], lab))
    seen = np.zeros((n, 2, len(_LETTERS)), dtype=bool)
    first = np.full((n, 2, len(_LETTERS)), np.iinfo(np.int64).max, dtype=np.int64)
    side = np.where(orig, 0, 1)
    pos = np.empty(len(order), dtype=np.int64)
    pos[order] = np.arange(len(order))
    for j in range(len(_LETTERS)):
        hit = letters[:, j]
        np.logical_or.at(seen[:, :, j], (lab[hit], side[hit]), True)
        np.minimum.at(first[:, :, j], (lab[hit], side[hit]), pos[hit])
    orig_ip = np.bincount(lab[orig], weights=ip_bytes[orig], minlength=n).astype(np.int64)
    resp_ip = np.bincount(lab[~orig], weights=ip_bytes[~orig], minlength=n).astype(np.int64)
    any_pkt = np.zeros((n, 2), dtype=bool)
    np.logical_or.at(any_pkt, (lab, side), True)
    first_idx = np.full(n, -1, dtype=np.int64)
    firsts = pd.Series(order).groupby(lab[order]).first()
    first_idx[firsts.index.to_numpy()] = firsts.to_numpy()
    histories, states = [], []
    for i in range(n):
        events = [(first[i, s, j], j, _LETTERS[j].upper() if s == 0 else _LETTERS[j])
                  for s in (0, 1) for j in range(len(_LETTERS)) if seen[i, s, j]]
        histories.append("".join(letter for _, _, letter in sorted(events)))
        states.append(_conn_state(flows["proto"].iloc[i], seen[i], any_pkt[i]))
    icmp_t = np.where(first_idx >= 0, sub["icmp_type"][np.maximum(first_idx, 0)], 0)
    icmp_c = np.where(first_idx >= 0, sub["icmp_code"][np.maximum(first_idx, 0)], 0)
    return pd.DataFrame({"conn_state": states, "history": histories, "orig_ip_bytes": orig_ip,
                         "resp_ip_bytes": resp_ip, "orig_icmp": icmp_t, "resp_icmp": icmp_c})


def _endpoint(seen: np.ndarray, sent: bool, established: bool) -> str:
    q, i, s, h, d, f, r, a = seen
    if r or q:
        return "reset"
    if f or i:
        return "closed"
    if established:
        return "established"
    if s or h:
        return "syn_sent"
    return "partial" if sent else "inactive"


def _conn_state(proto: str, seen: np.ndarray, sent: np.ndarray) -> str:
    """Zeek's conn_state from what each side sent (seen: side x letter)."""
    if proto == "udp":
        if sent[0]:
            return "SF" if sent[1] else "S0"
        return "SHR" if sent[1] else "OTH"
    if proto != "tcp":
        return "OTH"
    established = bool(seen[0][2] and seen[1][3])  # S then h
    os_, rs = (_endpoint(seen[k], bool(sent[k]), established) for k in (0, 1))
    o_inactive, r_inactive = os_ in ("inactive", "partial"), rs in ("inactive", "partial")
    if os_ == "syn_sent" and rs == "reset":
        return "REJ"
    if os_ == "reset":
        return "RSTOS0" if r_inactive else "RSTO"
    if rs == "reset":
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == "closed" and rs == "closed":
        return "SF"
    if os_ == "closed":
        return "SH" if r_inactive else "S2"
    if rs == "closed":
        return "SHR" if o_inactive else "S3"
    if os_ == "syn_sent" and rs == "inactive":
        return "S0"
    if os_ == "established" and rs == "established":
        return "S1"
    return "OTH"


def _stamp(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d-%H-%M-%S")


def conn_log_text(table, flows: pd.DataFrame, labels: np.ndarray) -> str:
    """The conn.log text of a flow table (from build_flows_labelled) and its packet table."""
    rec = connection_records(table, flows, labels)
    first = flows["first_seen"].min() if len(flows) else pd.Timestamp(0, tz="UTC")
    last = flows["last_seen"].max() if len(flows) else first
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             f"#unset_field\t{UNSET}", "#path\tconn", f"#open\t{_stamp(first)}",
             "#fields\t" + "\t".join(f for f, _ in FIELDS),
             "#types\t" + "\t".join(t for _, t in FIELDS)]
    ts = flows["first_seen"].astype("int64").to_numpy() if len(flows) else []
    dur = (flows["last_seen"] - flows["first_seen"]).dt.total_seconds().to_numpy() if len(
        flows) else []
    for i, f in enumerate(flows.itertuples(index=False)):
        icmp = f.proto in ("icmp", "icmpv6")
        orig_p = int(rec["orig_icmp"].iloc[i]) if icmp else int(f.src_port)
        resp_p = int(rec["resp_icmp"].iloc[i]) if icmp else int(f.dst_port)
        proto = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "icmp"}.get(
            f.proto, "unknown_transport")
        row = [
            f"{ts[i] // 1_000_000_000}.{ts[i] // 1000 % 1_000_000:06d}",
            _uid(f.capture, f.flow_id, f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.proto, ts[i]),
            f.src_ip, str(orig_p), f.dst_ip, str(resp_p), proto, UNSET, f"{dur[i]:.6f}",
            str(int(f.src_payload_bytes)), str(int(f.dst_payload_bytes)), rec["conn_state"].iloc[i],
            UNSET, UNSET, "0", rec["history"].iloc[i] or UNSET, str(int(f.src_packets)),
            str(int(rec["orig_ip_bytes"].iloc[i])), str(int(f.dst_packets)),
            str(int(rec["resp_ip_bytes"].iloc[i])), UNSET,
        ]
        lines.append("\t".join(row))
    lines.append(f"#close\t{_stamp(last)}")
    return "\n".join(lines) + "\n"
