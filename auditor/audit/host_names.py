"""Which name each address gets in an audit, and where the name came from.

The inventory's name wins; else the best name the capture gives (dissect/names.py ranks its
sources: a DC-locator reply or DNS answer before an SMTP greeting, a TLS SNI or a DHCP host name).
`name_source` says which: `inventory`, a capture source such as `dns` or `tls-sni`, or empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.catalogue.loader import normal_ip
from auditor.dissect.names import NAME_SOURCES


def best_capture_names(names: pd.DataFrame | None) -> pd.DataFrame:
    """One row per address (canonical spelling): its best capture name and that name's source."""
    if names is None or names.empty:
        return pd.DataFrame({"ip": pd.Series([], dtype=object), "name": pd.Series([], dtype=object),
                             "source": pd.Series([], dtype=object)})
    rank = {s: i for i, s in enumerate(NAME_SOURCES)}
    named = names[(names["ip"].fillna("") != "") & (names["name"].fillna("") != "")]
    named = named.assign(ip=named["ip"].map(lambda a: normal_ip(a) or str(a)),
                         _rank=named["source"].map(rank).fillna(len(rank)))
    best = named.sort_values("_rank", kind="stable").drop_duplicates("ip")
    return best[["ip", "name", "source"]].reset_index(drop=True)


def name_hosts(hosts: pd.DataFrame, names: pd.DataFrame | None) -> pd.DataFrame:
    """hosts (ip, name from the inventory, ...) with `name` filled from the capture where the
    inventory has none, and `name_source` saying where each name came from."""
    inventory = hosts["name"].fillna("").astype(object)
    source = np.where(inventory != "", "inventory", "").astype(object)
    best = best_capture_names(names)
    if best.empty:
        return hosts.assign(name=inventory, name_source=source)
    key = hosts["ip"].map(lambda a: normal_ip(a) or str(a))
    by_ip = best.set_index("ip")
    fill = key.map(by_ip["name"]).fillna("")
    fill_source = key.map(by_ip["source"]).fillna("")
    use = (inventory == "").to_numpy()
    return hosts.assign(name=np.where(use, fill, inventory).astype(object),
                        name_source=np.where(use, fill_source, source).astype(object))
