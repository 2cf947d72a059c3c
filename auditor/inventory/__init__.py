"""Hosts to roles: the inventory, and one proposed from the traffic with its evidence.

- `evidence`: What the capture says each host does: services it answers, RPC interfaces it serves,
  hints.
- `heuristics`: Role heuristics: each reads a host's evidence and returns (role, confidence,
  evidence text).
- `propose`: A proposed inventory: roles guessed from what hosts serve and answer in a capture.
- `roles`: Host roles: the inventory (YAML or CSV) and address -> roles resolution.
- `versions`: Which Exchange version a server runs, from what its traffic shows (for `auditor
  roles`).
- `yaml_text`: Inventory YAML text: any inventory (a proposed one with its evidence as comments) as
  YAML that `roles.load_inventory` reads back.
"""
