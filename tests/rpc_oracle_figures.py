"""Figures of the RPC oracle: per capture, the endpoints tshark decodes against discovery's.

    .venv/bin/python tests/rpc_oracle_figures.py

Prints a Markdown table of every capture under fixtures/ where either side finds an endpoint:
tshark's endpoints (EPM towers, binds not refused, DCOM bindings; tests/rpc_oracle.py), ours
(evidence epm, bind or dcom, default options), how many agree, and the binds each side pairs with
an answer. tests/test_rpc_oracle.py asserts the same agreement.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rpc_oracle import ROOT, oracles  # noqa: E402

from auditor import RpcOptions, discover_endpoints  # noqa: E402
from auditor.capture.packets import read_packets  # noqa: E402
from auditor.flows.build import build_flows_labelled  # noqa: E402
from auditor.options import unlimited_rpc_options  # noqa: E402

BIND_KEY = ["client_ip", "client_port", "server_ip", "server_port", "transport", "ptype",
            "interface_uuid", "result"]


def _ours(path: Path, options: RpcOptions):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packets = read_packets([path])
        flows, labels = build_flows_labelled(packets)
        return discover_endpoints(packets, flows, labels, options=options)


def main() -> None:
    print("| capture | tshark endpoints | ours | agree | tshark TCP binds | ours, same result |")
    print("|---|---:|---:|---:|---:|---:|")
    totals = Counter()
    for path, oracle in oracles().items():
        want = oracle.endpoints()
        found = _ours(path, RpcOptions(names=False))
        ep = found.endpoints[found.endpoints["evidence"].isin(["epm", "bind", "dcom"])]
        got = {(r.server_ip, int(r.port), r.proto, r.interface_uuid) for r in ep.itertuples()}
        binds = Counter(tuple(b[k] for k in BIND_KEY) for b in oracle.binds
                        if b["transport"] != "smb")
        facts = _ours(path, unlimited_rpc_options(names=False)).facts.binds
        mine = Counter(tuple(int(v) if isinstance(v, int) or hasattr(v, "__index__") else v
                             for v in row) for row in facts[BIND_KEY].values.tolist()
                       if row[4] != "smb")
        if not (want or got or binds):
            continue
        same = sum((binds & mine).values())
        row = (len(want), len(got), len(want & got), sum(binds.values()), same)
        totals.update(dict(zip(("want", "got", "agree", "binds", "same"), row, strict=True)))
        name = path.relative_to(ROOT / "fixtures" / "pcaps")
        print(f"| {name} | " + " | ".join(map(str, row)) + " |")
    print(f"| **all** | {totals['want']} | {totals['got']} | {totals['agree']} | "
          f"{totals['binds']} | {totals['same']} |")


if __name__ == "__main__":
    main()
