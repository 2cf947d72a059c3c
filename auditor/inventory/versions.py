"""Which Exchange version a server runs, from what its traffic shows (for `auditor roles`).

Evidence, each a heuristic the proposal states next to the version it suggests:
- SMTP: a 220 greeting from "Microsoft ESMTP MAIL Service" names Exchange; EHLO offering
  XEXCH50 is 2007/2010 (2013 and later dropped the verb); XPROXYFROM, XRSET, XSYSPROBE or
  XSHADOWREQUEST are 2013+ transport extensions;
- ports only 2013+ uses: SMTP answered on 2525 (Transport), 465 (client proxy), 475 (Mailbox
  Transport Delivery) or 717 (outbound proxy), HTTPS 444 and POP/IMAP 1995/1993 (back end);
- cleartext HTTP requests for `/mapi/` (MAPI over HTTP, 2013 SP1 and later);
- DCE/RPC: EMSMDB served over TCP (Outlook RPC over TCP), which 2013+ no longer serves: 2010.
2013 and 2016 use the same ports, so newer evidence proposes 2016 (the `exchange2016`
catalogue, also 2019) and says "2013 or later". Captured text is untrusted: only matched
keywords and ports reach the evidence, never the raw text.
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct

import numpy as np
import pandas as pd

from auditor.schema import EXCHANGE_ROLES, ROLE_EVIDENCE_COLUMNS, column_names, typed_frame

SMTP_PORTS = (25, 587, 2525, 465, 475, 717)
HTTP_PORTS = (80, 81)
NEWER_PORTS = {2525: "SMTP 2525 (Transport service)", 465: "SMTP 465 (Transport client proxy)",
               475: "SMTP 475 (Mailbox Transport Delivery)", 717: "SMTP 717 (outbound proxy)",
               444: "HTTPS 444 (back-end site)", 1995: "POP3 1995 (back end)",
               1993: "IMAP4 1993 (back end)"}
OLDER_EHLO = ("XEXCH50",)
NEWER_EHLO = ("XPROXYFROM", "XRSET", "XSYSPROBE", "XSHADOWREQUEST")
NEWER, OLDER = "2016", "2010"
_MAX_PACKETS = 20_000  # payload packets looked at, whatever the capture size
_HTTP_REQUEST = re.compile(rb"^(GET|POST|HEAD|PUT|RPC_IN_DATA|RPC_OUT_DATA) (\S{1,2048}) HTTP/1\.[01]\r?\n")


@dataclasses.dataclass(frozen=True)
class Clue:
    """One piece of version evidence for a server."""

    ip: str
    version: str  # OLDER or NEWER
    text: str
    weight: float


def traffic_payloads(table, flows: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """server_ip, port, kind ('smtp' server replies, 'http' client requests), payload bytes.

    Only the first SMTP replies of each flow (greeting and EHLO answer) and the first HTTP
    request of each cleartext HTTP flow are read back from the capture files.
    """
    cols = ["server_ip", "port", "kind", "payload"]
    pk = table.packets
    if pk.empty or flows.empty:
        return pd.DataFrame(columns=cols)
    tcp = (pk["proto"].to_numpy() == 6) & (pk["payload_len"].to_numpy() > 0)
    src_port, dst_port = pk["src_port"].to_numpy(), pk["dst_port"].to_numpy()
    picks = []
    # the EHLO answer may come one line per segment: the first 16 server segments of a flow
    # cover greeting and extensions (what follows STARTTLS is ciphertext)
    for kind, mask, n in (("smtp", tcp & np.isin(src_port, SMTP_PORTS), 16),
                          ("http", tcp & np.isin(dst_port, HTTP_PORTS), 1)):
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        frame = pd.DataFrame({"row": rows, "flow": np.asarray(labels)[rows]})
        frame = frame[frame["flow"] >= 0].groupby("flow", sort=False).head(n)
        picks.append(frame.assign(kind=kind))
    if not picks:
        return pd.DataFrame(columns=cols)
    chosen = pd.concat(picks).sort_values("row").head(_MAX_PACKETS)
    from auditor.capture.packets import write_packets

    buf = io.BytesIO()
    write_packets(table, chosen["row"].to_numpy(), buf)
    payloads = list(_raw_payloads(buf.getvalue()))
    by_id = flows.set_index("flow_id")
    return pd.DataFrame({
        "server_ip": chosen["flow"].map(by_id["dst_ip"]).astype(str).to_numpy(),
        "port": chosen["flow"].map(by_id["dst_port"]).astype(np.int64).to_numpy(),
        "kind": chosen["kind"].to_numpy(), "payload": payloads,
    }, columns=cols)


def _raw_payloads(pcap: bytes):
    """TCP payload of each record of a LINKTYPE_RAW pcap (b'' when it cannot be found)."""
    pos = 24
    while pos + 16 <= len(pcap):
        incl = struct.unpack_from("<I", pcap, pos + 8)[0]
        data = pcap[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        yield _tcp_payload(data)


def _tcp_payload(ip: bytes) -> bytes:
    if len(ip) < 20:
        return b""
    if ip[0] >> 4 == 4:
        start, proto = (ip[0] & 0x0F) * 4, ip[9]
    elif ip[0] >> 4 == 6 and len(ip) >= 40:
        start, proto = 40, ip[6]
    else:
        return b""
    if proto != 6 or len(ip) < start + 20:
        return b""
    offset = start + (ip[start + 12] >> 4) * 4
    return ip[offset:] if offset <= len(ip) else b""


def version_clues(flows: pd.DataFrame, payloads: pd.DataFrame | None = None,
                  rpc_endpoints: pd.DataFrame | None = None) -> list[Clue]:
    """Every piece of version evidence in the flows, payloads and RPC endpoints."""
    clues: list[Clue] = []
    ok = flows[flows["state"] == "established"] if not flows.empty else flows
    for port, what in NEWER_PORTS.items():
        hit = ok[(ok["proto"] == "tcp") & (ok["dst_port"] == port)]
        for ip, grp in hit.groupby("dst_ip"):
            peers = grp["src_ip"].nunique()
            clues.append(Clue(str(ip), NEWER, f"answers {what}, a port only Exchange 2013 or "
                              f"later uses ({peers} peer{'s' if peers != 1 else ''})", 0.8))
    if payloads is not None and not payloads.empty:
        for (ip, port, kind), grp in payloads.groupby(["server_ip", "port", "kind"]):
            text = b"\n".join(grp["payload"]).upper()
            if kind == "smtp":
                older = [w for w in OLDER_EHLO if w.encode() in text]
                newer = [w for w in NEWER_EHLO if w.encode() in text]
                if older:
                    clues.append(Clue(ip, OLDER, f"EHLO on {port} offers {', '.join(older)} "
                                      "(Exchange 2007/2010; dropped in 2013)", 0.7))
                if newer:
                    clues.append(Clue(ip, NEWER, f"EHLO on {port} offers {', '.join(newer)} "
                                      "(Exchange 2013 or later)", 0.7))
            else:
                paths = {m.group(2).split(b"?")[0].lower() for p in grp["payload"]
                         if (m := _HTTP_REQUEST.match(p))}
                if any(p.startswith(b"/mapi/") for p in paths):
                    clues.append(Clue(ip, NEWER, f"HTTP requests for /mapi/ on {port} (MAPI over "
                                      "HTTP: Exchange 2013 SP1 or later)", 0.7))
    if rpc_endpoints is not None and not rpc_endpoints.empty:
        emsmdb = rpc_endpoints[(rpc_endpoints["interface"] == "EMSMDB")
                               & (rpc_endpoints["proto"] == "tcp")]
        if "used" in emsmdb:
            emsmdb = emsmdb[emsmdb["used"].astype(bool)]
        for ip, grp in emsmdb.groupby("server_ip"):
            ports = ",".join(str(p) for p in sorted(set(grp["port"])))
            clues.append(Clue(str(ip), OLDER, f"serves EMSMDB over TCP on {ports} (Outlook RPC "
                              "over TCP: Exchange 2010 or older)", 0.9))
    return clues


def propose_versions(inventory, evidence: pd.DataFrame, flows: pd.DataFrame,
                     payloads: pd.DataFrame | None = None,
                     rpc_endpoints: pd.DataFrame | None = None):
    """The proposed inventory with `version` on the Exchange hosts the evidence agrees on,
    and the evidence frame with one 'version' row per clue."""
    clues = version_clues(flows, payloads, rpc_endpoints)
    by_ip: dict[str, list[Clue]] = {}
    for clue in clues:
        by_ip.setdefault(clue.ip, []).append(clue)
    hosts, rows = [], []
    for host in inventory.hosts:
        mine = [c for ip in host.addresses for c in by_ip.get(ip, [])]
        versions = {c.version for c in mine}
        version = host.version
        if mine and set(host.roles) & EXCHANGE_ROLES and len(versions) == 1:
            version = versions.pop()
        hosts.append(dataclasses.replace(host, version=version))
        for clue in mine:
            label = "2013+" if clue.version == NEWER else clue.version
            agreed = " (conflicting evidence: no version proposed)" if len(
                {c.version for c in mine}) > 1 else ""
            rows.append((clue.ip, host.name, f"version {label}", clue.weight, clue.text + agreed))
    extra = pd.DataFrame(rows, columns=column_names(ROLE_EVIDENCE_COLUMNS))
    evidence = typed_frame(pd.concat([evidence, extra], ignore_index=True), ROLE_EVIDENCE_COLUMNS) \
        if rows else evidence
    return dataclasses.replace(inventory, hosts=tuple(hosts)), evidence


def propose_observed_versions(inventory, evidence: pd.DataFrame, seen):
    """propose_versions from an Observation (pipeline.observe): flows, payloads, RPC endpoints."""
    payloads = traffic_payloads(seen.table, seen.flows, seen.labels)
    endpoints = seen.rpc.endpoints if seen.rpc is not None else None
    return propose_versions(inventory, evidence, seen.flows, payloads, endpoints)
