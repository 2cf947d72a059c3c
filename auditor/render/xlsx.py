"""The Excel workbook: one sheet per table, no capture string ever a formula."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

from auditor.atomic import atomic_path
from auditor.audit.verdicts import AuditResult
from auditor.errors import AuditorError
from auditor.render.common import (
    FORMULA_START,
    GUESSES,
    NAME_SOURCE_LEGEND,
    ORIENTATION_LEGEND,
    capture_rows,
    plain,
    summary_rows,
)

_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XLSX_MAX_ROWS = 1_048_576


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


def _guesses_marked(values: list, ws) -> list:
    """Orientation cells: the value as in JSON, guesses (port, first_packet) filled and italic."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill

    fill, font = PatternFill("solid", fgColor="FFF2CC"), Font(italic=True)
    out = []
    for value in values:
        if value in GUESSES:
            value = WriteOnlyCell(ws, value=value)
            value.fill, value.font = fill, font
        out.append(value)
    return out


def _xlsx_rows(ws, frame: pd.DataFrame, columns: list[str], limit: int | None = None) -> None:
    """Append a header and the frame's rows (at most limit)."""
    ws.append(columns)
    part = frame[columns] if limit is None else frame[columns].iloc[:limit]
    cells = [_xlsx_column(part[c], ws) for c in columns]
    cells = [_guesses_marked(v, ws) if c == "orientation" else v
             for c, v in zip(columns, cells, strict=True)]
    for row in zip(*cells, strict=True):
        ws.append(row)


def _legend_frame() -> pd.DataFrame:
    """What the orientation and name source columns of the findings and flows sheets mean."""
    rows = [{"column": "orientation", "value": k, "meaning": v, "guess": k in GUESSES}
            for k, v in ORIENTATION_LEGEND]
    rows += [{"column": "src_name_source, dst_name_source", "value": k, "meaning": v,
              "guess": False} for k, v in NAME_SOURCE_LEGEND]
    return pd.DataFrame(rows)


def _frame(rows: list[dict] | pd.DataFrame | None) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame()
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)


def write_xlsx(result: AuditResult, path, *, max_flows: int | None = 20_000) -> None:
    """Write sheets summary, findings, flows (the first max_flows), rules, rpc, rpc_ranges,
    hosts, captures and legend (orientation and name source values; guesses are filled)."""
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
        ("legend", _legend_frame()),
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
    with atomic_path(path) as tmp:
        wb.save(tmp)


def _column_letter(n: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(n)
