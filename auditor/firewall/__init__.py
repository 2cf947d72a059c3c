"""Firewall requests from the catalogue (design) or from observed traffic (as-built).

- `requests`: building, merging and writing requests.
- `ruleset`: reading a ruleset CSV to verify (addresses, CIDRs, inventory names, ports).
- `exports`: requests as rules in a firewall's language (`export_common` shared parts;
  `nft`, `iptables`, `windows`, `cisco` one module per dialect).
- `verify`: testing observed flows against a ruleset: permitted, would block, coverage.
"""
