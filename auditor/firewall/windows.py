"""Windows Firewall export: one PowerShell script of `New-NetFirewallRule` per Exchange server.

Each script opens, inbound on that server, what the requests let other hosts reach on it
(the Windows Firewall allows outbound by default). Every value is a single-quoted PowerShell
string, so nothing in a name can run as code.
"""

from __future__ import annotations

import ipaddress

from auditor.firewall.export_common import ExportRule, header_lines, net_text, safe_name, safe_text

EXCHANGE_ROLES = ("mailbox", "client_access", "hub_transport", "edge_transport",
                  "unified_messaging")
GROUP = "auditor-exchange"
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMPv4", "icmpv6": "ICMPv6"}


def quote(text: str) -> str:
    """A PowerShell single-quoted string literal ('' stands for one quote)."""
    return "'" + str(text).replace("'", "''") + "'"


def _list(values) -> str:
    return ",".join(quote(v) for v in values)


def _hosts(rows: list[ExportRule], inventory) -> list[tuple[str, tuple]]:
    """(name, addresses) of every Exchange server: from the inventory, else the destinations."""
    if inventory is not None:
        return [(h.name, tuple(ipaddress.ip_address(a) for a in h.addresses))
                for h in sorted(inventory.hosts, key=lambda h: h.name.lower())
                if set(h.roles) & set(EXCHANGE_ROLES)]
    seen: dict[str, tuple] = {}
    for r in rows:
        net = r.destination
        if net is not None and net.num_addresses == 1:
            seen.setdefault(r.destination_name or str(net.network_address), (net.network_address,))
    return sorted(seen.items())


def ps_rule(rule: ExportRule, host: str, number: int) -> str:
    """One New-NetFirewallRule line opening this request inbound on `host`."""
    proto = _PROTOCOLS.get(rule.proto, rule.proto if rule.proto.isdigit() else "Any")
    ports = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in rule.ports]
    remote = net_text(rule.source) if rule.source is not None else "Any"
    port_text = f" {','.join(ports)}" if ports else ""
    rule_name = f"{GROUP}-{safe_name(host, 'host')}-{number:03d}"
    display = safe_text(f"auditor: {rule.label} {rule.proto}{port_text}", 200)
    parts = [
        "New-NetFirewallRule", f"-Name {quote(rule_name)}", f"-DisplayName {quote(display)}",
        f"-Group {quote(GROUP)}", "-Direction Inbound", "-Action Allow", "-Enabled True",
        "-Profile Any", f"-Protocol {proto}",
    ]
    if ports and proto in ("TCP", "UDP"):
        parts.append(f"-LocalPort {_list(ports)}")
    if rule.icmp_types and proto in ("ICMPv4", "ICMPv6"):
        parts.append(f"-IcmpType {_list(rule.icmp_types)}")
    parts.append(f"-RemoteAddress {quote(remote) if remote != 'Any' else 'Any'}")
    parts.append(f"-Description {quote(safe_text(rule.rules or rule.justification, 400))}")
    return " ".join(parts)


def windows_scripts(rows: list[ExportRule], inventory, mode: str) -> dict[str, str]:
    """{HOST.ps1: script} for every Exchange server some request reaches."""
    out = {}
    for name, addresses in _hosts(rows, inventory):
        mine = [r for r in rows if r.destination is not None and any(
            a.version == r.destination.version and a in r.destination for a in addresses)]
        if not mine:
            continue
        label = safe_text(name, 60)
        lines = [f"# {h}" for h in header_lines(mode, mine, "Windows Firewall (PowerShell)")]
        lines += [f"# inbound rules for {label} ({', '.join(a.compressed for a in addresses)}); run "
                  "elevated on that server",
                  f"# remove them again with: Remove-NetFirewallRule -Group {quote(GROUP)}"]
        for number, rule in enumerate(mine, start=1):
            lines.append(f"# {safe_text(rule.label)}: {rule.rules or 'no catalogue rule'}")
            if rule.justified:
                lines.append(ps_rule(rule, name, number))
            else:
                lines.append(f"# NOT JUSTIFIED ({safe_text(rule.justification, 160)}):")
                lines.append("# " + ps_rule(rule, name, number))
        out[f"{safe_name(name, 'host')}.ps1"] = "\r\n".join(lines) + "\r\n"
    return out
