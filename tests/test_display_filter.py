"""From a finding to its packets: every finding's Wireshark display filter, checked by tshark."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from auditor import audit_captures, load_catalogue, load_inventory, result_to_dict
from auditor.audit.filters import display_filter, tshark_command
from auditor.render.html import render_html
from auditor.render.markdown import markdown_text

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"

pytestmark = pytest.mark.tshark


def test_display_filter_names_both_ends_and_the_service_port():
    assert display_filter("198.18.1.41", "198.18.2.61", "tcp", 25) == (
        "ip.addr==198.18.1.41 && ip.addr==198.18.2.61 && tcp.port==25")
    assert display_filter("2001:db8::1", "2001:db8::25", "udp", 53) == (
        "ipv6.addr==2001:db8::1 && ipv6.addr==2001:db8::25 && udp.port==53")
    assert display_filter("198.18.1.21", "198.18.10.101", "icmp", 0) == (
        "ip.addr==198.18.1.21 && ip.addr==198.18.10.101 && icmp")
    # a role-level missing finding knows only its source (or nothing)
    assert display_filter("198.18.1.51", "", "tcp", pd.NA) == "ip.addr==198.18.1.51 && tcp"
    assert display_filter("", "", "tcp", 25) == "tcp.port==25"
    assert tshark_command("my pilot.pcapng", "ip.addr==1.2.3.4 && tcp.port==25") == (
        "tshark -r 'my pilot.pcapng' -Y 'ip.addr==1.2.3.4 && tcp.port==25'")


@pytest.fixture(scope="module")
def result():
    return audit_captures([PILOT / "pilot.pcapng"], load_inventory(PILOT / "inventory.yaml"),
                          load_catalogue())


def _tshark_count(filter_text: str) -> int:
    out = subprocess.run(["tshark", "-r", str(PILOT / "pilot.pcapng"), "-Y", filter_text],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def test_every_flow_finding_filter_isolates_exactly_its_packets(result):
    flows = result.findings[result.findings["flows"] > 0]
    assert len(flows) >= 5
    for f in flows.itertuples():
        assert f.display_filter.startswith(f"ip.addr=={f.src_ip} && ip.addr=={f.dst_ip}")
        # the finding's own packets, both directions; the ICMP errors quoting them come on top
        assert _tshark_count(f"({f.display_filter}) && !icmp") == f.packets, f.display_filter
    icmp_refused = flows[flows["detail"].str.contains("ICMP 3/13")].iloc[0]
    assert _tshark_count(icmp_refused["display_filter"]) == icmp_refused["packets"] + 1


def test_display_filter_is_in_json_markdown_and_html(result):
    doc = result_to_dict(result)
    assert all("display_filter" in f for f in doc["findings"])
    pop3 = next(f for f in doc["findings"] if f["dst_port"] == 110)
    assert pop3["display_filter"] == "ip.addr==198.18.10.101 && ip.addr==198.18.1.31 && tcp.port==110"
    json.dumps(doc)
    md = markdown_text(result)
    assert ("`tshark -r pilot.pcapng -Y 'ip.addr==198.18.10.101 && ip.addr==198.18.1.31 && "
            "tcp.port==110'`") in md
    html = render_html(result)
    assert ('data-copy="ip.addr==198.18.10.101 &amp;&amp; ip.addr==198.18.1.31 &amp;&amp; '
            'tcp.port==110"') in html
    assert "onclick" not in html  # the copy button is wired by report.js, under the page's CSP
