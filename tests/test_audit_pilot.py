"""The audit finds every ground-truth anomaly of the recorded pilot, and nothing documented is flagged."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from auditor import PipelineOptions, audit_captures
from auditor.catalogue.loader import load_catalogue
from auditor.inventory.roles import load_inventory
from auditor.render.json_export import json_schema, result_to_dict

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
TRUTH = json.loads((PILOT / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def result():
    return audit_captures([PILOT / "pilot.pcapng"], load_inventory(PILOT / "inventory.yaml"),
                          load_catalogue())


@pytest.fixture(scope="module")
def result_without_rpc():
    return audit_captures([PILOT / "pilot.pcapng"], load_inventory(PILOT / "inventory.yaml"),
                          load_catalogue(), PipelineOptions(rpc=False))


def _key(a) -> tuple:
    return (a["kind"], a["src_ip"], a["dst_ip"], a["proto"], int(a["dst_port"]))


@pytest.mark.tshark
@pytest.mark.parametrize("anomaly", TRUTH["anomalies"], ids=lambda a: f"{a['kind']}-{a['dst_port']}")
def test_every_ground_truth_anomaly_is_found_with_its_kind(result, anomaly):
    found = {
        (r.kind, r.src_ip, r.dst_ip, r.proto, int(r.dst_port))
        for r in result.findings.itertuples(index=False) if r.dst_port is not None
        and str(r.dst_port) != "<NA>"
    }
    assert _key(anomaly) in found


@pytest.mark.tshark
def test_refused_documented_paths_are_high_severity_blocks(result):
    blocks = result.findings[result.findings["kind"].isin(["rejected", "unanswered"])]
    assert len(blocks) == sum(a["kind"] in ("rejected", "unanswered") for a in TRUTH["anomalies"])
    assert blocks["documented"].all() and (blocks["severity"] == "high").all()
    icmp = blocks[blocks["dst_port"] == 135].iloc[0]
    assert "ICMP 3/13 administratively prohibited" in icmp["detail"]


@pytest.mark.tshark
def test_no_documented_successful_flow_is_unexpected(result):
    unexpected = result.findings[result.findings["kind"] == "unexpected"]
    truth = {_key(a) for a in TRUTH["anomalies"] if a["kind"] == "unexpected"}
    assert {(r.kind, r.src_ip, r.dst_ip, r.proto, int(r.dst_port))
            for r in unexpected.itertuples(index=False)} == truth


@pytest.mark.tshark
def test_dynamic_rpc_flows_match_the_rpc_rule_through_discovery(result):
    flows = result.flows
    dyn = flows[(flows["dst_ip"] == "198.18.1.10") & (flows["dst_port"] >= 49152)]
    assert len(dyn) > 0
    assert (dyn["rule"] == "A08-rpc-netlogon").all()
    assert (dyn["rpc_evidence"] != "").all()
    assert result.summary["rpc_discovery"] is True


def test_audit_without_rpc_discovery_still_finds_the_anomalies(result_without_rpc):
    kinds = set(result_without_rpc.findings["kind"])
    assert {"rejected", "unanswered", "unexpected", "missing"} <= kinds
    assert result_without_rpc.rpc.empty


@pytest.mark.tshark
def test_json_document_validates_against_the_shipped_schema(result):
    doc = result_to_dict(result)
    jsonschema.validate(doc, json_schema())
    assert doc["schema_version"] == "2.0"
    assert {f["kind"] for f in doc["findings"]} >= {"rejected", "unanswered", "unexpected",
                                                    "missing"}
    assert any(e["interface"] == "NETLOGON" for e in doc["rpc"])
    json.dumps(doc)  # plain JSON types only


def test_icmp_refusals_are_control_messages_not_traffic(result_without_rpc):
    from auditor.audit.verdicts import control_messages
    from auditor.render.plots import plot_role_matrix

    flows = result_without_rpc.flows
    control = flows[control_messages(flows)]
    assert set(control["proto"]) == {"icmp"} and (control["verdict"] == "expected").all()
    ax = plot_role_matrix(flows)
    assert "client" not in [t.get_text() for t in ax.get_xticklabels()]  # MBX1's ICMP 3/13 reply
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
