"""Terminal and Markdown renderings of a ruleset verification (`auditor verify`)."""

from __future__ import annotations

import pandas as pd

from auditor.render.markdown import _md_table, md_code, md_text
from auditor.render.text import printable


def _host(name: str, ip: str) -> str:
    return f"{printable(name)} ({ip})" if name else str(ip)


def _port(proto: str, port: int, icmp_type: str = "") -> str:
    if proto in ("tcp", "udp"):
        return f"{proto}/{port}"
    return f"{proto} {printable(icmp_type)}" if icmp_type else str(proto)


def _flows(n: int) -> str:
    return f"{n} flow{'s' if n != 1 else ''}"


def _line(value) -> str:
    return "implicit deny" if pd.isna(value) else f"denied by line {int(value)}"


def verify_text(result, limit: int | None = 40) -> str:
    """Summary, then every path the ruleset would block (documented first, with the rule broken)."""
    s = result.summary
    lines = [
        f"ruleset {printable(result.ruleset)}: {s['ruleset_rows']} rows, {s['unused_rows']} unused",
        f"coverage {result.coverage:.1%}: {s['documented_successful_flows_permitted']} of "
        f"{s['documented_successful_flows']} successful documented flows permitted",
        f"paths: {s['paths']['permitted']} permitted, {s['paths']['would_block']} would be blocked "
        f"({s['documented_paths_blocked']} documented), {s['paths']['outside_scope']} outside the "
        f"ruleset's scope, {s['paths']['related']} ICMP errors of other flows",
        "",
    ]
    blocked = result.would_block
    shown = blocked if limit is None else blocked.head(limit)
    for row in shown.itertuples(index=False):
        tag = "BLOCKS " if row.documented else "blocks "
        where = _port(row.proto, row.dst_port, row.icmp_type)
        lines.append(f"{tag}{_host(row.src_name, row.src_ip)} -> {_host(row.dst_name, row.dst_ip)} "
                     f"{where} {_flows(row.flows)} ({_line(row.ruleset_line)})")
        if row.documented:
            lines.append(f"{'':7}breaks documented rule {printable(row.breaks or row.rule)}")
        else:
            lines.append(f"{'':7}undocumented traffic (no catalogue rule)")
    if blocked.empty:
        lines.append("nothing observed would be blocked")
    elif len(shown) < len(blocked):
        lines.append(f"... and {len(blocked) - len(shown)} more (--format json lists every one)")
    if not result.unused.empty:
        lines += ["", f"unused ruleset rows ({len(result.unused)}): lines "
                  + ", ".join(str(v) for v in result.unused["ruleset_line"])]
    return "\n".join(lines) + "\n"


def verify_markdown(result, title: str = "Firewall ruleset verification") -> str:
    """The verification for a change ticket, in Markdown."""
    s = result.summary
    out = [
        f"# {md_text(title)}", "",
        f"Ruleset {md_code(result.ruleset)}: {s['ruleset_rows']} rows, {s['unused_rows']} unused. "
        f"Coverage **{result.coverage:.1%}** ({s['documented_successful_flows_permitted']} of "
        f"{s['documented_successful_flows']} successful documented flows permitted).", "",
        "## Would be blocked", "",
    ]
    blocked = result.would_block
    if blocked.empty:
        out.append("Nothing observed would be blocked.")
    else:
        rows = []
        for r in blocked.itertuples(index=False):
            rows.append([
                md_code(r.src_name) + " " + md_code(r.src_ip), md_code(r.dst_name) + " "
                + md_code(r.dst_ip), md_text(_port(r.proto, r.dst_port, r.icmp_type)), str(r.flows),
                "yes" if r.documented else "no", md_text(r.breaks), md_text(_line(r.ruleset_line)),
            ])
        out += _md_table(["source", "destination", "port", "flows", "documented", "breaks",
                          "decided by"], rows)
    out += ["", "## Unused ruleset rows", ""]
    if result.unused.empty:
        out.append("Every row was used.")
    else:
        out += _md_table(["line", "source", "destination", "proto", "ports", "icmp types",
                          "action"], [
            [str(r.ruleset_line), md_code(r.source), md_code(r.destination), md_text(r.proto),
             md_text(r.ports), md_text(r.icmp_types), md_text(r.action)]
            for r in result.unused.itertuples(index=False)])
    return "\n".join(out) + "\n"
