"""Plain-text renderings for the terminal: the audit summary and the RPC endpoints.

Capture strings are escaped (`printable`): a DNS name or banner may carry terminal control
sequences.
"""

from __future__ import annotations

import pandas as pd


def audit_text(result, limit: int | None = 40) -> str:
    """The readable summary of an audit: headline, findings most important first, RPC endpoints.

    `limit` caps the findings listed (they are sorted, so the cut ones matter least); None: all.
    """
    s = result.summary
    f = s["findings"]
    lines = [
        f"{s['flows']} flows, {s['packets']} packets, {s['hosts']} hosts in "
        + ", ".join(printable(c.name) for c in result.captures),
        f"findings: {f['rejected']} rejected, {f['unanswered']} unanswered, "
        f"{f['unexpected']} unexpected, {f['missing']} missing "
        f"({s['documented_blocks']} documented paths blocked)",
        "rules: " + ", ".join(f"{v} {k}" for k, v in sorted(s["rules"].items())),
        "",
    ]
    shown = result.findings if limit is None else result.findings.head(limit)
    mixed = len(s.get("versions", ())) > 1  # coexistence: name each end's Exchange version
    for row in shown.itertuples(index=False):
        port = "" if pd.isna(row.dst_port) else f"/{row.dst_port}"
        rule = f" [{row.rule}]" if row.rule else ""
        lines.append(
            f"{row.severity.upper():<6} {row.kind:<10} "
            f"{_host(row.src_name, row.src_ip, row.src_role, _version(row, 'src', mixed))}"
            f" -> {_host(row.dst_name, row.dst_ip, row.dst_role, _version(row, 'dst', mixed))}"
            f" {row.proto}{port}{rule}"
            f" {row.flows} flow{'s' if row.flows != 1 else ''}"
        )
        lines.append(f"{'':17}{printable(row.detail)}")
    if result.findings.empty:
        lines.append("no findings")
    elif len(shown) < len(result.findings):
        lines.append(f"... and {len(result.findings) - len(shown)} more findings, less severe "
                     "(--all lists them; --format csv|json or --report keeps them all)")
    if not result.rpc.empty:
        lines += ["", "Dynamic RPC endpoints (server:port, interfaces, evidence):"]
        for (server, port, proto), grp in result.rpc.groupby(["server_ip", "port", "proto"]):
            names = sorted({n for n in grp["interface"] if n}) or ["(unnamed)"]
            first = grp.iloc[0]
            use = first["use"]
            lines.append(f"  {server}:{port}/{proto}  {', '.join(names)}  "
                         f"({'/'.join(sorted(set(grp['evidence'])))}; {use}; "
                         f"{int(first['flows'])} flows, {int(first['clients'])} clients)")
    if result.warnings:
        lines += ["", "Warnings:"] + [f"- {printable(w)}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def _version(row, side: str, mixed: bool) -> str:
    return str(getattr(row, f"{side}_version", "") or "") if mixed else ""


def _host(name: str, ip: str, role: str, version: str = "") -> str:
    """'NAME (ip)' or the ip, or the role when the finding is about a role, not a host;
    'NAME (ip, 2016)' with the end's Exchange version in a coexistence audit."""
    if not ip:
        return f"<{role} {version}>" if version else f"<{role}>"
    where = f"{ip}, {version}" if version else ip
    return f"{printable(name)} ({where})" if name else (f"{ip} ({version})" if version else ip)


_CONTROLS = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))
_CONTROL_ESCAPES = str.maketrans({c: f"\\x{ord(c):02x}" for c in _CONTROLS if c not in "\t\n\r"})


def controls_escaped(text: str) -> str:
    """C0/C1 control characters (not tab or newlines) as visible \\xNN: for files, not terminals."""
    return text.translate(_CONTROL_ESCAPES)


def printable(text: object) -> str:
    """Escape what a terminal would interpret: capture strings may carry control sequences."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def rpc_text(endpoints: pd.DataFrame, ranges: pd.DataFrame) -> str:
    """Endpoints found by RPC discovery, then each server's range and pinning advice."""
    cols = ["server_ip", "port", "proto", "interface", "interface_uuid", "evidence", "use",
            "clients", "flows", "bytes"]
    text = _table(endpoints[cols], "Dynamic RPC endpoints") + "\n"
    if not ranges.empty:
        for row in ranges.itertuples(index=False):
            text += (f"{row.server_ip}: ports {row.lowest_port}-{row.highest_port} in use "
                     f"({row.ports} ports), expected {row.expected_range} ({row.expected_basis})"
                     + (f"; outside: {row.outside_ports}" if row.outside_ports else "")
                     + (f"; pinned-looking: {row.pinned_ports}" if row.pinned_ports else "")
                     + f"\n  pin: {row.recommendation}\n")
    return text


def _table(frame: pd.DataFrame, title: str) -> str:
    body = frame.map(printable).to_string(index=False) if not frame.empty else "(none)"
    return f"{title}\n{body}\n"
