"""Every JSON output has a shipped JSON Schema, uses JSON types, and real output validates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.render.json_tables import schema_text, schemas, shipped_schema

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"
PUBLIC = ROOT / "fixtures" / "pcaps" / "public"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def run_json(*args) -> object:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def validate(doc, name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(shipped_schema(name))
    jsonschema.validate(doc, shipped_schema(name), cls=jsonschema.Draft202012Validator)


def strings(value):
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)


@pytest.mark.parametrize("name", sorted(schemas()))
def test_shipped_schema_is_the_one_generated_from_schema_py(name):
    # after a column change: python -m auditor.render.json_tables
    shipped = (ROOT / "auditor" / "data" / f"{name}.schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text(schemas()[name])


def test_flows_json_validates_and_uses_numbers_for_numbers():
    doc = run_json("flows", PILOT / "pilot.pcapng", "--format", "json")
    validate(doc, "flows")
    assert len(doc) == 264
    smtp = next(f for f in doc if f["dst_port"] == 25 and f["state"] == "established")
    assert isinstance(smtp["src_packets"], int) and isinstance(smtp["dst_port"], int)
    assert smtp["first_seen"].endswith("Z")


def test_catalogue_json_gives_roles_and_ports_as_lists():
    doc = run_json("catalogue", "--format", "json")
    validate(doc, "catalogue")
    t02 = next(r for r in doc if r["id"] == "T02-hub-edge-smtp")
    assert t02["source"] == ["hub_transport"] and t02["destination"] == ["edge_transport"]
    assert t02["ports"] == [25]
    rpc = next(r for r in doc if "rpc-dynamic" in r["ports"])
    assert 135 in rpc["ports"] or all(isinstance(p, str) for p in rpc["ports"])
    assert not any(";" in s for r in doc for s in r["source"] + r["destination"])


def test_firewall_json_validates_with_port_lists():
    doc = run_json("firewall", "--inventory", PILOT / "inventory.yaml", "--format", "json")
    validate(doc, "firewall")
    # ICMP rules have types, not ports
    assert doc and all(isinstance(r["ports"], list)
                       and (r["ports"] or r["proto"] in ("icmp", "icmpv6")) for r in doc)
    assert any(25 in r["ports"] for r in doc)


@needs_tshark
def test_rpc_json_validates_and_names_the_netlogon_endpoint():
    doc = run_json("rpc", PUBLIC / "dcerpc_msnrpc.pcapng", "--format", "json")
    validate(doc, "rpc")
    ports = {(e["server_ip"], e["port"]) for e in doc["endpoints"]}
    assert ("192.168.122.17", 49676) in ports
    assert all(isinstance(e["captures"], list) for e in doc["endpoints"])


@needs_tshark
def test_roles_json_validates_and_holds_the_proposed_hosts():
    doc = run_json("roles", PILOT / "pilot.pcapng", "--format", "json")
    validate(doc, "roles")
    roles = {role for h in doc["hosts"] for role in h["roles"]}
    assert "domain_controller" in roles
    assert all(isinstance(e["confidence"], float) for e in doc["evidence"])


@needs_tshark
def test_audit_json_lists_are_arrays():
    doc = run_json("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml",
                   "--format", "json")
    assert doc["schema_version"] == "2.0"
    rule = next(r for r in doc["rules"] if r["id"] == "T02-hub-edge-smtp")
    assert rule["source"] == ["hub_transport"] and rule["ports"] == [25]
    for r in doc["rpc_ranges"]:
        assert isinstance(r["interfaces"], list) and isinstance(r["outside_ports"], list)


def test_no_list_column_reaches_json_as_joined_text():
    doc = run_json("catalogue", "--format", "json")
    list_fields = [c.name for c in __import__("auditor.schema").schema.RULE_COLUMNS if c.sep]
    assert set(list_fields) == {"source", "destination", "ports", "versions", "source_versions",
                                "destination_versions", "interfaces", "icmp_types"}
    assert not [s for r in doc for f in list_fields for s in strings(r[f]) if ";" in s]
