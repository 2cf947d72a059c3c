"""Packets to bidirectional flows: initiator, per-direction counts and the TCP outcome.

Everything is vectorised: packets are grouped into conversations by a packed integer key, sorted
once by (conversation, time), cut into flows where a 5-tuple is reused or goes idle, and each flow is
then a contiguous slice that numpy's `reduceat` aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from auditor.capture.packets import PacketTable, format_ip
from auditor.flows.orient import (
    choose_initiator,
    known_initiator,
    listener_keys,
    payload_hex,
    payload_matrix,
    sender_role,
    tie_connectionless_rpc,
)
from auditor.flows.protocols import one_to_many, protocol_names
from auditor.flows.text import taken
from auditor.options import FlowOptions
from auditor.schema import FLOW_COLUMNS, FLOW_STATES, column_names, empty_frame

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58

# Service ports at or above 1024 that must count as "the server side" when a flow is seen without
# its SYN (Exchange, AD and Windows services from the port reference).
REGISTERED_SERVICE_PORTS = np.array(
    sorted(
        {1433, 1723, 1801, 2525, 3268, 3269, 3343, 3389, 5060, 5061, 5062, 5063, 5065, 5066, 5067,
         5068, 5075, 5076, 5077, 5985, 5986, 6001, 6002, 6004, 8080, 8443, 9389, 50389, 50636, 64327}
    ),
    dtype=np.int64,
)
EPHEMERAL_FLOOR = 32768  # Linux starts here, Windows 2008+ at 49152; below it counts as registered

# ICMP unreachable codes that are not a refusal (IPv4 code 4: fragmentation needed).
_NOT_A_REFUSAL_V4 = (4,)


def build_flows(table: PacketTable, options: FlowOptions | None = None) -> pd.DataFrame:
    """Return the flow table (schema.FLOW_COLUMNS) of a packet table."""
    return build_flows_labelled(table, options)[0]


def build_flows_labelled(
    table: PacketTable, options: FlowOptions | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the flow table and, per packet row, the flow_id it belongs to."""
    options = options or FlowOptions()
    pk = table.packets
    n = len(pk)
    if n == 0:
        return empty_frame(FLOW_COLUMNS), np.empty(0, dtype=np.int64)

    src_port, dst_port = _ports_with_fragments(pk)
    proto = pk["proto"].to_numpy().astype(np.int64)
    flags = pk["tcp_flags"].to_numpy().astype(np.int64)
    ts = pk["ts_ns"].to_numpy()

    addr_codes, addr_hi, addr_lo = _address_codes(pk)
    s_code, d_code = addr_codes[:n], addr_codes[n:]
    src_port = tie_connectionless_rpc(pk, s_code, d_code, src_port, dst_port)
    # Canonical orientation: side "a" is the smaller (address, port); direction 0 = sent by "a".
    swap = (s_code > d_code) | ((s_code == d_code) & (src_port > dst_port))
    a_code = np.where(swap, d_code, s_code)
    b_code = np.where(swap, s_code, d_code)
    a_port = np.where(swap, dst_port, src_port)
    b_port = np.where(swap, src_port, dst_port)
    direction = swap.astype(np.int8)

    pair = pd.factorize(a_code * (int(addr_codes.max()) + 1) + b_code)[0].astype(np.int64)
    conv_key = (pair << 40) | (a_port << 24) | (b_port << 8) | proto
    conv = pd.factorize(conv_key)[0]

    order = np.lexsort((ts, conv))
    c_s, ts_s, fl_s, dir_s, pr_s = conv[order], ts[order], flags[order], direction[order], proto[order]
    seq_s = pk["tcp_seq"].to_numpy()[order]
    starts = _flow_starts(c_s, ts_s, fl_s, pr_s, seq_s, options)
    flow_sorted = np.cumsum(starts) - 1
    labels = np.empty(n, dtype=np.int64)
    labels[order] = flow_sorted
    bounds = np.flatnonzero(starts)

    frame = _aggregate(pk, order, bounds, dir_s, fl_s, pr_s, ts_s)
    first = order[bounds]
    frame["a_code"], frame["b_code"] = a_code[first], b_code[first]
    frame["a_port"], frame["b_port"] = a_port[first], b_port[first]
    frame["file_index"] = pk["file_index"].to_numpy()[first]
    heads = _first_payloads(pk, order, frame)
    flows = _orient(frame, addr_hi, addr_lo, table, heads)
    flows = _apply_icmp_errors(flows, table, labels, src_port, dst_port)
    return flows, labels


def _ports_with_fragments(pk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Give non-first IP fragments the ports of their first fragment (same src, dst, proto, id)."""
    src_port = pk["src_port"].to_numpy().astype(np.int64)
    dst_port = pk["dst_port"].to_numpy().astype(np.int64)
    later = pk["frag_offset"].to_numpy() != 0
    if not later.any():
        return src_port, dst_port
    key = ["src_ip_hi", "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "proto", "ip_id"]
    first_mask = (pk["frag_offset"].to_numpy() == 0) & pk["more_fragments"].to_numpy()
    firsts = pk.loc[first_mask, key + ["src_port", "dst_port"]].drop_duplicates(key, keep="last")
    later_rows = pk.loc[later, key].reset_index()
    merged = later_rows.merge(firsts, on=key, how="left")
    found = merged["src_port"].notna().to_numpy()
    rows = merged["index"].to_numpy()[found]
    src_port[rows] = merged["src_port"].to_numpy()[found].astype(np.int64)
    dst_port[rows] = merged["dst_port"].to_numpy()[found].astype(np.int64)
    return src_port, dst_port


def _address_codes(pk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number every distinct 128-bit address; return codes for [src..., dst...] and the address halves."""
    hi = np.concatenate([pk["src_ip_hi"].to_numpy(), pk["dst_ip_hi"].to_numpy()])
    lo = np.concatenate([pk["src_ip_lo"].to_numpy(), pk["dst_ip_lo"].to_numpy()])
    hi_codes, hi_uniques = pd.factorize(hi)
    lo_codes, lo_uniques = pd.factorize(lo)
    combined = hi_codes.astype(np.int64) * len(lo_uniques) + lo_codes
    codes, uniques = pd.factorize(combined)
    uniques = np.asarray(uniques, dtype=np.int64)
    addr_hi = np.asarray(hi_uniques)[uniques // len(lo_uniques)]
    addr_lo = np.asarray(lo_uniques)[uniques % len(lo_uniques)]
    return codes.astype(np.int64), addr_hi, addr_lo


def _flow_starts(conv, ts, flags, proto, seq, options: FlowOptions) -> np.ndarray:
    """Mark, in (conversation, time) order, the packets that start a new flow."""
    n = len(conv)
    starts = np.ones(n, dtype=bool)
    same = conv[1:] == conv[:-1]
    gap = np.diff(ts)
    timeout_ns = np.where(
        proto[1:] == TCP, options.tcp_idle_timeout_s * 1e9, options.udp_idle_timeout_s * 1e9
    )
    starts[1:] = ~same | (gap > timeout_ns)

    # Port reuse: a SYN (without ACK) after a FIN or RST of the same conversation opens a new flow,
    # unless it repeats the previous SYN's sequence number: Windows retries a refused connect with
    # the same SYN, and tshark (like the user) sees one attempt, not three.
    pure_syn = (proto == TCP) & ((flags & (SYN | ACK)) == SYN)
    fin_rst = ((proto == TCP) & ((flags & (FIN | RST)) != 0)).astype(np.int64)
    closed_before = np.cumsum(fin_rst) - fin_rst  # FIN/RST packets strictly before each packet
    # Count closing packets since the previous SYN of the same flow (or its start), so that a
    # retransmitted SYN stays in its flow while a SYN after FIN/RST opens the next one.
    pos = np.arange(n, dtype=np.int64)
    seg_first = np.flatnonzero(starts)[np.cumsum(starts) - 1]
    last_syn = np.maximum.accumulate(np.where(pure_syn, pos, -1))
    prev_syn = np.concatenate(([-1], last_syn[:-1]))
    anchor = np.maximum(prev_syn, seg_first)
    retry = (prev_syn >= seg_first) & (seq[np.maximum(prev_syn, 0)] == seq)
    reuse = pure_syn & (closed_before - closed_before[anchor] > 0) & ~retry
    if reuse.any():
        starts |= reuse
    return starts


def _aggregate(pk, order, bounds, dir_s, fl_s, pr_s, ts_s) -> pd.DataFrame:
    """Sum each flow's contiguous slice of sorted packets, per canonical direction."""
    frame_len = pk["frame_len"].to_numpy().astype(np.int64)[order]
    payload = pk["payload_len"].to_numpy().astype(np.int64)[order]
    head = pk["payload_head"].to_numpy().astype(np.int64)[order]
    d1 = dir_s.astype(np.int64)
    d0 = 1 - d1

    def per_flow(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, bounds)

    n = len(order)
    pos = np.arange(n, dtype=np.int64)
    big = np.int64(n)
    pure_syn = (pr_s == TCP) & ((fl_s & (SYN | ACK)) == SYN)
    syn_ack = (pr_s == TCP) & ((fl_s & (SYN | ACK)) == (SYN | ACK))
    has_payload = payload > 0
    out = pd.DataFrame(
        {
            "proto_num": pr_s[bounds],
            "first_ns": ts_s[bounds],
            "last_ns": np.maximum.reduceat(ts_s, bounds),
            "first_dir": dir_s[bounds].astype(np.int64),
            "packets0": per_flow(d0),
            "packets1": per_flow(d1),
            "bytes0": per_flow(frame_len * d0),
            "bytes1": per_flow(frame_len * d1),
            "payload0": per_flow(payload * d0),
            "payload1": per_flow(payload * d1),
            "syn_pos": np.minimum.reduceat(np.where(pure_syn, pos, big), bounds),
            "synack0": per_flow((syn_ack & (d0 == 1)).astype(np.int64)),
            "synack1": per_flow((syn_ack & (d1 == 1)).astype(np.int64)),
            "rst0": per_flow((((fl_s & RST) != 0) & (d0 == 1) & (pr_s == TCP)).astype(np.int64)),
            "rst1": per_flow((((fl_s & RST) != 0) & (d1 == 1) & (pr_s == TCP)).astype(np.int64)),
            "fin": per_flow((((fl_s & FIN) != 0) & (pr_s == TCP)).astype(np.int64)),
            "head_pos0": np.minimum.reduceat(np.where(has_payload & (d0 == 1), pos, big), bounds),
            "head_pos1": np.minimum.reduceat(np.where(has_payload & (d1 == 1), pos, big), bounds),
            "icmp_type0": pk["icmp_type"].to_numpy()[order][bounds],
            "icmp_code0": pk["icmp_code"].to_numpy()[order][bounds],
        }
    )
    syn_pos = out["syn_pos"].to_numpy()
    out["syn_dir"] = np.where(syn_pos < big, dir_s[np.minimum(syn_pos, n - 1)], -1)
    for side in (0, 1):
        p = out[f"head_pos{side}"].to_numpy()
        out[f"head{side}"] = np.where(p < big, head[np.minimum(p, n - 1)], 0)
    return out


def _first_payloads(pk, order, f: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per canonical side: the (flows, 28) first payload bytes it sent and that packet's length."""
    n = len(order)
    out = []
    for side in (0, 1):
        p = f[f"head_pos{side}"].to_numpy()
        has = p < n
        rows = order[np.minimum(p, n - 1)]
        mat = payload_matrix(*(pk[c].to_numpy()[rows] for c in
                               ("payload_head", "payload_b4", "payload_b12", "payload_b20")))
        mat[~has] = 0
        out.append((mat, np.where(has, pk["payload_len"].to_numpy()[rows].astype(np.int64), 0)))
    return out


def _service_rank(port: np.ndarray) -> np.ndarray:
    """2 for well-known or known service ports, 1 for other registered ports, 0 for ephemeral."""
    rank = np.where(port < EPHEMERAL_FLOOR, 1, 0)
    rank = np.where((port < 1024) | np.isin(port, REGISTERED_SERVICE_PORTS), 2, rank)
    return np.where(port == 0, 0, rank)


def initiator_facts(f, heads) -> tuple[np.ndarray, np.ndarray]:
    """`orient.known_initiator` of flows (a frame or a dict of columns) and their first payloads."""
    proto = np.asarray(f["proto_num"])
    a_port, b_port = np.asarray(f["a_port"]), np.asarray(f["b_port"])
    (m0, len0), (m1, len1) = heads
    role0 = sender_role(m0, len0, proto, a_port, b_port)
    role1 = sender_role(m1, len1, proto, b_port, a_port)
    return known_initiator(f, role0, role1)


@dataclass(frozen=True)
class Shared:
    """What every piece of one flow table shares: each address code's text and whether it is
    one-to-many, the capture names, and the listener endpoints (`orient.listener_keys`)."""

    addresses: pa.Array
    group: np.ndarray
    files: tuple[str, ...]
    known: np.ndarray


def shared_of(addr_hi, addr_lo, files, known) -> Shared:
    """The Shared of a flow table whose address codes index addr_hi/addr_lo."""
    return Shared(pa.array(format_ip(addr_hi, addr_lo), pa.string()),
                  one_to_many(addr_hi, addr_lo), tuple(cf.name for cf in files) or ("",), known)


def _orient(f: pd.DataFrame, addr_hi, addr_lo, table: PacketTable, heads) -> pd.DataFrame:
    """Turn canonical (a, b) aggregates of a whole flow table into initiator/responder columns."""
    facts = initiator_facts(f, heads)
    shared = shared_of(addr_hi, addr_lo, table.files, listener_keys(f, *facts))
    return orient_rows(f, heads, facts, shared)


def orient_rows(f, heads, facts, shared: Shared, first_id: int = 0) -> pd.DataFrame:
    """Flow table rows (flow_id from `first_id`) of canonical (a, b) aggregates: initiator and
    responder columns and a state. `f` is a frame or a dict of columns, `facts` its
    `initiator_facts`; `shared` what the whole table shares.

    Text columns are Arrow arrays taken from small vocabularies (addresses, protocol names,
    states, capture names) by integer codes: no Python string per flow.
    """
    def col(name: str) -> np.ndarray:
        return np.asarray(f[name])

    a_code, b_code = col("a_code"), col("b_code")
    a_group, b_group = shared.group[a_code], shared.group[b_code]
    a_port, b_port = col("a_port"), col("b_port")
    init, orientation = choose_initiator(f, *facts, shared.known, _service_rank(a_port),
                                         _service_rank(b_port), (a_group, b_group))
    a_init = init == 0
    (m0, len0), (m1, len1) = heads
    pick_a = a_init[:, None]
    src_hex = payload_hex(np.where(pick_a, m0, m1), np.where(a_init, len0, len1))
    dst_hex = payload_hex(np.where(pick_a, m1, m0), np.where(a_init, len1, len0))

    def pick(name: str, initiator: bool) -> np.ndarray:
        return np.where(a_init == initiator, col(f"{name}0"), col(f"{name}1"))

    proto_num = col("proto_num")
    is_icmp = np.isin(proto_num, (ICMP, ICMPV6))
    rst = (col("rst0") + col("rst1")) > 0
    end = np.where(rst, 2, np.where(col("fin") > 0, 1, 0))
    columns = {
        "flow_id": np.arange(first_id, first_id + len(a_code), dtype=np.int64),
        "src_ip": taken(shared.addresses, np.where(a_init, a_code, b_code)),
        # (an ICMP flow's ports are its exchange, capture/headers.py: 0 here, as ICMP has none)
        "src_port": np.where(is_icmp, 0, np.where(a_init, a_port, b_port)).astype(np.uint16),
        "dst_ip": taken(shared.addresses, np.where(a_init, b_code, a_code)),
        "dst_port": np.where(is_icmp, 0, np.where(a_init, b_port, a_port)).astype(np.uint16),
        "proto": taken(_PROTOCOL_NAMES, proto_num),
        "first_seen": pd.to_datetime(col("first_ns"), unit="ns", utc=True),
        "last_seen": pd.to_datetime(col("last_ns"), unit="ns", utc=True),
        "src_packets": pick("packets", True),
        "src_bytes": pick("bytes", True),
        "dst_packets": pick("packets", False),
        "dst_bytes": pick("bytes", False),
        "src_payload_bytes": pick("payload", True),
        "dst_payload_bytes": pick("payload", False),
        "state": taken(FLOW_STATES, _state(f, proto_num, pick, np.where(a_init, b_group, a_group))),
        "end": taken(("", "fin", "rst"), end),
        # ICMP type/code on non-ICMP flows is only set when an unreachable rejects the flow.
        "icmp_type": _icmp_only(col("icmp_type0"), is_icmp),
        "icmp_code": _icmp_only(col("icmp_code0"), is_icmp),
        "client_payload_head": pick("head", True).astype(np.uint32),
        "capture": taken(shared.files, col("file_index")),
        "orientation": orientation,
        "src_payload_prefix": src_hex,
        "dst_payload_prefix": dst_hex,
    }
    return pd.DataFrame({name: columns[name] for name in column_names(FLOW_COLUMNS)}, copy=False)


_PROTOCOL_NAMES = pa.array(list(protocol_names()), pa.string())


def _icmp_only(values: np.ndarray, is_icmp: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """An Int64 column holding `values` on ICMP flows and <NA> elsewhere."""
    return pd.arrays.IntegerArray(np.where(is_icmp, values, 0).astype(np.int64), ~is_icmp)


_STATE_CODE = {name: i for i, name in enumerate(FLOW_STATES)}


def _state(f: pd.DataFrame, proto_num: np.ndarray, pick, to_group) -> np.ndarray:
    """Classify each flow's outcome (before ICMP errors are applied): codes into FLOW_STATES."""
    s = _STATE_CODE
    tcp = proto_num == TCP
    syn_seen = np.asarray(f["syn_dir"]) >= 0
    synack_back = pick("synack", False) > 0
    rst_back = pick("rst", False) > 0
    answered = pick("packets", False) > 0
    tcp_state = np.select(
        [synack_back, syn_seen & rst_back, syn_seen & ~answered, syn_seen],
        [s["established"], s["rejected"], s["unanswered"], s["established"]],
        default=s["midstream"],
    )
    udp = np.where(answered, s["udp_answered"], s["udp_unanswered"])
    other = np.where(answered, s["answered"], s["one_way"])
    state = np.where(tcp, tcp_state, np.where(proto_num == UDP, udp, other))
    return np.where(to_group & ~tcp, s["multicast"], state)


def _apply_icmp_errors(flows, table, labels, src_port, dst_port) -> pd.DataFrame:
    """Mark flows refused by an ICMP destination-unreachable that quotes their first packet."""
    errors = table.icmp_errors
    if errors.empty or flows.empty:
        return flows
    pk = table.packets
    at = errors["packet_index"].to_numpy()
    quoted = pd.DataFrame(
        {
            "src_ip_hi": errors["inner_src_ip_hi"].to_numpy(),
            "src_ip_lo": errors["inner_src_ip_lo"].to_numpy(),
            "dst_ip_hi": errors["inner_dst_ip_hi"].to_numpy(),
            "dst_ip_lo": errors["inner_dst_ip_lo"].to_numpy(),
            "proto": errors["inner_proto"].to_numpy().astype(np.int64),
            "src_port": errors["inner_src_port"].to_numpy().astype(np.int64),
            "dst_port": errors["inner_dst_port"].to_numpy().astype(np.int64),
            "ts_ns": pk["ts_ns"].to_numpy()[at],
            "err_type": errors["icmp_type"].to_numpy().astype(np.int64),
            "err_code": errors["icmp_code"].to_numpy().astype(np.int64),
            "err_v6": pk["ip_version"].to_numpy()[at] == 6,
        }
    ).sort_values("ts_ns", kind="stable")
    quoted = quoted[~((~quoted["err_v6"]) & quoted["err_code"].isin(_NOT_A_REFUSAL_V4))]
    if quoted.empty:
        return flows
    # An error quotes the packet it refuses: look up, among the packets sent to a quoted port
    # (a few, not the whole capture), the latest one with the same 5-tuple.
    proto = pk["proto"].to_numpy().astype(np.int64)
    near = np.flatnonzero(np.isin(dst_port, quoted["dst_port"].unique())
                          & np.isin(proto, quoted["proto"].unique()))
    key_cols = ["src_ip_hi", "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "proto", "src_port", "dst_port"]
    sent = pd.DataFrame(
        {
            **{c: pk[c].to_numpy()[near] for c in key_cols[:4]},
            "proto": proto[near],
            "src_port": src_port[near],
            "dst_port": dst_port[near],
            "ts_ns": pk["ts_ns"].to_numpy()[near],
            "flow_id": labels[near],
        }
    ).sort_values("ts_ns", kind="stable")
    matched = pd.merge_asof(quoted, sent, on="ts_ns", by=key_cols, direction="backward")
    matched = matched.dropna(subset=["flow_id"]).drop_duplicates("flow_id", keep="first")
    if matched.empty:
        return flows
    flows = flows.copy()
    ids = matched["flow_id"].to_numpy().astype(np.int64)
    refusable = flows["state"].isin(["unanswered", "udp_unanswered", "one_way", "rejected"]
                                    ).to_numpy()[ids]
    ids, matched = ids[refusable], matched[refusable]
    flows.loc[ids, "state"] = "rejected"
    flows.loc[ids, "icmp_type"] = matched["err_type"].to_numpy()
    flows.loc[ids, "icmp_code"] = matched["err_code"].to_numpy()
    return flows


def flows_summary(flows: pd.DataFrame, top: int = 10) -> dict[str, pd.DataFrame]:
    """Top talkers and state counts: the data behind `auditor flows`' table view."""
    total = flows["src_bytes"] + flows["dst_bytes"]
    talkers = (
        flows.assign(bytes=total, packets=flows["src_packets"] + flows["dst_packets"])
        .groupby(["src_ip", "dst_ip", "proto", "dst_port"], as_index=False)
        .agg(flows=("flow_id", "size"), packets=("packets", "sum"), bytes=("bytes", "sum"))
        .sort_values(["bytes", "flows"], ascending=False, kind="stable")
        .head(top)
        .reset_index(drop=True)
    )
    states = (
        flows.groupby(["proto", "state"], as_index=False)
        .agg(flows=("flow_id", "size"))
        .sort_values(["proto", "flows"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )
    return {"top_talkers": talkers, "states": states}
