"""Firewall rulesets to verify: the CSV `auditor firewall` writes, or a generic one.

A ruleset is a CSV with at least `source, destination, proto, ports` and optionally `action`
(allow/permit/accept or deny/drop/block/reject; empty means allow). Rows are read in order and
the first row that matches a flow decides, as on a firewall. Sources and destinations are
addresses, CIDRs, `any`, or names of inventory hosts and networks; several may be joined with
`;`. Ports are lists and ranges (`25,5060-5061`); empty or `any` means every port. An optional
`icmp_types` column narrows an icmp/icmpv6 row to ICMP types, by the names the flow table and
`auditor firewall` use (`echo`, `unreachable`, ...) or numbers 0-255, joined with `;` or `,`;
empty or `any` means every type. A query type stands for its exchange, as in the catalogue
(`echo` also covers an `echo-reply` caught first). Every mistake raises RulesetError naming file
and line.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from auditor.catalogue.icmp import ICMP_PROTOS, type_names, type_number
from auditor.errors import RulesetError

REQUIRED = ("source", "destination", "proto", "ports")
ANY = "any"
ALLOW_WORDS = ("allow", "permit", "accept", "pass")
DENY_WORDS = ("deny", "drop", "block", "reject")
PROTOS = ("tcp", "udp", "icmp", "icmpv6")
_ANY_PROTO = ("any", "ip", "all", "*")

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RulesetRow:
    """One ruleset row: who may reach whom on which ports, and whether it allows or denies."""

    line: int
    sources: tuple[Net, ...] | None  # None: any address
    destinations: tuple[Net, ...] | None
    proto: str  # tcp, udp, icmp, icmpv6, a protocol number, or any
    ports: tuple[tuple[int, int], ...]  # empty: every port
    action: str  # allow or deny
    source_text: str
    destination_text: str
    ports_text: str
    icmp_types: frozenset[int] = frozenset()  # icmp/icmpv6 rows: type numbers; empty: every type
    icmp_types_text: str = ""


@dataclass(frozen=True)
class Ruleset:
    """The rows of a ruleset file, in order, and the file they came from."""

    rows: tuple[RulesetRow, ...]
    path: str = ""


def _names(inventory) -> dict[str, tuple[Net, ...]]:
    """Inventory host and network names (case-insensitive) -> their addresses as networks."""
    out: dict[str, tuple[Net, ...]] = {}
    if inventory is None:
        return out
    for net in inventory.networks:
        if net.name:
            out.setdefault(net.name.lower(), (ipaddress.ip_network(net.cidr, strict=False),))
    for host in inventory.hosts:
        out[host.name.lower()] = tuple(ipaddress.ip_network(a) for a in host.addresses)
    return out


def _endpoint(text: str, names: dict, where: str) -> tuple[Net, ...] | None:
    parts = [p.strip() for p in text.replace(",", ";").split(";") if p.strip()]
    if not parts:
        raise RulesetError(f"{where}: empty address (use 'any' for every address)")
    nets: list[Net] = []
    for part in parts:
        if part.lower() == ANY:
            return None
        if part.lower() in names:
            nets.extend(names[part.lower()])
            continue
        looks_numeric = "/" in part or part.replace(".", "").isdigit() or ":" in part
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            if looks_numeric:
                raise RulesetError(f"{where}: malformed address or CIDR {part!r} ({exc})") from None
            raise RulesetError(f"{where}: unknown name {part!r} (not an address, a CIDR, 'any', "
                               "or a host or network name of the inventory)") from None
    return tuple(dict.fromkeys(nets))


def _ports(text: str, where: str) -> tuple[tuple[int, int], ...]:
    text = text.strip()
    if text.lower() in ("", ANY, "*"):
        return ()
    runs = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            lo_n, hi_n = int(lo), int(hi if sep else lo)
        except ValueError:
            raise RulesetError(f"{where}: bad port {part!r}") from None
        if not (0 <= lo_n <= 65535 and 0 <= hi_n <= 65535):
            raise RulesetError(f"{where}: port {part!r} is out of range 0-65535")
        if lo_n > hi_n:
            raise RulesetError(f"{where}: inverted port range {part!r} ({lo_n} > {hi_n})")
        runs.append((lo_n, hi_n))
    return tuple(runs)


def _proto(text: str, where: str) -> str:
    value = text.strip().lower()
    if value in _ANY_PROTO or value == "":
        return ANY
    if value in PROTOS or (value.isdigit() and 0 <= int(value) <= 255):
        return value
    raise RulesetError(f"{where}: unknown proto {text!r} (tcp, udp, icmp, icmpv6, any or a number)")


PROTO_NUMBERS = {"icmp": "1", "tcp": "6", "udp": "17", "icmpv6": "58"}  # as a row may write them
_ICMP_FAMILY = {PROTO_NUMBERS[p]: p for p in ICMP_PROTOS}  # a row's ICMP proto as a number


def _icmp_types(text: str, proto: str, where: str) -> frozenset[int]:
    """The ICMP type numbers a row's `icmp_types` cell names (empty: every type)."""
    text = text.strip()
    if text.lower() in ("", ANY, "*"):
        return frozenset()
    family = _ICMP_FAMILY.get(proto, proto)
    if family not in ICMP_PROTOS:
        raise RulesetError(f"{where}: icmp_types given for proto {proto} (only icmp and icmpv6 "
                           "rows have ICMP types)")
    out = set()
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        number = type_number(family, part)
        if number is None:
            raise RulesetError(f"{where}: {part.strip().lower()!r} is not an {family} type (a "
                               f"number 0-255 or one of {', '.join(type_names(family))})")
        out.add(number)
    return frozenset(out)


def _action(text: str, where: str) -> str:
    value = text.strip().lower()
    if value in ALLOW_WORDS or value == "":
        return "allow"
    if value in DENY_WORDS:
        return "deny"
    raise RulesetError(f"{where}: unknown action {text!r} (allow or deny)")


def parse_ruleset(text: str, path: str = "<ruleset>", inventory=None) -> Ruleset:
    """Parse ruleset CSV text; names resolve through the inventory. Errors name path:line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise RulesetError(f"{path}:1: empty ruleset (needs a header: "
                           f"{','.join(REQUIRED)}[,action])") from None
    except csv.Error as exc:
        raise RulesetError(f"{path}:1: {exc}") from None
    columns = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise RulesetError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)} (a ruleset needs {','.join(REQUIRED)}[,action])")
    optional = ("action", "icmp_types")
    index = {c: columns.index(c) for c in (*REQUIRED, *optional) if c in columns}
    names = _names(inventory)
    rows = []
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise RulesetError(f"{path}:{line}: {exc}") from None
        where = f"{path}:{line}"
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            line = reader.line_num + 1
            continue
        if len(cells) < len(columns):
            cells = cells + [""] * (len(columns) - len(cells))
        cell = {c: cells[index[c]] if c in index else "" for c in (*REQUIRED, *optional)}
        proto = _proto(cell["proto"], where)
        ports = _ports(cell["ports"], where)
        if ports and proto not in ("tcp", "udp", ANY):
            raise RulesetError(f"{where}: ports given for proto {proto} (only tcp and udp have ports)")
        rows.append(RulesetRow(
            line=line, sources=_endpoint(cell["source"], names, where),
            destinations=_endpoint(cell["destination"], names, where), proto=proto, ports=ports,
            action=_action(cell["action"], where), source_text=cell["source"].strip(),
            destination_text=cell["destination"].strip(), ports_text=cell["ports"].strip(),
            icmp_types=_icmp_types(cell["icmp_types"], proto, where),
            icmp_types_text=cell["icmp_types"].strip(),
        ))
        line = reader.line_num + 1
    return Ruleset(rows=tuple(rows), path=path)


def load_ruleset(path: str | Path, inventory=None) -> Ruleset:
    """Read a ruleset CSV file (see the module docstring for its columns)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesetError(f"{path}:1: cannot read the ruleset ({exc})") from None
    return parse_ruleset(text, str(path), inventory)
