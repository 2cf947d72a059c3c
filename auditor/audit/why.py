"""Which rule decided a finding, or which missing rule: the sentence a user can act on.

A documented finding names its rule already. An undocumented one says either which catalogue
rules cover that port for other roles (so the inventory's roles may be what is wrong), or that
no rule covers the port for any roles (a path the catalogue does not know).
"""

from __future__ import annotations

import pandas as pd

from auditor.audit.icmp_rules import icmp_rule_notes

_SHOWN = 3  # rules named per finding, then a count


def rule_notes(findings: pd.DataFrame, catalogue) -> list[str]:
    """Per flow finding, a suffix for its detail naming the deciding (or missing) rule."""
    cache: dict[tuple[str, int], str] = {}  # the note per (proto, port): findings repeat few
    rules = list(getattr(catalogue, "rules", ()))
    icmp = icmp_rule_notes(findings, catalogue, _SHOWN) if "icmp" in findings else {}
    notes = []
    for pos, (documented, proto, port) in enumerate(zip(
            findings["documented"].tolist(), findings["proto"].tolist(),
            findings["dst_port"].tolist(), strict=True)):
        if pos in icmp:  # ICMP has types, not ports (audit/icmp_rules.py)
            notes.append(icmp[pos])
            continue
        if documented or pd.isna(port):
            notes.append("")
            continue
        key = (str(proto), int(port))
        if key not in cache:
            cache[key] = _port_note(rules, *key)
        notes.append(cache[key])
    return notes


def _port_note(rules: list, proto: str, port: int) -> str:
    """The note of an undocumented finding on port/proto: the rules covering it for other roles,
    or that none does."""
    covering = [r for r in rules if r.proto == proto and any(
        lo <= port <= hi for lo, hi in r.port_ranges)]
    where = f"{port}/{proto}"
    if not covering:
        return f"; no catalogue rule covers {where} for any roles"
    named = ", ".join(f"{r.id} ({'|'.join(r.source)} -> {'|'.join(r.destination)})"
                      for r in covering[:_SHOWN])
    more = f" and {len(covering) - _SHOWN} more" if len(covering) > _SHOWN else ""
    return (f"; {where} is documented only for other roles: {named}{more} "
            "(check the inventory roles of both ends)")
