"""Firewall requests for the recorded pilot, checked by value against its inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor import (
    PipelineOptions,
    asbuilt_requests,
    audit_captures,
    design_requests,
    load_catalogue,
    load_inventory,
    merge_requests,
)

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(PILOT / "inventory.yaml")


@pytest.fixture(scope="module")
def asbuilt(inventory):
    cat = load_catalogue()
    result = audit_captures([PILOT / "pilot.pcapng"], inventory, cat)
    return merge_requests(asbuilt_requests(result, inventory, cat)).set_index(
        ["source", "destination", "proto"])


def _ports(frame, src, dst, proto):
    return frame.loc[(src, dst, proto), "ports"]


@pytest.mark.tshark
def test_asbuilt_requests_are_what_the_pilot_needed(asbuilt):
    assert _ports(asbuilt, "198.18.1.41", "198.18.2.61", "tcp") == "25,50636"  # HUB1 -> EDGE1
    assert _ports(asbuilt, "198.18.2.61", "198.18.1.41", "tcp") == "25"  # EDGE1 -> HUB1
    assert _ports(asbuilt, "198.18.10.0/24", "198.18.1.31", "tcp") == "443"  # clients -> CAS1
    assert _ports(asbuilt, "198.18.1.21", "198.18.1.22", "tcp") == "64327"  # DAG replication
    # RPC to the DC is opened on the ports discovery saw, not the whole dynamic range
    dc = _ports(asbuilt, "198.18.1.41", "198.18.1.10", "tcp")
    assert dc.endswith("3268,49152-49154") and "135" in dc.split(",")


@pytest.mark.tshark
def test_asbuilt_marks_what_the_catalogue_does_not_justify(asbuilt):
    unjustified = asbuilt[~asbuilt["justified"]]
    assert set(unjustified.index) == {("198.18.1.41", "198.19.0.0/16", "tcp"),
                                      ("198.18.5.99", "198.18.1.21", "tcp")}
    assert unjustified.loc[("198.18.1.41", "198.19.0.0/16", "tcp"), "ports"] == "8080"


def test_design_requests_cover_the_documented_paths_of_the_pilot(inventory):
    design = merge_requests(design_requests(inventory, load_catalogue())).set_index(
        ["source", "destination", "proto"])
    assert _ports(design, "198.18.2.70", "198.18.1.51", "tcp") == "5060-5061,5065-5068"  # GW1 -> UM1
    assert "50636" in _ports(design, "198.18.1.41", "198.18.2.61", "tcp").split(",")
    # the Edge is no domain member: towards DC1 only DNS (DC1 is also the DNS server), no AD
    assert _ports(design, "198.18.2.61", "198.18.1.10", "tcp") == "53"
    assert _ports(design, "198.18.2.61", "198.18.1.10", "udp") == "53"
    # nothing discovered: the dynamic range is requested, with advice to pin it
    row = design.loc[("198.18.1.41", "198.18.1.10", "tcp")]
    assert row["ports"].endswith("49152-65535") and "TCP/IP Port" in row["note"]


def test_audit_without_tshark_warns_and_still_audits(monkeypatch, inventory):
    from auditor import DissectWarning

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.warns(DissectWarning, match="RPC discovery and host naming skipped"):
        result = audit_captures([PILOT / "pilot.pcapng"], inventory, load_catalogue(),
                                PipelineOptions())
    assert result.summary["rpc_discovery"] is False and result.rpc.empty
    assert {"rejected", "unanswered", "unexpected"} <= set(result.findings["kind"])
    assert any("skipped" in w for w in result.warnings)
