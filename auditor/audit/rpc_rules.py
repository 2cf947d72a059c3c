"""Interface- and protocol-aware rule matching.

A rule may list the DCE/RPC interfaces it documents (`interfaces`) and require an application
protocol (`app_protocol`, for wide port ranges such as RTP's 1024-65535). Ports and roles still
decide which rules are candidates (`verdicts._best_rule`); this module removes the candidates a
flow's evidence contradicts:

* the flow's own binds (bind/alter_context on its 5-tuple) name exactly what it used; a rule with
  an interface list matches only when every interface bound is listed;
* else the interfaces discovery saw at the flow's server port (EPM towers, other clients' binds)
  are candidates; the rule matches when one of them is listed (the port may serve several);
* else nothing is known and the interface list does not apply.

The endpoint mapper itself (EPM) is always allowed on 135. The application protocol is read from
the first payload bytes each end sent, vectorised: a rule with `app_protocol` refuses a flow whose
payload shows another protocol; a flow without payload contradicts no rule.
Flows are grouped by the evidence they carry, so the match runs once per distinct evidence
signature (a handful), not once per flow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"

# First four payload bytes of a SIP request or response ([RFC 3261] 7.1, 7.2 and the methods
# of RFC 3262/3265/3311/3428/3515/3903/6086)
_SIP_HEADS = (b"SIP/", b"INVI", b"ACK ", b"BYE ", b"CANC", b"REGI", b"OPTI", b"PRAC", b"SUBS",
              b"NOTI", b"PUBL", b"INFO", b"REFE", b"MESS", b"UPDA")
_HTTP_HEADS = (b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"CONN", b"PATC", b"TRAC",
               b"RPC_", b"HTTP")


def _as_ints(heads: tuple[bytes, ...]) -> np.ndarray:
    return np.array([int.from_bytes(h, "big") for h in heads], dtype=np.int64)


def app_protocols(head: np.ndarray) -> dict[str, np.ndarray]:
    """Per flow, which application protocol its first four payload bytes show (0 = no payload)."""
    head = np.asarray(head).astype(np.int64)
    b0, b1, b2 = head >> 24, (head >> 16) & 0xFF, (head >> 8) & 0xFF
    some = head != 0
    return {
        "unknown": ~some,  # the initiator sent no payload: nothing to contradict a rule
        # RTP and RTCP: version 2 in the top two bits ([RFC 3550] 5.1, 6.4)
        "rtp": some & ((b0 & 0xC0) == 0x80),
        "sip": np.isin(head, _as_ints(_SIP_HEADS)),
        "http": np.isin(head, _as_ints(_HTTP_HEADS)),
        # TLS record: content type 20-23, version 3.x ([RFC 8446] 5.1)
        "tls": (b0 >= 20) & (b0 <= 23) & (b1 == 3) & (b2 <= 4),
        # DCE/RPC: connection-oriented 5.0/5.1, connectionless 4 ([C706] 12.5, 12.6)
        "dcerpc": ((b0 == 5) & (b1 <= 1)) | ((b0 == 4) & (b1 <= 10)),
    }


def _both_ways(flows: pd.DataFrame) -> dict[str, np.ndarray]:
    """app_protocols of what either end sent first (the responder's bytes when the flow table
    has them): a protocol shows when one side shows it; unknown when neither sent payload."""
    out = app_protocols(flows["client_payload_head"].to_numpy())
    if "dst_payload_prefix" not in flows:
        return out
    prefix = flows["dst_payload_prefix"].fillna("").astype(str).str.slice(0, 8)
    head = np.array([int(p.ljust(8, "0"), 16) if p else 0 for p in prefix], dtype=np.int64)
    back = app_protocols(head)
    return {name: (out[name] & back[name]) if name == "unknown" else (out[name] | back[name])
            for name in out}


def flow_interfaces(flows: pd.DataFrame, endpoints: pd.DataFrame | None,
                    binds: pd.DataFrame | None) -> tuple[pd.Series, pd.Series]:
    """Per flow: the interface UUIDs it bound itself, and those known at its server port."""
    empty = frozenset()
    own = pd.Series([empty] * len(flows), index=flows.index, dtype=object)
    at_port = own.copy()
    if binds is not None and len(binds):
        tcp = binds[(binds["transport"] == "tcp") & (binds["interface_uuid"] != "")]
        per_conn = tcp.groupby(["client_ip", "client_port", "server_ip", "server_port"])[
            "interface_uuid"].agg(lambda s: frozenset(s.str.lower())).rename("own").reset_index()
        key = flows[["src_ip", "src_port", "dst_ip", "dst_port"]].astype(
            {"src_port": np.int64, "dst_port": np.int64}).set_axis(
            ["client_ip", "client_port", "server_ip", "server_port"], axis=1)
        merged = key.merge(per_conn.astype({"client_port": np.int64, "server_port": np.int64}),
                           how="left", on=list(key.columns))
        found = merged["own"].notna().to_numpy()
        own[found] = merged.loc[found, "own"].to_numpy()
    if endpoints is not None and len(endpoints):
        ep = endpoints[endpoints["interface_uuid"] != ""]
        # where clients were seen binding at a port, those are what the port serves them
        any_bound = ep.groupby(["server_ip", "port", "proto"])["bound"].transform("any")
        ep = ep[ep["bound"] | ~any_bound]
        per_port = ep.groupby(["server_ip", "port", "proto"])["interface_uuid"].agg(
            lambda s: frozenset(s.str.lower())).rename("at_port").reset_index()
        key = flows[["dst_ip", "dst_port", "proto"]].astype({"dst_port": np.int64}).set_axis(
            ["server_ip", "port", "proto"], axis=1)
        merged = key.merge(per_port.astype({"port": np.int64}), how="left", on=list(key.columns))
        found = merged["at_port"].notna().to_numpy()
        at_port[found] = merged.loc[found, "at_port"].to_numpy()
    return own, at_port


def rule_accepts(rule, own: frozenset, at_port: frozenset, apps: frozenset) -> bool:
    """Does the flow's evidence (own binds, interfaces at its port, app protocols) fit the rule?"""
    if rule.app_protocol and "unknown" not in apps and rule.app_protocol not in apps:
        return False  # the payload shows another protocol (SIP on a port of the RTP range)
    if not rule.interfaces:
        return True
    allowed = rule.interface_uuids | {EPM_UUID}
    if own:
        return own <= allowed
    if at_port:
        return bool(at_port & allowed)
    return True


def match_flows(flows: pd.DataFrame, path_id: np.ndarray, paths: pd.DataFrame,
                by_ip: pd.DataFrame, match_table: pd.DataFrame, catalogue,
                evidenced: np.ndarray | None, endpoints: pd.DataFrame | None,
                binds: pd.DataFrame | None, best_rule: Callable) -> pd.DataFrame:
    """Per flow (same index): rule ('' when none), src_role, dst_role and rpc_interface.

    `best_rule(paths, roles, match_table, catalogue, evidenced)` is the port-and-role match;
    it runs once per distinct evidence signature over that signature's paths, with the match
    table cut to the rules that accept the signature. Without a rule, a flow's roles are its
    ends' first roles (`by_ip`: roles and first_role per address).
    """
    out = _match(flows, np.asarray(path_id), paths, by_ip["roles"], match_table, catalogue,
                 evidenced, endpoints, binds, best_rule)
    out["rule"] = out["rule"].fillna("")
    for side in ("src", "dst"):
        default = paths[f"{side}_ip"].map(by_ip["first_role"]).to_numpy()[path_id]
        role = out[f"{side}_role"]
        out[f"{side}_role"] = np.where(role.isna().to_numpy(), default, role.to_numpy())
    return out


def _match(flows, path_id, paths, roles, match_table, catalogue, evidenced, endpoints, binds,
           best_rule) -> pd.DataFrame:
    out = pd.DataFrame(index=flows.index, columns=["rule", "src_role", "dst_role"], dtype=object)
    out["rpc_interface"] = flows["rpc_interface"].to_numpy() if "rpc_interface" in flows else ""
    if flows.empty:
        return out
    constrained = [r for r in catalogue.rules if r.interfaces or r.app_protocol]
    if not constrained:
        match = best_rule(paths, roles, match_table, catalogue, evidenced)
        for col in ("rule", "src_role", "dst_role"):
            out[col] = match[col].to_numpy()[path_id]
        return out
    own, at_port = flow_interfaces(flows, endpoints, binds)
    detected = _both_ways(flows)
    names = sorted(detected)
    bits = np.zeros(len(flows), dtype=np.int64)
    for i, name in enumerate(names):
        bits |= detected[name].astype(np.int64) << i
    signature = pd.DataFrame({"own": own.to_numpy(), "at_port": at_port.to_numpy(),
                              "apps": bits}, index=flows.index)
    codes, uniques = pd.factorize(pd.Series(list(zip(signature["own"], signature["at_port"],
                                                     signature["apps"], strict=True))))
    results = {}
    for code, (own_s, port_s, app_bits) in enumerate(uniques):
        apps = frozenset(n for i, n in enumerate(names) if app_bits >> i & 1)
        refused = {r.id for r in constrained if not rule_accepts(r, own_s, port_s, apps)}
        table = match_table[~match_table["rule_id"].isin(refused)] if refused else match_table
        rows = np.flatnonzero(codes == code)
        sub_paths = paths.loc[np.unique(path_id[rows])]
        match = best_rule(sub_paths, roles, table, catalogue, evidenced)
        results[code] = (rows, match)
    for rows, match in results.values():
        picked = match.reindex(path_id[rows])
        for col in ("rule", "src_role", "dst_role"):
            out.iloc[rows, out.columns.get_loc(col)] = picked[col].to_numpy()
    # a flow that bound its interfaces itself is named by them, not by everything at its port
    from auditor.dissect.rpc import interface_name

    mine = own.map(len).to_numpy() > 0
    out.loc[mine, "rpc_interface"] = [
        ", ".join(sorted(interface_name(u) or u for u in s)) for s in own[mine]]
    return out
