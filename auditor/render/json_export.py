"""The audit's JSON contract: a versioned document described by `data/audit-result.schema.json`."""

from __future__ import annotations

import json
from importlib import resources

from auditor.audit.verdicts import AuditResult
from auditor.render.json_tables import records, records_json
from auditor.schema import (
    FINDING_COLUMNS,
    RPC_ENDPOINT_COLUMNS,
    RPC_RANGE_COLUMNS,
    RULE_STATUS_COLUMNS,
)

SCHEMA_VERSION = "2.0"  # 2.0: list fields are arrays (rules source/destination/ports, rpc_ranges)

FINDING_FIELDS = (
    "kind", "severity", "src_ip", "dst_ip", "proto", "dst_port", "src_name", "dst_name", "src_role",
    "dst_role", "documented", "rule", "service", "flows", "packets", "bytes", "first_seen",
    "last_seen", "detail", "orientation", "src_name_source", "dst_name_source", "display_filter",
    "src_version", "dst_version",
)
RULE_FIELDS = ("id", "status", "service", "source", "destination", "proto", "ports", "expected",
               "flows", "bytes", "host_pairs")
RPC_FIELDS = ("server_ip", "port", "proto", "interface_uuid", "interface", "evidence", "flows",
              "clients", "use")


def result_to_dict(result: AuditResult) -> dict:
    """The JSON document of an audit (schema_version, captures, summary, findings, rules, rpc)."""
    return _document(result, records(result.findings, FINDING_COLUMNS, FINDING_FIELDS))


def result_to_json(result: AuditResult) -> str:
    """The JSON document as text: json.dumps of result_to_dict, byte for byte, with the findings
    made a chunk of rows at a time (json_tables.records_json) instead of a dict per finding."""
    # no indent: only then does the json module use its C encoder (5x faster on big audits)
    parts = [f"{json.dumps(key)}: " + (
        records_json(result.findings, FINDING_COLUMNS, FINDING_FIELDS) if key == "findings"
        else json.dumps(value, ensure_ascii=False)) for key, value in _document(result).items()]
    return "{" + ", ".join(parts) + "}\n"


def _document(result: AuditResult, findings: list | None = None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "captures": [
            {
                "name": c.name, "format": c.format, "records": int(c.records),
                "ip_packets": int(c.ip_packets), "non_ip": int(c.non_ip),
                "tunnelled": int(c.tunnelled),
                "skipped": {k: int(v) for k, v in c.skipped.items()},
            }
            for c in result.captures
        ],
        "summary": dict(result.summary),
        "warnings": list(result.warnings),
        "findings": findings,
        "rules": records(result.rules, RULE_STATUS_COLUMNS, RULE_FIELDS),
        "rpc": records(result.rpc, RPC_ENDPOINT_COLUMNS, RPC_FIELDS),
        "rpc_ranges": records(result.rpc_ranges, RPC_RANGE_COLUMNS),
    }


def json_schema() -> dict:
    """The JSON Schema of the audit document."""
    text = resources.files("auditor").joinpath("data/audit-result.schema.json").read_text("utf-8")
    return json.loads(text)
