"""Compare two audit documents (`auditor audit --format json`): what changed between runs.

Findings are matched per path (src_ip, dst_ip, proto, dst_port; plus the rule for role-level
findings with no addresses) and kind. A path whose finding changed kind (rejected then
unanswered) is `changed`, as is one whose severity or flow count changed; the others are `new`
or `resolved`. Rules are compared by status, RPC endpoints per (server, proto, interface): an
interface whose ports differ has moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from auditor.errors import AuditDocumentError
from auditor.schema import DIFF_FINDING_COLUMNS, DIFF_RPC_COLUMNS, DIFF_RULE_COLUMNS, typed_frame

DIFF_SCHEMA_VERSION = "1.0"
_FINDING_NEEDS = ("kind", "src_ip", "dst_ip", "proto", "dst_port", "flows")


@dataclass(frozen=True)
class AuditDiff:
    """Findings new, resolved or changed; rules whose status changed; RPC endpoints that moved."""

    findings: pd.DataFrame  # schema.DIFF_FINDING_COLUMNS
    rules: pd.DataFrame  # schema.DIFF_RULE_COLUMNS
    rpc: pd.DataFrame  # schema.DIFF_RPC_COLUMNS
    old: str = ""
    new: str = ""
    summary: dict = field(default_factory=dict)


# ---- reading ----


def _check_list(doc: dict, key: str, needs: tuple[str, ...], where: str) -> None:
    items = doc.get(key)
    if not isinstance(items, list):
        raise AuditDocumentError(f"{where}: not an audit document: '{key}' is missing or not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise AuditDocumentError(f"{where}: not an audit document: {key}[{i}] is not an object")
        missing = [n for n in needs if n not in item]
        if missing:
            raise AuditDocumentError(f"{where}: not an audit document: {key}[{i}] has no "
                                     f"{', '.join(repr(m) for m in missing)}")


def parse_audit_document(text: str, path: str = "<audit>") -> dict:
    """Parse and check an audit JSON document; errors name path:line."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuditDocumentError(f"{path}:{exc.lineno}: not JSON ({exc.msg}, column {exc.colno})"
                                 ) from None
    where = f"{path}:1"
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise AuditDocumentError(f"{where}: not an audit document (no schema_version; write one "
                                 "with `auditor audit --format json`)")
    if str(doc["schema_version"]).split(".")[0] not in ("1", "2"):
        raise AuditDocumentError(f"{where}: audit schema_version {doc['schema_version']!r} is not "
                                 "supported (1.x or 2.x)")
    _check_list(doc, "findings", _FINDING_NEEDS, where)
    _check_list(doc, "rules", ("id", "status"), where)
    if "rpc" in doc:
        _check_list(doc, "rpc", ("server_ip", "port", "proto"), where)
    return doc


def load_audit_document(path: str | Path) -> dict:
    """Read an `auditor audit --format json` document; errors name path:line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditDocumentError(f"{path}:1: cannot read ({exc})") from None
    return parse_audit_document(text, str(path))


# ---- comparing ----


def _path(f: dict) -> tuple:
    rule = f.get("rule") or "" if not (f.get("src_ip") or f.get("dst_ip")) else ""
    port = f.get("dst_port")
    return (f.get("src_ip") or "", f.get("dst_ip") or "", f.get("proto") or "",
            -1 if port is None else int(port), rule)


def _finding_row(status: str, new: dict | None, old: dict | None, changes: str) -> dict:
    base = new if new is not None else old
    port = base.get("dst_port")
    return {
        "status": status, "kind": (new or {}).get("kind", ""), "old_kind": (old or {}).get("kind", ""),
        "severity": (new or {}).get("severity", "") or "",
        "old_severity": (old or {}).get("severity", "") or "",
        "src_ip": base.get("src_ip") or "", "src_name": base.get("src_name") or "",
        "dst_ip": base.get("dst_ip") or "", "dst_name": base.get("dst_name") or "",
        "proto": base.get("proto") or "", "dst_port": pd.NA if port is None else int(port),
        "rule": base.get("rule") or "", "documented": bool(base.get("documented", False)),
        "flows": int((new or {}).get("flows", 0) or 0),
        "old_flows": int((old or {}).get("flows", 0) or 0), "changes": changes,
    }


def _changes(old: dict, new: dict) -> str:
    parts = []
    for key in ("kind", "severity", "flows"):
        if old.get(key) != new.get(key):
            parts.append(f"{key} {old.get(key)} -> {new.get(key)}")
    return "; ".join(parts)


def diff_findings(old: list[dict], new: list[dict]) -> pd.DataFrame:
    """New, resolved and changed findings between two audits' finding lists."""
    def index(items):
        out: dict[tuple, dict[str, dict]] = {}
        for f in items:
            out.setdefault(_path(f), {})[f["kind"]] = f
        return out

    before, after = index(old), index(new)
    rows = []
    for path in sorted(set(before) | set(after)):
        was, now = dict(before.get(path, {})), dict(after.get(path, {}))
        for kind in sorted(set(was) & set(now)):
            change = _changes(was[kind], now[kind])
            if change:
                rows.append(_finding_row("changed", now[kind], was[kind], change))
            del was[kind], now[kind]
        # one finding left on each side of the same path: its kind changed
        while was and now:
            k_old, k_new = sorted(was)[0], sorted(now)[0]
            rows.append(_finding_row("changed", now.pop(k_new), was.pop(k_old),
                                     _changes(before[path][k_old], after[path][k_new])))
        rows += [_finding_row("new", f, None, "") for f in now.values()]
        rows += [_finding_row("resolved", None, f, "") for f in was.values()]
    frame = typed_frame(rows, DIFF_FINDING_COLUMNS)
    rank = {"new": 0, "changed": 1, "resolved": 2}
    return frame.iloc[sorted(range(len(frame)), key=lambda i: rank[frame["status"].iloc[i]])
                      ].reset_index(drop=True)


def diff_rules(old: list[dict], new: list[dict]) -> pd.DataFrame:
    """Rules newly observed, newly missing, or whose status otherwise changed."""
    was = {r["id"]: r["status"] for r in old}
    now = {r["id"]: r["status"] for r in new}
    rows = []
    for rid in sorted(set(was) | set(now)):
        a, b = was.get(rid, ""), now.get(rid, "")
        if a == b:
            continue
        if b == "observed":
            change = "newly_observed"
        elif b == "missing":
            change = "newly_missing"
        elif a == "observed":
            change = "no_longer_observed"
        elif not b:
            change = "removed"
        else:
            change = "status_changed"
        rows.append({"id": rid, "change": change, "old_status": a, "new_status": b})
    return typed_frame(rows, DIFF_RULE_COLUMNS)


def _ports_by_interface(items: list[dict]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for e in items:
        uuid = e.get("interface_uuid") or ""
        if not uuid:
            continue  # an endpoint of unknown interface cannot be followed across runs
        key = (e["server_ip"], e["proto"], uuid)
        slot = out.setdefault(key, {"ports": set(), "interface": e.get("interface") or ""})
        slot["ports"].add(int(e["port"]))
    return out


def diff_rpc(old: list[dict], new: list[dict]) -> pd.DataFrame:
    """RPC interfaces served on other ports than before (moved), per server and proto."""
    was, now = _ports_by_interface(old), _ports_by_interface(new)
    rows = []
    for key in sorted(set(was) & set(now)):
        a, b = was[key]["ports"], now[key]["ports"]
        if a != b:
            rows.append({
                "server_ip": key[0], "proto": key[1], "interface_uuid": key[2],
                "interface": now[key]["interface"] or was[key]["interface"],
                "old_ports": ";".join(map(str, sorted(a))), "new_ports": ";".join(map(str, sorted(b))),
            })
    return typed_frame(rows, DIFF_RPC_COLUMNS)


def diff_audits(old: dict, new: dict, old_name: str = "", new_name: str = "") -> AuditDiff:
    """Compare two audit documents (as parsed by load_audit_document)."""
    findings = diff_findings(old.get("findings", []), new.get("findings", []))
    rules = diff_rules(old.get("rules", []), new.get("rules", []))
    rpc = diff_rpc(old.get("rpc", []), new.get("rpc", []))
    summary = {
        "findings": {s: int((findings["status"] == s).sum()) for s in ("new", "resolved", "changed")},
        "rules": {c: int((rules["change"] == c).sum()) for c in
                  ("newly_observed", "newly_missing", "no_longer_observed")},
        "rpc_moved": len(rpc),
    }
    return AuditDiff(findings=findings, rules=rules, rpc=rpc, old=old_name, new=new_name,
                     summary=summary)


def diff_to_dict(diff: AuditDiff) -> dict:
    """The JSON document of a diff (see data/diff-result.schema.json)."""
    from auditor.render.json_tables import records
    from auditor.schema import DIFF_FINDING_COLUMNS, DIFF_RPC_COLUMNS, DIFF_RULE_COLUMNS

    findings = diff.findings.assign(dst_port=pd.Series(
        [None if pd.isna(v) else int(v) for v in diff.findings["dst_port"]], dtype=object))
    return {
        "schema_version": DIFF_SCHEMA_VERSION, "old": diff.old, "new": diff.new,
        "summary": diff.summary,
        "findings": records(findings, DIFF_FINDING_COLUMNS, tuple(findings.columns)),
        "rules": records(diff.rules, DIFF_RULE_COLUMNS, tuple(diff.rules.columns)),
        "rpc_moved": records(diff.rpc, DIFF_RPC_COLUMNS, tuple(diff.rpc.columns)),
    }


def diff_json_schema() -> dict:
    """The JSON Schema of the diff document."""
    from importlib import resources

    text = resources.files("auditor").joinpath("data/diff-result.schema.json").read_text("utf-8")
    return json.loads(text)
