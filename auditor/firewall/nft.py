"""nftables export: one `table inet` ruleset file that `nft -f` loads (and `nft -c -f` checks)."""

from __future__ import annotations

from auditor.firewall.export_common import ExportRule, header_lines, net_text, safe_text

TABLE = "auditor_exchange"
_L4 = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "ipv6-icmp"}


def _addr(rule: ExportRule) -> list[str]:
    out = []
    for side, net in (("saddr", rule.source), ("daddr", rule.destination)):
        if net is not None:
            out.append(f"{'ip' if net.version == 4 else 'ip6'} {side} {net_text(net)}")
    return out


def _ports(runs) -> str:
    items = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def nft_rule(rule: ExportRule) -> str:
    """The rule statement for one request (addresses, protocol, ports, accept, comment)."""
    parts = _addr(rule)
    proto = rule.proto
    if proto in ("tcp", "udp") and rule.ports:
        parts.append(f"{proto} dport {_ports(rule.ports)}")
    elif proto in ("icmp", "icmpv6") and rule.icmp_types:
        parts.append(f"{proto} type {_ports((t, t) for t in rule.icmp_types)}")
    elif proto in _L4:
        parts.append(f"meta l4proto {_L4[proto]}")
    elif proto.isdigit():
        parts.append(f"meta l4proto {int(proto)}")
    # nft keeps at most 128 bytes of comment
    parts.append(f'accept comment "{safe_text(rule.label + " " + rule.rules, 120)}"')
    return " ".join(parts)


def nftables_text(rows: list[ExportRule], mode: str) -> str:
    """The ruleset file: established/related first, then one accept per request, policy drop."""
    lines = ["#!/usr/sbin/nft -f", *(f"# {h}" for h in header_lines(mode, rows, "nftables")),
             f"# check: nft -c -f FILE; load: nft -f FILE (delete table inet {TABLE} to reload)",
             f"table inet {TABLE} {{", "\tchain forward {",
             "\t\ttype filter hook forward priority filter; policy drop;",
             '\t\tct state established,related accept comment "return traffic and ICMP errors"']
    for rule in rows:
        lines.append(f"\t\t# {safe_text(rule.label)}: {rule.rules or 'no catalogue rule'}")
        if rule.justified:
            lines.append(f"\t\t{nft_rule(rule)}")
        else:
            lines.append(f"\t\t# NOT JUSTIFIED ({safe_text(rule.justification, 160)}):")
            lines.append(f"\t\t# {nft_rule(rule)}")
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"
