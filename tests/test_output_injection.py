"""Capture-derived and configured strings that try to escape into each output: spreadsheet
formulas, Markdown structure, HTML, terminal escape sequences and matplotlib mathtext.

The capture is built with scapy (DNS answers naming hosts, TCP flows to them, an SMTP banner) and
saved under a hostile file name; the inventory names the hosts with hostile names too, since
both reach every table. Each output is then read back and checked for what must not be there.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import cli

# A file name and host names that are formulas, Markdown, HTML, terminal controls and mathtext.
FILE_NAME = "=cmd|' -C calc'!A0 [l](http:__e) <img src=x onerror=alert(1)> \x1b[31mred $x^$.pcap"
SERVER = '=HYPERLINK("http://e","x") | `t` [l](http://e) <i>s</i> $\\frac{$'
CLIENT = "+\x1b]0;pwned\x07\x1b[2J@SUM(A1)\tC"
DNS_NAMES = [b'=HYPERLINK("http://x")', b"-2+3", b"@SUM(A1)", b"\x1b[31mred",
             b"$\\frac{1}{2}$", b"good-name.example"]
ESC = "\x1b"
FORMULA = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(capture path, inventory path) with hostile names."""
    from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, Raw, wrpcap

    d = tmp_path_factory.mktemp("hostile")
    client, server, smtp = "198.18.0.5", "198.18.1.10", "198.18.1.30"
    t = 1_700_000_000.0
    pk = []

    def add(p):
        nonlocal t
        p.time = t
        t += 0.01
        pk.append(p)

    for i, name in enumerate(DNS_NAMES):
        add(Ether() / IP(src="198.18.0.53", dst=client) / UDP(sport=53, dport=40000 + i)
            / DNS(id=i, qr=1, aa=1, qd=DNSQR(qname=name),
                  an=DNSRR(rrname=name, rdata=f"198.18.1.{10 + i}", ttl=60)))
    for port in (445, 6001, 3389):
        sport = 50000 + port % 1000
        add(Ether() / IP(src=client, dst=server) / TCP(sport=sport, dport=port, flags="S"))
        add(Ether() / IP(src=server, dst=client) / TCP(sport=port, dport=sport, flags="SA"))
        add(Ether() / IP(src=client, dst=server) / TCP(sport=sport, dport=port, flags="A"))
    add(Ether() / IP(src=client, dst=smtp) / TCP(sport=51025, dport=25, flags="S", seq=1))
    add(Ether() / IP(src=smtp, dst=client) / TCP(sport=25, dport=51025, flags="SA", seq=100, ack=2))
    add(Ether() / IP(src=client, dst=smtp) / TCP(sport=51025, dport=25, flags="A", seq=2, ack=101))
    add(Ether() / IP(src=smtp, dst=client) / TCP(sport=25, dport=51025, flags="PA", seq=101, ack=2)
        / Raw(b"220 =cmd|calc!A0 ESMTP \x1b[31m\r\n"))
    cap = d / FILE_NAME
    wrpcap(str(d / "plain.pcap"), pk)
    (d / "plain.pcap").rename(cap)
    inv = d / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"hosts": [
        {"name": SERVER, "addresses": [server], "roles": ["mailbox"]},
        {"name": CLIENT, "addresses": [client], "roles": ["client_access"]},
    ]}), encoding="utf-8")
    return cap, inv


def _run(args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code in (0, 3), res.stderr
    assert "internal error" not in res.stderr
    return res


def _cells_safe(cells):
    """Every text cell that would start a formula is quoted; returns the cells seen."""
    seen = [c for c in cells if isinstance(c, str) and c]
    bad = [c for c in seen if c.startswith(FORMULA)]
    assert not bad, bad[:3]
    return seen


def _csv_cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def test_flows_csv_neutralises_the_capture_name(hostile, tmp_path):
    cap, _ = hostile
    out = tmp_path / "flows.csv"
    _run(["flows", cap, "--format", "csv", "-o", out])
    cells = _cells_safe(_csv_cells(out.read_text(encoding="utf-8")))
    assert "'" + FILE_NAME.replace(ESC, "\\x1b") in cells  # there, shown as text


def test_findings_csv_neutralises_host_names(hostile, tmp_path):
    cap, inv = hostile
    out = tmp_path / "findings.csv"
    _run(["audit", cap, "--inventory", inv, "--format", "csv", "-o", out])
    cells = _cells_safe(_csv_cells(out.read_text(encoding="utf-8")))
    assert "'" + SERVER in cells
    assert "'+\\x1b]0;pwned\\x07\\x1b[2J@SUM(A1)\tC" in cells  # controls shown, not kept
    stdout = _run(["audit", cap, "--inventory", inv, "--format", "csv"]).stdout
    assert ESC not in stdout and _csv_cells(stdout) == _csv_cells(out.read_text(encoding="utf-8"))


def test_terminal_output_shows_escapes_never_emits_them(hostile):
    cap, inv = hostile
    for args in (["flows", cap], ["audit", cap, "--inventory", inv, "--all"],
                 ["rpc", cap], ["roles", cap]):
        res = _run(args)
        for stream in (res.stdout, res.stderr):
            assert ESC not in stream and "\x07" not in stream, args
    res = _run(["audit", cap, "--inventory", inv, "--all"])
    assert "\\x1b]0;pwned\\x07" in res.stdout  # the client's name, shown escaped
    assert "\\x1b[31mred" in _run(["flows", cap]).stdout  # the file name, shown escaped


def _outside_code(line: str) -> str:
    """A Markdown line with its code spans removed."""
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def test_markdown_report_keeps_its_table_shape_and_no_live_markup(hostile, tmp_path):
    cap, inv = hostile
    out = tmp_path / "report.md"
    _run(["audit", cap, "--inventory", inv, "--report", out])
    text = out.read_text(encoding="utf-8")
    assert ESC not in text
    header_cols = None
    for line in text.splitlines():
        if line.startswith("| "):
            cols = len(re.findall(r"(?<!\\)\|", line))
            header_cols = cols if header_cols is None or not line.startswith("| ") else header_cols
        else:
            header_cols = None
            continue
        rest = _outside_code(line)
        assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", rest), line  # no live link
        assert not re.search(r"(?<!\\)<[a-z/]", rest), line  # no HTML tag
        assert cols == header_cols, line  # no cell split by a pipe from a name
    assert "HYPERLINK" in text and "calc" in text


def test_html_report_escapes_names(hostile, tmp_path):
    cap, inv = hostile
    out = tmp_path / "report.html"
    _run(["audit", cap, "--inventory", inv, "--report", out])
    html = out.read_text(encoding="utf-8")
    assert "<i>s</i>" not in html and "<img src=x" not in html and ESC not in html
    assert "&lt;i&gt;s&lt;/i&gt;" in html


def test_xlsx_report_never_holds_a_formula(hostile, tmp_path):
    from openpyxl import load_workbook

    cap, inv = hostile
    out = tmp_path / "report.xlsx"
    _run(["audit", cap, "--inventory", inv, "--report", out])
    wb = load_workbook(out)
    texts = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA):
                    assert cell.quotePrefix, (ws.title, cell.coordinate, cell.value)
                    texts.append(cell.value)
    assert any("HYPERLINK" in t for t in texts)


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_firewall_requests_neutralise_names(hostile, tmp_path, fmt):
    cap, inv = hostile
    out = tmp_path / f"requests.{fmt}"
    _run(["firewall", "--inventory", inv, "--from-capture", cap, "--format", fmt, "-o", out])
    if fmt == "csv":
        cells = _cells_safe(_csv_cells(out.read_text(encoding="utf-8")))
        assert any("HYPERLINK" in c for c in cells)
    elif fmt == "xlsx":
        from openpyxl import load_workbook

        ws = load_workbook(out).active
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f"
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA):
                    assert cell.quotePrefix
    else:  # JSON keeps the exact text: it is data, not a sheet
        text = out.read_text(encoding="utf-8")
        assert ESC not in text
        assert any(SERVER == r.get("destination_name") or SERVER == r.get("source_name")
                   for r in json.loads(text))


def test_json_keeps_names_exact_and_escapes_controls(hostile):
    cap, inv = hostile
    res = _run(["audit", cap, "--inventory", inv, "--format", "json"])
    assert ESC not in res.stdout
    doc = json.loads(res.stdout)
    assert any(f.get("src_name") == CLIENT for f in doc["findings"])  # exact, once parsed


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # long names, small axes
def test_plot_labels_are_not_mathtext(hostile, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from auditor.audit.pipeline import audit_captures
    from auditor.catalogue.loader import load_catalogue
    from auditor.inventory.roles import load_inventory
    from auditor.options import PipelineOptions
    from auditor.render.plots import plot_host_matrix

    cap, inv = hostile
    out = tmp_path / "hosts.png"
    _run(["plot", "matrix", cap, "--inventory", inv, "--by", "host", "-o", out])  # "$x^$" and
    assert out.stat().st_size > 0  # "$\frac{$" are invalid mathtext: parsed, they would raise
    result = audit_captures([cap], load_inventory(inv), load_catalogue(),
                            PipelineOptions(rpc=False))
    ax = plot_host_matrix(result.flows)
    texts = [t for t in ax.figure.findobj(matplotlib.text.Text) if "$" in t.get_text()]
    assert texts and all(not t.get_parse_math() for t in texts)
    ax.figure.savefig(tmp_path / "again.png")


def test_proposed_inventory_yaml_reads_back(hostile):
    cap, _ = hostile
    res = _run(["roles", cap])
    assert ESC not in res.stdout
    doc = yaml.safe_load(res.stdout)
    assert doc["hosts"]
