"""Firewall requests, their dialects, and a ruleset verified against the capture.

- `cisco`: Cisco IOS export: network and service object-groups and one extended ACL using them.
- `export_common`: What every firewall dialect export shares: parsed request rows, safe texts and
  names.
- `exports`: Rule requests in a firewall's own language: nftables, iptables, Windows Firewall, Cisco
  IOS.
- `iptables`: iptables export: an `iptables-restore` file (IPv4; IPv6 rows are listed for
  ip6tables).
- `nft`: nftables export: one `table inet` ruleset file that `nft -f` loads (and `nft -c -f`
  checks).
- `requests`: Firewall rule requests: what the network team must open, by design or as the pilot
  used it.
- `ruleset`: Firewall rulesets to verify: the CSV `auditor firewall` writes, or a generic one.
- `verify`: Verify a firewall ruleset against observed traffic: what it permits, what it would
  block.
- `windows`: Windows Firewall export: one PowerShell script of `New-NetFirewallRule` per Exchange
  server.
"""
