"""Verify a firewall ruleset against observed traffic: what it permits, what it would block.

Every audited flow is tested against the ruleset's rows in order (first match decides, then an
implicit deny). A flow is `permitted`, `would_block` (the ruleset covers one of its ends but no
row allows it), `outside_scope` (no row names either end), or `related` (an ICMP error answering
another flow, which a stateful firewall passes with that flow). Tests run once per path
(src_ip, dst_ip, proto, dst_port, and the ICMP type), so a million flows cost no more than their
distinct paths.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from importlib import resources

import pandas as pd

from auditor.catalogue.icmp import ICMP_PROTOS
from auditor.firewall.requests import _SUCCESS
from auditor.firewall.ruleset import ANY, PROTO_NUMBERS, Ruleset, RulesetRow
from auditor.flows.protocols import QUERY_OF, icmp_type_name
from auditor.schema import VERIFY_PATH_COLUMNS, VERIFY_UNUSED_COLUMNS, empty_frame, typed_frame

VERIFY_SCHEMA_VERSION = "1.0"
VERIFY_VERDICTS = ("permitted", "would_block", "outside_scope", "related")
_PORTED = ("tcp", "udp")


@dataclass(frozen=True)
class VerifyResult:
    """The verdict of every observed path, the unused ruleset rows, coverage and counts."""

    paths: pd.DataFrame  # schema.VERIFY_PATH_COLUMNS, documented would-blocks first
    unused: pd.DataFrame  # schema.VERIFY_UNUSED_COLUMNS
    coverage: float  # permitted share of observed, successful, documented flows (1.0 when none)
    summary: dict = field(default_factory=dict)
    ruleset: str = ""

    @property
    def would_block(self) -> pd.DataFrame:
        """The paths the ruleset would block (documented ones first)."""
        return self.paths[self.paths["verdict"] == "would_block"].reset_index(drop=True)


def _address(text: str):
    try:
        addr = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped or addr


def _contains(nets, addr) -> bool:
    if nets is None:
        return True
    return addr is not None and any(addr.version == n.version and addr in n for n in nets)


def _proto_matches(row: RulesetRow, proto: str) -> bool:
    return row.proto in (ANY, proto) or row.proto == PROTO_NUMBERS.get(proto)


def _port_matches(row: RulesetRow, proto: str, port: int) -> bool:
    if not row.ports or proto not in _PORTED:
        return True
    return any(lo <= port <= hi for lo, hi in row.ports)


def _type_matches(row: RulesetRow, proto: str, icmp_type: int | None) -> bool:
    """A row naming ICMP types takes an ICMP path of one of them, or of a reply to one."""
    if not row.icmp_types or proto not in ICMP_PROTOS or icmp_type is None:
        return True
    query = QUERY_OF[proto].get(icmp_type, icmp_type)
    return icmp_type in row.icmp_types or query in row.icmp_types


def first_match(ruleset: Ruleset, src_ip: str, dst_ip: str, proto: str, dst_port: int,
                icmp_type: int | None = None):
    """The first ruleset row matching one path (for ICMP, of one type), or None."""
    src, dst = _address(src_ip), _address(dst_ip)
    for row in ruleset.rows:
        if (_proto_matches(row, proto) and _port_matches(row, proto, int(dst_port))
                and _type_matches(row, proto, icmp_type)
                and _contains(row.sources, src) and _contains(row.destinations, dst)):
            return row
    return None


def _in_scope(ruleset: Ruleset, addresses) -> bool:
    """Does some row name one of these addresses (or is some row open to any address)?"""
    for row in ruleset.rows:
        for nets in (row.sources, row.destinations):
            if nets is None:
                continue
            if any(a is not None and _contains(nets, a) for a in addresses):
                return True
    # A ruleset naming no address at all (any -> any) covers everything.
    return all(r.sources is None and r.destinations is None for r in ruleset.rows) and bool(
        ruleset.rows)


def _related(flows: pd.DataFrame) -> pd.Series:
    """ICMP errors that answer other flows: the audit calls them expected with no rule."""
    return (flows["proto"].isin(["icmp", "icmpv6"]) & (flows["rule"] == "")
            & (flows["verdict"] == "expected"))


def verify_flows(ruleset: Ruleset, flows: pd.DataFrame, catalogue=None) -> VerifyResult:
    """Test every audited flow (schema.AUDIT_FLOW_COLUMNS) against the ruleset."""
    rules = {r.id: r for r in catalogue.rules} if catalogue is not None else {}
    if flows.empty:
        return _result(ruleset, empty_frame(VERIFY_PATH_COLUMNS), {}, 1.0, 0, 0)
    work = flows.assign(
        _related=_related(flows).to_numpy(),
        _success=flows["state"].isin(_SUCCESS).to_numpy(),
        _port=flows["dst_port"].astype(int).to_numpy(),
        _type=pd.to_numeric(flows["icmp_type"]).fillna(-1).astype(int)
        .where(flows["proto"].isin(ICMP_PROTOS), -1).to_numpy(),
    )
    keys = ["src_ip", "dst_ip", "proto", "_port", "_type"]
    rows, used = [], {}
    for (src_ip, dst_ip, proto, port, icmp_type), grp in work.groupby(keys, sort=False):
        related = bool(grp["_related"].all())
        icmp_type = int(icmp_type) if icmp_type >= 0 else None
        row = None if related else first_match(ruleset, src_ip, dst_ip, proto, port, icmp_type)
        if related:
            verdict = "related"
        elif row is not None:
            verdict = "permitted" if row.action == "allow" else "would_block"
        elif _in_scope(ruleset, (_address(src_ip), _address(dst_ip))):
            verdict = "would_block"
        else:
            verdict = "outside_scope"
        if row is not None:
            used[row.line] = used.get(row.line, 0) + len(grp)
        rule_id = next((r for r in grp["rule"] if r), "")
        documented = bool(grp["documented"].any())
        rows.append({
            "verdict": verdict, "src_ip": src_ip, "src_name": _first(grp["src_name"]),
            "dst_ip": dst_ip, "dst_name": _first(grp["dst_name"]), "proto": proto,
            "dst_port": int(port), "flows": len(grp),
            "successful_flows": int(grp["_success"].sum()),
            "documented": documented, "rule": rule_id,
            "breaks": _breaks(rule_id, rules) if verdict == "would_block" and documented else "",
            "ruleset_line": row.line if row is not None else pd.NA,
            "first_seen": grp["first_seen"].min(),
            "icmp_type": "" if icmp_type is None else icmp_type_name(proto, icmp_type),
        })
    paths = _order(typed_frame(rows, VERIFY_PATH_COLUMNS))
    judged = paths[(paths["verdict"] != "related") & paths["documented"]]
    denominator = int(judged["successful_flows"].sum())
    permitted = int(judged.loc[judged["verdict"] == "permitted", "successful_flows"].sum())
    coverage = permitted / denominator if denominator else 1.0
    return _result(ruleset, paths, used, coverage, permitted, denominator)


def _breaks(rule_id: str, rules: dict) -> str:
    rule = rules.get(rule_id)
    if rule is None:
        return rule_id
    return f"{rule_id}: {rule.description}"


def _first(values) -> str:
    return next((str(v) for v in values if isinstance(v, str) and v), "")


def _address_key(text: str) -> tuple:
    addr = _address(text)
    return (0, addr.version, int(addr)) if addr is not None else (1, 0, 0)


def _order(paths: pd.DataFrame) -> pd.DataFrame:
    """would_block first, documented before undocumented, then addresses and port."""
    rank = {v: i for i, v in enumerate(VERIFY_VERDICTS)}
    keys = list(zip(
        [0 if v == "would_block" else 1 + rank[v] for v in paths["verdict"]],
        ~paths["documented"], paths["src_ip"].map(_address_key), paths["dst_ip"].map(_address_key),
        paths["proto"], paths["dst_port"], paths["icmp_type"], strict=True,
    ))
    order = sorted(range(len(paths)), key=keys.__getitem__)
    return paths.iloc[order].reset_index(drop=True)


def _result(ruleset, paths, used, coverage, permitted, denominator) -> VerifyResult:
    unused = [{"ruleset_line": r.line, "source": r.source_text, "destination": r.destination_text,
               "proto": r.proto, "ports": r.ports_text, "action": r.action,
               "icmp_types": r.icmp_types_text}
              for r in ruleset.rows if r.line not in used]
    unused_frame = typed_frame(unused, VERIFY_UNUSED_COLUMNS) if unused else empty_frame(
        VERIFY_UNUSED_COLUMNS)
    flows_by = {v: int(paths.loc[paths["verdict"] == v, "flows"].sum()) for v in VERIFY_VERDICTS}
    paths_by = {v: int((paths["verdict"] == v).sum()) for v in VERIFY_VERDICTS}
    blocked = paths[paths["verdict"] == "would_block"]
    summary = {
        "ruleset_rows": len(ruleset.rows),
        "unused_rows": len(unused),
        "paths": paths_by,
        "flows": flows_by,
        "documented_paths_blocked": int(blocked["documented"].sum()),
        "documented_successful_flows": denominator,
        "documented_successful_flows_permitted": permitted,
        "coverage": coverage,
    }
    return VerifyResult(paths=paths, unused=unused_frame, coverage=coverage, summary=summary,
                        ruleset=ruleset.path)


# ---- JSON ----


def verify_to_dict(result: VerifyResult, captures=()) -> dict:
    """The JSON document of a verification (see data/verify-result.schema.json)."""
    from auditor.render.json_tables import records
    from auditor.schema import VERIFY_PATH_COLUMNS, VERIFY_UNUSED_COLUMNS

    fields = ("src_ip", "src_name", "dst_ip", "dst_name", "proto", "dst_port", "icmp_type",
              "flows", "documented", "rule", "breaks", "ruleset_line", "first_seen")
    blocked = result.would_block
    blocked = blocked.assign(ruleset_line=pd.Series(
        [None if pd.isna(v) else int(v) for v in blocked["ruleset_line"]], dtype=object))
    return {
        "schema_version": VERIFY_SCHEMA_VERSION,
        "ruleset": result.ruleset,
        "captures": [str(c) for c in captures],
        "coverage": result.coverage,
        "summary": result.summary,
        "would_block": records(blocked, VERIFY_PATH_COLUMNS, fields),
        "outside_scope": records(result.paths[result.paths["verdict"] == "outside_scope"],
                                 VERIFY_PATH_COLUMNS, fields[:9]),
        "unused": records(result.unused, VERIFY_UNUSED_COLUMNS, tuple(result.unused.columns)),
    }


def verify_json_schema() -> dict:
    """The JSON Schema of the verification document."""
    text = resources.files("auditor").joinpath("data/verify-result.schema.json").read_text("utf-8")
    return json.loads(text)
