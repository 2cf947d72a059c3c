"""The port-and-role match: the best catalogue rule for each distinct match key.

A flow's rule depends only on its ends' role sets, its protocol and server port, its server
address where discovery learned dynamic ports for it, and (once discovery ran) whether its path
has RPC evidence. 100k flows are ~10k paths but only a few dozen such keys, so the match table
is joined once per key and the answer broadcast back with integer codes (`distinct_rows`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct rows of integer columns (first appearance first): per row its number,
    and per number the position of its first row."""
    n = len(columns[0]) if columns else 0
    codes, radix = np.zeros(n, dtype=np.int64), 1
    for col in columns:
        col = np.asarray(col, dtype=np.int64)
        if not n:
            break
        low, high = int(col.min()), int(col.max())
        if high - low >= n:  # a wide column (ports of few flows, times): its codes instead
            col = pd.factorize(col)[0].astype(np.int64)
            low, high = int(col.min()), int(col.max())
        if radix * (high - low + 1) >= 2 ** 62:  # renumber first so the combined code fits
            codes = pd.factorize(codes)[0].astype(np.int64)
            radix = int(codes.max()) + 1
        codes = codes * (high - low + 1) + (col - low)
        radix *= high - low + 1
    codes = pd.factorize(codes)[0].astype(np.int64)
    groups = int(codes.max()) + 1 if n else 0
    first = np.full(groups, n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n))
    return codes, first


def best_rules(keys: pd.DataFrame, match_table: pd.DataFrame, catalogue,
               evidenced: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per key row (src_roles and dst_roles tuples, proto, port, dst_ip), the best matching rule
    and the role pair it matched: object arrays rule, src_role, dst_role (None when none).

    Exact ports beat dynamic ranges, narrow ranges beat wide ones, then catalogue order, then
    the order of the key's roles. `evidenced` (per key row: some flow of its path has RPC
    evidence) is given when discovery ran; then a strict rule's default dynamic range only
    matches evidenced keys. A key's `dst_ip` only matters for servers with learned dynamic ports
    (`learned_servers`). Keys are few (a few dozen), so this is plain Python over the rows of
    the match table each role pair and protocol selects.
    """
    result = {col: np.full(len(keys), None, dtype=object) for col in ("rule", "src_role", "dst_role")}
    if keys.empty or match_table.empty:
        return result
    order = {r.id: i for i, r in enumerate(catalogue.rules)}
    strict = {r.id for r in catalogue.rules if r.scope == "strict"}
    learned = learned_servers(match_table)
    table = _by_role_pair(match_table)
    columns = (keys["src_roles"], keys["dst_roles"], keys["proto"], keys["port"], keys["dst_ip"])
    for i, (sources, targets, proto, port, dst_ip) in enumerate(zip(*columns, strict=True)):
        port, best, best_rank = int(port), None, None
        for src in _listed(sources):
            for dst in _listed(targets):
                for rule_id, lo, hi, dynamic, server_ip in table.get((src, dst, proto), ()):
                    if not lo <= port <= hi:
                        continue
                    if server_ip != dst_ip and (server_ip != "" or (dynamic and dst_ip in learned)):
                        continue  # another server's learned ports, or a learned server's default
                    if (evidenced is not None and dynamic and server_ip == "" and rule_id in strict
                            and not evidenced[i]):
                        continue  # a strict rule's bare range, and no RPC evidence on the path
                    rank = (dynamic, hi - lo, order.get(rule_id, len(order)))
                    if best_rank is None or rank < best_rank:
                        best, best_rank = (rule_id, src, dst), rank
        if best is not None:
            result["rule"][i], result["src_role"][i], result["dst_role"][i] = best
    return result


def _by_role_pair(match_table: pd.DataFrame) -> dict[tuple, list[tuple]]:
    """The match table's rows (rule_id, port_lo, port_hi, dynamic, server_ip) per (src_role,
    dst_role, proto), in table order."""
    table: dict[tuple, list[tuple]] = {}
    rows = zip(match_table["src_role"], match_table["dst_role"], match_table["proto"],
               match_table["rule_id"], match_table["port_lo"].astype(np.int64),
               match_table["port_hi"].astype(np.int64), match_table["dynamic"].astype(bool),
               match_table["server_ip"].fillna(""), strict=True)
    for src, dst, proto, rule_id, lo, hi, dynamic, server_ip in rows:
        table.setdefault((src, dst, proto), []).append(
            (rule_id, int(lo), int(hi), bool(dynamic), server_ip))
    return table


def _listed(roles) -> tuple:
    """A role set as its roles (a single role as itself; missing: none)."""
    if isinstance(roles, tuple | list):
        return tuple(roles)
    return () if pd.isna(roles) else (roles,)


def learned_servers(match_table: pd.DataFrame) -> set:
    """Servers whose dynamic RPC ports discovery learned (rows with a server_ip)."""
    return set(match_table.loc[match_table["server_ip"] != "", "server_ip"])
