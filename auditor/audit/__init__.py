"""Stage 4, observed flows against the catalogue.

- `verdicts`: roles and best rule per flow, verdicts, findings and the summary.
- `pipeline`: the whole job in one call (read, flows, discovery, audit).
- `filters`: the Wireshark display filter of a finding (from a finding to its packets).
- `diff`: two audit documents compared: findings new, resolved, changed; rules; RPC moves.
"""
