"""Text cells made inert for spreadsheets and terminals (CSV, xlsx and reports share this)."""

from __future__ import annotations

# A cell starting with one of these is run as a formula by spreadsheet programs (OWASP CSV
# injection); names come from captures, so they are attacker-controlled.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# C0/C1 control characters but tab and newlines: terminal escape sequences in a cell
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
