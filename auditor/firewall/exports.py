"""Rule requests in a firewall's own language: nftables, iptables, Windows Firewall, Cisco IOS.

`export_rules(frame, dialect)` takes a FIREWALL_COLUMNS frame (design or as-built, merged or
not) and returns {file name: text}: one file for nftables, iptables and Cisco, one PowerShell
script per Exchange server for Windows. Port ranges stay merged; inventory names are kept as
comments (nftables, iptables), display names (Windows) or object-group names (Cisco). Rows the
catalogue does not justify are written commented out, never opened silently.
"""

from __future__ import annotations

import pandas as pd

from auditor.firewall.export_common import export_rows

DIALECTS = ("nftables", "iptables", "windows", "cisco")


def export_rules(frame: pd.DataFrame, dialect: str, *, inventory=None,
                 mode: str = "design") -> dict[str, str]:
    """{file name: text} of the requests in a firewall dialect (see DIALECTS)."""
    if dialect == "nftables":
        from auditor.firewall.nft import nftables_text

        return {"auditor.nft": nftables_text(export_rows(frame), mode)}
    if dialect == "iptables":
        from auditor.firewall.iptables import iptables_text

        return {"auditor.rules": iptables_text(export_rows(frame), mode)}
    if dialect == "cisco":
        from auditor.firewall.cisco import cisco_text

        return {"auditor-acl.txt": cisco_text(export_rows(frame), mode)}
    if dialect == "windows":
        from auditor.firewall.windows import windows_scripts

        return windows_scripts(export_rows(frame), inventory, mode)
    raise ValueError(f"unknown firewall dialect {dialect!r} (dialects: {', '.join(DIALECTS)})")
