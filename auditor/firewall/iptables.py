"""iptables export: an `iptables-restore` file (IPv4; IPv6 rows are listed for ip6tables)."""

from __future__ import annotations

from auditor.firewall.export_common import ExportRule, header_lines, safe_text

CHAIN = "AUDITOR-EXCHANGE"
MULTIPORT_SLOTS = 15  # the multiport match takes 15 ports; a range uses two


def _chunks(runs) -> list[list[tuple[int, int]]]:
    """Port runs split so each chunk fits one multiport match."""
    out, current, used = [], [], 0
    for lo, hi in runs:
        cost = 1 if lo == hi else 2
        if current and used + cost > MULTIPORT_SLOTS:
            out.append(current)
            current, used = [], 0
        current.append((lo, hi))
        used += cost
    if current:
        out.append(current)
    return out


def ipt_rules(rule: ExportRule) -> list[str]:
    """The `-A` lines of one request (several when its ports overflow one multiport match)."""
    base = [f"-A {CHAIN}"]
    if rule.source is not None:
        base.append(f"-s {rule.source.with_prefixlen}")
    if rule.destination is not None:
        base.append(f"-d {rule.destination.with_prefixlen}")
    comment = f'-m comment --comment "{safe_text(rule.label + " " + rule.rules, 240)}" -j ACCEPT'
    proto = rule.proto
    if proto in ("tcp", "udp") and rule.ports:
        lines = []
        for chunk in _chunks(rule.ports):
            ports = ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in chunk)
            lines.append(" ".join([*base, f"-p {proto} -m multiport --dports {ports}", comment]))
        return lines
    if proto in ("icmp", "icmpv6") and rule.icmp_types:  # one line per type: no multi-type match
        return [" ".join([*base, f"-p {proto} --{proto}-type {t}", comment])
                for t in rule.icmp_types]
    if proto in ("tcp", "udp", "icmp") or proto.isdigit():
        return [" ".join([*base, f"-p {proto}", comment])]
    return [" ".join([*base, comment])]


def iptables_text(rows: list[ExportRule], mode: str) -> str:
    """The restore file: FORWARD drops by default, accepts return traffic, jumps to our chain."""
    lines = [*(f"# {h}" for h in header_lines(mode, rows, "iptables")),
             "# check: iptables-restore --test FILE; load: iptables-restore FILE",
             "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
             f":{CHAIN} - [0:0]",
             "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
             f"-A FORWARD -j {CHAIN}"]
    for rule in rows:
        lines.append(f"# {safe_text(rule.label)}: {rule.rules or 'no catalogue rule'}")
        if rule.family == 6 or rule.proto == "icmpv6":
            lines.append("# IPv6: write this one with ip6tables: " + " ".join(
                ipt_rules(rule)).replace("-p icmpv6", "-p ipv6-icmp"))
        elif rule.justified:
            lines += ipt_rules(rule)
        else:
            lines.append(f"# NOT JUSTIFIED ({safe_text(rule.justification, 160)}):")
            lines += [f"# {line}" for line in ipt_rules(rule)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
