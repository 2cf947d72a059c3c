"""The documented paths as data (rules/*.yaml).

- `loader`: The reference catalogue: documented Exchange 2010 paths as data (`rules/*.yaml`).
"""
