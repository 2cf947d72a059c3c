"""`auditor diff`: two audits of the pilot, the second with a changed inventory."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from auditor import audit_captures, load_catalogue, load_inventory, result_to_dict
from auditor.audit.diff import diff_audits, diff_json_schema, diff_to_dict, parse_audit_document
from auditor.cli import cli
from auditor.errors import AuditDocumentError

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
UM1, ROGUE = "198.18.1.51", "198.18.5.99"

pytestmark = pytest.mark.tshark


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """The pilot audited with its inventory, then with UM1 gone and ROGUE listed as an admin."""
    folder = tmp_path_factory.mktemp("diff")
    inv = yaml.safe_load((PILOT / "inventory.yaml").read_text())
    inv["hosts"] = [h for h in inv["hosts"] if h["name"] != "UM1"]
    inv["hosts"].append({"name": "ROGUE", "addresses": [ROGUE], "roles": ["admin"]})
    (folder / "changed.yaml").write_text(yaml.safe_dump(inv))
    cat = load_catalogue()
    old = audit_captures([PILOT / "pilot.pcapng"], load_inventory(PILOT / "inventory.yaml"), cat)
    new = audit_captures([PILOT / "pilot.pcapng"], load_inventory(folder / "changed.yaml"), cat)
    paths = folder / "old.json", folder / "new.json"
    for path, result in zip(paths, (old, new), strict=True):
        path.write_text(json.dumps(result_to_dict(result)))
    return old, paths


def _keys(frame):
    return {(r.kind or r.old_kind, r.src_ip, r.dst_ip, r.proto, r.dst_port) for r in
            frame.itertuples()}


def test_changed_inventory_gives_the_expected_new_and_resolved_findings(audits):
    old, (old_path, new_path) = audits
    doc_old, doc_new = (json.loads(p.read_text()) for p in (old_path, new_path))
    diff = diff_audits(doc_old, doc_new)
    found = diff.findings
    assert _keys(found[found["status"] == "resolved"]) == {
        ("missing", UM1, "198.18.1.41", "tcp", 25),  # T07: UM1 is no longer in the inventory
        ("unexpected", ROGUE, "198.18.1.21", "tcp", 3389),  # RDP from an admin is documented
    }
    # every path to or from UM1 (now a host of no role) is new unexpected traffic, with its flows
    flows = old.flows
    um1 = flows[(flows["src_ip"] == UM1) | (flows["dst_ip"] == UM1)]
    expected = um1.groupby(["src_ip", "dst_ip", "proto", "dst_port"]).size()
    new = found[found["status"] == "new"]
    assert set(new["kind"]) == {"unexpected"}
    assert {(r.src_ip, r.dst_ip, r.proto, r.dst_port): r.flows for r in new.itertuples()} == {
        k: int(v) for k, v in expected.items()}
    assert ("198.18.2.70", UM1, "tcp", 5060) in set(expected.index)
    assert diff.summary["findings"] == {"new": len(expected), "resolved": 2, "changed": 0}
    rules = dict(zip(diff.rules["id"], diff.rules["change"], strict=True))
    assert rules["G04-admin-rdp"] == "newly_observed"
    assert rules["U01-gw-um-sip"] == "no_longer_observed"
    assert diff.rpc.empty  # same capture: no endpoint moved


def test_changed_kind_flows_and_a_moved_rpc_endpoint(audits):
    _, (old_path, _) = audits
    old = json.loads(old_path.read_text())
    new = copy.deepcopy(old)
    pop3 = next(f for f in new["findings"] if f["dst_port"] == 110)
    pop3["kind"], pop3["flows"] = "unanswered", 4
    netlogon = next(e for e in new["rpc"] if e["interface"] == "NETLOGON")
    netlogon["port"] = 50100
    diff = diff_audits(old, new)
    changed = diff.findings[diff.findings["status"] == "changed"]
    assert len(changed) == 1 and len(diff.findings) == 1
    row = changed.iloc[0]
    assert (row["old_kind"], row["kind"], row["old_flows"], row["flows"]) == (
        "rejected", "unanswered", 1, 4)
    assert row["changes"] == "kind rejected -> unanswered; flows 1 -> 4"
    moved = diff.rpc.iloc[0]
    assert (moved["server_ip"], moved["interface"], moved["old_ports"], moved["new_ports"]) == (
        "198.18.1.10", "NETLOGON", "49152", "50100")
    doc = diff_to_dict(diff)
    jsonschema.validate(doc, diff_json_schema())
    assert doc["rpc_moved"][0]["new_ports"] == "50100"


def test_diff_cli_formats_and_fail_on_new(audits, tmp_path):
    _, (old_path, new_path) = audits
    res = CliRunner().invoke(cli, ["diff", str(old_path), str(new_path), "--fail-on", "new"])
    assert res.exit_code == 3, res.output
    assert "RESOLVED unexpected 198.18.5.99 -> MBX1 (198.18.1.21) tcp/3389 1 flow" in res.output
    same = CliRunner().invoke(cli, ["diff", str(old_path), str(old_path), "--fail-on", "new"])
    assert same.exit_code == 0 and "no finding changed" in same.output
    out = tmp_path / "diff.json"
    res = CliRunner().invoke(cli, ["diff", str(old_path), str(new_path), "--format", "json",
                                   "-o", str(out)])
    assert res.exit_code == 0
    jsonschema.validate(json.loads(out.read_text()), diff_json_schema())
    md = CliRunner().invoke(cli, ["diff", str(old_path), str(new_path), "--format", "md"])
    assert "| resolved | missing |" in md.output and "T07-um-hub-smtp" in md.output


BAD = [
    ('{\n "schema_version": "1.0",\n "findings": [,]\n}', 3, "not JSON"),
    ('[{"src_ip": "198.18.1.1"}]', 1, "not an audit document"),
    ('{"schema_version": "1.0", "findings": [{"src_ip": "a"}], "rules": []}', 1,
     r"not an audit document: findings\[0\] has no 'kind'"),
    ('{"schema_version": "9.0", "findings": [], "rules": []}', 1, "audit schema_version"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[b[2][:20] for b in BAD])
def test_a_document_that_is_not_an_audit_is_one_line_naming_file_and_line(text, line, message,
                                                                          tmp_path, audits):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AuditDocumentError, match=f"^{path}:{line}: {message}"):
        parse_audit_document(text, str(path))
    res = CliRunner().invoke(cli, ["diff", str(audits[1][0]), str(path)])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and f"{path}:{line}: " in res.output
