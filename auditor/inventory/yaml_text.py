"""Inventory YAML text: any inventory (a proposed one with its evidence as comments) as YAML
that `roles.load_inventory` reads back."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

import pandas as pd
import yaml

from auditor.catalogue.loader import normal_ip
from auditor.inventory.evidence import _count
from auditor.inventory.roles import Inventory
from auditor.schema import ROLES

_OUTSIDE_LINES = 50  # outside hosts listed one per comment line, then counted
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./\-]*")


def _scalar(text: str) -> str:
    """Plain YAML when it reads back as the same string, else a JSON (YAML) quoted string."""
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def _flow(items: Iterable[str]) -> str:
    return "[" + ", ".join(_scalar(i) for i in items) + "]"


def inventory_to_yaml(inv: Inventory, evidence: pd.DataFrame | None = None) -> str:
    """The inventory as YAML text that load_inventory reads; evidence as comments."""
    notes: dict[str, list[str]] = {}
    if evidence is not None:
        for row in evidence.itertuples(index=False):
            notes.setdefault(row.ip, []).append(
                f"{row.role} {row.confidence:.2f}: {row.evidence}".replace("\n", " "))
    out = ["# Inventory; roles: " + ", ".join(ROLES)]
    if inv.source == "proposed":
        out.append("# Proposed from observed traffic: check every entry before auditing with it.")
    out.append("hosts:" if inv.hosts else "hosts: []")
    for host in inv.hosts:
        out += [f"  - name: {_scalar(host.name)}",
                f"    addresses: {_flow(host.addresses)}",
                f"    roles: {_flow(host.roles)}"]
        out += [f"    version: {host.version}"] if getattr(host, "version", "") else []
        out += [f"    # {ip} {note}" if len(host.addresses) > 1 else f"    # {note}"
                for ip in host.addresses for note in notes.get(ip, [])]
    listed = {ip for host in inv.hosts for ip in host.addresses}
    out.append("networks:" if inv.networks else "networks: []")
    for net in inv.networks:
        out.append(f"  - cidr: {_scalar(net.cidr)}")
        out.append(f"    roles: {_flow(net.roles)}")
        if net.name:
            out.append(f"    name: {_scalar(net.name)}")
        members = [ip for ip in notes if ip not in listed and normal_ip(ip)
                   and ipaddress.ip_address(ip) in ipaddress.ip_network(net.cidr)]
        listed.update(members)  # under the first (most specific) network only
        out += [f"    # {ip} {note}" for ip in members for note in notes[ip]]
    if inv.default_roles:
        out.append(f"default_roles: {_flow(inv.default_roles)}")
        outside = [ip for ip, lines in notes.items()
                   if ip not in listed and any(n.startswith("internet ") for n in lines)]
        if outside:
            out.append(f"# {_count(len(outside), 'host')} outside the internal networks:")
            out += [f"#   {ip} {note}" for ip in outside[:_OUTSIDE_LINES] for note in notes[ip]]
            if len(outside) > _OUTSIDE_LINES:
                out.append(f"#   ... and {len(outside) - _OUTSIDE_LINES} more")
    return "\n".join(out) + "\n"
