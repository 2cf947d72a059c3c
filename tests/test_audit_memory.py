"""The audit lets go of what it no longer needs before its own peak, and finds the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor import audit_captures
from auditor.audit import pipeline
from auditor.catalogue.loader import load_catalogue
from auditor.inventory.roles import load_inventory
from auditor.options import PipelineOptions
from auditor.render.json_export import result_to_dict

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"


@pytest.mark.tshark
def test_audit_drops_candidate_packets_after_discovery_and_finds_the_same(monkeypatch):
    inventory, catalogue = load_inventory(PILOT / "inventory.yaml"), load_catalogue()
    captures = [PILOT / "pilot.pcapng"]
    # the observation kept whole (observe, then audit), as `auditor rpc` and proposals use it
    seen = pipeline.observe(captures)
    assert len(seen.table.packets) > 0 and seen.rpc is not None
    whole = pipeline.audit_observation(seen, inventory, catalogue)
    audited = _observations_audited(monkeypatch)
    result = audit_captures(captures, inventory, catalogue)
    (given,) = audited
    assert len(given.table.packets) == 0 and len(given.labels) == 0
    # copies, not empty views: a view kept the whole candidate frame alive through the audit's
    # peak (82 MiB of the 3M-packet benchmark capture's 557 MiB)
    assert _owner(given.labels).nbytes == 0
    for column in given.table.packets.columns:
        assert _owner(given.table.packets[column].to_numpy()).nbytes == 0, column
    assert list(given.table.packets.columns) == list(seen.table.packets.columns)
    assert given.table.files == seen.table.files
    assert result_to_dict(result) == result_to_dict(whole)


def _observations_audited(monkeypatch) -> list:
    """The Observations pipeline.audit_observation is given from now on, in a list."""
    audited = []
    real = pipeline.audit_observation

    def spy(observation, *args, **kwargs):
        audited.append(observation)
        return real(observation, *args, **kwargs)

    monkeypatch.setattr(pipeline, "audit_observation", spy)
    return audited


def _owner(array):
    """The array a view's memory belongs to (itself when it owns it)."""
    while getattr(array, "base", None) is not None and hasattr(array.base, "nbytes"):
        array = array.base
    return array


def test_an_audit_without_discovery_keeps_no_candidate_packets_and_finds_the_same(monkeypatch):
    inventory, catalogue = load_inventory(PILOT / "inventory.yaml"), load_catalogue()
    captures = [PILOT / "pilot.pcapng"]
    options = PipelineOptions(rpc=False)
    # what the read kept when it still kept the candidates (they went unused)
    whole = pipeline.audit_observation(pipeline.observe(captures, options), inventory, catalogue,
                                       options)
    audited = _observations_audited(monkeypatch)
    result = audit_captures(captures, inventory, catalogue, options)
    (given,) = audited
    assert len(given.table.packets) == 0 and given.rpc is None
    assert result_to_dict(result) == result_to_dict(whole)
    # an inventory proposed from the captures still reads them (its versions come from SMTP
    # and HTTP payloads among the candidates)
    assert len(pipeline.observe(captures, options).table.packets) > 0
