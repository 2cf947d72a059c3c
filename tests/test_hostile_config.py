"""Hostile configuration: alias bombs, huge files, bad bytes, tabs, huge numbers, IPv6 zone ids,
overlapping networks, a rule with 65,536 ports. Each is read within bounded time and memory, or
refused in one line naming file and line."""

from __future__ import annotations

import re
import resource
import time
from pathlib import Path

import pytest

from auditor import CatalogueError, InventoryError
from auditor.catalogue.loader import load_catalogue
from auditor.inventory.roles import assign_roles, load_inventory

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
HOST = "hosts:\n  - name: MBX1\n    addresses: [198.18.1.21]\n    roles: [mailbox]\n"
# Nine levels of nine aliases (387 million leaves once expanded), anchored in a field that is
# checked after the one that uses them, so validation reaches the biggest first.
LEVELS = "".join(f"  - name: n{k}\n    cidr: 198.18.0.0/24\n    roles: &l{k} [" +
                 ", ".join(["mailbox"] * 9 if k == 0 else [f"*l{k - 1}"] * 9) + "]\n"
                 for k in range(9))
BOMB = "networks:\n" + LEVELS


def _one_line(exc, path, line=None):
    text = str(exc)
    assert "\n" not in text and len(text) < 400, text[:400]
    assert text.startswith(f"{path}:"), text
    if line is not None:
        assert text.startswith(f"{path}:{line}:"), text


def _bounded(fn, seconds=20.0):
    t0 = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        return fn()
    finally:
        assert time.monotonic() - t0 < seconds
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mb < 600, grown_mb


@pytest.mark.parametrize("where", ["top", "name", "addresses", "roles", "networks"])
def test_yaml_alias_bomb_is_refused_in_one_line(tmp_path, where):
    path = tmp_path / "inv.yaml"
    ref = "*l8"
    body = {
        "top": BOMB + "default_roles: *l8\n",
        "name": BOMB + f"hosts:\n  - name: {ref}\n    addresses: [198.18.1.21]\n    roles: [mailbox]\n",
        "addresses": BOMB + f"hosts:\n  - name: X\n    addresses: {ref}\n    roles: [mailbox]\n",
        "roles": BOMB + f"hosts:\n  - name: X\n    addresses: [198.18.1.21]\n    roles: {ref}\n",
        "networks": BOMB + f"  - name: last\n    cidr: 198.18.0.0/24\n    roles: {ref}\n",
    }[where]
    path.write_text(body)
    with pytest.raises(InventoryError) as err:
        _bounded(lambda: load_inventory(path))
    _one_line(err.value, path)


def test_alias_bomb_in_a_catalogue_is_refused(tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text("rules:\n" + "".join(
        f"  - id: r{k}\n    source: client_access\n    destination: mailbox\n    proto: tcp\n"
        f"    ports: &p{k} [" + ", ".join(["135"] * 9 if k == 0 else [f"*p{k - 1}"] * 9) + "]\n"
        "    service: x\n    reference: https://example.org\n" for k in range(9)))
    with pytest.raises(CatalogueError) as err:
        _bounded(lambda: load_catalogue([path]))
    _one_line(err.value, path)


def test_small_anchors_and_aliases_still_work(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text("hosts:\n  - name: MBX1\n    addresses: &a [198.18.1.21]\n"
                    "    roles: &r [mailbox]\n  - name: MBX2\n    addresses: [198.18.1.22]\n"
                    "    roles: *r\n")
    assert [h.roles for h in load_inventory(path).hosts] == [("mailbox",), ("mailbox",)]


def test_huge_inventory_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "w") as fh:  # 100 MB (sparse): parsing that much YAML would take minutes
        fh.write(HOST)
        fh.truncate(100 << 20)
    with pytest.raises(InventoryError) as err:
        _bounded(lambda: load_inventory(path), seconds=5)
    _one_line(err.value, path, 1)
    assert "100 MB is more than a configuration file needs" in str(err.value)


def test_huge_csv_inventory_is_refused_too(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("name,address,cidr,roles\n")
        fh.truncate(50 << 20)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    _one_line(err.value, path, 1)


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_bytes(HOST.encode() + b"  - name: caf\xe9\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    _one_line(err.value, path, 5)


def test_tab_indentation_names_file_and_line(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text("hosts:\n  - name: MBX1\n\taddresses: [198.18.1.21]\n    roles: [mailbox]\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    _one_line(err.value, path, 3)


@pytest.mark.parametrize("value", ["99999999999999999999999999", "1e400", "-1", "0x1_0000",
                                   "65536", ".inf", "1" * 5000])
def test_huge_numbers_as_ports_name_file_and_line(tmp_path, value):
    path = tmp_path / "cat.yaml"
    path.write_text("rules:\n  - id: r1\n    source: client_access\n    destination: mailbox\n"
                    f"    proto: tcp\n    ports: [{value}]\n    service: x\n"
                    "    reference: https://example.org\n")
    with pytest.raises(CatalogueError) as err:
        load_catalogue([path])
    _one_line(err.value, path)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", str(err.value))


@pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%25", "198.18.1.1%x"])
def test_ipv6_zone_ids_are_refused_in_one_line(tmp_path, address):
    # a capture never carries the zone, so such an address could silently never match
    path = tmp_path / "inv.yaml"
    path.write_text(f"hosts:\n  - name: H\n    addresses: ['{address}']\n    roles: [mailbox]\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    _one_line(err.value, path, 3)


def test_ipv4_mapped_ipv6_matches_the_ipv4_address(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text("hosts:\n  - name: H\n    addresses: ['::ffff:198.18.1.4']\n    roles: [mailbox]\n")
    assert assign_roles(load_inventory(path), ["198.18.1.4"]).iloc[0]["name"] == "H"


def test_overlapping_networks_with_different_roles_most_specific_wins(tmp_path):
    path = tmp_path / "inv.yaml"
    nets = ("networks:\n  - name: wide\n    cidr: 198.18.0.0/15\n    roles: [client]\n"
            "  - name: narrow\n    cidr: 198.18.1.0/24\n    roles: [mailbox]\n")
    path.write_text(nets)
    rows = assign_roles(load_inventory(path), ["198.18.1.5", "198.18.2.5"]).set_index("ip")
    assert rows.loc["198.18.1.5", "roles"] == ("mailbox",)
    assert rows.loc["198.18.2.5", "roles"] == ("client",)
    path.write_text(nets + "  - name: same\n    cidr: 198.18.1.0/24\n    roles: [admin]\n")
    with pytest.raises(InventoryError) as err:  # the same network twice with other roles
        load_inventory(path)
    _one_line(err.value, path, 8)


RULE = ("rules:\n  - id: r1\n    source: client_access\n    destination: mailbox\n"
        "    proto: tcp\n    ports: [{ports}]\n    service: x\n    description: every port\n"
        "    reference: {{source: test, status: CONFIRMED}}\n    configurable: 'no'\n"
        "    expected: true\n    severity: low\n    scope: internal\n")


def test_rule_with_65536_ports_is_audited_within_bounds(tmp_path):
    from click.testing import CliRunner

    from auditor.cli import cli

    path = tmp_path / "cat.yaml"  # 65,536 entries: every port, and 443 twice
    path.write_text(RULE.format(ports=", ".join(map(str, [*range(1, 65536), 443]))))
    cat = _bounded(lambda: load_catalogue([path]), seconds=20)
    assert len(next(r for r in cat.rules if r.id == "r1").ports) >= 1
    pilot = PILOT / "pilot.pcapng"
    res = _bounded(lambda: CliRunner().invoke(cli, [
        "audit", str(pilot), "--inventory", str(PILOT / "inventory.yaml"), "--catalogue",
        str(path), "--no-rpc", "--format", "json"]), seconds=60)
    assert res.exit_code == 0, res.stderr
