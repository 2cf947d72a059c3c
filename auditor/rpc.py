"""Dynamic RPC discovery: which DCE/RPC interface listens on which server port.

The flow table says which packets could hold the answer (EPM conversations on 135/593, flows that
open with a bind, connectionless RPC, plus DNS/SMTP/NBNS/Kerberos for host names). A bounded sample
of those packets goes to tshark once (dissect.py); its EPM towers, binds and DCOM string bindings
are joined back onto the flows. A few thousand packets reach tshark whatever the capture size.
Judging the dynamic ports found against the default ranges is rpc_ranges.py's (re-exported here).
"""

from __future__ import annotations

import csv
import ipaddress
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.capture import PacketTable, write_packets
from auditor.dissect import RpcFacts, dissect_capture, empty_rpc_facts
from auditor.errors import DissectWarning
from auditor.flows import REGISTERED_SERVICE_PORTS
from auditor.schema import (
    HOST_NAME_COLUMNS,
    RPC_ENDPOINT_COLUMNS,
    empty_frame,
    typed_frame,
)

EPM_PORTS = (135, 593)
EVIDENCE_RANK = {"epm": 0, "bind": 1, "dcom": 2, "inferred": 3}  # lower is stronger


@dataclass(frozen=True)
class RpcOptions:
    """How many packets discovery hands to tshark, and how flows are inferred."""

    # Flows are sampled round-robin over clients: every client's first flow, then every client's
    # second, ..., so one chatty client cannot crowd out the others.
    epm_flows_per_client: int = 4  # EPM conversations per (client, server, file): first ones + last
    epm_flows_per_server: int = 100
    epm_packets: int = 16  # payload packets per EPM conversation
    bind_flows_per_client: int = 4  # flows with a bind per (client, server port, file)
    bind_flows_per_port: int = 16  # ... and per (server port, file)
    bind_packets: int = 4  # bind, bind_ack and a spare segment each way
    cl_flows_per_port: int = 2  # connectionless RPC flows per (server, port)
    max_packets: int = 4000  # cap on RPC packets given to tshark (a warning says what was cut)
    names: bool = True  # also dissect DNS, SMTP, NBNS and Kerberos for host names
    max_name_packets: int = 600  # cap on name packets (silent: names are a best effort; each
    # packet costs tshark ~0.2 ms, and a few DNS answers per client name every server)
    name_flows: int = 200  # SMTP, NBNS and Kerberos flows each
    name_flows_per_client: int = 1
    dns_flows_per_client: int = 3  # DNS fills what the other name sources leave of the cap
    name_packets: int = 4  # payload packets per name flow (2 for DNS: query and answer)
    infer_window_s: float = 30.0  # a dynamic-port flow this soon after a 135 exchange is "inferred"


@dataclass(frozen=True)
class RpcDiscovery:
    """Discovered endpoints, the facts they came from, host names and what was skipped."""

    endpoints: pd.DataFrame  # schema.RPC_ENDPOINT_COLUMNS
    facts: RpcFacts
    names: pd.DataFrame  # schema.HOST_NAME_COLUMNS (empty when RpcOptions.names is False)
    packets: int  # packets handed to tshark
    warnings: tuple[str, ...] = ()  # also issued as DissectWarning


# --- interface names ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _interfaces() -> dict[str, dict[str, str]]:
    text = resources.files("auditor").joinpath("data/rpc_interfaces.csv").read_text("utf-8")
    return {row["uuid"].lower(): row for row in csv.DictReader(text.splitlines())}


def interface_table() -> pd.DataFrame:
    """Return the interface catalogue (auditor/data/rpc_interfaces.csv) as a frame."""
    return pd.DataFrame(list(_interfaces().values()))


def interface_name(uuid: str) -> str:
    """Return the interface name for a UUID (full match only), or '' when unknown."""
    key = str(uuid).strip().strip("{}").lower()
    row = _interfaces().get(key)
    return row["name"] if row else ""


# --- choosing the packets -------------------------------------------------------------------------


def select_rpc_rows(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
                    options: RpcOptions | None = None) -> np.ndarray:
    """Return the packet rows tshark needs for RPC discovery (EPM, binds, connectionless RPC)."""
    options = options or RpcOptions()
    return _rows(table, flows, labels, _rpc_plan(table, flows, labels, options),
                 options.max_packets)[0]


def select_name_rows(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
                     options: RpcOptions | None = None) -> np.ndarray:
    """Return the packet rows tshark needs for host names (DNS, SMTP, NBNS, Kerberos)."""
    options = options or RpcOptions()
    return _rows(table, flows, labels, _name_plan(flows, options), options.max_name_packets)[0]


@dataclass(frozen=True)
class _Pick:
    """Flows to dissect and which of their payload packets to take."""

    flow_ids: np.ndarray
    packets: int  # payload packets per flow
    from_bind: bool = False  # count from each bind-like PDU instead of from the flow's start


def _first_per(frame: pd.DataFrame, keys: list[str], n: int, last: bool = False) -> pd.DataFrame:
    """The first n flows (by first_seen) of each group; with last=True, n-1 first plus the last."""
    if frame.empty:
        return frame
    frame = frame.sort_values("first_seen", kind="stable")
    grouped = frame.groupby(keys, sort=False, observed=True)
    rank = grouped.cumcount()
    if not last:
        return frame[rank < n]
    from_end = grouped.cumcount(ascending=False)
    return frame[(rank < max(n - 1, 0)) | (from_end == 0)]


def _round_robin(frame: pd.DataFrame, client_keys: list[str], per_client: int,
                 cap_keys: list[str], cap: int, last: bool = False) -> pd.DataFrame:
    """Up to per_client flows per client group, then up to cap per cap group taken round-robin."""
    frame = _first_per(frame, client_keys, per_client, last)
    if frame.empty:
        return frame
    turn = frame.groupby(client_keys, sort=False, observed=True).cumcount()
    frame = frame.assign(_turn=turn.to_numpy()).sort_values(["_turn", "first_seen"],
                                                            kind="stable")
    keep = frame.groupby(cap_keys, sort=False, observed=True).cumcount() < cap
    return frame[keep.to_numpy()].drop(columns="_turn")


def _bind_like(head: np.ndarray) -> np.ndarray:
    """A CO DCE/RPC bind or alter_context header (05 00|01 0b|0e): where an interface is named."""
    head = head.astype(np.int64)
    ptype = (head >> 8) & 0xFF
    return ((head >> 24) == 5) & (((head >> 16) & 0xFF) <= 1) & ((ptype == 11) | (ptype == 14))


def _rpc_plan(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray,
              o: RpcOptions) -> list[_Pick]:
    """What to dissect for RPC, in priority order."""
    tcp, udp = flows["proto"] == "tcp", flows["proto"] == "udp"
    # per capture file too: a service restart between files moves its port
    epm = flows[tcp & flows["dst_port"].isin(EPM_PORTS)]
    epm = _round_robin(epm, ["src_ip", "dst_ip", "capture"], o.epm_flows_per_client,
                       ["dst_ip"], o.epm_flows_per_server, last=True)
    # Flows holding a bind-like PDU anywhere, not only at their start: a capture that begins
    # mid-connection still shows later alter_contexts and their answers.
    pk = table.packets
    bind_rows = np.flatnonzero(_bind_like(pk["payload_head"].to_numpy())
                               & (pk["proto"].to_numpy() == 6) & (np.asarray(labels) >= 0))
    has_bind = np.zeros(len(flows), dtype=bool)
    has_bind[np.asarray(labels)[bind_rows]] = True
    binds = flows[tcp & has_bind & ~flows["dst_port"].isin(EPM_PORTS)]
    # a client's connections to one port may each bind another interface: keep several
    binds = _round_robin(binds, ["dst_ip", "dst_port", "src_ip", "capture"],
                         o.bind_flows_per_client, ["dst_ip", "dst_port", "capture"],
                         o.bind_flows_per_port)
    # CL request 04 00 and ping 04 01 ([C706] 12.5), and anything on udp/135
    head = flows["client_payload_head"].to_numpy().astype(np.int64)
    cl_head = ((head >> 24) == 4) & (((head >> 16) & 0xFF) <= 1)
    cl = flows[udp & (cl_head | (flows["dst_port"] == 135))]
    cl = _first_per(cl, ["dst_ip", "dst_port"], o.cl_flows_per_port)
    return [_Pick(epm["flow_id"].to_numpy(), o.epm_packets),
            _Pick(binds["flow_id"].to_numpy(), o.bind_packets, from_bind=True),
            _Pick(cl["flow_id"].to_numpy(), 2)]


def _name_plan(flows: pd.DataFrame, o: RpcOptions) -> list[_Pick]:
    """What to dissect for host names, in priority order (DNS last: it fills the rest)."""
    port, proto = flows["dst_port"], flows["proto"]

    def per_client(frame: pd.DataFrame, n: int) -> np.ndarray:
        return _first_per(_first_per(frame, ["src_ip"], n), ["proto"], o.name_flows)["flow_id"]

    smtp = flows[(proto == "tcp") & port.isin((25, 587, 2525))]
    smtp = _first_per(smtp, ["src_ip", "dst_ip"], 1)
    return [
        _Pick(per_client(smtp, 1).to_numpy(), o.name_packets),
        _Pick(per_client(flows[(proto == "udp") & (port == 137)], o.name_flows_per_client)
              .to_numpy(), o.name_packets),
        _Pick(per_client(flows[port == 88], o.name_flows_per_client).to_numpy(), o.name_packets),
        _Pick(_first_per(flows[port == 53], ["src_ip"], o.dns_flows_per_client)["flow_id"]
              .to_numpy(), 2),
    ]


def _rows(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray, plan: list[_Pick],
          budget: int) -> tuple[np.ndarray, int]:
    """Packet rows of the planned flows within `budget`, and how many flows the budget cut."""
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
        return np.empty(0, np.int64), 0
    rows = np.concatenate(picked_rows)
    order = np.concatenate(picked_order)
    # Budget in priority order; a flow is kept whole or not at all.
    cost = np.bincount(labels[rows], minlength=len(flows))[order]
    fits = np.cumsum(cost) <= budget
    keep_flow = np.zeros(len(flows), dtype=bool)
    keep_flow[order[fits]] = True
    cut = int((~fits & (cost > 0)).sum())
    return np.sort(rows[keep_flow[labels[rows]]]), cut


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
    if not pick.from_bind:
        return rows[idx - flow_start < pick.packets]
    last_bind = np.maximum.accumulate(np.where(_bind_like(head[rows]), idx, -1))
    keep = (last_bind >= flow_start) & (idx - last_bind < pick.packets)
    kept = np.flatnonzero(keep)
    # at most four runs' worth per flow, so a chatty connection stays cheap
    kept_start = np.maximum.accumulate(np.where(np.r_[True, lab[kept][1:] != lab[kept][:-1]],
                                                np.arange(len(kept)), 0))
    return rows[kept[np.arange(len(kept)) - kept_start < 4 * pick.packets]]


# --- discovery ------------------------------------------------------------------------------------


def discover_endpoints(table: PacketTable, flows: pd.DataFrame, labels: np.ndarray, *,
                       workdir: str | Path | None = None, options: RpcOptions | None = None,
                       tshark_path: str | None = None, tshark=None) -> RpcDiscovery:
    """Find RPC endpoints: select packets, dissect them once with tshark, join onto the flows.

    `tshark` may be a tshark.PrestartedTshark (started with dissect.display_filter_for(names)):
    the selected packets are then fed to it instead of a fresh tshark. Raises DissectError when
    packets need dissecting and tshark is missing or fails; the caller decides whether that is
    fatal (the audit turns it into a DissectWarning and goes on).
    """
    options = options or RpcOptions()
    rows, cut = _rows(table, flows, labels, _rpc_plan(table, flows, labels, options),
                      options.max_packets)
    notes: list[str] = []
    if cut:
        notes.append(f"RPC discovery dissected {len(rows)} packets and skipped {cut} flows "
                     f"(RpcOptions.max_packets={options.max_packets})")
    if options.names:
        name_rows, _ = _rows(table, flows, labels, _name_plan(flows, options),
                             options.max_name_packets)
        rows = np.union1d(rows, name_rows)
    facts, names = empty_rpc_facts(), empty_frame(HOST_NAME_COLUMNS)
    if len(rows) and tshark is not None:
        with tshark.open_input() as fifo:
            write_packets(table, rows, fifo)
        facts, names = dissect_capture(tshark, names=options.names)
    elif len(rows):
        with tempfile.TemporaryDirectory(dir=workdir, prefix="auditor-rpc-") as tmp:
            path = Path(tmp) / "selected.pcap"
            write_packets(table, rows, path)
            facts, names = dissect_capture(path, names=options.names, tshark_path=tshark_path)
    endpoints = build_endpoints(facts, flows, infer_window_s=options.infer_window_s)
    notes += _notes(facts, flows)
    for note in notes:
        warnings.warn(note, DissectWarning, stacklevel=2)
    return RpcDiscovery(endpoints=endpoints, facts=facts, names=names, packets=len(rows),
                        warnings=tuple(notes))


def _notes(facts: RpcFacts, flows: pd.DataFrame) -> list[str]:
    notes = []
    # without its bind tshark cannot tell an EPM conversation from any other RPC
    blind = ((flows["proto"] == "tcp") & flows["dst_port"].isin(EPM_PORTS)
             & (flows["state"] == "midstream")
             & ~_bind_like(flows["client_payload_head"].to_numpy())).sum()
    if blind:
        notes.append(f"{blind} EPM conversations started before the capture, without their bind; "
                     "their replies cannot be decoded (ports after them may show as 'inferred')")
    if len(facts.cl_rpc):
        pairs = facts.cl_rpc[["server_ip", "server_port"]].drop_duplicates()
        notes.append(f"connectionless DCE/RPC over UDP to {len(pairs)} server ports; listed in "
                     "facts.cl_rpc, not as endpoints")
    return notes


def build_endpoints(facts: RpcFacts, flows: pd.DataFrame, *,
                    infer_window_s: float = 30.0) -> pd.DataFrame:
    """Join dissected facts with the flows: one row per (server, port, proto, interface)."""
    evidence = _evidence(facts)
    inferred = _inferred_flows(flows, evidence, infer_window_s)
    if len(inferred):
        evidence = pd.concat([evidence, pd.DataFrame({
            "server_ip": inferred["dst_ip"], "port": inferred["dst_port"].astype(np.int64),
            "proto": "tcp", "interface_uuid": "", "evidence": "inferred", "advertised": False,
            "client_ip": inferred["src_ip"], "client_port": inferred["src_port"].astype(np.int64),
            "via_ip": inferred["dst_ip"], "via_port": np.int64(135),
            "ts": inferred["first_seen"]})], ignore_index=True)
    if evidence.empty:
        return empty_frame(RPC_ENDPOINT_COLUMNS)
    key = ["server_ip", "port", "proto"]
    # Only flows to a port some evidence names matter; filter on the port first (cheap).
    cols = ["flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "state", "src_bytes",
            "dst_bytes", "first_seen", "last_seen", "capture"]
    near = flows.loc[flows["dst_port"].isin(evidence["port"].unique()), cols]
    near = near.rename(columns={"dst_ip": "server_ip"}).assign(
        port=near["dst_port"].astype(np.int64), bytes=near["src_bytes"] + near["dst_bytes"],
        used=near["state"].isin(("established", "midstream", "udp_answered")),
        unanswered=near["state"].isin(("unanswered", "udp_unanswered")),
        rejected=near["state"] == "rejected")
    touching = near.merge(evidence[key].drop_duplicates(), on=key)  # flows to a known endpoint
    per_port = touching.groupby(key).agg(
        flows=("flow_id", "size"), bytes=("bytes", "sum"), used=("used", "any"),
        unanswered=("unanswered", "any"), rejected=("rejected", "any"),
        first_flow=("first_seen", "min"), last_flow=("last_seen", "max"),
    ).reset_index()
    # Who touched the endpoint: its flows' clients, plus those who learned or bound it.
    clients = pd.concat([touching[key + ["src_ip"]].rename(columns={"src_ip": "client_ip"}),
                         evidence[key + ["client_ip"]]])
    # Which captures hold its flows or the conversations that carried its evidence.
    carriers = flows.loc[flows["dst_port"].isin(evidence["via_port"].unique()),
                         ["src_ip", "src_port", "dst_ip", "dst_port", "capture"]]
    via = evidence.merge(
        carriers.rename(columns={"src_ip": "client_ip", "src_port": "client_port",
                                 "dst_ip": "via_ip", "dst_port": "via_port"}).astype(
            {"client_port": np.int64, "via_port": np.int64}),
        on=["client_ip", "client_port", "via_ip", "via_port"])
    captures = pd.concat([touching[key + ["capture"]], via[key + ["capture"]]])

    ev = evidence.assign(rank=evidence["evidence"].map(EVIDENCE_RANK),
                         bound=evidence["evidence"] == "bind")
    out = ev.sort_values("rank", kind="stable").groupby(key + ["interface_uuid"], sort=False).agg(
        evidence=("evidence", "first"), advertised=("advertised", "any"), bound=("bound", "any"),
        first_ev=("ts", "min"), last_ev=("ts", "max")).reset_index()
    # an interface-less row (dcom, inferred) adds nothing where an interface is known
    named = set(map(tuple, out.loc[out["interface_uuid"] != "", key].to_numpy().tolist()))
    redundant = [u == "" and tuple(k) in named
                 for u, k in zip(out["interface_uuid"], out[key].to_numpy().tolist(), strict=True)]
    out = out[~np.asarray(redundant, dtype=bool)]
    out = out.merge(per_port, on=key, how="left")
    n_clients = clients.drop_duplicates().groupby(key).size().rename("clients").reset_index()
    out = out.merge(n_clients, on=key, how="left")
    cap_names = captures.dropna().drop_duplicates().sort_values("capture").groupby(key)["capture"]
    out = out.merge(cap_names.agg(";".join).rename("captures").reset_index(), on=key, how="left")

    out["interface"] = [interface_name(u) or ("DCOM object exporter" if e == "dcom" else "")
                        for u, e in zip(out["interface_uuid"], out["evidence"], strict=True)]
    for col in ("flows", "bytes", "clients"):
        out[col] = out[col].fillna(0).astype(np.int64)
    for col in ("bound", "used", "unanswered", "rejected"):
        out[col] = out[col].astype("boolean").fillna(False).astype(bool)
    out["first_seen"] = pd.concat([out["first_ev"], out["first_flow"]], axis=1).min(axis=1)
    out["last_seen"] = pd.concat([out["last_ev"], out["last_flow"]], axis=1).max(axis=1)
    out["captures"] = out["captures"].fillna("")
    out["port"] = out["port"].astype(np.uint16)
    out = out.sort_values(["server_ip", "port", "proto", "interface_uuid"], ignore_index=True)
    return typed_frame(out, RPC_ENDPOINT_COLUMNS)


_EVIDENCE_COLUMNS = ["server_ip", "port", "proto", "interface_uuid", "evidence", "advertised",
                     "client_ip", "client_port", "via_ip", "via_port", "ts"]


def _evidence(facts: RpcFacts) -> pd.DataFrame:
    """One row per piece of evidence; via_ip/via_port name the conversation that carried it."""
    def part(frame, server, port, proto, uuid, kind, client_port, via_port):
        return pd.DataFrame({
            "server_ip": server, "port": frame[port].astype(np.int64), "proto": proto,
            "interface_uuid": uuid, "evidence": kind, "advertised": kind == "epm",
            "client_ip": frame["client_ip"], "client_port": client_port,
            "via_ip": frame["server_ip"], "via_port": via_port, "ts": frame["ts"]})

    # ncacn_http towers are left out: their port (6001-6004, 593) is the target inside an
    # RPC-over-HTTP session, reached through the RPC proxy, not a port clients open on the wire
    epm = facts.epm[(facts.epm["status"] == 0) & facts.epm["tower_proto"].isin(("tcp", "udp"))
                    & facts.epm["port"].notna()]
    tower_ip = epm["tower_ip"].where(~epm["tower_ip"].isin(("", "0.0.0.0")), epm["server_ip"])
    # pipes ride on 445, not on a port of their own; a refused bind shows what is NOT served
    binds = facts.binds[(facts.binds["transport"] != "smb") & (facts.binds["result"] != "rejected")]
    dcom = facts.dcom[(facts.dcom["tower_id"] == 7) & facts.dcom["port"].notna()]
    # a binding's host is the exporter's address when it is one (a name means the replier)
    dcom_ip = [h if _is_ip(h) else s for h, s in zip(dcom["host"], dcom["server_ip"], strict=True)]
    parts = [
        part(epm, tower_ip, "port", epm["tower_proto"], epm["interface_uuid"], "epm",
             epm["client_port"].astype(np.int64), epm["server_port"].astype(np.int64)),
        part(binds, binds["server_ip"], "server_port", "tcp", binds["interface_uuid"], "bind",
             binds["client_port"].astype(np.int64), binds["server_port"].astype(np.int64)),
        part(dcom, dcom_ip, "port", "tcp", "", "dcom", np.int64(-1), np.int64(135)),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=_EVIDENCE_COLUMNS)
    return pd.concat(parts, ignore_index=True).drop_duplicates(
        [c for c in _EVIDENCE_COLUMNS if c not in ("advertised", "via_ip", "via_port")],
        ignore_index=True)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _inferred_flows(flows: pd.DataFrame, evidence: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Flows to an unexplained dynamic port that start shortly after a 135 exchange, same hosts."""
    port = flows["dst_port"].to_numpy().astype(np.int64)
    head = flows["client_payload_head"].to_numpy().astype(np.int64)
    tcp = (flows["proto"] == "tcp").to_numpy()
    # no payload (unanswered, refused) or a DCE/RPC CO PDU: anything else is another protocol
    rpc_like = (head == 0) | ((head >> 24) == 5)
    dynamic = (port >= 1025) & ~np.isin(port, REGISTERED_SERVICE_PORTS) & ~np.isin(port, EPM_PORTS)
    cols = ["flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "first_seen"]
    cand = flows.loc[tcp & rpc_like & dynamic, cols]
    epm = flows.loc[tcp & (port == 135), ["src_ip", "dst_ip", "first_seen", "last_seen"]]
    if cand.empty or epm.empty:
        return cand.iloc[0:0]
    if len(evidence):
        known = evidence[["server_ip", "port"]].drop_duplicates().astype({"port": np.int64})
        known = known.rename(columns={"server_ip": "dst_ip", "port": "dst_port"})
        cand = cand.astype({"dst_port": np.int64}).merge(known, how="left", indicator=True)
        cand = cand[cand["_merge"] == "left_only"].drop(columns="_merge")
    cand = cand.sort_values("first_seen")
    epm = epm.rename(columns={"first_seen": "epm_first", "last_seen": "epm_last"})
    joined = pd.merge_asof(cand, epm.sort_values("epm_first"), left_on="first_seen",
                           right_on="epm_first", by=["src_ip", "dst_ip"], direction="backward")
    window = pd.Timedelta(seconds=window_s)
    hit = joined["epm_first"].notna() & (joined["first_seen"] <= joined["epm_last"] + window)
    return joined[hit.to_numpy()]


# --- annotating flows -----------------------------------------------------------------------------


def annotate_flows(flows: pd.DataFrame, endpoints: pd.DataFrame, *,
                   infer_window_s: float = 30.0) -> pd.DataFrame:
    """Return flows with rpc_interface and rpc_evidence from the endpoints (plus inferred ones)."""
    out = flows.copy()
    out["rpc_interface"] = ""
    out["rpc_evidence"] = ""
    if out.empty:
        return out
    key = ["dst_ip", "dst_port", "proto"]
    if len(endpoints):
        ep = endpoints.assign(
            label=[name or uuid for name, uuid in zip(endpoints["interface"],
                                                      endpoints["interface_uuid"], strict=True)],
            rank=endpoints["evidence"].map(EVIDENCE_RANK),
        ).rename(columns={"server_ip": "dst_ip", "port": "dst_port"})
        ep["dst_port"] = ep["dst_port"].astype(out["dst_port"].dtype)
        # A port often serves many interfaces (lsass: LSARPC, SAMR, NETLOGON, DRSUAPI, ...);
        # where clients were seen binding, name those, not everything the EPM lists there.
        any_bound = ep.groupby(key)["bound"].transform("any")
        ep = ep[ep["bound"] | ~any_bound]
        per_port = ep.sort_values("rank").groupby(key, sort=False).agg(
            rpc_evidence=("evidence", "first"),
            rpc_interface=("label", lambda s: ", ".join(sorted({x for x in s if x}))),
        ).reset_index()
        merged = out[key].merge(per_port, on=key, how="left")
        found = merged["rpc_evidence"].notna().to_numpy()
        out.loc[found, "rpc_evidence"] = merged.loc[found, "rpc_evidence"].to_numpy()
        out.loc[found, "rpc_interface"] = merged.loc[found, "rpc_interface"].to_numpy()
    # flows the endpoints did not explain may still be inferred from timing
    known = pd.DataFrame({"server_ip": out.loc[out["rpc_evidence"] != "", "dst_ip"],
                          "port": out.loc[out["rpc_evidence"] != "", "dst_port"]})
    inferred = _inferred_flows(out, known, infer_window_s)
    mask = out["flow_id"].isin(inferred["flow_id"]) & (out["rpc_evidence"] == "")
    out.loc[mask, "rpc_evidence"] = "inferred"
    return out


# rpc_ranges.py builds on this module (EPM_PORTS), so its names are re-exported lazily:
# an import here would be circular.
_RANGES = ("CAS_INTERFACES", "FIXED_RPC_PORTS", "PINNED_SPAN", "RANGE_2003", "RANGE_2008",
           "RANGE_CAS", "dynamic_ranges")


def __getattr__(name: str):
    if name in _RANGES:
        from auditor import rpc_ranges

        return getattr(rpc_ranges, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
