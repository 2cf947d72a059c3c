"""Connectionless DCE/RPC answers tied to their request's flow, checked with tshark's activity ids.

A ncadg_ip_udp server may answer from another port than the one the request went to;
flows/orient.py::tie_connectionless_rpc counts such an answer to the flow of the latest request
its receiver sent to the answering address within 30 s. tshark's `dcerpc.dg_act_id` (one client
call sequence) says which request an answer belongs to: every answer that was moved must share an
activity with a request of the flow it joined, and every answer of an activity must join the flow
of that activity's requests.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from rpc_oracle import ROOT, oracles

from auditor.capture.packets import read_packets
from auditor.flows.build import build_flows_labelled

pytestmark = pytest.mark.tshark

_CLIENT = (0, 1, 7, 8)  # request, ping, ack, cl_cancel ([C706] 12.5.3.1)
_SERVER = (2, 3, 4, 5, 6, 10)  # response, fault, working, nocall, reject, cancel_ack


def _flows(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packets = read_packets([path])
        flows, labels = build_flows_labelled(packets)
    # tshark numbers frames from 1 in file order; the packet table keeps each record's index
    row_of = dict(zip(packets.packets["record_index"].to_numpy() + 1,
                      range(len(packets.packets)), strict=True))
    return flows, np.asarray(labels), row_of


def test_every_answer_joins_the_flow_of_its_activitys_requests():
    checked = {}
    for path, oracle in oracles().items():
        if oracle.cl:
            checked[str(path.relative_to(ROOT / "fixtures" / "pcaps"))] = _check(path, oracle.cl)
    # tshark finds CL RPC in these; in dcerpc.pcap both activities answer from another port
    assert {"public/dcerpc.pcap", "rpc/rpc_scenario_day1.pcap"} <= set(checked)
    assert checked["public/dcerpc.pcap"] == 8


def _check(path: Path, pdus: list[dict]) -> int:
    """Assert the activity rule on one capture; return how many answers were moved."""
    flows, labels, row_of = _flows(path)
    requests, answers = {}, {}
    for pdu in pdus:
        flow = int(labels[row_of[pdu["frame"]]])
        if pdu["ptype"] in _CLIENT:
            requests.setdefault(pdu["activity"], set()).add(flow)
        elif pdu["ptype"] in _SERVER:
            answers.setdefault(pdu["activity"], []).append((pdu, flow))
    moved = 0
    for activity, answered in answers.items():
        for pdu, flow in answered:
            row = flows.iloc[flow]
            # the answer's own UDP ports as the flow sees them, whichever way it is oriented
            ports = {(row["src_ip"], int(row["src_port"])), (row["dst_ip"], int(row["dst_port"]))}
            tied = (pdu["src"], pdu["sport"]) not in ports
            moved += tied
            if tied:  # a moved answer shares an activity with a request of the flow it joined
                assert flow in requests.get(activity, set()), (path.name, pdu)
            if activity in requests:  # and no answer of an asked activity is left apart
                assert {flow} == requests[activity], (path.name, pdu)
    return moved
