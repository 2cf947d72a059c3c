"""Firewall requests from the catalogue (design) or from observed traffic (as-built).

- `requests`: building, merging and writing requests.
"""
