"""Hosts to roles.

- `roles`: the inventory (YAML or CSV) and role assignment per address.
- `propose`: an inventory proposed from the traffic, with its evidence.
"""
