"""Audit reports: one self-contained HTML page, a Markdown summary for tickets, an Excel workbook.

Every string that came from a capture (host names, banners, rule text) is treated as hostile:
HTML escapes it, Markdown escapes or code-quotes it, and the workbook never lets it become a
formula. `write_report` picks the writer from the file suffix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.audit import AuditResult
from auditor.errors import AuditorError

__all__ = ["write_html", "write_markdown", "write_report", "write_xlsx"]

# A cell starting with one of these is run as a formula by spreadsheet programs (OWASP CSV
# injection); names come from captures, so they are attacker-controlled.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XLSX_MAX_ROWS = 1_048_576


def write_report(result: AuditResult, path, *, catalogue=None,
                 title: str = "Exchange traffic audit", max_flows: int | None = 20_000) -> None:
    """Write the report format named by the suffix: .html/.htm, .md or .xlsx."""
    suffix = Path(path).suffix.lower()
    if suffix in (".html", ".htm"):
        write_html(result, path, catalogue=catalogue, title=title)
    elif suffix in (".md", ".markdown"):
        write_markdown(result, path, title=title)
    elif suffix == ".xlsx":
        write_xlsx(result, path, max_flows=max_flows)
    else:
        raise AuditorError(f"{path}: unknown report format {suffix or '(no suffix)'!r}; "
                           "use .html, .md or .xlsx")


def write_html(result: AuditResult, path, *, catalogue=None,
               title: str = "Exchange traffic audit") -> None:
    """Write one self-contained HTML page (plots inline, no external resources)."""
    from auditor.report_html import render_html

    Path(path).write_text(render_html(result, catalogue=catalogue, title=title),
                          encoding="utf-8")


# ---- values shared by the writers --------------------------------------------------------


def plain(value):
    """A frame cell as a plain Python value: None for missing, int/float/bool/str/Timestamp."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    return value


def format_time(value) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM:SS' UTC; empty for missing."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return ""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def summary_rows(result: AuditResult) -> list[tuple[str, object]]:
    """The summary mapping flattened to (label, value) rows: nested counts as 'findings: missing'."""
    rows = []
    for key, value in result.summary.items():
        if isinstance(value, dict):
            rows += [(f"{key}: {k}", v) for k, v in value.items()]
        else:
            rows.append((str(key), value))
    return rows


def capture_rows(result: AuditResult) -> list[dict]:
    """One dict per capture file: its dataclass fields, times as text, skipped reasons joined."""
    rows = []
    for cap in result.captures:
        if dataclasses.is_dataclass(cap):
            row = dataclasses.asdict(cap)
        else:
            row = {"name": str(cap)}
        for key in ("first_ts_ns", "last_ts_ns"):
            if key in row:
                ts = row.pop(key)
                row[key.replace("_ts_ns", "_seen")] = format_time(
                    pd.Timestamp(ts, unit="ns", tz="UTC") if ts is not None else None)
        if isinstance(row.get("skipped"), dict):
            row["skipped"] = "; ".join(f"{k}: {v}" for k, v in row["skipped"].items())
        rows.append(row)
    return rows


def missing_rules(rules: pd.DataFrame | None) -> pd.DataFrame:
    """Catalogue rules a healthy deployment shows that this capture never did."""
    if rules is None or rules.empty or "status" not in rules.columns:
        return pd.DataFrame(columns=["id", "service", "source", "destination", "proto", "ports"])
    return rules[rules["status"] == "missing"]


# ---- Markdown ----------------------------------------------------------------------------

# Escaped in Markdown text: what could start code, emphasis, links, HTML, entities or break the
# table; '_' only at word edges (inside words it is never emphasis, and host names are full of it).
_MD_SPECIAL = re.compile(r"[\\`*\[\]<|~]|&(?=#?\w+;)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_text(value) -> str:
    """Text for a Markdown table cell: specials backslash-escaped, newlines flattened."""
    text = "" if plain(value) is None else str(plain(value))
    text = re.sub(r"\s*[\r\n]+\s*", " ", text)
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(), text)


def md_code(value) -> str:
    """Capture text as an inline code span (never a link or HTML), safe inside a table cell."""
    text = "" if plain(value) is None else str(plain(value))
    if not text:
        return ""
    text = re.sub(r"[\r\n]+", " ", text).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _md_host(ip, name, role) -> str:
    parts = [md_code(name) if plain(name) else "", md_code(ip) if plain(ip) else ""]
    text = " ".join(p for p in parts if p)
    return f"{text} ({md_text(role)})" if plain(role) else text


def _md_port(proto, port) -> str:
    port = plain(port)
    return md_text(f"{port}/{proto}" if port is not None else proto)


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
    f = result.findings
    out += ["", f"## Findings ({len(f)})", ""]
    if f.empty:
        out.append("No findings.")
    else:
        out += _md_table(
            ["kind", "severity", "source", "destination", "port", "rule", "flows", "detail"],
            ((md_text(r.kind), md_text(r.severity), _md_host(r.src_ip, r.src_name, r.src_role),
              _md_host(r.dst_ip, r.dst_name, r.dst_role), _md_port(r.proto, r.dst_port),
              md_text(r.rule), md_text(r.flows), md_text(r.detail))
             for r in f.itertuples(index=False)),
        )
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
            ["server", "port", "interface", "evidence", "flows"],
            ((md_code(r.get("server_ip")), _md_port(r.get("proto", "tcp"), r.get("port")),
              md_text(r.get("interface") or r.get("interface_uuid") or ""),
              md_text(r.get("evidence")), md_text(r.get("flows")))
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
        Path(path_or_stream).write_text(text, encoding="utf-8")
    elif isinstance(path_or_stream, io.RawIOBase | io.BufferedIOBase):
        path_or_stream.write(text.encode("utf-8"))
    else:
        path_or_stream.write(text)


# ---- Excel -------------------------------------------------------------------------------


def _xlsx_text(value) -> str:
    # openpyxl refuses control characters; names from captures may hold them.
    return _XLSX_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _xlsx_column(series: pd.Series, ws) -> list:
    """One column as cell values, converted column-wise (the flows sheet can hold 100k rows):
    naive UTC datetimes, None for missing, text cleaned and never a formula."""
    from openpyxl.cell import WriteOnlyCell

    kind = series.dtype.kind
    if isinstance(series.dtype, pd.DatetimeTZDtype) or kind == "M":
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz else series
        # datetime64[us] -> object gives datetime.datetime (and None for NaT); Excel keeps
        # microseconds at best.
        return naive.to_numpy(dtype="datetime64[us]").astype(object).tolist()
    if kind in "biuf" and not series.hasnans:
        return series.to_numpy().tolist()
    values = [plain(v) for v in series.astype(object).tolist()]
    out = []
    for value in values:
        if isinstance(value, str):
            value = _xlsx_text(value)
            if value.startswith(FORMULA_START):
                # A string cell with Excel's quote prefix: shown and read back unchanged,
                # never evaluated, even after the user edits it.
                cell = WriteOnlyCell(ws, value=value)
                cell.data_type = "s"
                cell.quotePrefix = True
                value = cell
        elif isinstance(value, pd.Timestamp):
            value = _xlsx_column(pd.Series([value]), ws)[0]
        elif value is not None and not isinstance(value, int | float | bool | dt.datetime):
            value = _xlsx_text(str(value))  # e.g. a nested summary mapping
        out.append(value)
    return out


def _xlsx_rows(ws, frame: pd.DataFrame, columns: list[str], limit: int | None = None) -> None:
    """Append a header and the frame's rows (at most limit)."""
    ws.append(columns)
    part = frame[columns] if limit is None else frame[columns].iloc[:limit]
    for row in zip(*(_xlsx_column(part[c], ws) for c in columns), strict=True):
        ws.append(row)


def _frame(rows: list[dict] | pd.DataFrame | None) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame()
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)


def write_xlsx(result: AuditResult, path, *, max_flows: int | None = 20_000) -> None:
    """Write sheets summary, findings, flows (the first max_flows), rules, rpc, rpc_ranges,
    hosts and captures."""
    try:
        from openpyxl import Workbook
    except ImportError:
        raise AuditorError("xlsx output needs openpyxl: pip install 'auditor[xlsx]'") from None
    wb = Workbook(write_only=True)
    flows = result.flows
    # openpyxl writes ~70k cells/s, about 5 s per 10k flows: the flows sheet is capped (by
    # default) so a large capture's report stays quick; findings and rules are never cut.
    limit = _XLSX_MAX_ROWS - 1 if max_flows is None else min(max_flows, _XLSX_MAX_ROWS - 1)
    summary = [{"item": k, "value": plain(v)} for k, v in summary_rows(result)]
    summary += [{"item": "warning", "value": w} for w in result.warnings]
    if len(flows) > limit:
        summary.append({"item": "note", "value": f"the flows sheet holds the first {limit} of "
                                                 f"{len(flows)} flows; `auditor flows` exports "
                                                 "them all"})
    sheets = [
        ("summary", _frame(summary)),
        ("findings", result.findings),
        ("flows", flows),
        ("rules", result.rules),
        ("rpc", result.rpc),
        ("rpc_ranges", result.rpc_ranges),
        ("hosts", result.hosts),
        ("captures", _frame(capture_rows(result))),
    ]
    for name, frame in sheets:
        ws = wb.create_sheet(name)
        frame = _frame(frame)
        columns = [str(c) for c in frame.columns]
        ws.freeze_panes = "A2"
        for i, col in enumerate(columns):
            width = min(max(len(col), *(len(str(v)) for v in frame[col].head(200))) + 2, 60) \
                if len(frame) else len(col) + 2
            ws.column_dimensions[_column_letter(i + 1)].width = width
        _xlsx_rows(ws, frame.set_axis(columns, axis=1) if columns else frame, columns,
                   limit if name == "flows" else None)
    wb.save(path)


def _column_letter(n: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(n)
