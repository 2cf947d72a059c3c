"""RPC discovery against tshark on every capture in the repository (rpc_oracle.py reads tshark).

For each capture under fixtures/ (whatever its format), tshark's own tree gives the EPM towers,
the binds with their answers and the DCOM string bindings; discovery must give exactly the
endpoints they imply, the same bind results, and the bound interfaces on the flows they ride in.
A capture without DCE/RPC must give nothing. Where tshark and discovery legitimately differ the
test says so next to the assertion. `python tests/rpc_oracle_figures.py` prints the per-capture
counts (tshark's endpoints, ours, agreement; binds and their results).
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from rpc_oracle import ROOT, Oracle, oracles, repo_captures

from auditor import RpcOptions, annotate_flows, discover_endpoints, interface_name
from auditor.capture.packets import read_packets
from auditor.flows.build import build_flows_labelled
from auditor.options import unlimited_rpc_options

pytestmark = pytest.mark.tshark

CAPTURES = repo_captures()
IDS = [str(p.relative_to(ROOT / "fixtures" / "pcaps")) for p in CAPTURES]
TOWER_KEY = ["client_ip", "server_ip", "operation", "status", "interface_uuid", "tower_proto",
             "tower_ip", "port", "endpoint"]
BIND_KEY = ["client_ip", "client_port", "server_ip", "server_port", "transport", "ptype",
            "interface_uuid", "result"]


def oracle(path: Path) -> Oracle:
    return oracles()[path]


@functools.cache
def ours(path: Path, unlimited: bool = False):
    """Flows and discovery for one capture (default options, or every cap lifted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captures cut short, sampling notes: not under test here
        packets = read_packets([path])
        flows, labels = build_flows_labelled(packets)
        options = (unlimited_rpc_options(names=False) if unlimited else RpcOptions(names=False))
        return flows, discover_endpoints(packets, flows, labels, options=options)


def quads(endpoints) -> set[tuple[str, int, str, str]]:
    return {(r.server_ip, int(r.port), r.proto, r.interface_uuid) for r in endpoints.itertuples()}


def test_the_oracle_finds_rpc_where_the_captures_have_it():
    # a guard on the oracle itself: tshark must not silently give nothing
    with_rpc = {name for name, path in zip(IDS, CAPTURES, strict=True) if oracle(path).endpoints()}
    assert {"pilot/pilot.pcapng", "public/suricata-verify_bug-5162_input.pcap",
            "public/CVE-2020-1472_exploit_win2019.pcap", "rpc/oxid_resolve.pcap",
            "midstream/midstream.pcap", "coexist/coexist.pcapng",
            "rpc/dcom_activation.pcap"} <= with_rpc
    assert len(oracle(ROOT / "fixtures/pcaps/pilot/pilot.pcapng").endpoints()) == 16
    assert oracle(ROOT / "fixtures/pcaps/rpc/oxid_resolve.pcap").dcom == {
        ("198.18.1.2", 49712, "")}
    assert oracle(ROOT / "fixtures/pcaps/rpc/dcom_activation.pcap").dcom == {
        ("198.18.1.2", 49712, "f309ad18-d86a-11d0-a075-00c04fb68820"),  # IWbemLevel1Login
        ("198.18.1.2", 49713, "00000001-0000-0000-c000-000000000046"),  # IClassFactory
        ("198.18.1.2", 49714, "f309ad18-d86a-11d0-a075-00c04fb68820")}  # (RemoteActivation)


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_discovered_endpoints_are_exactly_what_tshark_decodes(path):
    want = oracle(path).endpoints()
    _, found = ours(path)
    ep = found.endpoints
    evidenced = ep[ep["evidence"].isin(["epm", "bind", "dcom"])]
    assert quads(evidenced) == want
    assert list(ep["interface"]) == [interface_name(u) or ("DCOM object exporter" if e == "dcom"
                                                           else "")
                                     for u, e in zip(ep["interface_uuid"], ep["evidence"],
                                                     strict=True)]
    # timing inference only fills ports that no evidence names
    inferred = {(s, p, proto) for s, p, proto, _ in quads(ep[ep["evidence"] == "inferred"])}
    assert not inferred & {(s, p, proto) for s, p, proto, _ in want}


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_bind_results_are_tshark_pairing_of_binds_and_answers(path):
    want = Counter(tuple(b[k] for k in BIND_KEY) for b in oracle(path).binds)
    _, found = ours(path, unlimited=True)
    got = Counter(tuple(r) for r in found.facts.binds[BIND_KEY].astype(object).map(
        lambda v: int(v) if hasattr(v, "__index__") else v).values.tolist())
    tcp = {k: n for k, n in want.items() if k[4] != "smb"}
    assert Counter({k: n for k, n in got.items() if k[4] != "smb"}) == Counter(tcp)
    # Binds inside SMB named pipes ride in SMB WRITE/IOCTL payloads, not at a segment's start,
    # so discovery does not pick 445 flows for binds (a pipe names no port of its own); those
    # it reads on the way must still agree with tshark.
    smb = Counter({k: n for k, n in got.items() if k[4] == "smb"})
    assert smb <= Counter({k: n for k, n in want.items() if k[4] == "smb"})


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_flows_tshark_sees_binds_in_are_named_after_the_bound_interfaces(path):
    binds = [b for b in oracle(path).binds if b["transport"] != "smb"]
    flows, found = ours(path)
    out = annotate_flows(flows, found.endpoints)
    by_tuple = {(r.src_ip, int(r.src_port), r.dst_ip, int(r.dst_port)): r
                for r in out[out["proto"] == "tcp"].itertuples()}
    # a port is named after what clients bound there (refused binds name nothing)
    bound: dict[tuple[str, int], set[str]] = {}
    for b in binds:
        if b["result"] != "rejected":
            bound.setdefault((b["server_ip"], b["server_port"]), set()).add(
                interface_name(b["interface_uuid"]) or b["interface_uuid"])
    for b in binds:
        flow = by_tuple.get((b["client_ip"], b["client_port"], b["server_ip"], b["server_port"]))
        assert flow is not None, f"no flow oriented client to server for {b}"
        names = bound.get((b["server_ip"], b["server_port"]))
        if names:
            assert flow.rpc_interface == ", ".join(sorted(names))
            assert flow.rpc_evidence in ("epm", "bind")


def _plain(value):
    """A frame cell as the oracle writes it (NA as None, numpy integers as int)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return int(value) if hasattr(value, "__index__") else value


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_every_tower_tshark_decodes_is_an_epm_fact(path):
    # every protocol (tcp, udp, http, pipe, lrpc), every reply, and failures with the interface
    # the request asked for; the endpoint set above keeps only the tcp and udp ones
    want = Counter(tuple(t[k] for k in TOWER_KEY) for t in oracle(path).towers)
    _, found = ours(path, unlimited=True)
    got = Counter(tuple(_plain(v) for v in row)
                  for row in found.facts.epm[TOWER_KEY].astype(object).values.tolist())
    assert got == want


def test_a_capture_set_gives_the_union_of_what_tshark_decodes_in_each_file():
    # the pilot's ring buffer: a session's EPM reply and its bind may sit in different files
    ring = sorted((ROOT / "fixtures/pcaps/pilot/ring").glob("*.pcapng"))
    want = set().union(*(oracle(p).endpoints() for p in ring))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packets = read_packets(ring)
        flows, labels = build_flows_labelled(packets)
        found = discover_endpoints(packets, flows, labels, options=RpcOptions(names=False))
    ep = found.endpoints
    assert quads(ep[ep["evidence"].isin(["epm", "bind", "dcom"])]) == want and len(want) == 16
