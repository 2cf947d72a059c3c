"""Stage 2, packets to flows: splits, sums, orientation from evidence, protocol names.

- `build`: Packets to bidirectional flows: initiator, per-direction counts and the TCP outcome.
- `conn`: What Zeek's conn.log needs beyond the flow table (history letters, IP bytes per side),
  folded with the partials under `--format zeek` only.
- `orient`: Which side of a flow is the client: the handshake, else evidence, else ports, else time.
- `partial`: Per-flow partial aggregates: fold chunks of packets, merge them associatively, finish
  the flows.
- `pieces`: Merged partials finished into the flow table a piece at a time.
- `protocols`: Names of IP protocols and ICMP types, and which destinations are one-to-many.
- `text`: Text columns of the flow table as Arrow arrays, never a Python string per flow.
"""
