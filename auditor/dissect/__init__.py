"""Stage 3, tshark on the few packets that matter.

- `tshark`: running tshark (prestarted on a FIFO) and walking its JSON.
- `dcerpc`: DCE/RPC facts (EPM towers, binds, DCOM bindings) and host names from tshark's trees.
- `select`: which packets are worth handing to tshark (bounded, round-robin over clients).
- `rpc`: dynamic RPC endpoint discovery and the flows it annotates.
- `rpc_ranges`: per-server dynamic range in use and the pinning advice.
- `drilldown`: a finding's few packets through pyshark (from a finding to its packets).
"""
