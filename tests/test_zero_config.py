"""Zero-config audit: `auditor audit CAPTURE` without --inventory proposes one and says so."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from auditor import audit_captures, load_catalogue
from auditor.cli import cli
from auditor.render.json_export import json_schema

PUBLIC = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "public"
DC_CAPTURE = PUBLIC / "suricata-verify_bug-5162_input.pcap"


@pytest.mark.tshark
def test_audit_without_inventory_uses_a_proposed_one_and_says_so_in_one_line():
    result = CliRunner().invoke(cli, ["audit", str(DC_CAPTURE), "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    note = [line for line in result.stderr.splitlines() if line.startswith("auditor: ")]
    assert note == [
        "auditor: no --inventory given: audited with an inventory proposed from the capture "
        "(2 hosts, 1 network); review and keep it with: auditor roles "
        f"{DC_CAPTURE} -o inventory.yaml, then pass --inventory inventory.yaml"]
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, json_schema())
    assert (doc["summary"]["inventory"], doc["summary"]["inventory_hosts"]) == ("proposed", 2)
    # the DC is known by the RPC interfaces it serves, so its NBNS traffic is documented
    # normal AD life (A09-client-dc-netbios), no finding
    assert not [f for f in doc["findings"] if f["dst_port"] == 137]


@pytest.mark.tshark
def test_library_audit_with_no_inventory_proposes_one():
    result = audit_captures([PUBLIC / "kerberos.pcap"], None, load_catalogue())
    assert result.summary["inventory"] == "proposed"
    roles = dict(zip(result.flows["dst_ip"], result.flows["dst_role"], strict=True))
    assert roles["172.16.8.8"] == "domain_controller"
    # the documented client -> DC paths (Kerberos, LDAP, SMB) are expected, not findings
    assert set(result.flows.loc[result.flows["dst_port"].isin([88, 389, 445]), "verdict"]) == {
        "expected"}
