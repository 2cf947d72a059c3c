"""The documented paths as data (rules/*.yaml).

- `icmp`: ICMP and ICMPv6 rules: `proto: icmp|icmpv6` with optional `icmp_types` instead of ports.
- `loader`: The reference catalogue: documented Exchange 2010 paths as data (`rules/*.yaml`).
"""
