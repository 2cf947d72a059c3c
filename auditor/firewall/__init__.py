"""Firewall requests from the catalogue (design) or from observed traffic (as-built).

- `requests`: building, merging and writing requests.
- `ruleset`: reading a ruleset CSV to verify (addresses, CIDRs, inventory names, ports).
- `verify`: testing observed flows against a ruleset: permitted, would block, coverage.
"""
