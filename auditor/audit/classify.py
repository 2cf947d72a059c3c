"""The verdict of every flow: names, roles, rule, service and verdict, worked out per distinct key.

Names and roles depend only on an address, rules on a path's match key (`rule_match`), services
on the rule and the port: each is worked out once per distinct value and broadcast back to the
flows with integer codes. The flow table is never copied under boolean masks; the audited frame
(schema.AUDIT_FLOW_COLUMNS) is put together once, at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.audit.capture_end import cut_off_verdicts
from auditor.audit.icmp_rules import match_icmp
from auditor.audit.rpc_rules import match_flows
from auditor.audit.scope import coded, isin, local_verdicts
from auditor.audit.versions import plain_roles
from auditor.schema import AUDIT_FLOW_COLUMNS, FLOW_COLUMNS, column_names

# ICMP messages that answer other traffic (unreachable, time exceeded, too big, ...), not flows
ICMP_CONTROL = {"icmp": (3, 4, 5, 11, 12), "icmpv6": (1, 2, 3, 4)}
PORT_SERVICES = {
    25: "smtp", 587: "smtp", 53: "dns", 88: "kerberos", 464: "kerberos", 389: "ldap", 636: "ldap",
    3268: "ldap", 3269: "ldap", 135: "rpc", 445: "smb", 139: "netbios", 137: "netbios",
    138: "netbios", 80: "http", 443: "http", 123: "ntp", 5060: "sip", 5061: "sip",
    64327: "replication", 3343: "cluster", 50636: "ldap", 3389: "management", 5985: "management",
    5986: "management", 110: "pop3", 995: "pop3", 143: "imap", 993: "imap",
}
# what annotate_flows reads of a flow (the rest of the table need not be copied for it)
_RPC_ANNOTATION_COLUMNS = ("flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "proto",
                           "first_seen", "last_seen", "client_payload_head")
# audited columns that keep plain Python objects (the rest become text columns)
_OBJECT_COLUMNS = ("src_roles", "dst_roles", "src_role", "dst_role", "service")


def classify(flows, prepared, hosts, match_table, catalogue, rpc_endpoints, options,
             rpc_binds, annotation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Attach names, roles, the matching rule and a verdict to every flow (AUDIT_FLOW_COLUMNS).

    `prepared` (verdicts.PreparedFlows) numbers the flows' addresses and paths; `hosts` has one
    row per address (ip, name, name_source, roles as qualified tuples, version); `annotation`
    is `rpc_annotation(flows, rpc_endpoints)` when the caller has it already (the cache).
    """
    n = len(flows)
    by_ip = hosts.assign(
        roles_text=hosts["roles"].map(";".join), first_role=hosts["roles"].map(lambda r: r[0])
    ).set_index("ip")
    codes, uniques = prepared.addr_codes, prepared.addr_uniques
    row = by_ip.index.get_indexer(uniques)
    new: dict[str, object] = {}
    per_address = {
        "name": by_ip["name"].to_numpy(dtype=object)[row],
        "name_source": by_ip["name_source"].to_numpy(dtype=object)[row],
        "roles": plain_roles(pd.Series(by_ip["roles_text"].to_numpy(dtype=object)[row],
                                       dtype=object)).to_numpy(dtype=object),
        "version": _address_versions(by_ip, row),
    }
    side_codes = {"src": codes[:n], "dst": codes[n:2 * n]}
    for side, at in side_codes.items():  # (values, codes) pairs: code -1 takes the last value
        new[f"{side}_name"] = (per_address["name"], at)
        new[f"{side}_roles"] = per_address["roles"][at]
        new[f"{side}_name_source"] = (per_address["name_source"], at)
    rpc_interface, rpc_evidence = _annotation_arrays(flows, rpc_endpoints, annotation)

    path_id, paths = prepared.path_id, prepared.paths
    # Strict paths (client, Internet, Edge) accept the bare Windows range only with RPC evidence
    # for the flow, once discovery ran: a client reaching a mailbox on 64327 is no RPC call.
    evidenced = None
    if rpc_endpoints is not None:
        evidenced = np.zeros(len(paths), dtype=bool)
        np.logical_or.at(evidenced, path_id, np.asarray(rpc_evidence != "", dtype=bool))
    ends = _path_ends(prepared, by_ip, row, side_codes)
    match = match_flows(flows, path_id, paths, ends, match_table, catalogue, evidenced,
                        rpc_endpoints, rpc_binds, rpc_interface)
    match = match_icmp(flows, match, by_ip, catalogue)  # icmp/icmpv6 rules match by type
    rule, rpc_interface = coded_text(match["rule"]), coded_text(match["rpc_interface"])
    documented = (rule[0] != "")[rule[1]]
    proto = coded(flows["proto"])  # codes into the few distinct values: no text per flow
    icmp_type = flows["icmp_type"]
    service = _services(rule, flows["dst_port"].to_numpy(), rpc_interface, catalogue)

    control = control_mask(proto, icmp_type)
    state = coded(flows["state"])
    silent_udp = isin(state, ("udp_unanswered",)) & documented & isin(
        service, options.udp_request_services)
    verdict = np.select(
        [control, isin(state, ("rejected",)), isin(state, ("unanswered",)), silent_udp, documented],
        ["expected", "rejected", "unanswered", "unanswered", "expected"],
        default="unexpected",
    )
    roles = {side: coded(match[f"{side}_role"]) for side in ("src", "dst")}  # once, for both uses
    local = {"src_role": roles["src"], "dst_role": roles["dst"],
             "documented": documented, "proto": proto, "icmp_type": icmp_type,
             "dst_port": flows["dst_port"].to_numpy()}
    verdict = cut_off_verdicts(flows, local_verdicts(local, verdict))
    service = np.where(control, "icmp", service).astype(object)

    for side in ("src", "dst"):
        new[f"{side}_role"] = _plain_roles(match[f"{side}_role"], roles[side])
        version = np.append(per_address["version"], "")  # code -1 (no address): no version
        new[f"{side}_version"] = (version, side_codes[side])
    new.update(rule=rule, service=service, rpc_interface=rpc_interface,
               rpc_evidence=rpc_evidence, documented=documented, verdict=coded_text(verdict))
    return _audited_frame(flows, new)


def _plain_roles(values: np.ndarray, pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """versions.plain_roles of a role per flow, from its `coded` pair (each distinct role made
    plain once, no second factorize of the flows); a missing role takes plain_roles' own way."""
    codes, uniques = pair
    if (codes < 0).any():
        return plain_roles(pd.Series(values, dtype=object)).to_numpy(dtype=object)
    return plain_roles(pd.Series(np.asarray(uniques, dtype=object), dtype=object)).to_numpy(
        dtype=object)[codes]


def _path_ends(prepared, by_ip: pd.DataFrame, row: np.ndarray, side_codes: dict) -> dict:
    """Per path: the role sets of its two ends and their first roles (NaN for an address
    without a host row), from the address codes of the path's first flow."""
    first = prepared.path_first
    if first is None:  # a PreparedFlows made by hand: the first flow of each path
        first = np.full(len(prepared.paths), len(prepared.path_id), dtype=np.int64)
        np.minimum.at(first, prepared.path_id, np.arange(len(prepared.path_id)))
    ends = {}
    for what, column in (("roles", "roles"), ("first", "first_role")):
        per_address = np.where(row >= 0, by_ip[column].to_numpy(dtype=object)[row], np.nan)
        per_address = np.append(per_address, np.nan)  # code -1 (no address) takes the NaN
        for side, codes in side_codes.items():
            ends[f"{side}_{what}"] = per_address[codes[first]]
    return ends


def _address_versions(by_ip: pd.DataFrame, row: np.ndarray) -> np.ndarray:
    """Per distinct address, its host's Exchange version ('' when none)."""
    if "version" not in by_ip:
        return np.full(len(row), "", dtype=object)
    version = by_ip["version"].to_numpy(dtype=object)[row]
    return np.where(row >= 0, version, "").astype(object)


def rpc_annotation(flows: pd.DataFrame, endpoints: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per flow (in the flows' order), the RPC interface and evidence discovery learned for its
    server port (rpc_interface, rpc_evidence); None when discovery did not run. It depends on
    the flows and the endpoints only, not on inventory or catalogue: the observation cache keeps
    it, so a re-audit with another inventory does not join the endpoints again."""
    if endpoints is None:
        return None
    from auditor.dissect.rpc import annotate_flows

    narrow = flows[[c for c in _RPC_ANNOTATION_COLUMNS if c in flows.columns]]
    annotated = annotate_flows(narrow, endpoints)
    return pd.DataFrame({c: annotated[c].to_numpy(dtype=object)
                         for c in ("rpc_interface", "rpc_evidence")})


def _annotation_arrays(flows: pd.DataFrame, endpoints: pd.DataFrame | None,
                       annotation: pd.DataFrame | None):
    """rpc_annotation's two columns as object arrays ('' and the text column '' when discovery
    did not run)."""
    if endpoints is None:
        return np.full(len(flows), "", dtype=object), ""
    if annotation is None or len(annotation) != len(flows):
        annotation = rpc_annotation(flows, endpoints)
    return (annotation["rpc_interface"].to_numpy(dtype=object),
            annotation["rpc_evidence"].to_numpy(dtype=object))


def _services(rule: tuple, dst_port: np.ndarray, rpc_interface: tuple, catalogue) -> np.ndarray:
    """Service family per flow: its rule's, else 'rpc' with an RPC interface, else the port's
    (`rule` and `rpc_interface`: coded_text pairs)."""
    services = {r.id: r.service for r in catalogue.rules}
    rules, rule_codes = rule
    by_rule = np.array([services.get(r) for r in rules], dtype=object)[rule_codes]
    port_codes, ports = pd.factorize(np.asarray(dst_port, dtype=np.int64))
    by_port = np.array([PORT_SERVICES.get(int(p)) for p in ports] + [None],
                       dtype=object)[port_codes]
    no_interface = (rpc_interface[0] == "")[rpc_interface[1]]
    by_port = np.where(no_interface, by_port, "rpc")
    out = np.where(pd.isna(by_rule), by_port, by_rule)
    return np.where(pd.isna(out), "", out).astype(object)


def control_mask(proto, icmp_type) -> np.ndarray:
    """Per flow, whether it is an ICMP error (ICMP_CONTROL), from its proto and icmp_type."""
    types = pd.Series(icmp_type).to_numpy(dtype=float, na_value=np.nan)
    control = np.zeros(len(types), dtype=bool)
    for name, errors in ICMP_CONTROL.items():
        control |= isin(proto, (name,)) & np.isin(types, errors)
    return control


def control_messages(flows: pd.DataFrame) -> pd.Series:
    """True for ICMP errors: they answer other flows (whose refusal is reported there), so they are
    no findings, and pictures and rule requests leave them out."""
    return pd.Series(control_mask(flows["proto"], flows["icmp_type"]), index=flows.index)


def without_control_messages(flows: pd.DataFrame) -> pd.DataFrame:
    """Flows without ICMP errors: those answer other flows, which already show the refusal."""
    if flows.empty or "icmp_type" not in flows:
        return flows
    return flows[~control_messages(flows).to_numpy()]


def _audited_frame(flows: pd.DataFrame, new: dict) -> pd.DataFrame:
    """The flows' own columns and the audit's, in schema order, with the flows' index."""
    data = {name: flows[name] for name in column_names(FLOW_COLUMNS)}
    for name in column_names(AUDIT_FLOW_COLUMNS)[len(data):]:
        values = new[name]
        if isinstance(values, tuple):
            values = text_column(*values)
        if name in _OBJECT_COLUMNS or (name == "rpc_evidence" and not isinstance(values, str)):
            values = pd.Series(values, index=flows.index, dtype=object)
        data[name] = values
    return pd.DataFrame(data, index=flows.index, copy=False)


def coded_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An object array as (distinct values, then None; per value its code): codes index the
    distinct values, missing values take the trailing None."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return np.append(np.asarray(uniques, dtype=object), None), codes


def text_column(values: np.ndarray, codes: np.ndarray):
    """values[codes] (code -1: the last value) as the text column pandas would infer from that
    object array, built by one Arrow take instead of converting every value."""
    import pyarrow as pa

    values = np.asarray(values, dtype=object)
    if not len(codes) or not all(v is None or isinstance(v, str) for v in values):
        return values[codes]  # pandas infers what it always did
    codes = np.where(codes < 0, codes + len(values), codes)
    taken = pa.array(list(values), type=pa.large_string()).take(pa.array(codes))
    return pd.array(taken, dtype=_text_dtype())


def _text_dtype():
    """The dtype pandas infers for text (pandas 3: str, backed by Arrow large strings)."""
    return pd.Series(np.array(["text"], dtype=object)).dtype
