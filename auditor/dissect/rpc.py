"""Dynamic RPC discovery: which DCE/RPC interface listens on which server port.

The flow table says which packets could hold the answer (EPM conversations on 135/593, flows that
open with a bind, connectionless RPC, plus DNS/SMTP/NBNS/Kerberos for host names). A bounded sample
of those packets goes to tshark once (dcerpc.py); its EPM towers, binds and DCOM string bindings
are joined back onto the flows. A few thousand packets reach tshark whatever the capture size.
Choosing the packets is select.py's; judging the dynamic ports found against the default ranges
is rpc_ranges.py's.
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

from auditor.capture.packets import PacketTable, write_packets
from auditor.dissect.dcerpc import (
    RpcFacts,
    display_filter_for,
    dissect_capture,
    empty_rpc_facts,
)
from auditor.dissect.rpc_use import endpoint_use
from auditor.dissect.select import (
    EPM_PORTS,
    LIFT,
    _bind_like,
    _name_plan,
    _rows,
    rpc_selection,
    slim_flows,
)
from auditor.dissect.tshark import TsharkFile, understood, watchdog_s
from auditor.errors import DissectWarning
from auditor.flows.build import REGISTERED_SERVICE_PORTS
from auditor.options import RpcOptions
from auditor.schema import (
    HOST_NAME_COLUMNS,
    RPC_ENDPOINT_COLUMNS,
    empty_frame,
    typed_frame,
)

EVIDENCE_RANK = {"epm": 0, "bind": 1, "dcom": 2, "inferred": 3}  # lower is stronger


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


def interface_uuid(name_or_uuid: str) -> str:
    """Return the lower-case UUID for an interface name (any case) or a UUID, '' when unknown."""
    text = str(name_or_uuid).strip().strip("{}")
    if text.lower() in _interfaces():
        return text.lower()
    if len(text) == 36 and text.count("-") == 4:
        return text.lower()
    return _uuids_by_name().get(text.lower(), "")


@lru_cache(maxsize=1)
def _uuids_by_name() -> dict[str, str]:
    return {row["name"].lower(): uuid for uuid, row in _interfaces().items()}


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
    slim = slim_flows(flows)  # once for both plans
    selection = rpc_selection(table, slim, labels, options)
    rows, notes = selection.rows, list(selection.notes)
    if options.names:
        name_rows, name_cut = _rows(table, slim, labels, _name_plan(slim, options),
                                    options.max_name_packets)
        if name_cut:
            notes.append(f"host naming stopped at its budget of {options.max_name_packets} "
                         f"packets and left {sum(name_cut.values())} DNS, SMTP, NetBIOS or "
                         f"Kerberos flows unread; {LIFT}")
        rows = np.union1d(rows, name_rows)
    facts = names = None
    timeout_s = watchdog_s(len(rows), options.tshark_timeout_s,
                           options.tshark_timeout_per_packet_s)
    if len(rows) and tshark is not None:
        tshark.timeout_s = timeout_s
        tshark.feed(lambda fifo: write_packets(table, rows, fifo))
        facts, names = understood(dissect_capture, tshark, names=options.names)
    elif len(rows):
        with tempfile.TemporaryDirectory(dir=workdir, prefix="auditor-rpc-") as tmp:
            path = Path(tmp) / "selected.pcap"
            write_packets(table, rows, path)
            run = TsharkFile(path, display_filter_for(options.names), tshark_path=tshark_path,
                             timeout_s=timeout_s)
            facts, names = understood(dissect_capture, run, names=options.names)
    if facts is None:  # nothing to dissect
        facts, names = empty_rpc_facts(), empty_frame(HOST_NAME_COLUMNS)
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
    out["use"] = endpoint_use(out)
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
        part(dcom, dcom_ip, "port", "tcp", dcom["interface_uuid"], "dcom", np.int64(-1),
             np.int64(135)),
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
        # only flows to a port some endpoint names can match: filter on the port first (cheap)
        near = np.flatnonzero(out["dst_port"].isin(per_port["dst_port"].unique()).to_numpy())
        merged = out[key].iloc[near].merge(per_port, on=key, how="left")
        found = merged["rpc_evidence"].notna().to_numpy()
        for col in ("rpc_evidence", "rpc_interface"):  # by position: the index may repeat
            out.iloc[near[found], out.columns.get_loc(col)] = merged.loc[found, col].to_numpy()
    # flows the endpoints did not explain may still be inferred from timing
    known = pd.DataFrame({"server_ip": out.loc[out["rpc_evidence"] != "", "dst_ip"],
                          "port": out.loc[out["rpc_evidence"] != "", "dst_port"]})
    inferred = _inferred_flows(out, known, infer_window_s)
    mask = out["flow_id"].isin(inferred["flow_id"]) & (out["rpc_evidence"] == "")
    out.loc[mask, "rpc_evidence"] = "inferred"
    return out
