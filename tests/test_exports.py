"""Rule exports from `auditor firewall`: checked by the real tools, or by a parser of the syntax."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import (
    asbuilt_requests,
    audit_captures,
    design_requests,
    load_catalogue,
    load_inventory,
    merge_requests,
)
from auditor.cli import cli
from auditor.firewall.exports import export_rules
from auditor.firewall.requests import icmp_type_numbers

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
EXCHANGE_HOSTS = {"MBX1", "MBX2", "CAS1", "HUB1", "UM1", "EDGE1"}


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(PILOT / "inventory.yaml")


@pytest.fixture(scope="module")
def design(inventory):
    return merge_requests(design_requests(inventory, load_catalogue()))


@pytest.fixture(scope="module")
def asbuilt(inventory):
    cat = load_catalogue()
    result = audit_captures([PILOT / "pilot.pcapng"], inventory, cat)
    return merge_requests(asbuilt_requests(result, inventory, cat))


def _in_namespace(args: list[str]) -> subprocess.CompletedProcess:
    """Run a netfilter tool in a fresh network namespace, so the host's rules are never touched."""
    tool = shutil.which(args[0]) or shutil.which(args[0], path="/usr/sbin:/sbin")
    if tool is None:
        pytest.skip(f"{args[0]} is not installed (make test-deps installs it)")
    unshare = shutil.which("unshare") or shutil.which("unshare", path="/usr/bin:/bin")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    done = subprocess.run([unshare, "--net", tool, *args[1:]], capture_output=True, text=True,
                          check=False, timeout=60)
    if "Operation not permitted" in done.stderr and "unshare" in done.stderr:
        pytest.skip("creating a network namespace needs root (CI runs as root)")
    return done


# ---- nftables ----


@pytest.mark.parametrize("which", ["design", "asbuilt"])
def test_nftables_export_is_accepted_by_nft_check(which, request, tmp_path):
    frame = request.getfixturevalue(which)
    (name, text), = export_rules(frame, "nftables").items()
    path = tmp_path / name
    path.write_text(text)
    done = _in_namespace(["nft", "-c", "-f", str(path)])
    assert done.returncode == 0, done.stderr
    active = [line for line in text.splitlines() if line.strip().startswith(("ip ", "ip6 "))]
    assert len(active) == int(frame["justified"].sum())


def test_nft_check_rejects_a_broken_export(design, tmp_path):
    (_, text), = export_rules(design, "nftables").items()
    path = tmp_path / "broken.nft"
    path.write_text(text.replace("tcp dport { 25, 50636 }", "tcp dport { 25, 99999 }"))
    assert _in_namespace(["nft", "-c", "-f", str(path)]).returncode != 0


def test_nftables_keeps_merged_ranges_and_inventory_names(design):
    (_, text), = export_rules(design, "nftables").items()
    assert ('ip saddr 198.18.1.41 ip daddr 198.18.2.61 tcp dport { 25, 50636 } accept comment '
            '"HUB1 -> EDGE1 T02-hub-edge-smtp;T08-hub-edge-edgesync"') in text
    assert "ip saddr 198.18.2.70 ip daddr 198.18.1.51 tcp dport { 5060-5061, 5065-5068 }" in text
    assert "policy drop;" in text and "ct state established,related accept" in text


def test_asbuilt_unjustified_rows_are_written_commented_out(asbuilt):
    (_, text), = export_rules(asbuilt, "nftables").items()
    line = next(t for t in text.splitlines() if "198.19.0.0/16 tcp dport 8080" in t)
    assert line.strip().startswith("# ip saddr 198.18.1.41")


# ---- iptables ----


@pytest.mark.parametrize("which", ["design", "asbuilt"])
def test_iptables_export_is_accepted_by_iptables_restore_test(which, request, tmp_path):
    frame = request.getfixturevalue(which)
    (name, text), = export_rules(frame, "iptables").items()
    path = tmp_path / name
    path.write_text(text)
    done = _in_namespace(["iptables-restore", "--test", str(path)])
    assert done.returncode == 0, done.stderr
    assert "-A AUDITOR-EXCHANGE -s 198.18.1.41/32 -d 198.18.2.61/32 -p tcp -m multiport " \
           "--dports 25,50636" in text if which == "design" else True


def test_iptables_restore_rejects_a_broken_export(design, tmp_path):
    (_, text), = export_rules(design, "iptables").items()
    path = tmp_path / "broken.rules"
    path.write_text(text.replace("--dports 25,50636", "--dports 25,50636:40"))
    assert _in_namespace(["iptables-restore", "--test", str(path)]).returncode != 0


def test_iptables_splits_ports_that_overflow_one_multiport_match(design):
    (_, text), = export_rules(design, "iptables").items()
    for line in text.splitlines():
        m = re.search(r"--dports (\S+)", line)
        if m:
            assert sum(2 if ":" in p else 1 for p in m.group(1).split(",")) <= 15
    # client -> CAS1 has many ports: every one of them is still opened
    lines = [t for t in text.splitlines()
             if t.startswith("-A AUDITOR-EXCHANGE -s 198.18.10.0/24 -d 198.18.1.31/32 -p tcp")]
    ports = {p for t in lines for p in re.search(r"--dports (\S+)", t).group(1).split(",")}
    row = design[(design["source"] == "198.18.10.0/24") & (design["destination"] == "198.18.1.31")
                 & (design["proto"] == "tcp")].iloc[0]
    assert ports == {p.replace("-", ":") for p in row["ports"].split(",")}


# ---- Windows Firewall (PowerShell) ----

# New-NetFirewallRule, parameter set cim:CreateInstance0 (Windows Server 2012 NetSecurity docs)
NEW_NETFIREWALLRULE = {
    "DisplayName", "Action", "AsJob", "Authentication", "CimSession", "Description", "Direction",
    "DynamicTransport", "EdgeTraversalPolicy", "Enabled", "Encryption", "GPOSession", "Group",
    "IcmpType", "InterfaceAlias", "InterfaceType", "LocalAddress", "LocalOnlyMapping", "LocalPort",
    "LocalUser", "LooseSourceMapping", "Name", "OverrideBlockRules", "Owner", "Package",
    "Platform", "PolicyStore", "Profile", "Program", "Protocol", "RemoteAddress", "RemoteMachine",
    "RemotePort", "RemoteUser", "Service", "ThrottleLimit", "Confirm", "WhatIf",
}
ENUMS = {"Direction": {"Inbound", "Outbound"}, "Action": {"NotConfigured", "Allow", "Block"},
         "Enabled": {"True", "False"}, "Profile": {"Any", "Domain", "Private", "Public"}}
_TOKEN = re.compile(r"\s*(?:(-[A-Za-z]+)|((?:'(?:[^']|'')*'|[^\s',]+)(?:,(?:'(?:[^']|'')*'|[^\s',]+))*))")


def _ps_values(text: str) -> list[str]:
    return [v[1:-1].replace("''", "'") if v.startswith("'") else v
            for v in re.findall(r"'(?:[^']|'')*'|[^,]+", text)]


def parse_powershell_line(line: str) -> dict[str, list[str]]:
    """Cmdlet `-Param value[,value]` pairs of one line; raises on anything else."""
    cmdlet, _, rest = line.partition(" ")
    assert cmdlet == "New-NetFirewallRule", line
    params: dict[str, list[str]] = {}
    pos, current = 0, None
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        assert m and m.end() > pos, f"cannot parse at {rest[pos:pos + 30]!r}"
        pos = m.end()
        if m.group(1):
            current = m.group(1)[1:]
            assert current in NEW_NETFIREWALLRULE, f"undocumented parameter -{current}"
            assert current not in params, f"-{current} given twice"
            params[current] = []
        else:
            assert current is not None and not params[current], f"stray value {m.group(2)!r}"
            params[current] = _ps_values(m.group(2))
    for name, values in params.items():
        assert values, f"-{name} has no value"
        if name in ENUMS:
            assert set(values) <= ENUMS[name], (name, values)
    return params


def test_cisco_icmp_rows_open_their_types_or_every_type():
    """`permit icmp S D 8` per type; a row naming no type still gets its one permit."""
    from auditor.firewall.cisco import cisco_text
    from auditor.firewall.export_common import ExportRule

    base = dict(source=ipaddress.ip_network("198.18.10.0/24"), source_name="clients",
                destination=ipaddress.ip_network("198.18.1.10/32"), destination_name="DC1",
                proto="icmp", ports=(), rules="X01", justified=True, justification="x")
    text = cisco_text([ExportRule(**base, icmp_types=(0, 8)), ExportRule(**base)], "design")
    _, _, aces = parse_cisco(text)
    permits = [words for words in aces if words[0] == "permit"]
    assert [w[-1] for w in permits] == ["0", "8", "DC1"]
    assert all(w[:2] == ["permit", "icmp"] for w in permits)


def test_windows_icmp_rule_names_its_types():
    """An inbound ICMP rule naming echo opens -IcmpType 8, and one naming none every type."""
    from auditor.firewall.export_common import ExportRule
    from auditor.firewall.windows import ps_rule

    base = dict(source=ipaddress.ip_network("198.18.10.0/24"), source_name="clients",
                destination=ipaddress.ip_network("198.18.1.21/32"), destination_name="MBX1",
                proto="icmp", ports=(), rules="X01", justified=True, justification="x")
    echo = parse_powershell_line(ps_rule(ExportRule(**base, icmp_types=(8,)), "MBX1", 1))
    assert echo["Protocol"] == ["ICMPv4"] and echo["IcmpType"] == ["8"]
    every = parse_powershell_line(ps_rule(ExportRule(**base), "MBX1", 2))
    assert "IcmpType" not in every and every["Protocol"] == ["ICMPv4"]


def _port_ok(text: str) -> bool:
    lo, _, hi = text.partition("-")
    return lo.isdigit() and (not hi or hi.isdigit()) and 0 < int(lo) <= int(hi or lo) <= 65535


EXCHANGE_IPS = {"MBX1": "198.18.1.21", "MBX2": "198.18.1.22", "CAS1": "198.18.1.31",
                "HUB1": "198.18.1.41", "UM1": "198.18.1.51", "EDGE1": "198.18.2.61"}


@pytest.mark.parametrize("which", ["design", "asbuilt"])
def test_windows_export_is_one_script_per_exchange_server_of_valid_cmdlets(which, request):
    design = request.getfixturevalue(which)
    scripts = export_rules(design, "windows", inventory=load_inventory(PILOT / "inventory.yaml"))
    reached = {h for h, ip in EXCHANGE_IPS.items() if (design["destination"] == ip).any()}
    assert set(scripts) == {f"{h}.ps1" for h in reached} and len(reached) >= 5
    for name, text in scripts.items():
        host_ip = EXCHANGE_IPS[name[:-4]]
        seen = set()
        for line in text.split("\r\n"):
            if not line or line.startswith("#"):
                continue
            params = parse_powershell_line(line)
            assert params["Direction"] == ["Inbound"] and params["Action"] == ["Allow"]
            assert params["Protocol"][0] in {"TCP", "UDP", "ICMPv4", "ICMPv6", "Any"}
            assert all(_port_ok(p) for p in params.get("LocalPort", []))
            for remote in params["RemoteAddress"]:
                assert remote == "Any" or ipaddress.ip_network(remote, strict=False)
            seen.add((params["RemoteAddress"][0], params["Protocol"][0].lower(),
                      ",".join(params.get("LocalPort", []))))
        expected = {(r.source if r.source != "any" else "Any", r.proto, r.ports)
                    for r in design[design["destination"] == host_ip].itertuples() if r.justified}
        assert seen == expected, name


def test_powershell_parser_rejects_undocumented_parameters():
    with pytest.raises(AssertionError, match="undocumented parameter -LocalPorts"):
        parse_powershell_line("New-NetFirewallRule -DisplayName 'x' -LocalPorts '25'")
    with pytest.raises(AssertionError):
        parse_powershell_line("Invoke-Expression 'calc'")


# ---- Cisco IOS ----


def parse_cisco(text: str):
    """Object-groups and ACEs of an IOS config; asserts the grammar the export uses."""
    networks: dict[str, list] = {}
    services: dict[str, list] = {}
    aces: list[list[str]] = []
    kind, current = None, None
    for line in text.splitlines():
        words = line.split()
        if not line or line.startswith("!"):
            kind = None
        elif line.startswith("object-group network "):
            kind, current = "network", networks.setdefault(words[2], [])
        elif line.startswith("object-group service "):
            kind, current = "service", services.setdefault(words[2], [])
        elif line.startswith("ip access-list extended "):
            kind = "acl"
        elif kind == "network" and line.startswith(" "):
            # ip_network fails on a mask that is not contiguous or does not fit the address
            current.append(ipaddress.ip_network(words[1] if words[0] == "host"
                                                else f"{words[0]}/{words[1]}"))
        elif kind == "service" and line.startswith(" "):
            proto, op, *ports = words
            assert proto in ("tcp", "udp") and op in ("eq", "range"), line
            lo, hi = int(ports[0]), int(ports[-1])
            assert 0 < lo <= hi <= 65535 and len(ports) == (1 if op == "eq" else 2), line
            current.append((proto, lo, hi))
        elif kind == "acl" and line.startswith(" "):
            if words[0] == "remark":
                assert len(line) - len(" remark ") <= 100, line
            else:
                aces.append(words)
        else:
            raise AssertionError(f"unexpected line {line!r}")
    return networks, services, aces


def _endpoint(words: list[str], networks) -> tuple[list, list[str]]:
    if words[0] == "any":
        return [None], words[1:]
    assert words[0] == "object-group" and words[1] in networks, words
    return networks[words[1]], words[2:]


@pytest.mark.parametrize("which", ["design", "asbuilt"])
def test_cisco_acl_uses_defined_object_groups_and_opens_exactly_the_requests(which, request):
    design = request.getfixturevalue(which)
    (_, text), = export_rules(design, "cisco").items()
    networks, services, aces = parse_cisco(text)
    assert "HUB1" in networks and networks["CAS1"] == [ipaddress.ip_network("198.18.1.31/32")]
    opened: dict[tuple, tuple] = {}
    for words in aces:
        action, rest = words[0], words[1:]
        if action == "deny":
            assert rest == ["ip", "any", "any", "log"]
            continue
        assert action == "permit"
        if rest[0] == "object-group":
            svc, rest = services[rest[1]], rest[2:]
        else:
            svc, rest = [(rest[0], 0, 0)], rest[1:]
        src, rest = _endpoint(rest, networks)
        dst, rest = _endpoint(rest, networks)
        icmp_type = ()
        if svc[0][0] == "icmp" and rest:  # `permit icmp SRC DST 8`: that type only
            (number,), rest = rest, []
            icmp_type = (int(number),)
        assert rest == []
        ports = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for _, lo, hi in svc if lo)
        key = (str(src[0] or "any"), str(dst[0] or "any"), svc[0][0], ports)
        opened[key] = opened.get(key, ()) + icmp_type
    expected = {(str(ipaddress.ip_network(r.source)) if r.source != "any" else "any",
                 str(ipaddress.ip_network(r.destination)) if r.destination != "any" else "any",
                 r.proto, r.ports): icmp_type_numbers(r.proto, r.icmp_types)
                for r in design.itertuples() if r.justified and ":" not in r.source + r.destination}
    assert opened == expected
    if which == "design":  # N01: echo from members to a DC opens echo (8), not every ICMP type
        assert any(types == (8,) for (_, _, proto, _), types in opened.items() if proto == "icmp")
    assert aces[-1] == ["deny", "ip", "any", "any", "log"]


# ---- hostile names and the CLI ----


def test_hostile_inventory_names_cannot_break_out_of_comments(tmp_path):
    inv_path = tmp_path / "inventory.yaml"
    evil = "EVIL\" accept; }\\n table ip x { '$(calc)'"
    inv_path.write_text(
        f"hosts:\n  - {{name: {json.dumps(evil)}, addresses: [198.18.1.41], roles: [hub_transport]}}\n"
        "  - {name: EDGE1, addresses: [198.18.2.61], roles: [edge_transport]}\n")
    inv = load_inventory(inv_path)
    frame = merge_requests(design_requests(inv, load_catalogue()))
    (_, nft), = export_rules(frame, "nftables").items()
    path = tmp_path / "evil.nft"
    path.write_text(nft)
    assert _in_namespace(["nft", "-c", "-f", str(path)]).returncode == 0
    scripts = export_rules(frame, "windows", inventory=inv)
    for text in scripts.values():
        for line in text.split("\r\n"):
            if line and not line.startswith("#"):
                parse_powershell_line(line)
    assert all("$(calc)" not in t for t in scripts.values())


def test_firewall_cli_writes_each_dialect(tmp_path):
    base = ["firewall", "--inventory", str(PILOT / "inventory.yaml")]
    res = CliRunner().invoke(cli, [*base, "--format", "nftables"])
    assert res.exit_code == 0 and res.output.startswith("#!/usr/sbin/nft -f")
    res = CliRunner().invoke(cli, [*base, "--format", "cisco", "-o", str(tmp_path / "acl.txt")])
    assert res.exit_code == 0 and (tmp_path / "acl.txt").read_text().startswith("!")
    out = tmp_path / "windows"
    res = CliRunner().invoke(cli, [*base, "--format", "windows", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {f"{h}.ps1" for h in EXCHANGE_HOSTS}
    res = CliRunner().invoke(cli, [*base, "--format", "windows"])
    assert res.exit_code == 0 and res.output.count("# ==== ") == len(EXCHANGE_HOSTS)


def test_cli_dialects_are_the_exports_dialects():
    from auditor.cli.firewall_cmds import DIALECTS as CLI_DIALECTS
    from auditor.firewall.exports import DIALECTS

    assert CLI_DIALECTS == DIALECTS
