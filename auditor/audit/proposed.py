"""Zero-config audit: without an inventory, audit with one proposed from the capture itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from auditor.audit.host_names import best_capture_names
from auditor.catalogue.loader import normal_ip
from auditor.inventory.evidence import _count


def proposed_inventory(seen, internal: Sequence[str] | None = None):
    """The inventory proposed from an Observation (roles from evidence, inventory/propose.py)."""
    from auditor.inventory.propose import propose_from_observation

    return propose_from_observation(seen, internal=internal)[0]


def mark_proposed(result, inventory, names=None):
    """The result with summary `inventory: proposed` and the proposal's host and network counts.

    A proposed host named from the capture (`names`, schema.HOST_NAME_COLUMNS) keeps that
    capture source as its `name_source`: nobody wrote that name into an inventory.
    """
    summary = {**result.summary, "inventory": "proposed", "inventory_hosts": len(inventory.hosts),
               "inventory_networks": len(inventory.networks)}
    sources = _capture_sources(inventory, names)
    if not sources:
        return dataclasses.replace(result, summary=summary)
    frames = {"hosts": (result.hosts, ("",)), "flows": (result.flows, ("src_", "dst_")),
              "findings": (result.findings, ("src_", "dst_"))}
    changed = {key: frame.assign(**{f"{side}name_source": _relabel(
        frame[f"{side}ip"], frame[f"{side}name_source"], sources) for side in sides})
        for key, (frame, sides) in frames.items()
        if all(f"{side}name_source" in frame for side in sides)}
    return dataclasses.replace(result, summary=summary, **changed)


def _capture_sources(inventory, names) -> dict[str, str]:
    """address -> capture source, for proposed hosts whose name is the capture's best name."""
    best = best_capture_names(names)
    if best.empty:
        return {}
    by_ip = dict(zip(best["ip"], zip(best["name"], best["source"], strict=True), strict=True))
    out = {}
    for host in inventory.hosts:
        for ip in host.addresses:
            key = normal_ip(ip) or str(ip)
            name, source = by_ip.get(key, ("", ""))
            if name and name == host.name:
                out[key] = source
    return out


def _relabel(ips: pd.Series, current: pd.Series, sources: dict[str, str]) -> pd.Series:
    found = ips.map(lambda a: sources.get(normal_ip(a) or str(a), ""))
    use = (current == "inventory") & (found != "")
    return current.where(~use, found)


def proposal_note(result, captures: Sequence[str | Path]) -> str:
    """The one line telling a user the audit used a proposed inventory, and how to review it."""
    s = result.summary
    shown = " ".join(str(c) for c in list(captures)[:3]) + (" ..." if len(captures) > 3 else "")
    return (f"no --inventory given: audited with an inventory proposed from the capture "
            f"({_count(s.get('inventory_hosts', 0), 'host')}, "
            f"{_count(s.get('inventory_networks', 0), 'network')}); "
            f"review and keep it with: auditor roles {shown} -o inventory.yaml, then pass "
            "--inventory inventory.yaml")
