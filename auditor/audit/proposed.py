"""Zero-config audit: without an inventory, audit with one proposed from the capture itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from auditor.inventory.evidence import _count


def proposed_inventory(seen, internal: Sequence[str] | None = None):
    """The inventory proposed from an Observation (roles from evidence, inventory/propose.py)."""
    from auditor.inventory.propose import propose_from_observation

    return propose_from_observation(seen, internal=internal)[0]


def mark_proposed(result, inventory):
    """The result with summary `inventory: proposed` and the proposal's host and network counts."""
    return dataclasses.replace(result, summary={
        **result.summary, "inventory": "proposed", "inventory_hosts": len(inventory.hosts),
        "inventory_networks": len(inventory.networks)})


def proposal_note(result, captures: Sequence[str | Path]) -> str:
    """The one line telling a user the audit used a proposed inventory, and how to review it."""
    s = result.summary
    shown = " ".join(str(c) for c in list(captures)[:3]) + (" ..." if len(captures) > 3 else "")
    return (f"no --inventory given: audited with an inventory proposed from the capture "
            f"({_count(s.get('inventory_hosts', 0), 'host')}, "
            f"{_count(s.get('inventory_networks', 0), 'network')}); "
            f"review and keep it with: auditor roles {shown} -o inventory.yaml, then pass "
            "--inventory inventory.yaml")
