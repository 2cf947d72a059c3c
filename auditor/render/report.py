"""Audit reports: one self-contained HTML page, a Markdown summary for tickets, an Excel workbook.

Every string that came from a capture (host names, banners, rule text) is treated as hostile:
HTML escapes it, Markdown escapes or code-quotes it, and the workbook never lets it become a
formula. `write_report` picks the writer from the file suffix.
"""

from __future__ import annotations

from pathlib import Path

from auditor.audit.verdicts import AuditResult
from auditor.errors import AuditorError
from auditor.render.markdown import write_markdown
from auditor.render.xlsx import write_xlsx

__all__ = ["write_html", "write_markdown", "write_report", "write_xlsx"]


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
    from auditor.atomic import write_text
    from auditor.render.html import render_html

    write_text(path, render_html(result, catalogue=catalogue, title=title))
