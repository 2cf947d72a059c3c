"""The documented paths as data.

- `loader`: `rules/*.yaml` into frozen `Rule`s, their checks and the port match table.
"""
