"""Cisco IOS export: network and service object-groups and one extended ACL using them."""

from __future__ import annotations

from auditor.firewall.export_common import ExportRule, header_lines, safe_name, safe_text

ACL = "AUDITOR-EXCHANGE"


def _network_lines(net) -> str:
    if net.num_addresses == 1:
        return f" host {net.network_address}"
    return f" {net.network_address} {net.netmask}"


def _service_lines(rule: ExportRule) -> list[str]:
    return [f" {rule.proto} eq {lo}" if lo == hi else f" {rule.proto} range {lo} {hi}"
            for lo, hi in rule.ports]


def cisco_text(rows: list[ExportRule], mode: str) -> str:
    """Object-groups for every named endpoint and port set, then the ACL, ending in deny any."""
    lines = [f"! {h}" for h in header_lines(mode, rows, "Cisco IOS extended ACL")]
    lines.append("! IPv6 rows are listed as remarks: write them in an ipv6 access-list")
    groups: dict[str, str] = {}  # endpoint text -> object-group name
    used: set[str] = set()

    def group(net, name: str) -> str:
        if net is None:
            return "any"
        key = net.with_prefixlen
        if key not in groups:
            base = safe_name(name, "NET") if name else safe_name(key, "NET")
            candidate, n = base, 2
            while candidate in used:
                candidate, n = f"{base}_{n}", n + 1
            used.add(candidate)
            groups[key] = candidate
            lines.extend([f"object-group network {candidate}", _network_lines(net), "!"])
        return f"object-group {groups[key]}"

    aces = [f"ip access-list extended {ACL}"]
    services = 0
    for rule in rows:
        if rule.family == 6:
            aces.append(f" remark IPv6 {safe_text(rule.label, 80)} {rule.proto} (not in this ACL)")
            continue
        src = group(rule.source, rule.source_name)
        dst = group(rule.destination, rule.destination_name)
        aces.append(f" remark {safe_text(rule.label + ': ' + (rule.rules or 'no catalogue rule'), 90)}")
        if rule.proto in ("tcp", "udp") and rule.ports:
            services += 1
            name = f"SVC-{services:03d}"
            lines.extend([f"object-group service {name}", *_service_lines(rule), "!"])
            ace = f"permit object-group {name} {src} {dst}"
        else:
            proto = rule.proto if rule.proto in ("tcp", "udp", "icmp") or rule.proto.isdigit() else "ip"
            ace = f"permit {proto} {src} {dst}"
        # an ICMP row naming types: one ACE per type (`permit icmp SRC DST 8`)
        typed = rule.proto == "icmp" and rule.icmp_types
        for one in [f"{ace} {t}" for t in rule.icmp_types] if typed else [ace]:
            if rule.justified:
                aces.append(f" {one}")
            else:
                aces.append(f" remark NOT JUSTIFIED, not permitted: {one}"[:100])
    aces += [" deny ip any any log", "!"]
    return "\n".join(lines + aces) + "\n"
