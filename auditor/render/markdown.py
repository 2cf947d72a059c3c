"""The Markdown summary for tickets: capture strings escaped or code-quoted."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

from auditor.atomic import write_text
from auditor.audit.verdicts import AuditResult
from auditor.render.common import (
    GUESSES,
    NAME_SOURCE_LEGEND,
    ORIENTATION_LEGEND,
    capture_rows,
    missing_rules,
    orientation_label,
    plain,
    roles_with_versions,
    summary_rows,
)
from auditor.render.text import printable

# Escaped in Markdown text: what could start code, emphasis, links, HTML, entities or break the
# table; '_' only at word edges (inside words it is never emphasis, and host names are full of it).
_MD_SPECIAL = re.compile(r"[\\`*\[\]<|~]|&(?=#?\w+;)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_text(value) -> str:
    """Text for a Markdown table cell: specials backslash-escaped, newlines flattened."""
    text = "" if plain(value) is None else str(plain(value))
    text = printable(re.sub(r"\s*[\r\n]+\s*", " ", text))
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(), text)


def md_code(value) -> str:
    """Capture text as an inline code span (never a link or HTML), safe inside a table cell."""
    text = "" if plain(value) is None else str(plain(value))
    if not text:
        return ""
    text = printable(re.sub(r"[\r\n]+", " ", text)).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _md_host(ip, name, role, name_source=None) -> str:
    """`name` (via its source) `ip` (role)."""
    named = md_code(name) if plain(name) else ""
    if named and plain(name_source):
        named += f" (via {md_text(name_source)})"
    text = " ".join(p for p in (named, md_code(ip) if plain(ip) else "") if p)
    return f"{text} ({md_text(role)})" if plain(role) else text


def _md_orientation(value) -> str:
    """The orientation as in JSON; a guess in italics with '(guess)'."""
    text = md_text(orientation_label(value))
    return f"*{text}*" if plain(value) in GUESSES else text


def _legend() -> list[str]:
    """What each orientation value and name source means."""
    out = ["", "Orientation (what decided which end started the flow; a finding shows the weakest "
               "of its flows; guesses in italics):", ""]
    out += [f"- {_md_orientation(k)}: {md_text(v)}" for k, v in ORIENTATION_LEGEND]
    out += ["", "Name source (\"via ...\" after a name): where the end's name came from: "
            + "; ".join(f"{md_text(k)}: {md_text(v)}" for k, v in NAME_SOURCE_LEGEND) + "."]
    return out


def _md_port(proto, port) -> str:
    port = plain(port)
    return md_text(f"{port}/{proto}" if port is not None else proto)


def _packets_section(result: AuditResult) -> list[str]:
    """Per finding with flows, the tshark command that shows its packets."""
    from auditor.audit.filters import tshark_command

    f = result.findings
    if f.empty or "display_filter" not in f.columns:
        return []
    names = [c.get("name", "") for c in capture_rows(result)]
    capture = names[0] if len(names) == 1 and names[0] else "CAPTURE"
    shown = f[(f["flows"] > 0) & f["display_filter"].map(lambda v: isinstance(v, str) and v != "")]
    if shown.empty:
        return []
    out = ["", "### The packets of each finding", ""]
    for r in shown.itertuples(index=False):
        out.append(f"- {md_text(r.kind)} {_md_host(r.src_ip, r.src_name, '')} → "
                   f"{_md_host(r.dst_ip, r.dst_name, '')} {_md_port(r.proto, r.dst_port)}: "
                   f"{md_code(tshark_command(capture, r.display_filter))}")
    return out


def markdown_text(result: AuditResult, title: str = "Exchange traffic audit") -> str:
    """The Markdown report as text."""
    out = [f"# {md_text(title)}", ""]
    caps = capture_rows(result)
    if caps:
        out.append("Captures: " + ", ".join(md_code(c.get("name", "")) for c in caps))
        out.append("")
    out += ["## Summary", ""]
    out += _md_table(["", "value"], [(md_text(k), md_text(v)) for k, v in summary_rows(result)])
    if result.warnings:
        out += ["", "Warnings:", ""] + [f"- {md_text(w)}" for w in result.warnings]
    f = roles_with_versions(result.findings)  # coexistence: 'mailbox 2016'
    out += ["", f"## Findings ({len(f)})", ""]
    if f.empty:
        out.append("No findings.")
    else:
        out += _md_table(
            ["kind", "severity", "source", "destination", "port", "orientation", "rule", "flows",
             "detail"],
            ((md_text(r.kind), md_text(r.severity),
              _md_host(r.src_ip, r.src_name, r.src_role, getattr(r, "src_name_source", "")),
              _md_host(r.dst_ip, r.dst_name, r.dst_role, getattr(r, "dst_name_source", "")),
              _md_port(r.proto, r.dst_port), _md_orientation(getattr(r, "orientation", "")),
              md_text(r.rule), md_text(r.flows), md_text(r.detail))
             for r in f.itertuples(index=False)),
        )
        out += _legend()
    out += _packets_section(result)
    missing = missing_rules(result.rules)
    out += ["", f"## Missing rules ({len(missing)})", ""]
    if missing.empty:
        out.append("Every expected rule was seen.")
    else:
        out += _md_table(
            ["rule", "service", "source roles", "destination roles", "ports"],
            ((md_text(r.id), md_text(r.service), md_text(r.source), md_text(r.destination),
              md_text(f"{r.ports}/{r.proto}")) for r in missing.itertuples(index=False)),
        )
    out += ["", "## Dynamic RPC endpoints", ""]
    rpc = result.rpc
    if rpc is None or rpc.empty:
        out.append("No DCE/RPC endpoints were discovered.")
    else:
        out += _md_table(
            ["server", "port", "interface", "evidence", "use", "flows"],
            ((md_code(r.get("server_ip")), _md_port(r.get("proto", "tcp"), r.get("port")),
              md_text(r.get("interface") or r.get("interface_uuid") or ""),
              md_text(r.get("evidence")), md_text(r.get("use", "")), md_text(r.get("flows")))
             for r in rpc.to_dict("records")),
        )
    ranges = result.rpc_ranges
    if ranges is not None and not ranges.empty:
        out += ["", "### Dynamic port ranges", ""]
        out += _md_table(
            ["server", "ports in use", "expected", "recommendation"],
            ((md_code(r.get("server_ip")),
              md_text(f"{plain(r.get('lowest_port'))}-{plain(r.get('highest_port'))}"),
              md_text(r.get("expected_range")), md_text(r.get("recommendation")))
             for r in ranges.to_dict("records")),
        )
    return "\n".join(out) + "\n"


def write_markdown(result: AuditResult, path_or_stream, *,
                   title: str = "Exchange traffic audit") -> None:
    """Write summary, findings, missing rules and RPC endpoints as Markdown (for tickets)."""
    text = markdown_text(result, title)
    if isinstance(path_or_stream, str | Path):
        write_text(path_or_stream, text)
    elif isinstance(path_or_stream, io.RawIOBase | io.BufferedIOBase):
        path_or_stream.write(text.encode("utf-8"))
    else:
        path_or_stream.write(text)


