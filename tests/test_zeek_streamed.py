"""`auditor flows --format zeek` streamed: the partials fold what conn.log needs (flows/conn.py),
and the text is the packet table's (tests/zeek_oracle.py) on every path the engine takes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import build_flows_labelled, read_packets
from auditor.cli import cli
from auditor.cli.observe_cmds import _conn_log
from auditor.engine import cache as cache_mod
from auditor.engine.fileread import read_file_partial
from auditor.engine.run import stream_flows
from auditor.flows.conn import CONN_COLUMNS
from auditor.options import EngineOptions, FlowOptions, RpcOptions
from auditor.render.zeek import conn_log_chunks
from tests import zeek_oracle
from tests.test_zeek import read_conn_log

PCAPS = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
PILOT = PCAPS / "pilot" / "pilot.pcapng"
RING = PCAPS / "pilot" / "ring"
ZEEK = FlowOptions(zeek=True)
PLAIN = FlowOptions()
FIXTURES = ["pilot/pilot.pcapng", "midstream/midstream.pcap", "names/names.pcap",
            "coexist/coexist.pcapng", "edge/icmp6_unreachable.pcap",
            "edge/syn_retry_after_rst.pcap", "edge/ipv4_fragments.pcap", "public/kerberos.pcap",
            "public/CVE-2020-1472_exploit_win2019.pcap"]


def oracle(captures, flow_options: FlowOptions = PLAIN) -> str:
    """The conn.log of the whole packet table, by the per-flow implementation."""
    table = read_packets(captures)
    flows, labels = build_flows_labelled(table, flow_options)
    return zeek_oracle.conn_log_text(table, flows, labels)


def streamed(captures, flow_options: FlowOptions = ZEEK, **engine):
    """(conn.log text, engine report) of the streamed path."""
    got = stream_flows(captures, flow_options, RpcOptions(candidates=False),
                       engine=EngineOptions(flow_pieces=True, **engine))
    assert got.report.streamed
    return b"".join(conn_log_chunks(got.flows)).decode(), got.report


@pytest.mark.parametrize("name", FIXTURES)
def test_streamed_conn_log_is_the_packet_tables(name):
    """In one process, chunks of 4 KiB: partials of every chunk merged many times over."""
    text, report = streamed([PCAPS / name], workers=1, chunk_bytes=4096)
    assert report.where == "local"
    assert text == oracle([PCAPS / name])


@pytest.mark.parametrize("name", ["pilot/pilot.pcapng", "coexist/coexist.pcapng",
                                  "public/CVE-2020-1472_exploit_win2019.pcap"])
def test_byte_ranges_on_two_workers_give_the_same_conn_log(name):
    text, report = streamed([PCAPS / name], workers=2, range_bytes=1 << 12)
    assert report.where == "processes" and report.ranges > 2
    assert text == oracle([PCAPS / name])


@pytest.mark.parametrize("engine", [{"workers": 1}, {"workers": 2, "range_bytes": 1 << 12}])
def test_a_ring_of_files_gives_the_whole_captures_conn_log(engine):
    """Flows that go on from one file into the next: their letters keep the packets' order."""
    files = sorted(RING.glob("*.pcapng"))
    assert len(files) == 4
    text, report = streamed([RING], **engine)
    assert report.files == 4
    assert text == oracle(files)
    # the ring is the pilot cut in four: the same flows, named after the file they began in
    whole = read_conn_log(oracle([PILOT]))
    rows = read_conn_log(text)
    assert [r["history"] for r in rows] == [r["history"] for r in whole]
    assert [r["orig_ip_bytes"] for r in rows] == [r["orig_ip_bytes"] for r in whole]


def test_archive_members_folded_merged_by_time_give_the_same_conn_log(tmp_path):
    archive = tmp_path / "ring.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(RING.glob("*.pcapng")):
            z.write(f, f.name)
    text, report = streamed([archive], workers=1, chunk_bytes=4096)
    assert report.where == "local" and report.files == 4
    assert text == oracle([archive])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_overlapping_server_captures_give_the_sorted_tables_conn_log(tmp_path):
    """One capture per server, recorded at once: folded merged by time (engine/interleave.py),
    packets of one instant in file order, as the sorted table has them."""
    servers = []
    for name, shown in {"mbx1": "ip.addr==198.18.1.21",
                        "rest": "!(ip.addr==198.18.1.21)"}.items():
        path = tmp_path / f"{name}.pcapng"
        subprocess.run(["tshark", "-r", str(PILOT), "-Y", shown, "-w", str(path)], check=True,
                       capture_output=True)
        servers.append(path)
    text, _ = streamed(servers, workers=2, chunk_bytes=4096)
    assert text == oracle(servers)
    def no_uid(log):  # (the uid hashes the capture's name)
        return sorted(tuple(v for k, v in r.items() if k != "uid") for r in read_conn_log(log))

    assert no_uid(text) == no_uid(oracle([PILOT]))


@pytest.mark.skipif(shutil.which("mergecap") is None, reason="needs mergecap")
def test_a_file_going_back_in_time_writes_the_sorted_tables_conn_log(tmp_path):
    """The engine falls back to one sorted table: the command writes that table's conn.log."""
    files = sorted(RING.glob("*.pcapng"))
    back = tmp_path / "back.pcapng"
    with open(back, "wb") as out:  # the ring's last file, then its first: time goes back
        subprocess.run(["mergecap", "-a", "-w", "-", str(files[3]), str(files[0])], stdout=out,
                       check=True)
    engine = EngineOptions(workers=1, chunk_bytes=4096)  # the file in many chunks
    got = stream_flows([back], ZEEK, RpcOptions(candidates=False), engine=engine)
    assert not got.report.streamed
    out = tmp_path / "conn.log"
    _conn_log([back], out, ZEEK, engine)  # what `auditor flows --format zeek` runs
    assert out.read_text() == oracle([back])


def test_idle_timeouts_split_flows_as_the_packet_table_does():
    short = FlowOptions(tcp_idle_timeout_s=0.05, udp_idle_timeout_s=0.01)
    want = oracle([PILOT], short)
    assert len(want.splitlines()) > len(oracle([PILOT]).splitlines())  # the timeouts split
    for engine in ({"workers": 1, "chunk_bytes": 4096}, {"workers": 2, "range_bytes": 1 << 12}):
        text, _ = streamed([PILOT], dataclasses.replace(short, zeek=True), **engine)
        assert text == want


def test_port_reuse_icmp_and_midstream_flows_have_zeeks_histories():
    """A reused port starts a second flow; ICMP ports are the first packet's type and code; a
    flow begun before the capture has no SYN (each checked against the table's text too)."""
    rows = read_conn_log(streamed([PCAPS / "edge" / "syn_retry_after_rst.pcap"],
                                  workers=1, chunk_bytes=4096)[0])
    tcp = [(r["id.orig_p"], r["history"], r["conn_state"]) for r in rows if r["proto"] == "tcp"]
    assert len(tcp) == len({port for port, _, _ in tcp}) + 1  # one port used twice
    rows = read_conn_log(streamed([PILOT], workers=2, range_bytes=1 << 12)[0])
    icmp = next(r for r in rows if r["proto"] == "icmp")
    assert (icmp["id.orig_p"], icmp["id.resp_p"], icmp["conn_state"]) == ("3", "13", "OTH")
    rows = read_conn_log(streamed([PCAPS / "midstream" / "midstream.pcap"], workers=1,
                                  chunk_bytes=4096)[0])
    assert any(r["proto"] == "tcp" and r["history"][:1] not in ("S", "-") for r in rows)


def test_later_fragments_count_for_the_side_that_sent_them():
    """Non-first IP fragments carry no ports: they are the first fragment's sender's bytes (the
    packet-table path counted them for the responder)."""
    path = PCAPS / "edge" / "ipv4_fragments.pcap"
    for text in (streamed([path], workers=1)[0], oracle([path])):
        (row,) = [r for r in read_conn_log(text) if r["proto"] == "udp"]
        assert (row["orig_pkts"], row["orig_ip_bytes"], row["resp_pkts"],
                row["resp_ip_bytes"]) == ("3", "3068", "1", "32")


def _run(*args) -> str:
    res = CliRunner().invoke(cli, ["flows", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def test_the_cache_keeps_zeek_and_other_entries_apart(tmp_path):
    cache = tmp_path / "cache"
    csv_before = _run(PILOT, "--format", "csv", "--no-cache")
    assert _run(PILOT, "--format", "csv", "--cache", cache) == csv_before
    want = oracle([PILOT])
    # after a csv run: an entry without the conn.log columns is not reused
    assert _run(PILOT, "--format", "zeek", "--cache", cache) == want
    entries = list((cache / "entries").iterdir())
    assert len(entries) == 2
    got = stream_flows([PILOT], ZEEK, RpcOptions(candidates=False),
                       engine=EngineOptions(cache_dir=str(cache), flow_pieces=True))
    assert got.report.cached == 1
    assert b"".join(conn_log_chunks(got.flows)).decode() == want
    assert _run(PILOT, "--format", "zeek", "--cache", cache) == want
    assert _run(PILOT, "--format", "csv", "--cache", cache) == csv_before
    assert len(list((cache / "entries").iterdir())) == 2


def test_other_formats_reuse_the_entry_a_zeek_run_left(tmp_path):
    """The conn.log columns are a superset: without them, the entry is the csv run's."""
    cache = tmp_path / "cache"
    want = oracle([PILOT])
    assert _run(PILOT, "--format", "zeek", "--cache", cache) == want
    rpc = RpcOptions(candidates=False)
    got = stream_flows([PILOT], FlowOptions(), rpc,
                       engine=EngineOptions(cache_dir=str(cache), flow_pieces=True))
    assert got.report.cached == 1
    assert _run(PILOT, "--format", "csv", "--cache", cache) == _run(PILOT, "--format", "csv",
                                                                      "--no-cache")
    assert len(list((cache / "entries").iterdir())) == 1  # read from the zeek entry
    assert _run(PILOT, "--format", "zeek", "--cache", cache) == want


def test_only_zeek_folds_the_conn_log_columns_and_other_keys_are_unchanged(tmp_path):
    plain = read_file_partial(str(PILOT), FlowOptions())
    assert not set(CONN_COLUMNS) & set(plain.parts.columns)
    zeek = read_file_partial(str(PILOT), ZEEK)
    assert list(zeek.parts.columns) == list(plain.parts.columns) + CONN_COLUMNS
    assert zeek.parts[list(plain.parts.columns)].equals(plain.parts)
    digest = cache_mod.content_hash(PILOT, tmp_path)
    rpc = RpcOptions(candidates=False)
    before = json.dumps({"reader": cache_mod.READER_VERSION, "flows": cache_mod.FLOW_VERSION,
                         "flow_options": {"tcp_idle_timeout_s": 3600.0,
                                          "udp_idle_timeout_s": 300.0},
                         "rpc_options": dataclasses.asdict(rpc)}, sort_keys=True)
    key = f"{digest[:32]}-{hashlib.sha256(before.encode()).hexdigest()[:16]}"
    assert cache_mod.entry_key(digest, FlowOptions(), rpc) == key  # the entries of before
    assert cache_mod.entry_key(digest, ZEEK, rpc) != key


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_dask_cluster_gives_the_same_conn_log(dask_cluster):
    text, report = streamed([RING], scheduler=dask_cluster.scheduler_address)
    assert report.where == "dask" and report.files == 4
    assert text == oracle(sorted(RING.glob("*.pcapng")))
