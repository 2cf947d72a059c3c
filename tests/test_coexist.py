"""The 2010 -> 2016 coexistence pilot: each flow judged by its ends' versions, version evidence."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from input_files import write

from auditor import AuditOptions, PipelineOptions, audit_captures
from auditor.audit.pipeline import observe
from auditor.audit.verdicts import audit_flows
from auditor.audit.versions import plan_versions
from auditor.catalogue.loader import load_catalogue
from auditor.cli import cli
from auditor.errors import InventoryError
from auditor.firewall.requests import design_requests
from auditor.inventory.roles import Inventory, load_inventory
from auditor.render.json_export import json_schema, result_to_dict

COEXIST = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "coexist"
CAPTURE, INVENTORY = COEXIST / "coexist.pcapng", COEXIST / "inventory.yaml"
TRUTH = json.loads((COEXIST / "ground_truth.json").read_text())
EX2010, MBX16A, MBX16B, EDGE10 = "198.18.20.10", "198.18.20.21", "198.18.20.22", "198.18.21.30"


def _key(row) -> tuple:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return (get("kind"), get("src_ip"), get("dst_ip"), get("proto"), int(get("dst_port")))


@pytest.fixture(scope="module")
def result():
    return audit_captures([CAPTURE], load_inventory(INVENTORY), load_catalogue())


@pytest.fixture(scope="module")
def seen():
    return observe([CAPTURE], PipelineOptions())


@pytest.mark.tshark
def test_coexistence_audit_finds_exactly_the_ground_truth_anomalies(result):
    found = {_key(r) for r in result.findings.itertuples(index=False)}
    assert found == {_key(a) for a in TRUTH["anomalies"]}
    rejected = result.findings[result.findings["kind"] == "rejected"].iloc[0]
    assert (rejected["rule"], rejected["severity"], rejected["documented"]) == (
        "X03-hub2010-transport-smtp", "high", True)


@pytest.mark.tshark
def test_findings_show_each_ends_version(result):
    for anomaly in TRUTH["anomalies"]:
        row = result.findings[(result.findings["src_ip"] == anomaly["src_ip"])
                              & (result.findings["dst_port"] == anomaly["dst_port"])].iloc[0]
        assert (row["src_version"], row["dst_version"]) == (anomaly["src_version"],
                                                            anomaly["dst_version"])
        assert row["src_role"] in ("client", "hub_transport") and "@" not in row["detail"]
    unexpected = result.findings[result.findings["kind"] == "unexpected"].iloc[0]
    assert unexpected["detail"].startswith("no catalogue rule allows client -> mailbox 2016 on "
                                           "135/tcp (RPC interface EPM)")
    flows = result.flows
    hub = flows[(flows["src_ip"] == EX2010) & (flows["dst_ip"] == MBX16A) & (flows["dst_port"] == 2525)]
    assert list(zip(hub["src_version"], hub["dst_version"], strict=True)) == [("2010", "2016")]
    assert set(result.flows["src_role"]) <= {"client", "hub_transport", "mailbox",
                                             "edge_transport", "client_access", ""}


@pytest.mark.tshark
@pytest.mark.parametrize("path", TRUTH["documented"], ids=lambda p: f"{p['rule']}-{p['dst_port']}")
def test_documented_2016_and_coexistence_paths_are_expected(result, path):
    flows = result.flows[(result.flows["src_ip"] == path["src_ip"])
                         & (result.flows["dst_ip"] == path["dst_ip"])
                         & (result.flows["dst_port"] == path["dst_port"])
                         & (result.flows["proto"] == path["proto"])]
    assert len(flows) and set(flows["verdict"]) == {"expected"}
    assert set(flows["rule"]) == {path["rule"]}


@pytest.mark.tshark
def test_coexistence_json_validates_and_carries_versions(result):
    import jsonschema

    doc = result_to_dict(result)
    jsonschema.validate(doc, json_schema())
    assert doc["summary"]["versions"] == ["2010", "2016"]
    assert {(f["src_version"], f["dst_version"]) for f in doc["findings"]} == {
        ("", "2016"), ("2010", "2016")}


def test_without_versions_the_2016_traffic_is_unexpected_against_2010(seen):
    """The point of the versioned catalogues: the same capture, every host called 2010."""
    inv = load_inventory(INVENTORY)
    plain = dataclasses.replace(inv, hosts=tuple(dataclasses.replace(h, version="")
                                                 for h in inv.hosts))
    res = audit_flows(seen.flows, plain, load_catalogue(), rpc_endpoints=seen.rpc.endpoints)
    unexpected = {(r.src_ip, r.dst_ip, int(r.dst_port))
                  for r in res.findings[res.findings["kind"] == "unexpected"].itertuples()}
    assert {(EX2010, MBX16A, 2525), (MBX16A, MBX16B, 444)} <= unexpected


def test_naming_only_the_coexistence_catalogue_still_judges_each_version_by_its_own(seen):
    """`--catalogue coexistence` (a name replaces the default) adds the pairs between versions:
    each version's own rules still come from its catalogue, so the audit equals the default one.
    It used to judge 2010 and 2016 traffic by the 15 coexistence rules alone."""
    inv = load_inventory(INVENTORY)
    alone = audit_flows(seen.flows, inv, load_catalogue(["coexistence"], replace=True),
                        rpc_endpoints=seen.rpc.endpoints)
    default = audit_flows(seen.flows, inv, load_catalogue(), rpc_endpoints=seen.rpc.endpoints)
    assert sorted(map(_key, alone.findings.to_dict("records"))) == sorted(
        map(_key, default.findings.to_dict("records")))
    assert {_key(a) for a in TRUTH["anomalies"]} == set(map(_key, alone.findings.to_dict("records")))


def test_a_2016_site_with_a_2010_edge_and_no_edgesync_is_reported_missing(seen):
    flows = seen.flows[~((seen.flows["src_ip"] == MBX16A) & (seen.flows["dst_port"] == 50636))]
    # the recorded pilot lasts under 15 min, where missing paths are info: judge it as a long one
    res = audit_flows(flows, load_inventory(INVENTORY), load_catalogue(),
                      options=AuditOptions(short_capture_s=0))
    missing = res.findings[res.findings["kind"] == "missing"]
    assert list(missing["rule"]) == ["X05-mbx-edge2010-edgesync"]
    row = missing.iloc[0]
    assert (row["src_role"], row["src_version"], row["dst_ip"], row["dst_version"],
            row["severity"]) == ("mailbox", "2016", EDGE10, "2010", "high")


def test_hosts_without_version_take_the_catalogues_version():
    inv = Inventory(hosts=(load_inventory(INVENTORY).hosts[1].__class__(
        "MBX", ("198.18.20.21",), ("mailbox",)),))
    assert plan_versions(inv, load_catalogue()).versions == ("2010",)
    plan = plan_versions(inv, load_catalogue(["exchange2016"]))
    assert plan.versions == ("2016",) and plan.inventory.hosts[0].roles == ("mailbox@2016",)


def test_bad_version_names_file_and_line(tmp_path):
    path = write(tmp_path, "hosts:\n  - name: X\n    addresses: [198.18.20.1]\n"
                           "    roles: [mailbox]\n    version: 2011\n")
    with pytest.raises(InventoryError, match=r"input.yaml:5: host 'X': version 2011 is not one"):
        load_inventory(path)


def test_design_requests_open_each_hosts_version_paths_only():
    frame = design_requests(load_inventory(INVENTORY), load_catalogue())
    rules: dict[tuple[str, str], set[str]] = {}
    for r in frame[frame["proto"] == "tcp"].itertuples():
        rules.setdefault((r.source, r.destination), set()).update(r.rules.split(";"))
    assert "X03-hub2010-transport-smtp" in rules[(EX2010, MBX16B)]
    assert {"X05-mbx-edge2010-edgesync", "X05-mbx-edge2010-smtp"} <= rules[(MBX16A, EDGE10)]
    assert "E16-4.4-fe-be-https" in rules[(MBX16A, MBX16B)]
    assert "T06-hub-mbx-storedriver" not in rules[(EX2010, MBX16A)]  # a 2010 path, not to 2016
    assert not any(r.startswith("E16-") for r in rules[(EX2010, EDGE10)])


@pytest.mark.tshark
def test_roles_offers_each_servers_version_with_its_evidence(seen):
    from auditor.inventory.propose import propose_from_observation

    inv, evidence = propose_from_observation(seen)
    versions = {ip: h.version for h in inv.hosts for ip in h.addresses}
    for ip, truth in TRUTH["versions"].items():
        assert versions[ip] == truth["version"], ip
        texts = " ".join(evidence[(evidence["ip"] == ip)
                                  & evidence["role"].str.startswith("version")]["evidence"])
        for word in truth["evidence"]:
            assert word in texts, (ip, word)


@pytest.mark.tshark
def test_mapi_http_evidence_agrees_with_tshark(seen):
    out = subprocess.run(["tshark", "-n", "-r", str(CAPTURE), "-Y", "http.request", "-T", "fields",
                          "-e", "ip.dst", "-e", "http.request.uri"],
                         capture_output=True, text=True, check=True).stdout
    tshark = {tuple(line.split("\t")) for line in out.splitlines()}
    from auditor.inventory.versions import traffic_payloads

    payloads = traffic_payloads(seen.table, seen.flows, seen.labels)
    http = payloads[payloads["kind"] == "http"]
    ours = {(r.server_ip, r.payload.split(b" ")[1].decode()) for r in http.itertuples()}
    assert ours == tshark == {(MBX16A, "/mapi/healthcheck.htm")}


@pytest.mark.tshark
def test_roles_command_writes_the_version_into_the_proposed_inventory(tmp_path):
    out = tmp_path / "proposed.yaml"
    result = CliRunner().invoke(cli, ["roles", str(CAPTURE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    proposed = load_inventory(out)
    assert {ip: h.version for h in proposed.hosts for ip in h.addresses}[EX2010] == "2010"
    assert "serves EMSMDB over TCP on 59531" in out.read_text()


@pytest.mark.tshark
def test_role_diagram_names_each_boxs_version(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auditor.render.diagram import plot_role_diagram

    ax = plot_role_diagram(load_catalogue(), result.flows, result.findings)
    titles = {t.get_text().split("\n")[0] for t in ax.texts}
    plt.close(ax.figure)
    # the 2016 servers hold the Mailbox slot; the 2010 multi-role server's mailbox gets its own box
    assert {"Mailbox 2016", "Client Access 2010", "Hub Transport 2010", "Edge Transport 2010",
            "Mailbox 2010", "Clients"} <= titles


@pytest.mark.tshark
def test_reports_show_each_ends_version(result):
    from auditor.render.html import render_html
    from auditor.render.markdown import markdown_text

    md = markdown_text(result)
    assert "(hub\\_transport 2010)" in md or "(hub_transport 2010)" in md
    assert "(mailbox 2016)" in md
    html = render_html(result)
    assert '<span class="role">mailbox 2016</span>' in html
    assert '<span class="role">hub_transport 2010</span>' in html


def test_csv_inventory_carries_versions(tmp_path):
    path = write(tmp_path, "name,address,cidr,roles,version\nEX,198.18.20.10,,mailbox;hub_transport,2010\n"
                           "MBX,198.18.20.21,,mailbox,2016\n,,198.18.30.0/24,client,\n", "inv.csv")
    inv = load_inventory(path)
    assert {h.name: h.version for h in inv.hosts} == {"EX": "2010", "MBX": "2016"}
    bad = write(tmp_path, "name,address,cidr,roles,version\nEX,198.18.20.10,,mailbox,2012\n", "bad.csv")
    with pytest.raises(InventoryError, match=r"bad.csv:2: version '2012' is not one of"):
        load_inventory(bad)
