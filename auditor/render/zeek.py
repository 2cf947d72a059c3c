"""The flow table as a Zeek conn.log (TSV with Zeek's header lines), for Zeek and ZAT users.

`conn_state` and `history` follow Zeek's definitions (base/protocols/conn): the endpoint states
of each side (inactive, partial, SYN sent, established, closed by FIN, reset) decide the state
in Zeek's order (REJ, RSTO/RSTOS0, RSTR/RSTRH, SF, S2/SH, S3/SHR, S0, S1, OTH; UDP: SF, S0, SHR,
OTH; other protocols OTH). `history` has one letter per event, upper case for the originator,
each at most once per side in order of first occurrence: s (SYN), h (SYN+ACK), a (pure ACK),
d (payload; TCP and UDP), f (FIN), r (RST), q (SYN with FIN or RST), i (FIN with RST). The letters that need
checksums, sequence gaps or windows (c, g, t, w) are not produced. `orig_bytes`/`resp_bytes`
are transport payload bytes; `*_ip_bytes` count from the IP header on (frame length minus the
link-layer header).

Every column is made for all flows at once (numpy, and pyarrow's string kernels for the text);
the one step per flow is hashing each flow's identity for its uid (hashlib, in C).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from auditor.flows.conn import LETTERS as _LETTERS
from auditor.flows.conn import RECORD_COLUMNS
from auditor.flows.conn import conn_states as _conn_states
from auditor.flows.conn import histories as _histories
from auditor.flows.conn import packet_letters as _packet_letters

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
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _halves(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    value = (0xFFFF << 32 | int(addr)) if addr.version == 4 else int(addr)
    return value >> 64, value & (2**64 - 1)


def _address_halves(ips: pd.Series) -> np.ndarray:
    """(n, 2) uint64 halves of each address (each distinct address parsed once)."""
    codes, uniques = pd.factorize(ips)
    halves = np.array([_halves(ip) for ip in uniques], dtype=np.uint64).reshape(len(uniques), 2)
    return halves[codes]


def _uids(*columns) -> pa.Array:
    """Each row's stable Zeek-style connection id: 'C' and 17 base-62 characters of the first 13
    bytes of the sha256 of its parts' text joined by '|' (least significant digit first)."""
    text = pc.binary_join_element_wise(*[_text(c) for c in columns], "|")
    digests = np.frombuffer(b"".join(hashlib.sha256(t).digest()[:13]
                                     for t in text.cast(pa.binary()).to_pylist()),
                            np.uint8).reshape(-1, 13).astype(np.uint64)
    top = np.zeros(len(digests), np.uint64)
    for k in range(5):
        top = (top << np.uint64(8)) | digests[:, k]
    low = np.zeros(len(digests), np.uint64)
    for k in range(5, 13):
        low = (low << np.uint64(8)) | digests[:, k]
    mask = np.uint64((1 << 26) - 1)
    # the 104-bit number as four 26-bit limbs, most significant first
    limbs = [(top >> np.uint64(14)), ((low >> np.uint64(52)) | (top << np.uint64(12))) & mask,
             (low >> np.uint64(26)) & mask, low & mask]
    limbs = [x.astype(np.int64) for x in limbs]
    digits = np.empty((len(digests), 18), np.uint8)
    digits[:, 0] = ord("C")
    b62 = np.frombuffer(_B62.encode(), np.uint8)
    for d in range(17):  # long division by 62, a digit at a time
        rem = np.zeros(len(digests), np.int64)
        for k, limb in enumerate(limbs):
            cur = (rem << 26) | limb
            limbs[k], rem = cur // 62, cur % 62
        digits[:, d + 1] = b62[rem]
    return pa.array(digits.view("S18").ravel()).cast(pa.string())


def _text(values) -> pa.Array:
    """A column as Arrow text (integers as Python's str gives them)."""
    if isinstance(values, pa.Array):
        return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return pc.cast(pa.array(arr.astype(np.int64)), pa.string())
    return pa.array(arr.astype(str) if arr.dtype.kind != "O" else arr, pa.string())


def packet_facts(table, flows: pd.DataFrame, labels: np.ndarray):
    """Per packet of a flow: (its flow, whether the originator sent it, its history letters,
    its IP bytes, the packets' order by flow then time, the columns read)."""
    pk = table.packets
    src = _address_halves(flows["src_ip"])
    lab = np.asarray(labels, dtype=np.int64)
    keep = lab >= 0
    lab = lab[keep]
    sub = {c: pk[c].to_numpy()[keep] for c in ("src_ip_hi", "src_ip_lo", "tcp_flags",
                                               "payload_len", "frame_len", "l3_offset", "proto",
                                               "ts_ns", "icmp_type", "icmp_code")}
    sub["src_port"] = _flow_src_ports(pk)[keep]
    # an ICMP packet's ports are its exchange on both sides (capture/headers.py), its flow's 0
    icmp = np.isin(sub["proto"], (1, 58))
    orig = ((sub["src_ip_hi"] == src[lab, 0]) & (sub["src_ip_lo"] == src[lab, 1])
            & (icmp | (sub["src_port"].astype(np.int64)
                       == flows["src_port"].to_numpy().astype(np.int64)[lab])))
    tcp = sub["proto"] == 6
    letters = _packet_letters(sub["tcp_flags"].astype(np.int64), sub["payload_len"], tcp,
                              sub["proto"] == 17)
    ip_bytes = sub["frame_len"].astype(np.int64) - sub["l3_offset"].astype(np.int64)
    return lab, orig, letters, ip_bytes, np.lexsort((sub["ts_ns"], lab)), sub


def _flow_src_ports(pk: pd.DataFrame) -> np.ndarray:
    """Each packet's source port as build_flows keys it: a later IP fragment has its first
    fragment's, a connectionless DCE/RPC answer from another port its request's."""
    from auditor.flows.build import _address_codes, _ports_with_fragments
    from auditor.flows.orient import tie_connectionless_rpc

    src_port, dst_port = _ports_with_fragments(pk)
    codes, _, _ = _address_codes(pk)
    return tie_connectionless_rpc(pk, codes[:len(pk)], codes[len(pk):], src_port, dst_port)


def empty_records() -> pd.DataFrame:
    """connection_records of no flow."""
    return pd.DataFrame({c: [] for c in RECORD_COLUMNS})


def connection_records(table, flows: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """conn_state, history and IP byte counts per flow, from its packets."""
    n = len(flows)
    if n == 0:
        return empty_records()
    lab, orig, letters, ip_bytes, order, sub = packet_facts(table, flows, labels)
    side = np.where(orig, 0, 1)
    pos = np.empty(len(order), dtype=np.int64)
    pos[order] = np.arange(len(order))
    first = np.full((n, 2, len(_LETTERS)), np.iinfo(np.int64).max, dtype=np.int64)
    for j in range(len(_LETTERS)):
        hit = letters[:, j]
        np.minimum.at(first[:, :, j], (lab[hit], side[hit]), pos[hit])
    seen = first < np.iinfo(np.int64).max
    orig_ip = np.bincount(lab[orig], weights=ip_bytes[orig], minlength=n).astype(np.int64)
    resp_ip = np.bincount(lab[~orig], weights=ip_bytes[~orig], minlength=n).astype(np.int64)
    any_pkt = np.zeros((n, 2), dtype=bool)
    any_pkt[lab, side] = True
    # each flow's first packet (in time order): its ICMP type and code
    first_idx = np.full(n, -1, dtype=np.int64)
    ranked = lab[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if len(order) else order
    first_idx[ranked[starts]] = order[starts]
    icmp_t = np.where(first_idx >= 0, sub["icmp_type"][np.maximum(first_idx, 0)], 0)
    icmp_c = np.where(first_idx >= 0, sub["icmp_code"][np.maximum(first_idx, 0)], 0)
    return pd.DataFrame({"conn_state": _conn_states(flows["proto"].to_numpy(), seen, any_pkt),
                         "history": _histories(first, seen), "orig_ip_bytes": orig_ip,
                         "resp_ip_bytes": resp_ip, "orig_icmp": icmp_t, "resp_icmp": icmp_c})


def _stamp(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d-%H-%M-%S")


def _seconds(ns: np.ndarray) -> pa.Array:
    """Nanoseconds as f"{ns / 1e9:.6f}" gives them: rounded to the microsecond, by integers
    where the float's rounding cannot differ (not halfway, under 10^15 ns), else by the float."""
    us, rest = np.divmod(ns, 1000)
    us = us + (rest > 500)
    text = _micro(us)
    odd = np.flatnonzero((rest == 500) | (np.abs(ns) >= 10**15))
    if len(odd):
        fixed = text.to_numpy(zero_copy_only=False).astype(object)
        fixed[odd] = [f"{v / 1e9:.6f}" for v in ns[odd].tolist()]
        text = pa.array(fixed, pa.string())
    return text


def _micro(us: np.ndarray) -> pa.Array:
    """Microseconds (>= 0) as 'seconds.micros' text."""
    return pc.binary_join_element_wise(_text(us // 1_000_000),
                                       pc.utf8_lpad(_text(us % 1_000_000), 6, "0"), ".")


def log_frame(flows: pd.DataFrame) -> tuple[list[str], str]:
    """The conn.log's header lines and its #close line (with a newline) for these flows."""
    first = flows["first_seen"].min() if len(flows) else pd.Timestamp(0, tz="UTC")
    last = flows["last_seen"].max() if len(flows) else first
    return _frame_lines(first, last)


def _frame_lines(first: pd.Timestamp, last: pd.Timestamp) -> tuple[list[str], str]:
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             f"#unset_field\t{UNSET}", "#path\tconn", f"#open\t{_stamp(first)}",
             "#fields\t" + "\t".join(f for f, _ in FIELDS),
             "#types\t" + "\t".join(t for _, t in FIELDS)]
    return lines, f"#close\t{_stamp(last)}\n"


def conn_log_text(table, flows: pd.DataFrame, labels: np.ndarray) -> str:
    """The conn.log text of a flow table (from build_flows_labelled) and its packet table."""
    rec = connection_records(table, flows, labels)
    lines, close = log_frame(flows)
    return "\n".join(lines) + "\n" + _rows(flows, rec) + close


def conn_log_chunks(flows) -> Iterator[bytes]:
    """The conn.log of a flow table streamed with `FlowOptions(zeek=True)`, a piece at a time:
    `flows` is a `flows.pieces.FlowPieces` (made on its cores) or a frame, either carrying
    `flows.conn.RECORD_COLUMNS`. The same bytes as `conn_log_text` of its packet table."""
    from auditor.flows.pieces import FlowPieces

    if not isinstance(flows, FlowPieces):
        lines, close = log_frame(flows)
        yield ("\n".join(lines) + "\n" + _rows(flows, flows) + close).encode()
        return
    first, last = flows.time_span()
    lines, close = _frame_lines(*(pd.Timestamp(t, unit="ns", tz="UTC") for t in (first, last)))
    yield ("\n".join(lines) + "\n").encode()
    yield from flows.mapped(_piece_rows)
    yield close.encode()


def _piece_rows(piece: pd.DataFrame, first: bool) -> bytes:
    return _rows(piece, piece).encode()


def _rows(flows: pd.DataFrame, rec) -> str:
    """The conn.log lines (each with its newline) of flows and their connection_records."""
    if not len(flows):
        return ""
    ts = flows["first_seen"].astype("int64").to_numpy()
    dur = (flows["last_seen"].astype("int64").to_numpy() - ts)
    proto = flows["proto"].to_numpy()
    icmp = np.isin(proto, ("icmp", "icmpv6"))
    orig_p = np.where(icmp, rec["orig_icmp"].to_numpy(), flows["src_port"].to_numpy())
    resp_p = np.where(icmp, rec["resp_icmp"].to_numpy(), flows["dst_port"].to_numpy())
    names = pd.Series(proto).map({"tcp": "tcp", "udp": "udp", "icmp": "icmp",
                                  "icmpv6": "icmp"}).fillna("unknown_transport")
    unset = pa.array(np.full(len(flows), UNSET, object), pa.string())
    history = rec["history"].to_numpy()
    row = pc.binary_join_element_wise(
        _micro(ts // 1000), _uids(flows["capture"], flows["flow_id"], flows["src_ip"],
                                  flows["src_port"], flows["dst_ip"], flows["dst_port"], proto, ts),
        _text(flows["src_ip"].to_numpy()), _text(orig_p), _text(flows["dst_ip"].to_numpy()),
        _text(resp_p), _text(names.to_numpy()), unset, _seconds(dur),
        _text(flows["src_payload_bytes"].to_numpy()),
        _text(flows["dst_payload_bytes"].to_numpy()), _text(rec["conn_state"].to_numpy()),
        unset, unset, _text(np.zeros(len(flows), np.int64)),
        _text(np.where(history == "", UNSET, history)),
        _text(flows["src_packets"].to_numpy()), _text(rec["orig_ip_bytes"].to_numpy()),
        _text(flows["dst_packets"].to_numpy()), _text(rec["resp_ip_bytes"].to_numpy()),
        unset, "\t")
    return "\n".join(row.to_pylist()) + "\n"
