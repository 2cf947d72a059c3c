"""The audit's per-host view: one row per address with its traffic and findings."""

from __future__ import annotations

import numpy as np
import pandas as pd


def host_view(audited, hosts, findings) -> pd.DataFrame:
    """One row per address: name, roles, flows and bytes as either end, findings involving it."""
    both = pd.concat([
        audited[["src_ip", "flow_id", "src_bytes", "dst_bytes"]].rename(columns={"src_ip": "ip"}),
        audited[["dst_ip", "flow_id", "src_bytes", "dst_bytes"]].rename(columns={"dst_ip": "ip"}),
    ])
    stats = both.assign(bytes=both["src_bytes"] + both["dst_bytes"]).groupby("ip").agg(
        flows=("flow_id", "size"), bytes=("bytes", "sum"))
    involved = pd.concat([findings["src_ip"], findings["dst_ip"]]).value_counts()
    view = hosts.assign(roles=hosts["roles"].map(";".join))
    view = view.join(stats, on="ip")
    view["findings"] = view["ip"].map(involved).fillna(0).astype(np.int64)
    view[["flows", "bytes"]] = view[["flows", "bytes"]].fillna(0).astype(np.int64)
    return view[["ip", "name", "roles", "flows", "bytes", "findings", "name_source"]].sort_values(
        ["bytes", "ip"], ascending=[False, True], kind="stable").reset_index(drop=True)
