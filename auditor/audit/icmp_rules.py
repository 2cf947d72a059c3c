"""ICMP and ICMPv6 flows against the catalogue's `proto: icmp|icmpv6` rules, by type.

ICMP has no ports, so these rules are not rows of the port match table (`rule_ports_frame`): an
ICMP flow matches a rule when its initiator has a source role, its responder a destination role,
its protocol is the rule's and its type is one of the rule's `icmp_types` (any type when the
rule lists none). A reply type counts as its query (`flows.protocols.QUERY_OF`): a ping caught at
its echo-reply is still the rule's echo. Rules listing types beat rules without, then file order.
Work is per distinct (roles, protocol, type): a capture holds few ICMP flows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.catalogue.icmp import ICMP_PROTOS, type_numbers
from auditor.flows.protocols import QUERY_OF, icmp_type_name


def _type(icmp_type) -> int | None:
    return None if pd.isna(icmp_type) else int(icmp_type)


def _candidates(catalogue, proto: str, icmp_type: int | None) -> list:
    """ICMP rules of this protocol allowing this type (or the query it answers), those naming
    types first."""
    types = set() if icmp_type is None else {icmp_type, QUERY_OF[proto].get(icmp_type, icmp_type)}
    rules = [r for r in getattr(catalogue, "rules", ()) if r.proto == proto and (
        not r.icmp_types or types & type_numbers(proto, r.icmp_types))]
    return sorted(rules, key=lambda r: not r.icmp_types)  # stable: file order within each


def match_icmp(flows: pd.DataFrame, match: dict[str, np.ndarray], by_ip: pd.DataFrame,
               catalogue) -> dict[str, np.ndarray]:
    """`match` (per flow object arrays rule, src_role, dst_role) with the ICMP flows an ICMP rule
    allows given that rule and role pair.

    `by_ip` maps each address to its `roles` (tuple); flows that already have a rule, and
    non-ICMP flows, keep theirs. `flows` is only read (src_ip, dst_ip, proto, icmp_type).
    """
    if flows.empty or not any(r.proto in ICMP_PROTOS for r in getattr(catalogue, "rules", ())):
        return match
    todo = flows["proto"].isin(ICMP_PROTOS).to_numpy() & (pd.Series(
        match["rule"], dtype=object).fillna("") == "").to_numpy()
    if not todo.any():
        return match
    rows = np.flatnonzero(todo)
    keys = list(zip(flows["src_ip"].to_numpy(dtype=object)[rows],
                    flows["dst_ip"].to_numpy(dtype=object)[rows],
                    flows["proto"].to_numpy(dtype=object)[rows],
                    [_type(t) for t in flows["icmp_type"].to_numpy(dtype=object)[rows]],
                    strict=True))
    decided: dict[tuple, tuple[str, str, str] | None] = {}
    for key in dict.fromkeys(keys):
        src, dst, proto, icmp_type = key
        src_roles, dst_roles = by_ip["roles"].get(src, ()), by_ip["roles"].get(dst, ())
        decided[key] = next(((r.id, s, d) for r in _candidates(catalogue, proto, icmp_type)
                             for s in src_roles if s in r.source
                             for d in dst_roles if d in r.destination), None)
    out = dict(match)
    for col, i in (("rule", 0), ("src_role", 1), ("dst_role", 2)):
        values = np.asarray(match[col], dtype=object).copy()
        for row, key in zip(rows, keys, strict=True):
            if decided[key] is not None:
                values[row] = decided[key][i]
        out[col] = values
    return out


def icmp_rule_notes(findings: pd.DataFrame, catalogue, shown: int = 3) -> dict[int, str]:
    """Per undocumented ICMP finding (by position), the detail suffix naming the rules that
    allow its type for other roles, or saying that no rule does."""
    notes = {}
    for pos, (documented, proto, icmp) in enumerate(zip(
            findings["documented"].tolist(), findings["proto"].tolist(), findings["icmp"].tolist(),
            strict=True)):
        if documented or proto not in ICMP_PROTOS:
            continue
        raw = str(icmp).split("/")[0]
        icmp_type = int(raw) if raw.isdigit() else None
        what = f"{proto} {icmp_type_name(proto, icmp_type)}".strip()
        covering = _candidates(catalogue, proto, icmp_type)
        if not covering:
            notes[pos] = f"; no catalogue rule covers {what} for any roles"
            continue
        named = ", ".join(f"{r.id} ({'|'.join(r.source)} -> {'|'.join(r.destination)})"
                          for r in covering[:shown])
        more = f" and {len(covering) - shown} more" if len(covering) > shown else ""
        notes[pos] = (f"; {what} is documented only for other roles: {named}{more} "
                      "(check the inventory roles of both ends)")
    return notes
