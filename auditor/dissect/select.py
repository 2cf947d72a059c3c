"""Which packets go to tshark: a bounded sample of the flows that can hold RPC or name facts.

Flows are sampled round-robin over clients (every client's first flow, then every client's
second, ...), so one chatty client cannot crowd out the others, and the total stays a few
thousand packets whatever the capture size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from auditor.capture.packets import PacketTable
from auditor.options import RpcOptions

EPM_PORTS = (135, 593)


def select_rpc_rows(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
                    options: RpcOptions | None = None) -> np.ndarray:
    """Return the packet rows tshark needs for RPC discovery (EPM, binds, connectionless RPC)."""
    options = options or RpcOptions()
    return rpc_selection(table, flows, labels, options).rows


def select_name_rows(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
                     options: RpcOptions | None = None) -> np.ndarray:
    """Return the packet rows tshark needs for host names (DNS, SMTP, NBNS, Kerberos)."""
    options = options or RpcOptions()
    return _rows(table, flows, labels, _name_plan(slim_flows(flows), options),
                 options.max_name_packets)[0]


@dataclass(frozen=True)
class _Pick:
    """Flows to dissect and which of their payload packets to take."""

    flow_ids: np.ndarray
    packets: int | None  # payload packets per flow (None: every one)
    from_bind: bool = False  # count from each bind-like PDU instead of from the flow's start
    what: str = ""  # what these flows are, for the warning when the budget cuts them


@dataclass(frozen=True)
class Selection:
    """Packet rows for tshark, and one plain-words line per cap that left something unread."""

    rows: np.ndarray
    notes: tuple[str, ...] = ()


LIFT = "run with --rpc-packets all (or a larger number) to read them"

def slim_flows(flows: pd.DataFrame) -> pd.DataFrame:
    """The columns the plans read, with addresses, protocol and capture as integer codes.

    The plans only group, sort and filter, so codes pick exactly the flows the text picks; and
    filtering a few integer columns costs far less than copying the whole flow table (its text
    columns) at every step. `proto` is 6 for tcp, 17 for udp (see _proto_codes).
    """
    if flows.attrs.get("slim"):
        return flows
    addr, _ = pd.factorize(pd.concat([flows["src_ip"], flows["dst_ip"]], ignore_index=True))
    n = len(flows)
    out = pd.DataFrame({
        "flow_id": flows["flow_id"].to_numpy(),
        "src_ip": addr[:n], "dst_ip": addr[n:],
        "dst_port": flows["dst_port"].to_numpy(),
        "proto": _proto_codes(flows["proto"]),
        "first_seen": flows["first_seen"].array,
        "capture": pd.factorize(flows["capture"])[0],
        "dst_packets": flows["dst_packets"].to_numpy(),
        "client_payload_head": flows["client_payload_head"].to_numpy(),
    })
    out.attrs["slim"] = True
    return out


_TCP, _UDP = 6, 17  # slim_flows' proto codes of tcp and udp


def _proto_codes(proto: pd.Series) -> np.ndarray:
    """tcp 6, udp 17, every other protocol name a code of its own above 255."""
    codes, names = pd.factorize(proto)
    fixed = np.array([{"tcp": _TCP, "udp": _UDP}.get(name, 256 + i)
                      for i, name in enumerate(names)] + [-1], np.int64)
    return fixed[codes]  # a missing name (code -1) takes the last entry, -1


def rpc_selection(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
                  options: RpcOptions | None = None) -> Selection:
    """The RPC packet rows within the budget, with a note for every cap that was hit."""
    options = options or RpcOptions()
    plan, notes = _rpc_plan_noted(table, slim_flows(flows), labels, options)
    rows, cut = _rows(table, flows, labels, plan, options.max_packets)
    if cut:
        notes.append(f"RPC discovery stopped at its budget of {options.max_packets} packets and "
                     f"left {_cut_words(cut)} unread; {LIFT}")
    return Selection(rows, tuple(notes))


def _cut_words(cut: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in cut.items() if n)


def _first_per(frame: pd.DataFrame, keys: list[str], n: int | None,
               last: bool = False) -> pd.DataFrame:
    """The first n flows (by first_seen) of each group; with last=True, n-1 first plus the last.

    `frame` as slim_flows gives it (integer key columns): ranks come from one stable argsort of
    the group codes instead of a pandas groupby per call.
    """
    frame = _by_first_seen(frame)
    if frame.empty or n is None:
        return frame
    code = _group_codes(frame, keys)
    rank = _cumcount(code)
    if not last:
        return frame[rank < n]
    from_end = _cumcount(code[::-1])[::-1]
    return frame[(rank < max(n - 1, 0)) | (from_end == 0)]


def _by_first_seen(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame in first_seen order, ties in their order (a stable sort), as sort_values."""
    if len(frame) < 2:
        return frame.sort_values("first_seen", kind="stable")
    seen = frame["first_seen"].array
    if not hasattr(seen, "asi8") or seen.isna().any():
        return frame.sort_values("first_seen", kind="stable")
    order = np.argsort(seen.asi8, kind="stable")
    return frame.take(order)


def _group_codes(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One integer per row naming its group of `keys` (equal keys, equal codes)."""
    code = np.zeros(len(frame), np.int64)
    for key in keys:
        codes, uniques = pd.factorize(frame[key].to_numpy(), use_na_sentinel=False)
        code = code * (len(uniques) + 1) + codes
        if len(uniques) and code.max() > (1 << 40):  # keep room: renumber densely
            code = pd.factorize(code)[0].astype(np.int64)
    return code


def _cumcount(code: np.ndarray) -> np.ndarray:
    """Per row, how many rows before it have the same code (groupby(...).cumcount())."""
    n = len(code)
    if not n:
        return np.zeros(0, np.int64)
    order = np.argsort(code, kind="stable")
    ordered = code[order]
    idx = np.arange(n)
    start = np.maximum.accumulate(np.where(np.r_[True, ordered[1:] != ordered[:-1]], idx, 0))
    rank = np.empty(n, np.int64)
    rank[order] = idx - start
    return rank


def _round_robin(frame: pd.DataFrame, client_keys: list[str], per_client: int | None,
                 cap_keys: list[str], cap: int | None, last: bool = False) -> pd.DataFrame:
    """Up to per_client flows per client group, then up to cap per cap group taken round-robin."""
    frame = _first_per(frame, client_keys, per_client, last)
    if frame.empty:
        return frame
    turn = _cumcount(_group_codes(frame, client_keys))
    # frame is in first_seen order: a stable sort by turn gives (turn, first_seen) order
    frame = frame.take(np.argsort(turn, kind="stable"))
    if cap is None:
        return frame
    keep = _cumcount(_group_codes(frame, cap_keys)) < cap
    return frame[keep]


def _bind_like(head: np.ndarray) -> np.ndarray:
    """A CO DCE/RPC bind or alter_context header (05 00|01 0b|0e): where an interface is named."""
    head = np.asarray(head).astype(np.uint32, copy=False)
    # version 5 and minor 0|1 in the top bytes, then the PDU type: one compare each
    top, ptype = head >> 16, (head >> 8) & 0xFF
    return ((top == 0x500) | (top == 0x501)) & ((ptype == 11) | (ptype == 14))


def _rpc_plan(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
              o: RpcOptions) -> list[_Pick]:
    """What to dissect for RPC, in priority order."""
    return _rpc_plan_noted(table, slim_flows(flows), labels, o)[0]


def _rpc_plan_noted(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
                    o: RpcOptions) -> tuple[list[_Pick], list[str]]:
    """What to dissect for RPC, in priority order, and what the sampling caps left out
    (`flows` as slim_flows gives them)."""
    notes: list[str] = []
    tcp, udp = flows["proto"] == _TCP, flows["proto"] == _UDP
    # per capture file too: a service restart between files moves its port
    all_epm = flows[tcp & flows["dst_port"].isin(EPM_PORTS)]
    epm = _round_robin(all_epm, ["src_ip", "dst_ip", "capture"], o.epm_flows_per_client,
                       ["dst_ip"], o.epm_flows_per_server, last=True)
    if len(epm) < len(all_epm):
        notes.append(f"{len(all_epm) - len(epm)} of {len(all_epm)} endpoint-mapper "
                     "conversations were not read (sampled per client and server); their "
                     f"replies may name more ports; {LIFT}")
    if o.epm_packets is not None and len(epm):
        long = _payload_counts(table, labels, len(flows))[epm["flow_id"].to_numpy()]
        partial = int((long > o.epm_packets).sum())
        if partial:
            notes.append(f"{partial} endpoint-mapper conversations were read only in part (their "
                         f"first {o.epm_packets} payload packets); later replies may name more "
                         f"ports; {LIFT}")
    # Flows holding a bind-like PDU anywhere, not only at their start: a capture that begins
    # mid-connection still shows later alter_contexts and their answers.
    pk = table.packets
    bind_rows = np.flatnonzero(_bind_like(pk["payload_head"].to_numpy())
                               & (pk["proto"].to_numpy() == 6) & (np.asarray(labels) >= 0))
    has_bind = np.zeros(len(flows), dtype=bool)
    has_bind[np.asarray(labels)[bind_rows]] = True
    all_binds = flows[tcp & has_bind & ~flows["dst_port"].isin(EPM_PORTS)]
    # a client's connections to one port may each bind another interface: keep several
    binds = _round_robin(all_binds, ["dst_ip", "dst_port", "src_ip", "capture"],
                         o.bind_flows_per_client, ["dst_ip", "dst_port", "capture"],
                         o.bind_flows_per_port)
    if len(binds) < len(all_binds):
        notes.append(f"{len(all_binds) - len(binds)} of {len(all_binds)} connections holding a "
                     "DCE/RPC bind were not read (sampled per client and server port); their "
                     f"interfaces are taken from their port's other evidence; {LIFT}")
    # CL request 04 00 and ping 04 01 ([C706] 12.5), and anything on udp/135
    head = flows["client_payload_head"].to_numpy().astype(np.int64)
    cl_head = ((head >> 24) == 4) & (((head >> 16) & 0xFF) <= 1)
    all_cl = flows[udp & (cl_head | (flows["dst_port"] == 135))]
    cl = _first_per(all_cl, ["dst_ip", "dst_port"], o.cl_flows_per_port)
    if len(cl) < len(all_cl):
        notes.append(f"{len(all_cl) - len(cl)} of {len(all_cl)} connectionless DCE/RPC flows were "
                     f"not read (sampled per server port); {LIFT}")
    return [_Pick(epm["flow_id"].to_numpy(), o.epm_packets, what="endpoint-mapper conversations"),
            _Pick(binds["flow_id"].to_numpy(), o.bind_packets, from_bind=True,
                  what="connections with binds"),
            _Pick(cl["flow_id"].to_numpy(), 2, what="connectionless RPC flows")], notes


def _payload_counts(table: PacketTable, labels: np.ndarray, n_flows: int) -> np.ndarray:
    """Payload packets per flow."""
    labels = np.asarray(labels, dtype=np.int64)
    payload = (table.packets["payload_len"].to_numpy() > 0) & (labels >= 0)
    return np.bincount(labels[payload], minlength=n_flows)


def _name_plan(flows: pd.DataFrame, o: RpcOptions) -> list[_Pick]:
    """What to dissect for host names, in priority order (DNS last: it fills the rest)."""
    flows = slim_flows(flows)
    port, proto = flows["dst_port"], flows["proto"]
    tcp, udp = proto == _TCP, proto == _UDP

    def per_client(frame: pd.DataFrame, n: int) -> np.ndarray:
        return _first_per(_first_per(frame, ["src_ip"], n), ["proto"], o.name_flows)["flow_id"]

    def per_pair(frame: pd.DataFrame) -> np.ndarray:
        return _first_per(_first_per(frame, ["src_ip", "dst_ip"], 1), ["proto"],
                          o.name_flows)["flow_id"].to_numpy()

    smtp = flows[tcp & port.isin((25, 587, 2525))]
    # the DC-locator reply and browser announcements name DCs; a pair's first flow is enough
    cldap, browser = flows[udp & (port == 389)], flows[udp & (port == 138)]
    local = flows[udp & port.isin(LOCAL_NAME_PORTS)]  # mDNS, LLMNR, DHCP
    # a responder's unicast answer is a flow of its own (the query went to a group address)
    answered = local[local["dst_packets"] > 0]
    ldap = flows[tcp & port.isin((389, 3268))]
    tls = flows[tcp & port.isin(TLS_NAME_PORTS)]
    smb = flows[tcp & (port == 445)]
    return [
        _Pick(per_pair(smtp), o.name_packets),
        _Pick(per_pair(cldap), 2),
        _Pick(per_client(flows[udp & (port == 137)], o.name_flows_per_client).to_numpy(),
              o.name_packets),
        # a client's first Kerberos exchanges: AS (machine account, realm), then TGS (the SPNs)
        _Pick(per_client(flows[port == 88], KERBEROS_NAME_FLOWS).to_numpy(), o.name_packets),
        _Pick(per_client(browser, 1).to_numpy(), 2),
        _Pick(per_pair(ldap), o.name_packets),
        _Pick(per_pair(tls), TLS_NAME_PACKETS),
        _Pick(per_pair(smb), SMB_NAME_PACKETS),
        # the weakest sources (NAME_SOURCES' last) after the others, so a network full of
        # mDNS and LLMNR chatter cannot use up the budget: each host's first local flow, then
        # one answer per responder
        _Pick(per_client(local, o.name_flows_per_client).to_numpy(), LOCAL_NAME_PACKETS),
        _Pick(_first_per(_first_per(answered, ["dst_ip"], 1), ["proto"], o.name_flows)
              ["flow_id"].to_numpy(), 2),
        _Pick(_first_per(flows[port == 53], ["src_ip"], o.dns_flows_per_client)["flow_id"]
              .to_numpy(), 2),
    ]


KERBEROS_NAME_FLOWS = 4  # per client
# TLS services whose handshake names the server (SNI; certificate subject and SAN)
TLS_NAME_PORTS = (443, 636, 3269, 465, 993, 995, 5061, 8443)
TLS_NAME_PACKETS = 8  # ClientHello, ServerHello and the certificate's segments
# mDNS, LLMNR and DHCP; a host's first flow there: mDNS sends three probes before it announces
# its names, and every DHCP client shares the one 0.0.0.0:68 -> 255.255.255.255:67 flow
LOCAL_NAME_PORTS = (5353, 5355, 67, 68)
LOCAL_NAME_PACKETS = 8
SMB_NAME_PACKETS = 10  # negotiate, session setup (twice each way), then the tree connect


def _rows(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray, plan: list[_Pick],
          budget: int | None) -> tuple[np.ndarray, dict[str, int]]:
    """Packet rows of the planned flows within `budget` (None: no limit), and how many flows
    of each pick's kind the budget cut."""
    labels = np.asarray(labels, dtype=np.int64)
    pk = table.packets
    payload = np.flatnonzero((pk["payload_len"].to_numpy() > 0) & (labels >= 0))
    head = pk["payload_head"].to_numpy()
    taken = np.zeros(len(flows), dtype=bool)
    picked_rows, picked_order = [], []
    for pick in plan:
        ids = np.asarray(pick.flow_ids, dtype=np.int64)
        ids = ids[~taken[ids]]  # a flow picked twice keeps its first (higher) priority
        taken[ids] = True
        picked_order.append(ids)
        picked_rows.append(_flow_rows(payload, labels, head, len(flows), ids, pick))
    if not picked_rows:
        return np.empty(0, np.int64), {}
    rows = np.concatenate(picked_rows)
    order = np.concatenate(picked_order)
    kind = np.concatenate([np.full(len(ids), i) for i, ids in enumerate(picked_order)])
    # Budget in priority order; a flow is kept whole or not at all.
    cost = np.bincount(labels[rows], minlength=len(flows))[order]
    fits = np.cumsum(cost) <= (budget if budget is not None else np.inf)
    keep_flow = np.zeros(len(flows), dtype=bool)
    keep_flow[order[fits]] = True
    lost = ~fits & (cost > 0)
    cut = {pick.what or "flows": int((lost & (kind == i)).sum()) for i, pick in enumerate(plan)}
    return np.sort(rows[keep_flow[labels[rows]]]), {k: v for k, v in cut.items() if v}


def _flow_rows(payload: np.ndarray, labels: np.ndarray, head: np.ndarray, n_flows: int,
               ids: np.ndarray, pick: _Pick) -> np.ndarray:
    """Payload rows of the flows `ids`: the first `pick.packets` of each, or the
    `pick.packets` starting at each bind-like PDU (at most four such runs per flow)."""
    chosen = np.zeros(n_flows, dtype=bool)
    chosen[ids] = True
    rows = payload[chosen[labels[payload]]]
    if not len(rows):
        return rows
    lab = labels[rows]
    by_flow = np.lexsort((rows, lab))
    rows, lab = rows[by_flow], lab[by_flow]
    idx = np.arange(len(rows))
    new_flow = np.r_[True, lab[1:] != lab[:-1]]
    flow_start = np.maximum.accumulate(np.where(new_flow, idx, 0))
    if pick.packets is None:
        return rows
    if not pick.from_bind:
        return rows[idx - flow_start < pick.packets]
    last_bind = np.maximum.accumulate(np.where(_bind_like(head[rows]), idx, -1))
    keep = (last_bind >= flow_start) & (idx - last_bind < pick.packets)
    kept = np.flatnonzero(keep)
    # at most four runs' worth per flow, so a chatty connection stays cheap
    kept_start = np.maximum.accumulate(np.where(np.r_[True, lab[kept][1:] != lab[kept][:-1]],
                                                np.arange(len(kept)), 0))
    return rows[kept[np.arange(len(kept)) - kept_start < 4 * pick.packets]]


