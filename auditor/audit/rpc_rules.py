"""Interface- and protocol-aware rule matching.

A rule may list the DCE/RPC interfaces it documents (`interfaces`) and require an application
protocol (`app_protocol`, for wide port ranges such as RTP's 1024-65535). Ports and roles still
decide which rules are candidates (`rule_match.best_rules`); this module removes the candidates a
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

import numpy as np
import pandas as pd

from auditor.audit.rule_match import best_rules, distinct_rows, learned_servers

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
    # the first four bytes of each distinct prefix, then back to the flows by code
    codes, uniques = pd.factorize(flows["dst_payload_prefix"])
    heads = [str(p)[:8] for p in uniques]
    heads = np.array([int(p.ljust(8, "0"), 16) if p else 0 for p in heads] + [0], dtype=np.int64)
    back = app_protocols(heads[codes])  # code -1 (missing) takes the last 0
    return {name: (out[name] & back[name]) if name == "unknown" else (out[name] | back[name])
            for name in out}


def _frozen(values: pd.Series) -> frozenset:
    return frozenset(values.str.lower())


def flow_interfaces(flows: pd.DataFrame, paths: pd.DataFrame, endpoints: pd.DataFrame | None,
                    binds: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """The interface UUIDs each flow bound itself (per flow), and those known at each path's
    server port (per row of `paths`: dst_ip, dst_port, proto)."""
    empty = frozenset()
    own = np.full(len(flows), empty, dtype=object)
    at_port = np.full(len(paths), empty, dtype=object)
    if binds is not None and len(binds):
        tcp = binds[(binds["transport"] == "tcp") & (binds["interface_uuid"] != "")]
        per_conn = tcp.groupby(["client_ip", "client_port", "server_ip", "server_port"])[
            "interface_uuid"].agg(_frozen).rename("own").reset_index()
        key = pd.DataFrame({
            "client_ip": flows["src_ip"].to_numpy(), "client_port": flows["src_port"].to_numpy(
                dtype=np.int64), "server_ip": flows["dst_ip"].to_numpy(),
            "server_port": flows["dst_port"].to_numpy(dtype=np.int64)})
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
            _frozen).rename("at_port").reset_index()
        key = pd.DataFrame({"server_ip": paths["dst_ip"].to_numpy(),
                            "port": paths["dst_port"].to_numpy(dtype=np.int64),
                            "proto": paths["proto"].to_numpy()})
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


def match_flows(flows: pd.DataFrame, path_id: np.ndarray, paths: pd.DataFrame, ends: dict,
                match_table: pd.DataFrame, catalogue, evidenced: np.ndarray | None,
                endpoints: pd.DataFrame | None, binds: pd.DataFrame | None,
                rpc_interface: np.ndarray) -> dict[str, np.ndarray]:
    """Per flow (object arrays): rule ('' when none), src_role, dst_role and rpc_interface.

    `rule_match.best_rules` is the port-and-role match; it runs once per distinct evidence
    signature over that signature's distinct match keys, with the match table cut to the rules
    that accept the signature. `ends` has per path (row of `paths`) src_roles and dst_roles
    (tuples) and src_first and dst_first, the roles a flow without a rule gets;
    `rpc_interface` is the annotated one per flow.
    """
    path_id = np.asarray(path_id, dtype=np.int64)
    rule, src_role, dst_role, rpc_interface = _match(
        flows, path_id, paths, ends, match_table, catalogue, evidenced, endpoints, binds,
        np.asarray(rpc_interface, dtype=object))
    out = {"rule": np.where(pd.isna(rule), "", rule).astype(object), "rpc_interface": rpc_interface}
    for side, role in (("src", src_role), ("dst", dst_role)):
        default = ends[f"{side}_first"][path_id]
        out[f"{side}_role"] = np.where(pd.isna(role), default, role).astype(object)
    return out


def _signatures(flows, paths, path_id, endpoints, binds, constrained):
    """Per flow, the number of its evidence signature; per signature (own binds, interfaces at
    the port, application protocols); and per flow the code of its own binds into the distinct
    sets of them (None without constrained rules: every flow has the same empty signature)."""
    n = len(flows)
    if not constrained:
        return np.zeros(n, dtype=np.int64), [(frozenset(), frozenset(), frozenset())], None
    own, at_port = flow_interfaces(flows, paths, endpoints, binds)
    detected = _both_ways(flows)
    names = sorted(detected)
    bits = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(names):
        bits |= detected[name].astype(np.int64) << i
    own_codes, own_sets = pd.factorize(own)
    port_codes, port_sets = pd.factorize(at_port)
    codes, first = distinct_rows(own_codes, port_codes[path_id], bits)
    uniques = [(own_sets[own_codes[i]], port_sets[port_codes[path_id[i]]],
                frozenset(name for b, name in enumerate(names) if bits[i] >> b & 1))
               for i in first]
    return codes, uniques, (own_codes, own_sets)


def _match(flows, path_id, paths, ends, match_table, catalogue, evidenced, endpoints, binds,
           rpc_interface):
    n = len(flows)
    rule, src_role, dst_role = (np.full(n, None, dtype=object) for _ in range(3))
    if n == 0:
        return rule, src_role, dst_role, rpc_interface
    constrained = [r for r in catalogue.rules if r.interfaces or r.app_protocol]
    sig, signatures, own = _signatures(flows, paths, path_id, endpoints, binds, constrained)
    # the match key of each path: role sets of its ends, protocol, port, learned server, evidence
    src_roles, dst_roles = ends["src_roles"], ends["dst_roles"]
    learned = learned_servers(match_table)
    dst_ip = paths["dst_ip"].to_numpy(dtype=object)
    server = np.where([ip in learned for ip in dst_ip], dst_ip, "").astype(object)
    key, _ = distinct_rows(
        pd.factorize(pd.Series(src_roles, dtype=object))[0],
        pd.factorize(pd.Series(dst_roles, dtype=object))[0], pd.factorize(paths["proto"])[0],
        paths["dst_port"].to_numpy(dtype=np.int64), pd.factorize(server)[0],
        np.zeros(len(paths)) if evidenced is None else evidenced)
    # one job per distinct (signature, key); flows take their job's answer
    job, first = distinct_rows(sig, key[path_id])
    job_sig, job_path = sig[first], path_id[first]
    answers = {c: np.full(len(first), None, dtype=object) for c in ("rule", "src_role", "dst_role")}
    for code, (own_s, port_s, apps) in enumerate(signatures):
        rows = np.flatnonzero(job_sig == code)
        if not len(rows):
            continue
        refused = {r.id for r in constrained if not rule_accepts(r, own_s, port_s, apps)}
        table = match_table[~match_table["rule_id"].isin(refused)] if refused else match_table
        reps = job_path[rows]
        keys = pd.DataFrame({"src_roles": src_roles[reps], "dst_roles": dst_roles[reps],
                             "proto": paths["proto"].to_numpy(dtype=object)[reps],
                             "port": paths["dst_port"].to_numpy(dtype=np.int64)[reps],
                             "dst_ip": server[reps]})
        got = best_rules(keys, table, catalogue, None if evidenced is None else evidenced[reps])
        for col, values in got.items():
            answers[col][rows] = values
    rule, src_role, dst_role = (answers[c][job] for c in ("rule", "src_role", "dst_role"))
    if own is not None:
        # a flow that bound its interfaces itself is named by them, not by everything at its port
        from auditor.dissect.rpc import interface_name

        own_codes, own_sets = own
        named = np.array([", ".join(sorted(interface_name(u) or u for u in s)) if s else None
                          for s in own_sets], dtype=object)
        mine = np.flatnonzero(pd.notna(named)[own_codes])
        if len(mine):
            rpc_interface = rpc_interface.copy()
            rpc_interface[mine] = named[own_codes[mine]]
    return rule, src_role, dst_role, rpc_interface
