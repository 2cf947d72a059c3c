"""The bundled catalogues per Exchange version: 2013, 2016 (and 2019), coexistence; names and --list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.catalogue.loader import (
    BUNDLED,
    STATUSES,
    bundled_catalogue_path,
    check_catalogue,
    load_catalogue,
    rule_ports_frame,
)
from auditor.cli import cli
from auditor.errors import CatalogueError
from auditor.schema import ROLES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def e2016():
    return load_catalogue(["exchange2016"])


def _paths(cat) -> set[tuple[str, str, str, int]]:
    """(source role, destination role, proto, port) of every static port of every rule."""
    table = rule_ports_frame(cat)
    static = table[~table["dynamic"]]
    return {(r.src_role, r.dst_role, r.proto, p) for r in static.itertuples(index=False)
            for p in range(int(r.port_lo), min(int(r.port_hi), int(r.port_lo) + 5) + 1)}


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_catalogue_validates_on_its_own_and_ships_as_package_data(name):
    path = bundled_catalogue_path(name)
    assert path == ROOT / "rules" / f"{name}.yaml"
    assert check_catalogue(path).rules
    # auditor/data/ holds what `pip install .` ships: the same file, through a symlink
    data = ROOT / "auditor" / "data" / f"{name}.yaml"
    assert data.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("name", ["exchange2013", "exchange2016", "coexistence"])
def test_every_newer_rule_has_a_source_status_and_known_roles(name):
    cat = load_catalogue([name])
    citations = dict(cat.citations)
    ids = [r.id for r in cat.rules]
    assert len(ids) == len(set(ids))
    for rule in cat.rules:
        assert rule.reference.status in STATUSES, rule.id
        keys = re.findall(r"\[(S\d+[a-z]?)\]", rule.reference.source)
        # a docs/ports.md row id (T08, M01, ...) or section 4 item (4.5), and a cited source
        # unless the row is UNCONFIRMED (then the row id alone says where it comes from)
        assert re.search(r"\b([TCUMAGLN]\d\d|4\.\d+)\b", rule.reference.source), rule.id
        assert keys or rule.reference.status == "UNCONFIRMED", f"{rule.id} cites no source"
        for key in keys:
            assert key in citations, f"{rule.id} cites unknown [{key}]"
        assert set(rule.source) <= set(ROLES) and set(rule.destination) <= set(ROLES)
        assert rule.versions, rule.id


def test_2010_and_2016_and_coexistence_load_together_without_clashing_ids():
    cat = load_catalogue(["exchange2010", "exchange2016", "coexistence"])
    assert len(cat.rules) == sum(len(load_catalogue([n]).rules)
                                 for n in ("exchange2010", "exchange2016", "coexistence"))
    assert cat.default_version == "2010"
    assert load_catalogue(["exchange2016"]).default_version == "2016"
    assert {r.versions for r in cat.rules if r.id.startswith("T0")} == {("2010",)}


def test_a_bundled_name_replaces_the_default_and_a_file_adds_to_it(tmp_path):
    assert {r.id[:4] for r in load_catalogue(["exchange2016"]).rules} == {"E16-"}
    local = tmp_path / "local.yaml"
    local.write_text(
        "rules:\n  - id: L01-x\n    source: mailbox\n    destination: internet\n    proto: tcp\n"
        "    ports: [2526]\n    service: smtp\n    description: d\n"
        "    reference: {source: L01, status: CONFIRMED}\n    configurable: 'no'\n"
        "    expected: false\n    severity: low\n    scope: strict\n")
    cat = load_catalogue([local])
    assert cat.rule("T08-hub-edge-edgesync") and cat.rule("L01-x").versions == ()
    with pytest.raises(CatalogueError, match="exchange2099"):
        bundled_catalogue_path("exchange2099")


def test_2016_catalogue_has_the_documented_2016_ports(e2016):
    paths = _paths(e2016)
    for path in [
        ("internet", "mailbox", "tcp", 25), ("client", "mailbox", "tcp", 587),  # FET
        ("mailbox", "mailbox", "tcp", 717), ("mailbox", "mailbox", "tcp", 2525),
        ("mailbox", "mailbox", "tcp", 465), ("mailbox", "mailbox", "tcp", 475),
        ("mailbox", "mailbox", "tcp", 444), ("mailbox", "mailbox", "tcp", 1995),
        ("mailbox", "mailbox", "tcp", 1993), ("client", "mailbox", "tcp", 443),
        ("client", "mailbox", "tcp", 80), ("mailbox", "mailbox", "tcp", 64327),
        ("mailbox", "mailbox", "udp", 3343), ("mailbox", "edge_transport", "tcp", 25),
        ("edge_transport", "mailbox", "tcp", 25), ("mailbox", "edge_transport", "tcp", 50636),
        ("voip_gateway", "mailbox", "tcp", 5060), ("voip_gateway", "mailbox", "tcp", 5061),
        ("voip_gateway", "mailbox", "tcp", 5062), ("voip_gateway", "mailbox", "tcp", 5063),
        ("voip_gateway", "mailbox", "tcp", 5065), ("voip_gateway", "mailbox", "tcp", 5068),
        ("mailbox", "domain_controller", "tcp", 389), ("mailbox", "domain_controller", "tcp", 3268),
        ("mailbox", "domain_controller", "tcp", 88), ("mailbox", "dns", "udp", 53),
    ]:
        assert path in paths, path
    roles = {role for r in e2016.rules for role in r.source + r.destination}
    assert not roles & {"hub_transport", "client_access", "unified_messaging"}


def test_outlook_rpc_over_tcp_to_2013_and_later_has_no_rule():
    for name in ("exchange2013", "exchange2016"):
        table = rule_ports_frame(load_catalogue([name]))
        client = table[(table["src_role"] == "client") & table["dst_role"].isin(
            ["mailbox", "client_access"])]
        assert not ((client["port_lo"] <= 135) & (client["port_hi"] >= 135)).any(), name
        assert not client["dynamic"].any(), name


def test_unified_messaging_rules_are_2016_only_not_2019(e2016):
    um = [r for r in e2016.rules if r.service in ("sip", "rtp")]
    assert um and all(r.versions == ("2016",) for r in um)
    assert all("2019" in r.versions for r in e2016.rules if r.service not in ("sip", "rtp"))


def test_coexistence_rules_name_the_versions_of_both_ends():
    cat = load_catalogue(["coexistence"], replace=True)
    for rule in cat.rules:
        assert rule.source_versions and rule.destination_versions, rule.id
    edgesync = cat.rule("X05-mbx-edge2010-edgesync")
    assert (edgesync.expected, edgesync.ports, edgesync.destination_versions) == (
        True, (50636,), ("2010",))


def test_catalogue_list_names_the_bundled_catalogues():
    result = CliRunner().invoke(cli, ["catalogue", "--list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert list(rows) == list(BUNDLED)
    assert rows["exchange2016"]["versions"] == ["2016", "2019"]
    assert rows["exchange2016"]["rules"] == len(load_catalogue(["exchange2016"]).rules)


def test_catalogue_json_lists_2016_paths_with_roles_and_ports_as_lists():
    result = CliRunner().invoke(cli, ["catalogue", "--catalogue", "exchange2016", "--format", "json"])
    assert result.exit_code == 0, result.output
    rules = {r["id"]: r for r in json.loads(result.output)}
    edgesync = rules["E16-4.7-mbx-edge-edgesync"]
    assert (edgesync["source"], edgesync["destination"], edgesync["ports"]) == (
        ["mailbox"], ["edge_transport"], [50636])
    assert rules["E16-M03-dag-rpc"]["ports"] == [135, "rpc-dynamic"]
    assert all(r["id"].startswith("E16-") for r in rules.values())


def test_unknown_catalogue_name_is_a_one_line_error():
    result = CliRunner().invoke(cli, ["catalogue", "--catalogue", "exchange2099"])
    assert result.exit_code == 2 and "exchange2099" in result.output
    assert len(result.output.strip().splitlines()) == 1


MIDSTREAM = ROOT / "fixtures" / "pcaps" / "midstream"


@pytest.fixture(scope="module")
def midstream_by_catalogue():
    """The mid-stream recording (two Samba DCs replicating, a DC forwarding DNS and polling an
    outside NTP server, a client's NBNS/SSDP/mDNS/LLMNR) judged by each version's catalogue."""
    from auditor import audit_captures, load_inventory

    inventory = load_inventory(MIDSTREAM / "inventory.yaml")
    return {name: audit_captures([MIDSTREAM / "midstream.pcap"], inventory,
                                 load_catalogue([name])).flows
            for name in ("exchange2010", "exchange2013", "exchange2016")}


@pytest.mark.parametrize(("name", "prefix"), [("exchange2013", "E13-"), ("exchange2016", "E16-")])
def test_domain_controllers_and_link_local_noise_read_the_same_under_every_version(
        midstream_by_catalogue, name, prefix):
    # Active Directory and Windows' own link-local traffic do not depend on the Exchange version
    # (docs/ports.md 4.11): what 2010 calls expected, 2013 and 2016 call expected by the same rule
    def windows_side(flows):
        keep = (flows["src_role"] == "domain_controller") | (
            (flows["src_role"] == "client") & flows["dst_role"].isin(["broadcast", "multicast"]))
        cols = ["src_ip", "dst_ip", "proto", "dst_port", "verdict", "rule"]
        return sorted(map(tuple, flows.loc[keep, cols].astype(str).to_numpy()))

    old = windows_side(midstream_by_catalogue["exchange2010"])
    new = windows_side(midstream_by_catalogue[name])
    rules = {r[5] for r in old}
    assert {"A08-dc-dc-replication-rpc", "A11-dc-external-ntp", "A07-dc-dns-forwarder-udp",
            "L01-netbios-name-broadcast", "L05-ssdp-wsd"} <= rules
    assert new == [(*r[:5], prefix + r[5] if r[5] else "") for r in old]
