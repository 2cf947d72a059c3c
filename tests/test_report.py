"""HTML, Markdown and Excel reports: content, escaping of capture strings, no network loads."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from conftest_reports import (
    CATALOGUE,
    T0,
    FakeCaptureFile,
    audit_flows,
    flow_row,
    hosts_frame,
    make_result,
    pilot_flows,
)

from auditor.errors import AuditorError
from auditor.render.html import render_html
from auditor.render.markdown import md_code, md_text
from auditor.render.report import write_markdown, write_report, write_xlsx

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
FORMULA = "=cmd|' /C calc'!A0"


def hostile_result():
    """The pilot plus hostile names, a hostile warning, capture name and rule detail."""
    flows = pd.concat([
        pilot_flows(),
        audit_flows([
            flow_row("198.18.10.101", "198.18.1.2", 8443, verdict="unexpected", src_name=SCRIPT,
                     dst_name=IMG, service="http", seconds=50),
            flow_row("198.18.10.102", "198.18.1.3", 9999, verdict="unexpected", src_name=FORMULA,
                     dst_name="@SUM(A1:A2)", service="[x](http://evil.example/)", seconds=51),
        ]),
    ], ignore_index=True)
    hosts = hosts_frame(flows)
    hosts.loc[hosts["ip"] == "198.18.10.101", "name"] = SCRIPT
    result = make_result(flows, hosts=hosts)
    findings = result.findings.copy()
    findings.loc[findings["src_name"] == FORMULA, "detail"] = "+1 see [x](http://evil.example/) |"
    cap = FakeCaptureFile("<b>x</b>.pcapng", "<b>x</b>.pcapng", "pcapng", 10, 9, 1)
    return type(result)(**{**result.__dict__, "findings": findings, "captures": (cap,),
                           "warnings": (f"{SCRIPT}: 3 records skipped",)})


@pytest.fixture(scope="module")
def pilot_html():
    return render_html(make_result(), catalogue=CATALOGUE)


@pytest.fixture(scope="module")
def hostile_html():
    return render_html(hostile_result(), catalogue=CATALOGUE)


class TagCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.ids: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.append(attrs["id"])
        self._in = tag if tag in ("script", "style") else None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in = None


def parse(text: str) -> TagCollector:
    parser = TagCollector()
    parser.feed(text)
    return parser


def test_html_has_every_section_with_its_id(pilot_html):
    ids = parse(pilot_html).ids
    for section in ("summary", "findings", "rules", "rpc", "hosts", "captures"):
        assert section in ids
    assert "findings-table" in ids and "findings-count" in ids


def test_capture_strings_are_escaped_in_html(hostile_html):
    assert "<script>alert" not in hostile_html
    assert "<img src=x" not in hostile_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in hostile_html
    assert "&lt;b&gt;x&lt;/b&gt;.pcapng" in hostile_html  # the capture name
    page = parse(hostile_html)
    assert [t for t, _ in page.tags].count("script") == 1  # ours, inline, no src
    for tag, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
        assert "src" not in attrs or tag == "img"


def test_html_loads_nothing_from_outside(hostile_html):
    page = parse(hostile_html)
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:|//|ftp:|file:)", value, re.I), (tag, name, value)
    # capture text may mention URLs; it is text, never a link or a resource
    assert "http://evil.example/" in hostile_html
    assert all(a["href"].startswith("#") for t, a in page.tags if t == "a")
    assert "@import" not in "".join(page.styles) and "url(" not in "".join(page.styles)


def test_csp_allows_only_the_inline_script_and_style_it_carries(pilot_html):
    page = parse(pilot_html)
    csp = next(a["content"] for t, a in page.tags
               if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "img-src data:" in csp

    def digest(text):
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src 'sha256-{digest(page.scripts[0])}'" in csp
    assert f"style-src 'sha256-{digest(page.styles[0])}'" in csp
    assert "unsafe-inline" not in csp


def test_findings_rows_carry_filter_and_sort_data(pilot_html):
    page = parse(pilot_html)
    rows = [a for t, a in page.tags if t == "tr" and "data-kind" in a]
    kinds = sorted(a["data-kind"] for a in rows)
    assert kinds == ["missing", "missing", "rejected", "unanswered", "unexpected", "unexpected"]
    assert {a["data-severity"] for a in rows} <= {"high", "medium", "low", "info"}
    # bytes sort by the raw number, shown human-readable: UM -> hub refused: 3 x 4900 bytes
    assert '<td data-sort="14700" class="num">14.7 kB</td>' in pilot_html
    assert '<output id="findings-count" data-total="6">6 findings</output>' in pilot_html


def test_html_embeds_the_matrix_and_the_diagram_as_png(pilot_html):
    images = [a for t, a in parse(pilot_html).tags if t == "img"]
    assert [a["alt"] for a in images] == ["role matrix", "role diagram", "host matrix"]
    for a in images:
        png = base64.b64decode(a["src"].split(",", 1)[1])
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_html_lists_rules_rpc_hosts_and_captures(pilot_html):
    assert "T07-um-hub-smtp" in pilot_html
    missing = int((make_result().rules["status"] == "missing").sum())
    assert f"{missing} expected rule(s) missing" in pilot_html
    assert "a4f1db00-ca47-1067-b31f-00dd010662da" in pilot_html
    assert "Pin RPC Client Access with MSExchangeRPC ParametersSystem" in pilot_html
    assert ">59532<" in pilot_html  # ports without a thousands separator
    assert "pilot-a.pcapng" in pilot_html and "linktype 105: 3" in pilot_html
    assert "2024-03-05 09:00:00" in pilot_html


def test_html_of_an_empty_audit_says_so(tmp_path):
    empty = make_result(audit_flows([]), missing=[])
    path = tmp_path / "empty.html"
    write_report(empty, path)
    text = path.read_text("utf-8")
    assert "No findings" in text
    assert [i for i in parse(text).ids if i == "summary"]


def test_markdown_has_summary_findings_missing_rules_and_rpc():
    out = io.StringIO()
    write_markdown(make_result(), out)
    text = out.getvalue()
    assert text.startswith("# Exchange traffic audit\n")
    assert f"| flows | {len(pilot_flows())} |" in text
    assert "## Findings (6)" in text
    assert ("| rejected | high | `UM1` `198.18.1.41` (unified_messaging) | `HUB1` `198.18.1.11` "
            "(hub_transport) | 25/tcp | handshake | T07-um-hub-smtp | 1 |") in text
    assert "## Missing rules (6)" in text  # the expected rules no flow matched
    assert ("| A10-smb | smb | hub_transport;client_access;mailbox;unified_messaging;client | "
            "domain_controller | 445/tcp |") in text
    assert "| `198.18.1.21` | 59532/tcp | EMSMDB | epm | used | 1 |" in text
    assert "| `198.18.1.21` | 59532-59532 | 6005-59530 |" in text


def test_markdown_neutralises_capture_strings(tmp_path):
    path = tmp_path / "r.md"
    write_report(hostile_result(), path)
    text = path.read_text("utf-8")
    assert f"`{SCRIPT}`" in text  # a code span: shown literally, never HTML
    assert "\\[x\\](http://evil.example/) \\|" in text  # no link, no cell break
    for line in text.splitlines():
        if line.startswith("| "):
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) in (4, 6, 7, 8, 11), line  # no extra columns from names


@pytest.mark.parametrize("text,expected", [
    ("a|b", "`a\\|b`"), ("x`y", "``x`y``"), ("`x", "`` `x ``"), ("", ""),
])
def test_md_code_picks_a_safe_fence(text, expected):
    assert md_code(text) == expected


def test_md_text_keeps_words_readable():
    assert md_text("hub_transport -> dns") == "hub_transport -> dns"
    assert md_text("_x_ *y* <b> &amp; a\nb") == "\\_x\\_ \\*y\\* \\<b> \\&amp; a b"


def test_xlsx_has_the_sheets_and_values(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    path = tmp_path / "r.xlsx"
    write_xlsx(make_result(), path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["summary", "findings", "flows", "rules", "rpc", "rpc_ranges",
                             "hosts", "captures", "legend"]
    findings = wb["findings"]
    header = [c.value for c in findings[1]]
    assert header[:4] == ["kind", "severity", "src_ip", "dst_ip"]
    first = dict(zip(header, [c.value for c in findings[2]], strict=True))
    assert first["kind"] == "rejected" and first["dst_port"] == 25 and first["bytes"] == 14700
    assert first["first_seen"] == dt.datetime(2024, 3, 5, 9, 0, 40)  # naive UTC
    flows = wb["flows"]
    assert flows.max_row == len(pilot_flows()) + 1
    assert [c.value for c in flows[1]][:5] == ["flow_id", "src_ip", "src_port", "dst_ip",
                                               "dst_port"]
    summary = {r[0].value: r[1].value for r in wb["summary"].iter_rows(min_row=2)}
    assert summary["flows"] == len(pilot_flows())
    assert summary["warning"] == "pilot-a.pcapng: 3 records skipped (linktype 105)"
    rules = wb["rules"]
    assert {r[7].value for r in rules.iter_rows(min_row=2)} == {"observed", "missing",
                                                                  "not_applicable"}
    rpc = wb["rpc"]
    assert rpc["B2"].value == 59532 and rpc["N2"].value == T0.tz_localize(None).to_pydatetime()
    assert wb["captures"]["A2"].value == "captures/pilot-a.pcapng"


def test_xlsx_text_never_becomes_a_formula(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    path = tmp_path / "r.xlsx"
    write_xlsx(hostile_result(), path)
    ws = openpyxl.load_workbook(path)["findings"]
    header = [c.value for c in ws[1]]
    cells = {}
    for row in ws.iter_rows(min_row=2):
        for name, cell in zip(header, row, strict=True):
            cells.setdefault(name, []).append(cell)
    risky = [c for c in cells["src_name"] + cells["dst_name"] + cells["detail"]
             if isinstance(c.value, str) and c.value[:1] in "=+-@"]
    assert {c.value for c in risky} >= {FORMULA, "@SUM(A1:A2)", "+1 see [x](http://evil.example/) |"}
    for cell in risky:
        assert cell.data_type == "s" and cell.quotePrefix, cell.value
    negative = [c for c in cells["flows"] if c.data_type == "n"]
    assert negative  # numbers stay numbers


def test_xlsx_escapes_control_characters(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    flows = audit_flows([flow_row("198.18.1.11", "198.18.1.2", 389, src_name="a\x01b")])
    path = tmp_path / "r.xlsx"
    write_xlsx(make_result(flows, missing=[]), path)
    ws = openpyxl.load_workbook(path)["flows"]
    header = [c.value for c in ws[1]]
    assert ws.cell(row=2, column=header.index("src_name") + 1).value == "a\\x01b"


def test_write_report_picks_the_format_from_the_suffix(tmp_path):
    result = make_result()
    for name in ("r.md", "r.xlsx", "r.HTML"):
        write_report(result, tmp_path / name, catalogue=CATALOGUE)
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "r.xlsx").read_bytes().startswith(b"PK")
    with pytest.raises(AuditorError, match=r"r\.pdf: unknown report format '\.pdf'"):
        write_report(result, tmp_path / "r.pdf")


def test_xlsx_flows_sheet_is_capped_with_a_note(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    path = tmp_path / "r.xlsx"
    write_xlsx(make_result(), path, max_flows=10)
    wb = openpyxl.load_workbook(path)
    assert wb["flows"].max_row == 11
    notes = [r[1].value for r in wb["summary"].iter_rows(min_row=2) if r[0].value == "note"]
    assert notes == [f"the flows sheet holds the first 10 of {len(pilot_flows())} flows; "
                     "`auditor flows` exports them all"]
    assert wb["findings"].max_row == len(make_result().findings) + 1  # findings never cut
