"""The per-flow conn.log implementation, before it was vectorised: the oracle of test_zeek.py.

It shares the package's constants and its per-packet facts (`packet_facts`: sides, letters); the
per-flow steps it keeps are the ones auditor.render.zeek now makes for all flows at once:
histories, states, uids and each row's text.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from auditor.render.zeek import _B62, _LETTERS, UNSET, empty_records, log_frame, packet_facts


def _uid(*parts) -> str:
    """A stable Zeek-style connection id: 'C' and 17 base-62 characters."""
    n = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:13], "big")
    out = []
    for _ in range(17):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "C" + "".join(out)


def connection_records(table, flows: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """conn_state, history and IP byte counts per flow, from its packets."""
    n = len(flows)
    if n == 0:
        return empty_records()
    lab, orig, letters, ip_bytes, order, sub = packet_facts(table, flows, labels)
    # per flow and side: which letters were seen, and where each first appeared
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


def conn_log_text(table, flows: pd.DataFrame, labels: np.ndarray) -> str:
    """The conn.log text of a flow table (from build_flows_labelled) and its packet table."""
    rec = connection_records(table, flows, labels)
    lines, close = log_frame(flows)
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
    return "\n".join(lines) + "\n" + close
