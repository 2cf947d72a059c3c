"""The HTML report: one self-contained page with inline PNG plots and a sortable findings table.

Every value is escaped with `html.escape` where it is written; the page's Content-Security-Policy
allows no network access at all and runs only the one script it carries (pinned by its hash), so
even a missed escape could not run a capture's `<script>`. The sort/filter script reads the data
from the DOM, it never builds HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
from importlib import resources

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from auditor.audit.verdicts import AuditResult
from auditor.render.common import (
    GUESSES,
    NAME_SOURCE_LEGEND,
    ORIENTATION_LEGEND,
    capture_rows,
    format_time,
    missing_rules,
    orientation_label,
    plain,
    roles_with_versions,
    summary_rows,
)
from auditor.render.plots import format_bytes
from auditor.render.text import controls_escaped

SECTIONS = (("summary", "Summary"), ("findings", "Findings"), ("rules", "Rules"),
            ("rpc", "Dynamic RPC"), ("hosts", "Hosts"), ("captures", "Captures"))
_KINDS = ("rejected", "unanswered", "unexpected", "missing")
_SEVERITIES = ("high", "medium", "low", "info")
_HOST_MATRIX_MAX = 40
_ROLE_LISTS = ("source", "destination", "roles", "interfaces", "captures")


def esc(value) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    value = plain(value)
    return html.escape(controls_escaped("" if value is None else str(value)), quote=True)


def _asset(name: str) -> str:
    return resources.files("auditor").joinpath(f"data/{name}").read_text("utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# ---- plots -------------------------------------------------------------------------------


def _png(fig: Figure, dpi: int = 110) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_html(data: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="plot" src="data:image/png;base64,{data}" alt="{esc(alt)}">'
            f"<figcaption>{esc(caption)} <span class=\"hint\">(click to enlarge)</span>"
            "</figcaption></figure>")


def _plots(result: AuditResult, catalogue) -> dict[str, str]:
    """Render the plots the page embeds, as <figure> snippets keyed by name."""
    from auditor.render.diagram import plot_role_diagram
    from auditor.render.plots import plot_host_matrix, plot_role_matrix

    out = {}
    flows = result.flows
    fig = Figure(layout="constrained")
    ax = plot_role_matrix(flows, fig.add_subplot())
    fig.set_size_inches(4.2 + 0.8 * max(len(ax.get_xticks()), 2),
                        2.4 + 0.45 * max(len(ax.get_yticks()), 2))
    out["matrix"] = _figure_html(_png(fig), "role matrix",
                                 "Flows per source role (rows) and destination role (columns); "
                                 "colour = worst verdict in the cell.")
    fig = Figure(figsize=(14, 6.9))  # fixed margins: a layout engine costs seconds here
    plot_role_diagram(catalogue if catalogue is not None else result.rules, flows,
                      result.findings, ax=fig.add_axes((0.005, 0.04, 0.99, 0.9)))
    out["diagram"] = _figure_html(_png(fig, 120), "role diagram",
                                  "Role diagram: documented paths seen (green), missing (grey, "
                                  "dashed), undocumented (red) and refused or unanswered (X).")
    hosts = set(flows["src_ip"]) | set(flows["dst_ip"])
    if 0 < len(hosts) <= _HOST_MATRIX_MAX:
        fig = Figure(layout="constrained")
        ax = plot_host_matrix(flows, fig.add_subplot(), max_hosts=_HOST_MATRIX_MAX)
        fig.set_size_inches(5.5 + 0.4 * len(ax.get_xticks()), 3.5 + 0.32 * len(ax.get_yticks()))
        out["hosts"] = _figure_html(_png(fig), "host matrix", "Flows per host pair.")
    return out


# ---- tables ------------------------------------------------------------------------------


def _td(text: str = "", sort=None, cls: str = "") -> str:
    attrs = f' data-sort="{esc(sort)}"' if sort is not None else ""
    attrs += f' class="{cls}"' if cls else ""
    return f"<td{attrs}>{text}</td>"


def _table(table_id: str, header: list[tuple[str, str]], rows: list[str], *,
           sortable: bool = True, empty: str = "Nothing to show.") -> str:
    """A table; header items are (label, 'num'|'text'); rows are ready <tr> strings."""
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f'<th data-type="{t}" scope="col">{esc(label)}</th>' for label, t in header)
    return (f'<div class="scroll"><table id="{table_id}"{cls}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _generic_rows(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    rows = []
    for record in frame[columns].to_dict("records"):
        cells = []
        for col in columns:
            value = plain(record[col])
            if isinstance(value, pd.Timestamp):
                cells.append(_td(esc(format_time(value)), value.value, "time"))
            elif col.endswith("bytes") and isinstance(value, int | float):
                cells.append(_td(esc(format_bytes(value)), value, "num"))
            elif isinstance(value, bool):
                cells.append(_td("yes" if value else "no"))
            elif isinstance(value, int | float):
                grouped = isinstance(value, int) and "port" not in col  # 49152, not 49,152
                cells.append(_td(esc(f"{value:,}" if grouped else value), value, "num"))
            elif col in _ROLE_LISTS and isinstance(value, str):
                cells.append(_td(esc(value.replace(";", "; "))))  # lets long lists wrap
            else:
                cells.append(_td(esc(value)))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return rows


def _generic_table(table_id: str, frame: pd.DataFrame | None, empty: str,
                   columns: list[str] | None = None) -> str:
    if frame is None or frame.empty:
        return f'<p class="empty">{esc(empty)}</p>'
    columns = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    header = [(c.replace("_", " "), "num" if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c]) else "text") for c in columns]
    header = [(label, "num" if frame[c].dtype.kind == "M" else t)
              for (label, t), c in zip(header, columns, strict=True)]
    return _table(table_id, header, _generic_rows(frame, columns), empty=empty)


def _host_cell(ip, name, role, name_source=None) -> str:
    parts = []
    if plain(name):
        parts.append(f'<span class="name">{esc(name)}</span>')
        if plain(name_source):
            parts.append(f'<span class="name-source" title="where the name came from">'
                         f"via {esc(name_source)}</span>")
    if plain(ip):
        parts.append(f'<span class="ip">{esc(ip)}</span>')
    if plain(role):
        parts.append(f'<span class="role">{esc(role)}</span>')
    return _td(" ".join(parts), plain(ip) or plain(role) or "")


def _filter_cell(display_filter) -> str:
    """The finding's Wireshark display filter and a button (wired by report.js) that copies it."""
    text = plain(display_filter) or ""
    if not text:
        return _td()
    return _td(f'<code class="filter">{esc(text)}</code> <button type="button" class="copy" '
               f'data-copy="{esc(text)}" title="copy the Wireshark display filter">copy</button>',
               text, "packets")


def _orientation_cell(value) -> str:
    """The finding's orientation as in JSON; a guess is marked (class and text)."""
    text = plain(value) or ""
    cls = "orientation guess" if text in GUESSES else "orientation"
    return _td(esc(orientation_label(text)), text, cls)


def _legend() -> str:
    """What each orientation value and name source means (shown under the findings table)."""
    rows = "".join(f'<tr><th scope="row" class="{"guess" if k in GUESSES else ""}">'
                   f"{esc(orientation_label(k))}</th><td>{esc(v)}</td></tr>"
                   for k, v in ORIENTATION_LEGEND)
    names = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>'
                    for k, v in NAME_SOURCE_LEGEND)
    return ('<details class="legend"><summary>Legend: orientation and name sources</summary>'
            "<p>Orientation: what decided which end started the flow (a finding shows the weakest "
            "of its flows); guesses are marked.</p>"
            f'<table class="kv" id="orientation-legend">{rows}</table>'
            "<p>Name source: where each end's name came from (shown after the name).</p>"
            f'<table class="kv" id="name-source-legend">{names}</table></details>')


def _findings_section(findings: pd.DataFrame) -> str:
    header = [("kind", "text"), ("severity", "num"), ("source", "text"), ("destination", "text"),
              ("port", "num"), ("orientation", "text"), ("service", "text"), ("rule", "text"),
              ("documented", "text"),
              ("flows", "num"), ("bytes", "num"), ("first seen", "num"), ("last seen", "num"),
              ("packets", "text"), ("detail", "text")]
    rows = []
    findings = roles_with_versions(findings)  # coexistence: 'mailbox 2016'
    for r in findings.itertuples(index=False):
        port = plain(r.dst_port)
        first, last = plain(r.first_seen), plain(r.last_seen)
        sev_rank = _SEVERITIES.index(r.severity) if r.severity in _SEVERITIES else 9
        cells = [
            _td(f'<span class="badge {esc(r.kind)}">{esc(r.kind)}</span>', r.kind),
            _td(esc(r.severity), sev_rank),
            _host_cell(r.src_ip, r.src_name, r.src_role, getattr(r, "src_name_source", "")),
            _host_cell(r.dst_ip, r.dst_name, r.dst_role, getattr(r, "dst_name_source", "")),
            _td(esc(f"{port}/{r.proto}" if port is not None else r.proto),
                port if port is not None else -1),
            _orientation_cell(getattr(r, "orientation", "")),
            _td(esc(r.service)), _td(esc(r.rule)),
            _td("yes" if plain(r.documented) else "no"),
            _td(esc(f"{int(r.flows):,}"), int(r.flows), "num"),
            _td(esc(format_bytes(r.bytes)), int(r.bytes), "num"),
            _td(esc(format_time(first)), first.value if first is not None else 0, "time"),
            _td(esc(format_time(last)), last.value if last is not None else 0, "time"),
            _filter_cell(getattr(r, "display_filter", "")),
            _td(esc(r.detail)),
        ]
        rows.append(f'<tr data-kind="{esc(r.kind)}" data-severity="{esc(r.severity)}">'
                    + "".join(cells) + "</tr>")
    options = "".join(f'<option value="{k}">{k}</option>' for k in _KINDS)
    sev_options = "".join(f'<option value="{s}">{s}</option>' for s in _SEVERITIES)
    controls = (
        '<form class="filters" data-table="findings-table" role="search">'
        '<label>Search <input type="search" name="q" placeholder="host, port, rule, text"></label>'
        f'<label>Kind <select name="kind"><option value="">all</option>{options}</select></label>'
        f'<label>Severity <select name="severity"><option value="">all</option>{sev_options}'
        "</select></label>"
        f'<output id="findings-count" data-total="{len(rows)}">{len(rows)} findings</output>'
        "</form>"
    )
    table = _table("findings-table", header, rows, empty="No findings: every flow was expected "
                                                         "and every expected path was seen.")
    return (controls if rows else "") + table + (_legend() if rows else "")


def _rules_section(rules: pd.DataFrame) -> str:
    if rules is None or rules.empty:
        return '<p class="empty">No catalogue rules.</p>'
    order = {"missing": 0, "observed": 1, "not_applicable": 2}
    rules = rules.assign(_o=rules["status"].map(order).fillna(3)).sort_values(["_o", "id"])
    columns = [c for c in ("id", "status", "service", "source", "destination", "proto", "ports",
                           "expected", "flows", "bytes", "host_pairs") if c in rules.columns]
    missing = missing_rules(rules)
    applicable = rules[rules["status"] != "not_applicable"]
    rest = rules[rules["status"] == "not_applicable"]
    out = [f'<p>{len(missing)} expected rule(s) missing, '
           f'{int((rules["status"] == "observed").sum())} observed, '
           f"{len(rest)} not applicable to the roles present.</p>",
           _generic_table("rules-table", applicable, "No rule applies to the roles present.",
                          columns)]
    if not rest.empty:
        out.append(f"<details><summary>{len(rest)} rules not applicable</summary>"
                   + _generic_table("rules-na-table", rest, "", columns) + "</details>")
    return "".join(out)


def _summary_section(result: AuditResult, plots: dict[str, str]) -> str:
    s = result.summary
    findings = result.findings
    flows = result.flows
    total = s.get("bytes", int(flows["src_bytes"].sum() + flows["dst_bytes"].sum())
                  if not flows.empty else 0)
    hosts = s.get("hosts", len(set(flows["src_ip"]) | set(flows["dst_ip"]))
                  if not flows.empty else 0)
    cards = [("flows", s.get("flows", len(flows))), ("hosts", hosts),
             ("bytes", format_bytes(total))]
    cards += [(kind, int((findings["kind"] == kind).sum()) if not findings.empty else 0)
              for kind in _KINDS]
    card_html = "".join(f'<div class="card {esc(k)}"><span class="value">{esc(v)}</span>'
                        f'<span class="label">{esc(k)}</span></div>' for k, v in cards)
    rows = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{esc(v)}</td></tr>"
                   for k, v in summary_rows(result))
    warn = ""
    if result.warnings:
        warn = ('<div class="warnings"><h3>Warnings</h3><ul>'
                + "".join(f"<li>{esc(w)}</li>" for w in result.warnings) + "</ul></div>")
    return (f'<div class="cards">{card_html}</div>{warn}'
            f'<div class="plots">{plots["matrix"]}{plots["diagram"]}</div>'
            f'<details><summary>All summary counts</summary><table class="kv">{rows}</table>'
            "</details>")


def render_html(result: AuditResult, *, catalogue=None,
                title: str = "Exchange traffic audit") -> str:
    """The complete HTML page as text."""
    plots = _plots(result, catalogue)
    captures = pd.DataFrame(capture_rows(result))
    span = ""
    if not result.flows.empty:
        span = (f"{format_time(result.flows['first_seen'].min())} to "
                f"{format_time(result.flows['last_seen'].max())} UTC")
    rpc_cols = ["server_ip", "port", "proto", "interface", "interface_uuid", "evidence", "use",
                "advertised", "used", "unanswered", "rejected", "clients", "flows", "bytes",
                "first_seen", "last_seen", "captures"]
    bodies = {
        "summary": _summary_section(result, plots),
        "findings": _findings_section(result.findings),
        "rules": _rules_section(result.rules),
        "rpc": ("<h3>Endpoints</h3>"
                + _generic_table("rpc-table", result.rpc, "No DCE/RPC endpoints were discovered.",
                                 rpc_cols if result.rpc is not None
                                 and "server_ip" in result.rpc.columns else None)
                + "<h3>Dynamic port ranges</h3>"
                + _generic_table("rpc-ranges-table", result.rpc_ranges,
                                 "No dynamic port ranges to report.")),
        "hosts": _generic_table("hosts-table", result.hosts, "No hosts.") + plots.get("hosts", ""),
        "captures": _generic_table("captures-table", captures, "No capture files recorded."),
    }
    script, style = _asset("report.js"), _asset("report.css")
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(style)}; "
           f"script-src {_csp_hash(script)}; base-uri 'none'; form-action 'none'")
    nav = "".join(f'<a href="#{sid}">{esc(label)}</a>' for sid, label in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{esc(label)}</h2>{bodies[sid]}</section>'
                       for sid, label in SECTIONS)
    names = ", ".join(str(c.get("name", "")) for c in capture_rows(result))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{esc(title)}</title>'
        f"<style>{style}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="meta">{esc(names)}'
        f"{' &middot; ' + esc(span) if span else ''}</p><nav>{nav}</nav></header>"
        f"<main>{sections}</main><script>{script}</script></body></html>\n"
    )
