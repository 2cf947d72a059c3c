"""Stage 4, observed flows against the catalogue: verdicts, findings, the whole job.

- `capture_end`: The capture's own limits: requests cut off by its end, and captures too short to
  miss things.
- `classify`: The verdict of every flow: names, roles, rule, service and verdict, worked out per
  distinct key.
- `diff`: Compare two audit documents (`auditor audit --format json`): what changed between runs.
- `filters`: Wireshark display filters that isolate a finding's packets (from a finding to its
  packets).
- `host_names`: Which name each address gets in an audit, and where the name came from.
- `hosts`: The audit's per-host view: one row per address with its traffic and findings.
- `icmp_rules`: ICMP and ICMPv6 flows against the catalogue's `proto: icmp|icmpv6` rules, by
  type.
- `pipeline`: The whole job in one call: captures -> flows -> RPC discovery and names -> audit.
- `proposed`: Zero-config audit: without an inventory, audit with one proposed from the capture
  itself.
- `rpc_rules`: Interface- and protocol-aware rule matching.
- `rule_match`: The port-and-role match: the best catalogue rule for each distinct match key.
- `scope`: Multicast, broadcast and link-local destinations: local noise, never `internet` nor a
  network.
- `verdicts`: Compare observed flows with the catalogue: verdict per flow, findings, rule status.
- `versions`: Judge each flow by the catalogue of the Exchange versions at its two ends
  (coexistence).
- `why`: Which rule decided a finding, or which missing rule: the sentence a user can act on.
"""
