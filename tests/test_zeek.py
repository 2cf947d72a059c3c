"""`auditor flows --format zeek`: a conn.log Zeek's readers load, states and histories as Zeek's."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from auditor import build_flows_labelled, read_packets
from auditor.cli import cli
from auditor.render.zeek import FIELDS, conn_log_text

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot" / "pilot.pcapng"
CLIENT1 = "198.18.10.101"


def read_conn_log(text: str) -> list[dict]:
    """What ZAT's log reader does: the #fields and #types headers name and type every column."""
    lines = text.splitlines()
    header = {}
    rows = []
    for line in lines:
        if line.startswith("#"):
            key, _, value = line[1:].partition(" " if line.startswith("#separator") else "\t")
            header[key] = value
            continue
        rows.append(dict(zip(header["fields"].split("\t"), line.split("\t"), strict=True)))
    assert header["separator"] == "\\x09" and header["path"] == "conn"
    assert header["fields"].split("\t") == [f for f, _ in FIELDS]
    assert header["types"].split("\t") == [t for _, t in FIELDS]
    assert lines[-1].startswith("#close\t")
    return rows


@pytest.fixture(scope="module")
def pilot():
    table = read_packets([PILOT])
    flows, labels = build_flows_labelled(table)
    return table, flows, read_conn_log(conn_log_text(table, flows, labels))


def _row(rows, dst_port, src=CLIENT1):
    return next(r for r in rows if r["id.orig_h"] == src and r["id.resp_p"] == str(dst_port))


def test_conn_log_has_every_flow_with_zeek_types(pilot):
    _, flows, rows = pilot
    assert len(rows) == len(flows)
    for r in rows:
        float(r["ts"]), float(r["duration"])
        assert r["uid"].startswith("C") and len(r["uid"]) == 18
        assert r["proto"] in ("tcp", "udp", "icmp")
        assert all(r[c].isdigit() for c in ("orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts",
                                            "orig_ip_bytes", "resp_ip_bytes", "missed_bytes"))
    assert len({r["uid"] for r in rows}) == len(rows)
    assert int(sum(int(r["orig_pkts"]) + int(r["resp_pkts"]) for r in rows)) == int(
        flows["src_packets"].sum() + flows["dst_packets"].sum())


def test_pilot_anomalies_have_zeeks_states_and_histories(pilot):
    _, _, rows = pilot
    pop3 = _row(rows, 110)  # SYN answered by RST/ACK
    assert (pop3["conn_state"], pop3["history"]) == ("REJ", "Sr")
    imaps = _row(rows, 993)  # SYNs dropped: four attempts, no answer
    assert (imaps["conn_state"], imaps["history"], imaps["orig_pkts"]) == ("S0", "S", "4")
    rpc = _row(rows, 135, CLIENT1)  # refused by ICMP: Zeek logs the ICMP apart, the TCP is S0
    assert (rpc["conn_state"], rpc["history"]) == ("S0", "S")
    icmp = next(r for r in rows if r["proto"] == "icmp")
    assert (icmp["id.orig_p"], icmp["id.resp_p"], icmp["conn_state"]) == ("3", "13", "OTH")
    states = Counter(r["conn_state"] for r in rows)
    assert states["SF"] >= 250 and set(states) <= {"SF", "S0", "REJ", "RSTO", "RSTR", "OTH", "S1"}
    udp = [r for r in rows if r["proto"] == "udp"]
    assert {(r["conn_state"], r["history"]) for r in udp} == {("SF", "Dd")}


def test_histories_match_an_independent_reading_by_tshark(pilot):
    """tshark's own per-packet flags, folded the way Zeek does, give the same history letters."""
    _, _, rows = pilot
    out = subprocess.run(
        ["tshark", "-r", str(PILOT), "-Y", "tcp && !icmp", "-T", "fields", "-e", "ip.src", "-e",
         "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "tcp.flags", "-e", "tcp.len"],
        capture_output=True, text=True, check=True).stdout
    # only 5-tuples used once in the pilot (no port reuse), so a 5-tuple is one flow
    tuples = Counter((r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
                     for r in rows if r["proto"] == "tcp")
    history: dict[tuple, list[str]] = {}
    for line in out.splitlines():
        src, sport, dst, dport, flags, length = line.split("\t")
        fwd = (src, sport, dst, dport)
        key, orig = (fwd, True) if fwd in tuples else ((dst, dport, src, sport), False)
        f = int(flags, 16)
        syn, fin, rst, ack = f & 2, f & 1, f & 4, f & 16
        letters = []
        if syn:
            letters.append("h" if ack else "s")
        if int(length or 0) > 0:
            letters.append("d")
        if fin:
            letters.append("f")
        if rst:
            letters.append("r")
        if ack and not (syn or fin or rst) and not int(length or 0):
            letters.append("a")
        seen = history.setdefault(key, [])
        for letter in letters:
            letter = letter.upper() if orig else letter
            if letter not in seen:
                seen.append(letter)
    checked = 0
    for r in rows:
        key = (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
        if r["proto"] == "tcp" and tuples[key] == 1:
            assert r["history"] == "".join(history[key]), key
            checked += 1
    assert checked >= 100


def test_flows_command_writes_zeek(tmp_path):
    out = tmp_path / "conn.log"
    res = CliRunner().invoke(cli, ["flows", str(PILOT), "--format", "zeek", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_conn_log(out.read_text())
    assert len(rows) > 200
    stdout = CliRunner().invoke(cli, ["flows", str(PILOT), "--format", "zeek"]).output
    assert stdout.startswith("#separator \\x09\n")


def test_an_empty_flow_table_is_a_log_with_headers_only():
    from auditor.schema import FLOW_COLUMNS, empty_frame

    text = conn_log_text(None, empty_frame(FLOW_COLUMNS), np.empty(0, dtype=np.int64))
    assert read_conn_log(text) == []


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"


@pytest.mark.parametrize("name", ["pilot/pilot.pcapng", "midstream/midstream.pcap",
                                  "names/names.pcap", "coexist/coexist.pcapng",
                                  "edge/icmp6_unreachable.pcap", "edge/syn_retry_after_rst.pcap",
                                  "edge/ipv4_fragments.pcap", "public/kerberos.pcap",
                                  "public/CVE-2020-1472_exploit_win2019.pcap"])
def test_conn_log_is_the_per_flow_implementations(name):
    """The vectorised conn.log equals the per-flow one it replaced (tests/zeek_oracle.py)."""
    from tests import zeek_oracle

    table = read_packets([FIXTURES / name])
    flows, labels = build_flows_labelled(table)
    assert conn_log_text(table, flows, labels) == zeek_oracle.conn_log_text(table, flows, labels)


def test_durations_and_uids_are_formatted_as_the_per_flow_implementation():
    import pandas as pd

    from auditor.render import zeek
    from tests import zeek_oracle

    ns = np.array([0, 1, 499, 500, 501, 1500, 2500, 999_999_500, 123_456_789_012,
                   10**15 + 500, 3 * 10**15 + 1234567], np.int64)
    got = zeek._seconds(ns).to_pylist()
    assert got == [f"{v / 1e9:.6f}" for v in ns.tolist()]
    flows = pd.DataFrame({"capture": ["a.pcap", "b|c.pcap"], "flow_id": [0, 7],
                          "src_ip": ["198.18.0.1", "2001:db8::1"], "src_port": [1, 65535],
                          "dst_ip": ["198.18.0.2", "2001:db8::2"], "dst_port": [80, 0],
                          "proto": ["tcp", "icmpv6"]})
    ts = np.array([1_700_000_000_123_456_789, 5], np.int64)
    uids = zeek._uids(*[flows[c] for c in flows.columns], ts).to_pylist()
    assert uids == [zeek_oracle._uid(*row, t) for row, t in zip(flows.itertuples(index=False), ts,
                                                                 strict=True)]
