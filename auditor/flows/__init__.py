"""Stage 2, packets to flows.

- `build`: port-reuse and idle splits, per-flow sums, initiator, state and ICMP errors.
"""
