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
    cache: dict[tuple[str, int], list] = {}
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
            cache[key] = [r for r in rules if r.proto == key[0] and any(
                lo <= key[1] <= hi for lo, hi in r.port_ranges)]
        covering = cache[key]
        where = f"{key[1]}/{key[0]}"
        if not covering:
            notes.append(f"; no catalogue rule covers {where} for any roles")
            continue
        named = ", ".join(f"{r.id} ({'|'.join(r.source)} -> {'|'.join(r.destination)})"
                          for r in covering[:_SHOWN])
        more = f" and {len(covering) - _SHOWN} more" if len(covering) > _SHOWN else ""
        notes.append(f"; {where} is documented only for other roles: {named}{more} "
                     "(check the inventory roles of both ends)")
    return notes
