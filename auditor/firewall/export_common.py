"""What every firewall dialect export shares: parsed request rows, safe texts and names.

See `exports` for the dialects. Names come from
captures and inventories: every text that lands in a rule is reduced to a safe character set.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pandas as pd

from auditor.firewall.requests import ANY, icmp_type_numbers, parse_ports

_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:;/+()>#=@-]")

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ExportRule:
    """One request row, parsed: endpoints as networks (None = any), merged port runs."""

    source: Net | None
    source_name: str
    destination: Net | None
    destination_name: str
    proto: str
    ports: tuple[tuple[int, int], ...]
    rules: str
    justified: bool
    justification: str
    icmp_types: tuple[int, ...] = ()  # icmp/icmpv6 type numbers to allow; () = every type

    @property
    def family(self) -> int:
        """4 or 6 (4 when both ends are any)."""
        nets = [n for n in (self.source, self.destination) if n is not None]
        return nets[0].version if nets else 4

    @property
    def label(self) -> str:
        """'HUB1 -> EDGE1', from the inventory names, else the addresses."""
        src = self.source_name or (str(self.source) if self.source else ANY)
        dst = self.destination_name or (str(self.destination) if self.destination else ANY)
        return f"{src} -> {dst}"


def safe_text(text: object, limit: int = 200) -> str:
    """Text reduced to characters every dialect's comment syntax takes as is, cut to `limit`."""
    value = _UNSAFE.sub("_", str(text if text is not None and not pd.isna(text) else ""))
    value = re.sub(r"\s+", " ", value).strip()
    return value if len(value) <= limit else value[: limit - 3] + "..."


def safe_name(text: str, fallback: str) -> str:
    """An identifier: letters, digits, '_' and '-' only, starting with a letter."""
    value = re.sub(r"[^A-Za-z0-9_-]", "_", str(text or "")).strip("_-")
    if not value or not value[0].isalpha():
        value = f"{fallback}{'_' + value if value else ''}"
    return value[:48]


def net_text(net: Net) -> str:
    """An address for a one-address network, else address/prefix."""
    return str(net.network_address) if net.num_addresses == 1 else net.with_prefixlen


def _net(text: str) -> Net | None:
    text = str(text).strip()
    if text in ("", ANY):
        return None
    return ipaddress.ip_network(text, strict=False)


def export_rows(frame: pd.DataFrame) -> list[ExportRule]:
    """The request frame's rows as ExportRule, in the frame's order."""
    out = []
    for r in frame.to_dict("records"):
        out.append(ExportRule(
            source=_net(r["source"]), source_name=safe_text(r["source_name"], 60),
            destination=_net(r["destination"]), destination_name=safe_text(r["destination_name"], 60),
            proto=str(r["proto"]), ports=tuple(parse_ports(r["ports"] or "")),
            rules=safe_text(r["rules"], 400), justified=bool(r["justified"]),
            justification=safe_text(r["justification"], 400),
            icmp_types=icmp_type_numbers(str(r["proto"]), r.get("icmp_types", "")),
        ))
    return out


def header_lines(mode: str, rows: list[ExportRule], dialect: str) -> list[str]:
    """The comment lines every export starts with (without the comment marker)."""
    justified = sum(r.justified for r in rows)
    return [
        f"auditor firewall requests ({safe_text(mode, 20)}) as {dialect}: {justified} rules "
        f"justified by the catalogue, {len(rows) - justified} not (written commented out)",
        "ports are merged into ranges; names come from the inventory",
    ]
