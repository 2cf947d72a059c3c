"""Compare observed flows with the catalogue: verdict per flow, findings, rule status."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from auditor.audit.capture_end import settle_findings, span_summary
from auditor.audit.classify import (  # noqa: F401  (control_messages: part of the API here)
    classify,
    control_messages,
    without_control_messages,
)
from auditor.audit.filters import display_filter, display_filters
from auditor.audit.hosts import host_view
from auditor.audit.rule_match import distinct_rows
from auditor.audit.scope import cap_local_severity, with_scope_roles
from auditor.audit.versions import finish, plan_versions
from auditor.audit.why import rule_notes
from auditor.flows.orient import orientation_note, orientation_rank
from auditor.flows.protocols import service_place
from auditor.options import AuditOptions
from auditor.schema import (
    FINDING_COLUMNS,
    FLOW_COLUMNS,
    ORIENTATIONS,
    RULE_STATUS_COLUMNS,
    column_names,
    empty_frame,
    typed_frame,
)


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit produced; every frame follows its schema in `schema.py`."""

    flows: pd.DataFrame  # schema.AUDIT_FLOW_COLUMNS
    findings: pd.DataFrame  # schema.FINDING_COLUMNS
    rules: pd.DataFrame  # schema.RULE_STATUS_COLUMNS
    rpc: pd.DataFrame  # rpc endpoints (schema.RPC_ENDPOINT_COLUMNS)
    rpc_ranges: pd.DataFrame  # per-server dynamic range summary (rpc.dynamic_ranges)
    hosts: pd.DataFrame  # ip, name, roles (";"-separated), flows, bytes, findings, name_source
    captures: tuple = ()  # capture.CaptureFile of every file read
    warnings: tuple[str, ...] = ()  # what was skipped and why (one line each)
    summary: Mapping[str, object] = field(default_factory=dict)  # counts per finding kind etc.


_ROLE_SEVERITY_HIGH = {"internet", "unknown", "edge_transport"}
_ROLE_SEVERITY_MEDIUM = {"client", "voip_gateway", "admin", "ocs"}


def audit_flows(
    flows: pd.DataFrame,
    inventory,
    catalogue,
    *,
    rpc_endpoints: pd.DataFrame | None = None,
    names: pd.DataFrame | None = None,
    options: AuditOptions | None = None,
    prepared: PreparedFlows | None = None,
    rpc_binds: pd.DataFrame | None = None,
    rpc_annotation: pd.DataFrame | None = None,
) -> AuditResult:
    """Audit a flow table against an inventory and a catalogue (`rpc_binds`: RpcFacts.binds;
    `rpc_annotation`: classify.rpc_annotation of these flows, when known already)."""
    from auditor.catalogue.loader import rule_ports_frame

    options = options or AuditOptions()
    flows = flows if flows is not None else empty_frame(FLOW_COLUMNS)
    prepared = prepared if prepared is not None else prepare_flows(flows, inventory)
    plan = plan_versions(inventory, catalogue)  # each flow judged by its ends' versions
    inventory, catalogue = plan.inventory, plan.catalogue
    hosts = plan.qualify_hosts(_with_capture_names(prepared.hosts, names))
    rpc_ports = _rpc_ports(rpc_endpoints)
    match_table = rule_ports_frame(catalogue, rpc_ports, legacy_rpc_range=options.legacy_rpc_range)
    audited = classify(flows, prepared, hosts, match_table, catalogue, rpc_endpoints, options,
                       rpc_binds, rpc_annotation)
    rules = _rule_status(audited, catalogue, inventory, hosts)
    findings = pd.concat(
        [_flow_findings(audited, catalogue), _missing_findings(audited, rules, catalogue,
                                                               inventory, hosts, options)],
        ignore_index=True,
    )
    findings = _sorted_findings(settle_findings(cap_local_severity(findings), audited, options))
    hosts_seen = host_view(audited, hosts, findings)
    summary = {**_summary(audited, findings, rules), **span_summary(audited, options)}
    return finish(AuditResult(
        flows=audited,
        findings=findings,
        rules=rules,
        rpc=rpc_endpoints if rpc_endpoints is not None else pd.DataFrame(),
        rpc_ranges=pd.DataFrame(),
        hosts=hosts_seen,
        summary=summary,
    ), plan)


def _rpc_ports(endpoints: pd.DataFrame | None) -> dict[str, list[int]]:
    """Server address -> the dynamic TCP ports discovery learned for it."""
    if endpoints is None or endpoints.empty:
        return {}
    tcp = endpoints[(endpoints["proto"] == "tcp") & (endpoints["port"] != 135)]
    return {ip: sorted({int(p) for p in grp["port"]}) for ip, grp in tcp.groupby("server_ip")}


@dataclass(frozen=True)
class PreparedFlows:
    """What the audit derives from flows and inventory alone (no catalogue, no RPC evidence).

    The pipeline computes it while tshark dissects the RPC packets in another thread.
    """

    hosts: pd.DataFrame  # ip, name (inventory), roles (tuple): every address in the flows
    addr_codes: np.ndarray  # per flow, src codes then dst codes, into addr_uniques
    addr_uniques: np.ndarray  # distinct addresses
    path_id: np.ndarray  # per flow, its row in paths
    paths: pd.DataFrame  # distinct (src_ip, dst_ip, proto, dst_port)
    path_first: np.ndarray | None = None  # per path, its first flow


def prepare_flows(flows: pd.DataFrame, inventory) -> PreparedFlows:
    """Roles of every address and the distinct paths of the flows."""
    from auditor.inventory.roles import assign_roles

    codes, uniques = pd.factorize(pd.concat([flows["src_ip"], flows["dst_ip"]], ignore_index=True))
    hosts = assign_roles(inventory, list(uniques))
    hosts = hosts.assign(name=hosts["name"].fillna("").astype(object)).reset_index(drop=True)
    hosts = with_scope_roles(hosts, inventory)
    # paths numbered from the address codes: no second pass over the address text
    n = len(flows)
    path_id, first = distinct_rows(codes[:n], codes[n:], pd.factorize(flows["proto"])[0],
                                   pd.factorize(flows["dst_port"])[0])
    paths = flows[["src_ip", "dst_ip", "proto", "dst_port"]].iloc[first].reset_index(drop=True)
    return PreparedFlows(hosts, codes, np.asarray(uniques, dtype=object), path_id, paths, first)


def _with_capture_names(hosts: pd.DataFrame, names: pd.DataFrame | None) -> pd.DataFrame:
    """Fill names the inventory lacks from what the capture says; `name_source` says which won."""
    from auditor.audit.host_names import name_hosts

    return name_hosts(hosts, names)


def _rule_status(audited, catalogue, inventory, hosts) -> pd.DataFrame:
    """Observed / missing / not_applicable per catalogue rule."""
    stats = _rule_stats(audited)
    rows = []
    for rule in catalogue.rules:
        flows_n = int(stats["flows"].get(rule.id, 0))
        applicable = _applicable(rule, inventory)
        status = "observed" if flows_n else ("missing" if rule.expected and applicable
                                             else "not_applicable")
        rows.append({
            "id": rule.id, "service": rule.service, "source": ";".join(rule.source),
            "destination": ";".join(rule.destination), "proto": rule.proto,
            "ports": ",".join(str(p) for p in rule.ports), "expected": bool(rule.expected),
            "status": status, "flows": flows_n, "bytes": int(stats["bytes"].get(rule.id, 0)),
            "host_pairs": int(stats["host_pairs"].get(rule.id, 0)),
        })
    return typed_frame(rows, RULE_STATUS_COLUMNS)


def _rule_stats(audited: pd.DataFrame) -> dict[str, dict]:
    """flows, bytes and host_pairs (distinct src_ip, dst_ip) per rule id the flows matched."""
    codes, rules = pd.factorize(audited["rule"])
    rules = np.asarray(rules, dtype=object)
    keep = np.flatnonzero((codes >= 0) & np.append(rules != "", False)[codes])
    codes = codes[keep]
    flows = np.bincount(codes, minlength=len(rules))
    volume = np.zeros(len(rules), dtype=np.int64)
    np.add.at(volume, codes, (audited["src_bytes"].to_numpy(dtype=np.int64)
                              + audited["dst_bytes"].to_numpy(dtype=np.int64))[keep])
    _, first = distinct_rows(codes, pd.factorize(audited["src_ip"])[0][keep],
                             pd.factorize(audited["dst_ip"])[0][keep])
    pairs = np.bincount(codes[first], minlength=len(rules))
    seen = np.flatnonzero(flows)
    return {name: {rules[i]: int(values[i]) for i in seen}
            for name, values in (("flows", flows), ("bytes", volume), ("host_pairs", pairs))}


def _applicable(rule, inventory) -> bool:
    """Some inventory entry holds a source role and a *different* one a destination role.

    A network stands for many hosts, so it may be both ends (clients to clients); a single host
    never has to talk to itself (one mailbox server has no DAG peer to replicate to).
    """
    entries = [(f"host:{h.name}", set(h.roles)) for h in inventory.hosts]
    entries += [(f"net:{n.cidr}", set(n.roles)) for n in inventory.networks]
    default = set(getattr(inventory, "default_roles", ()) or ())
    if default:
        entries.append(("net:default", default))
    sources = [key for key, roles in entries if roles & set(rule.source)]
    targets = [key for key, roles in entries if roles & set(rule.destination)]
    return any(s != t or s.startswith("net:") for s in sources for t in targets)


def _severity_for(src_role: pd.Series, dst_role: pd.Series) -> np.ndarray:
    roles = pd.concat([src_role, dst_role], axis=1)
    high = roles.isin(_ROLE_SEVERITY_HIGH).any(axis=1)
    medium = roles.isin(_ROLE_SEVERITY_MEDIUM).any(axis=1)
    return np.select([high, medium], ["high", "medium"], default="low")


# what a flow finding is made of (the rest of the audited flows is not copied for it)
_FINDING_INPUTS = (
    "verdict", "src_ip", "dst_ip", "proto", "dst_port", "src_name", "dst_name", "src_name_source",
    "dst_name_source", "src_role", "dst_role", "documented", "rule", "service", "flow_id",
    "src_packets", "dst_packets", "src_bytes", "dst_bytes", "first_seen", "last_seen", "icmp_type",
    "icmp_code", "rpc_interface", "orientation", "src_version", "dst_version",
)


def _flow_findings(audited: pd.DataFrame, catalogue) -> pd.DataFrame:
    """Aggregate unexpected, rejected and unanswered flows per (kind, src, dst, proto, port)."""
    bad = audited[list(_FINDING_INPUTS)][(audited["verdict"] != "expected").to_numpy()]
    if bad.empty:
        return empty_frame(FINDING_COLUMNS)
    bad = bad.assign(
        kind=bad["verdict"], packets=bad["src_packets"] + bad["dst_packets"],
        bytes=bad["src_bytes"] + bad["dst_bytes"],
        icmp=bad["icmp_type"].astype("string").fillna("") + "/" +
        bad["icmp_code"].astype("string").fillna(""),
        orient_rank=orientation_rank(bad["orientation"]),
    )
    keys = ["kind", "src_ip", "dst_ip", "proto", "dst_port"]
    agg = bad.groupby(keys, as_index=False, sort=False).agg(
        src_name=("src_name", "first"), dst_name=("dst_name", "first"),
        src_name_source=("src_name_source", "first"), dst_name_source=("dst_name_source", "first"),
        src_role=("src_role", "first"), dst_role=("dst_role", "first"),
        documented=("documented", "any"), rule=("rule", "first"), service=("service", "first"),
        flows=("flow_id", "size"), packets=("packets", "sum"), bytes=("bytes", "sum"),
        first_seen=("first_seen", "min"), last_seen=("last_seen", "max"),
        icmp=("icmp", "first"), rpc_interface=("rpc_interface", "first"),
        orient_rank=("orient_rank", "max"),
        src_version=("src_version", "first"), dst_version=("dst_version", "first"),
    )
    agg["orientation"] = np.asarray(ORIENTATIONS, dtype=object)[agg["orient_rank"].to_numpy()]
    blocked = agg["kind"] != "unexpected"
    agg["severity"] = np.where(
        blocked,
        np.where(agg["documented"], "high", "low"),
        _severity_for(agg["src_role"], agg["dst_role"]),
    )
    cols = ["kind", "src_role", "dst_role", "dst_port", "proto", "rpc_interface", "icmp",
            "documented", "rule"]
    detail = functools.cache(_detail)  # findings repeat few details (37 in 4348 on 1M packets)
    agg["detail"] = [detail(*values) for values in zip(*(agg[c].tolist() for c in cols),
                                                       strict=True)]
    agg["detail"] = agg["detail"] + rule_notes(agg, catalogue)
    agg["detail"] = agg["detail"] + orientation_note(agg["orientation"])
    agg["dst_port"] = agg["dst_port"].astype("Int64")
    agg["display_filter"] = display_filters(agg)
    return agg[column_names(FINDING_COLUMNS)]


def _detail(kind, src_role, dst_role, dst_port, proto, rpc_interface, icmp, documented,
            rule) -> str:
    """One sentence explaining a flow finding."""
    path = f"{src_role} -> {dst_role} on {service_place(proto, dst_port, icmp)}"
    rpc = f" (RPC interface {rpc_interface})" if rpc_interface else ""
    if kind == "unexpected":
        return f"no catalogue rule allows {path}{rpc}"
    if kind == "unanswered":
        why = "attempted but never answered"
    elif icmp == "/":
        why = "refused (TCP RST)"
    else:
        prohibited = " administratively prohibited" if icmp in ("3/13", "1/1") else ""
        why = f"refused by ICMP {icmp}{prohibited}"
    doc = f"documented by {rule}: likely firewall block" if documented else "undocumented path"
    return f"{path} {why}; {doc}{rpc}"


def _missing_findings(audited, rules, catalogue, inventory, hosts, options) -> pd.DataFrame:
    """Expected rules never observed (role level), and AD dependencies a seen server never used."""
    by_id = {r.id: r for r in catalogue.rules}
    rows = []
    for rule_row in rules[rules["status"] == "missing"].itertuples(index=False):
        rule = by_id[rule_row.id]
        src_hosts = _hosts_with(inventory, rule.source)
        dst_hosts = _hosts_with(inventory, rule.destination)
        rows.append(_missing_row(
            rule, src_ip=_single(src_hosts), dst_ip=_single(dst_hosts),
            src_role="|".join(rule.source) if not _single(src_hosts) else _role_of(rule.source,
                                                                                    src_hosts),
            dst_role="|".join(rule.destination) if not _single(dst_hosts) else _role_of(
                rule.destination, dst_hosts),
            src_name=_single(src_hosts, "name"), dst_name=_single(dst_hosts, "name"),
            detail=f"{rule.id} ({rule.service}) expected but never observed",
        ))
    seen_ips = set(pd.unique(pd.concat([audited["src_ip"], audited["dst_ip"]], ignore_index=True)))
    users_of = None
    for rule_row in rules[rules["status"] == "observed"].itertuples(index=False):
        rule = by_id[rule_row.id]
        if not (rule.expected and set(rule.destination) & set(options.per_host_missing_roles)):
            continue
        users_of = _rule_users(audited) if users_of is None else users_of
        users = users_of.get(rule.id, set())
        for host in inventory.hosts:
            role = next((r for r in host.roles if r in rule.source), None)
            if role is None:
                continue
            for ip in host.addresses:
                if ip in seen_ips and ip not in users:
                    rows.append(_missing_row(
                        rule, src_ip=ip, dst_ip="", src_role=role,
                        dst_role="|".join(rule.destination), src_name=host.name, dst_name="",
                        detail=f"{host.name} never used {rule.id} ({rule.service}) although "
                        "other hosts did",
                    ))
    if not rows:
        return empty_frame(FINDING_COLUMNS)
    return pd.DataFrame(rows)[column_names(FINDING_COLUMNS)]


def _rule_users(audited: pd.DataFrame) -> dict[str, set]:
    """Per rule id, the source addresses of its expected flows."""
    cols = audited[["rule", "src_ip"]]
    ok = cols[((audited["rule"] != "") & (audited["verdict"] == "expected")).to_numpy()]
    return ok.drop_duplicates().groupby("rule")["src_ip"].agg(set).to_dict()


def _hosts_with(inventory, roles: Sequence[str]) -> list:
    return [h for h in inventory.hosts if set(h.roles) & set(roles)]


def _single(hosts: list, what: str = "ip") -> str:
    if len(hosts) != 1 or len(hosts[0].addresses) != 1:
        return ""
    return hosts[0].name if what == "name" else hosts[0].addresses[0]


def _role_of(roles: Sequence[str], hosts: list) -> str:
    return next(r for r in hosts[0].roles if r in roles)


def _missing_row(rule, *, src_ip, dst_ip, src_role, dst_role, src_name, dst_name, detail) -> dict:
    ports = [p for p in rule.ports if isinstance(p, int) or str(p).isdigit()]
    return {
        "kind": "missing", "severity": rule.severity, "src_ip": src_ip, "dst_ip": dst_ip,
        "proto": rule.proto, "dst_port": int(ports[0]) if len(rule.ports) == 1 and ports else pd.NA,
        "src_name": src_name, "dst_name": dst_name, "src_role": src_role, "dst_role": dst_role,
        "src_name_source": "inventory" if src_name else "",
        "dst_name_source": "inventory" if dst_name else "",
        "documented": True, "rule": rule.id, "service": rule.service, "flows": 0, "packets": 0,
        "bytes": 0, "first_seen": pd.NaT, "last_seen": pd.NaT,
        "detail": f"{detail} (ports {','.join(str(p) for p in rule.ports)}/{rule.proto})",
        "orientation": "",
        "display_filter": display_filter(src_ip, dst_ip, rule.proto,
                                         int(ports[0]) if len(rule.ports) == 1 and ports else None),
        "src_version": "", "dst_version": "",  # filled in by audit.versions.finish
    }


_KIND_ORDER = {k: i for i, k in enumerate(("rejected", "unanswered", "unexpected", "missing",
                                           "cut_off"))}
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


def _sorted_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Most important first: documented blocks, then by severity, kind and volume."""
    if findings.empty:
        return empty_frame(FINDING_COLUMNS)
    findings = typed_frame(findings, FINDING_COLUMNS)
    order = findings.assign(
        _s=findings["severity"].map(_SEVERITY_ORDER), _k=findings["kind"].map(_KIND_ORDER),
        _b=-findings["bytes"],
    ).sort_values(["_s", "_k", "_b", "src_ip", "dst_ip", "dst_port"], kind="stable")
    return order[column_names(FINDING_COLUMNS)].reset_index(drop=True)


def _summary(audited, findings, rules) -> dict[str, object]:
    """Headline counts."""
    return {
        "flows": int(len(audited)),
        "packets": int(audited["src_packets"].sum() + audited["dst_packets"].sum()),
        "bytes": int(audited["src_bytes"].sum() + audited["dst_bytes"].sum()),
        "hosts": int(len(pd.unique(pd.concat([audited["src_ip"], audited["dst_ip"]])))),
        "verdicts": {k: int(v) for k, v in audited["verdict"].value_counts().items()},
        "findings": {k: int((findings["kind"] == k).sum()) for k in _KIND_ORDER},
        "documented_blocks": int(
            (findings["kind"].isin(["rejected", "unanswered"]) & findings["documented"]).sum()),
        "rules": {k: int(v) for k, v in rules["status"].value_counts().items()},
    }
