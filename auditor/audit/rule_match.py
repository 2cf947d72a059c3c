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
    codes = np.zeros(n, dtype=np.int64)
    for col in columns:
        col_codes, uniques = pd.factorize(np.asarray(col, dtype=np.int64))
        # re-number after each column so the combined code never overflows
        codes = pd.factorize(codes * (len(uniques) + 1) + col_codes)[0].astype(np.int64)
    groups = int(codes.max()) + 1 if n else 0
    first = np.full(groups, n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n))
    return codes, first


def codes_of(values) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize of any values (tuples, frozensets, text) as (int64 codes, object uniques)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object) if isinstance(
        values, list) else values)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def best_rules(keys: pd.DataFrame, match_table: pd.DataFrame, catalogue,
               evidenced: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per key row (src_roles and dst_roles tuples, proto, port, dst_ip), the best matching rule
    and the role pair it matched: object arrays rule, src_role, dst_role (None when none).

    Exact ports beat dynamic ranges, narrow ranges beat wide ones, then catalogue order.
    `evidenced` (per key row: some flow of its path has RPC evidence) is given when discovery
    ran; then a strict rule's default dynamic range only matches evidenced keys. A key's
    `dst_ip` only matters for servers with learned dynamic ports (`learned_servers`).
    """
    result = {col: np.full(len(keys), None, dtype=object) for col in ("rule", "src_role", "dst_role")}
    if keys.empty or match_table.empty:
        return result
    pairs = pd.DataFrame(
        {"path": np.arange(len(keys)), "src_role": keys["src_roles"].to_numpy(),
         "dst_role": keys["dst_roles"].to_numpy(), "proto": keys["proto"].to_numpy(),
         "port": keys["port"].astype(np.int64).to_numpy(), "dst_ip": keys["dst_ip"].to_numpy()}
    ).explode("src_role").explode("dst_role")
    cand = pairs.merge(match_table, on=["src_role", "dst_role", "proto"], how="inner")
    cand = cand[(cand["port"] >= cand["port_lo"]) & (cand["port"] <= cand["port_hi"])]
    learned = learned_servers(match_table)
    server_ip = cand["server_ip"].fillna("")
    cand = cand[(server_ip == cand["dst_ip"]) | ((server_ip == "") & (
        ~cand["dynamic"] | ~cand["dst_ip"].isin(learned)))]
    if evidenced is not None:
        strict = {r.id for r in catalogue.rules if r.scope == "strict"}
        bare_range = cand["dynamic"] & (cand["server_ip"].fillna("") == "")
        unproven = bare_range & cand["rule_id"].isin(strict) & ~evidenced[cand["path"].to_numpy()]
        cand = cand[~unproven]
    if cand.empty:
        return result
    order = {r.id: i for i, r in enumerate(catalogue.rules)}
    cand = cand.assign(
        dyn=cand["dynamic"].astype(int), width=cand["port_hi"] - cand["port_lo"],
        order=cand["rule_id"].map(order),
    ).sort_values(["path", "dyn", "width", "order"], kind="stable")
    best = cand.drop_duplicates("path")
    rows = best["path"].to_numpy()
    for col, source in (("rule", "rule_id"), ("src_role", "src_role"), ("dst_role", "dst_role")):
        result[col][rows] = best[source].to_numpy(dtype=object)
    return result


def learned_servers(match_table: pd.DataFrame) -> set:
    """Servers whose dynamic RPC ports discovery learned (rows with a server_ip)."""
    return set(match_table.loc[match_table["server_ip"] != "", "server_ip"])
