"""Terminal and Markdown renderings of the comparison of two audits (`auditor diff`)."""

from __future__ import annotations

import pandas as pd

from auditor.render.markdown import _md_table, md_code, md_text
from auditor.render.text import printable


def _host(name: str, ip: str) -> str:
    if not ip:
        return "-"
    return f"{printable(name)} ({ip})" if name else str(ip)


def _port(proto: str, port) -> str:
    return proto if pd.isna(port) else f"{proto}/{int(port)}"


def _finding_line(r) -> str:
    kind = r.kind or r.old_kind
    rule = f" [{printable(r.rule)}]" if r.rule else ""
    head = (f"{r.status.upper():<9}{kind:<11}{_host(r.src_name, r.src_ip)} -> "
            f"{_host(r.dst_name, r.dst_ip)} {_port(r.proto, r.dst_port)}{rule}")
    if r.status == "changed":
        return f"{head}: {r.changes}"
    flows = r.flows if r.status == "new" else r.old_flows
    return f"{head} {flows} flow{'s' if flows != 1 else ''}"


def diff_text(diff) -> str:
    """New, changed and resolved findings, then rule status changes and RPC endpoints that moved."""
    s = diff.summary
    f, r = s["findings"], s["rules"]
    lines = [
        f"{printable(diff.old)} -> {printable(diff.new)}",
        f"findings: {f['new']} new, {f['changed']} changed, {f['resolved']} resolved",
        f"rules: {r['newly_observed']} newly observed, {r['newly_missing']} newly missing, "
        f"{r['no_longer_observed']} no longer observed; RPC endpoints moved: {s['rpc_moved']}",
        "",
    ]
    lines += [_finding_line(row) for row in diff.findings.itertuples(index=False)]
    if diff.findings.empty:
        lines.append("no finding changed")
    if not diff.rules.empty:
        lines += ["", "Rules:"]
        lines += [f"  {printable(row.id)}: {row.change} ({row.old_status or '-'} -> "
                  f"{row.new_status or '-'})" for row in diff.rules.itertuples(index=False)]
    if not diff.rpc.empty:
        lines += ["", "RPC endpoints that moved:"]
        lines += [f"  {row.server_ip} {printable(row.interface or row.interface_uuid)} "
                  f"{row.proto} {row.old_ports} -> {row.new_ports}"
                  for row in diff.rpc.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def diff_markdown(diff, title: str = "Audit comparison") -> str:
    """The comparison for a ticket, in Markdown."""
    s = diff.summary
    out = [f"# {md_text(title)}", "", f"{md_code(diff.old)} → {md_code(diff.new)}: "
           f"{s['findings']['new']} new, {s['findings']['changed']} changed, "
           f"{s['findings']['resolved']} resolved findings.", "", "## Findings", ""]
    if diff.findings.empty:
        out.append("No finding changed.")
    else:
        out += _md_table(["status", "kind", "source", "destination", "port", "rule", "flows",
                          "changes"], [
            [md_text(r.status), md_text(r.kind or r.old_kind),
             " ".join(x for x in (md_code(r.src_name), md_code(r.src_ip)) if x),
             " ".join(x for x in (md_code(r.dst_name), md_code(r.dst_ip)) if x),
             md_text(_port(r.proto, r.dst_port)), md_text(r.rule),
             f"{r.old_flows} → {r.flows}", md_text(r.changes)]
            for r in diff.findings.itertuples(index=False)])
    out += ["", "## Rules", ""]
    if diff.rules.empty:
        out.append("No rule changed status.")
    else:
        out += _md_table(["rule", "change", "old status", "new status"], [
            [md_text(r.id), md_text(r.change), md_text(r.old_status), md_text(r.new_status)]
            for r in diff.rules.itertuples(index=False)])
    out += ["", "## RPC endpoints that moved", ""]
    if diff.rpc.empty:
        out.append("None.")
    else:
        out += _md_table(["server", "interface", "proto", "old ports", "new ports"], [
            [md_code(r.server_ip), md_text(r.interface or r.interface_uuid), md_text(r.proto),
             md_text(r.old_ports), md_text(r.new_ports)] for r in diff.rpc.itertuples(index=False)])
    return "\n".join(out) + "\n"
