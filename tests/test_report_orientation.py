"""Reports show each finding's orientation (guesses marked) and each name's source, with a legend.

Real report output from real captures: the midstream capture (CAS1 -> HUB1 SMTP caught without its
handshake, oriented by the service port) and smtp.pcap (a flow only the first packet orients, a
name from a browser announcement).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from conftest_reports import make_result

from auditor import audit_captures, load_catalogue, load_inventory
from auditor.dissect.names import NAME_SOURCES
from auditor.render.common import GUESSES, NAME_SOURCE_LEGEND, ORIENTATION_LEGEND
from auditor.render.html import render_html
from auditor.render.markdown import markdown_text
from auditor.render.report import write_xlsx
from auditor.schema import ORIENTATIONS

PCAPS = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
MIDSTREAM = PCAPS / "midstream"


@pytest.fixture(scope="module")
def midstream():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # discovery notes are not what this is about
        return audit_captures([MIDSTREAM / "midstream.pcap"],
                              load_inventory(MIDSTREAM / "inventory.yaml"), load_catalogue())


@pytest.fixture(scope="module")
def smtp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audit_captures([PCAPS / "public" / "smtp.pcap"], None, load_catalogue())


def test_the_legends_cover_every_orientation_and_name_source():
    assert tuple(k for k, _ in ORIENTATION_LEGEND) == ORIENTATIONS
    assert tuple(k for k, _ in NAME_SOURCE_LEGEND) == ("inventory", *NAME_SOURCES)
    assert set(GUESSES) <= set(ORIENTATIONS)


@pytest.mark.tshark
def test_html_findings_show_orientation_with_the_guess_marked_and_a_legend(midstream):
    smtp_finding = midstream.findings[midstream.findings["dst_port"] == 25].iloc[0]
    assert (smtp_finding["src_name"], smtp_finding["orientation"]) == ("CAS1", "port")
    page = render_html(midstream)
    head = re.search(r'<table id="findings-table".*?</thead>', page).group()
    assert re.findall(r'scope="col">([^<]*)<', head)[4:6] == ["port", "orientation"]
    row = next(r for r in re.findall(r"<tr data-kind.*?</tr>", page) if "25/tcp" in r)
    assert '<td data-sort="port" class="orientation guess">port (guess)</td>' in row
    assert ('<span class="name">CAS1</span> <span class="name-source" title="where the name '
            'came from">via inventory</span>') in row
    legend = re.search(r'<table class="kv" id="orientation-legend">.*?</table>', page).group()
    assert re.findall(r'<th scope="row"[^>]*>([^<]*)</th>', legend) == [
        "handshake", "multicast", "payload", "listener", "epm", "port (guess)",
        "first_packet (guess)"]
    assert 'id="name-source-legend"' in page and ">tls-sni<" in page


@pytest.mark.tshark
def test_markdown_findings_show_orientation_and_the_name_source(smtp):
    guessed = smtp.findings[smtp.findings["orientation"] == "first_packet"]
    named = smtp.findings[smtp.findings["src_name_source"] == "browser"]
    assert len(guessed) and len(named)
    text = markdown_text(smtp)
    assert "| kind | severity | source | destination | port | orientation | rule | flows | " \
           "detail |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| unexpected", "| rejected",
                                                                   "| unanswered", "| missing"))]
    assert any("| *first_packet (guess)* |" in r for r in rows)
    name = named.iloc[0]["src_name"]
    assert any(f"`{name}` (via browser) `{named.iloc[0]['src_ip']}` (" in r for r in rows)
    assert "- *first_packet (guess)*: the sender of the first captured packet" in text


@pytest.mark.tshark
def test_xlsx_marks_guessed_orientations_and_has_a_legend_sheet(midstream, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    path = tmp_path / "r.xlsx"
    write_xlsx(midstream, path)
    wb = openpyxl.load_workbook(path)
    for sheet in ("findings", "flows"):
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        col = header.index("orientation")
        assert {"src_name_source", "dst_name_source"} <= set(header)
        cells = [r[col] for r in ws.iter_rows(min_row=2)]
        guesses = [c for c in cells if c.value in GUESSES]
        assert guesses, sheet  # CAS1 -> HUB1 SMTP: port
        assert all(c.fill.fgColor.rgb.endswith("FFF2CC") and c.font.italic for c in guesses)
        assert not any(c.font.italic for c in cells if c.value not in GUESSES)
    legend = [[c.value for c in r] for r in wb["legend"].iter_rows(min_row=1)]
    assert legend[0] == ["column", "value", "meaning", "guess"]
    assert [r[1] for r in legend[1:] if r[0] == "orientation"] == list(ORIENTATIONS)
    assert {r[1] for r in legend[1:] if r[3]} == set(GUESSES)


def test_a_hostile_name_source_stays_escaped_in_html_and_markdown():
    result = make_result()
    findings = result.findings.copy()
    findings["src_name_source"] = "<script>alert(1)</script>"
    findings["orientation"] = "<b>x</b>"
    result = type(result)(**{**result.__dict__, "findings": findings})
    page = render_html(result)
    assert page.count("<script>") == 1  # the page's own script only
    assert "via &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    text = markdown_text(result)
    assert "(via \\<script>alert(1)\\</script>)" in text and "| \\<b>x\\</b> |" in text
