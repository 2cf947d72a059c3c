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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


def packet_facts(table, flows: pd.DataFrame, labels: np.ndarray):
    """Per packet of a flow: (its flow, whether the originator sent it, its history letters,
    its IP bytes, the packets' order by flow then time, the columns read)."""
    pk = table.packets
    src = _address_halves(flows["src_ip"])
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
    return lab, orig, letters, ip_bytes, np.lexsort((sub["ts_ns"], lab)), sub


def empty_records() -> pd.DataFrame:
    """connection_records of no flow."""
    return pd.DataFrame({"conn_state": [], "history": [], "orig_ip_bytes": [],
                         "resp_ip_bytes": [], "orig_icmp": [], "resp_icmp": []})


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


# each (side, letter) slot's character: upper case for the originator
_SLOT_CHARS = np.frombuffer(("".join(_LETTERS).upper() + "".join(_LETTERS)).encode(), np.uint8)


def _histories(first: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Each flow's history: its letters in order of first appearance (letters of one packet in
    Zeek's order), as str."""
    n, sides, k = first.shape
    slot = np.arange(sides * k).reshape(sides, k)  # side * 8 + letter
    letter = np.arange(k)[None, :].repeat(sides, 0)
    key = np.where(seen, first * (2 * k) + letter * 2 + np.arange(sides)[:, None], np.iinfo(
        np.int64).max).reshape(n, sides * k)
    idx = np.argsort(key, axis=1, kind="stable")
    chars = np.where(np.take_along_axis(seen.reshape(n, -1), idx, 1),
                     _SLOT_CHARS[slot.ravel()][idx], 0).astype(np.uint8)
    return chars.view(f"S{sides * k}").ravel().astype(str).astype(object)


# endpoint states (`_endpoint`)
_RESET, _CLOSED, _ESTABLISHED, _SYN_SENT, _PARTIAL, _INACTIVE = range(6)


def _endpoints(seen: np.ndarray, sent: np.ndarray, established: np.ndarray) -> np.ndarray:
    q, i, s, h, d, f, r, a = (seen[:, j] for j in range(8))
    return np.select([r | q, f | i, established, s | h, sent],
                     [_RESET, _CLOSED, _ESTABLISHED, _SYN_SENT, _PARTIAL], _INACTIVE)


def _conn_states(proto: np.ndarray, seen: np.ndarray, sent: np.ndarray) -> np.ndarray:
    """Zeek's conn_state of each flow from what each side sent (seen: flow x side x letter)."""
    established = seen[:, 0, 2] & seen[:, 1, 3]  # S then h
    o, r = (_endpoints(seen[:, k], sent[:, k], established) for k in (0, 1))
    o_inactive = (o == _INACTIVE) | (o == _PARTIAL)
    r_inactive = (r == _INACTIVE) | (r == _PARTIAL)
    tcp = np.select(
        [(o == _SYN_SENT) & (r == _RESET), o == _RESET, r == _RESET,
         (o == _CLOSED) & (r == _CLOSED), o == _CLOSED, r == _CLOSED,
         (o == _SYN_SENT) & (r == _INACTIVE), (o == _ESTABLISHED) & (r == _ESTABLISHED)],
        ["REJ", np.where(r_inactive, "RSTOS0", "RSTO"), np.where(o_inactive, "RSTRH", "RSTR"),
         "SF", np.where(r_inactive, "SH", "S2"), np.where(o_inactive, "SHR", "S3"), "S0", "S1"],
        "OTH")
    udp = np.where(sent[:, 0], np.where(sent[:, 1], "SF", "S0"),
                   np.where(sent[:, 1], "SHR", "OTH"))
    return np.where(proto == "udp", udp, np.where(proto == "tcp", tcp, "OTH")).astype(object)


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
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             f"#unset_field\t{UNSET}", "#path\tconn", f"#open\t{_stamp(first)}",
             "#fields\t" + "\t".join(f for f, _ in FIELDS),
             "#types\t" + "\t".join(t for _, t in FIELDS)]
    return lines, f"#close\t{_stamp(last)}\n"


def conn_log_text(table, flows: pd.DataFrame, labels: np.ndarray) -> str:
    """The conn.log text of a flow table (from build_flows_labelled) and its packet table."""
    rec = connection_records(table, flows, labels)
    lines, close = log_frame(flows)
    body = ""
    if len(flows):
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
        body = "\n".join(row.to_pylist()) + "\n"
    return "\n".join(lines) + "\n" + body + close
