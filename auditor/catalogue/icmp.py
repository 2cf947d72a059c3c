"""ICMP and ICMPv6 rules: `proto: icmp|icmpv6` with optional `icmp_types` instead of ports.

Type names are those the flow table shows (`auditor/flows/protocols.py`, after the IANA ICMP and
ICMPv6 parameter registries): `echo`, `unreachable`, `time-exceeded`, `packet-too-big`,
`neighbor-solicitation`, ... A number 0-255 is accepted too and kept as its name when it has one.
A query type stands for its exchange: `echo` also covers an `echo-reply` that a capture shows
first (the flow of a ping caught after its request), and so on for timestamp, address mask,
MLD query/report and router/neighbour solicitation/advertisement.
"""

from __future__ import annotations

from auditor.flows.protocols import ICMP_TYPES, ICMPV6_TYPES
from auditor.yamlcheck import FieldError, LineList, LineMap

ICMP_PROTOS = ("icmp", "icmpv6")
TYPES = {"icmp": ICMP_TYPES, "icmpv6": ICMPV6_TYPES}
_NUMBERS = {proto: {name: number for number, name in names.items()}
            for proto, names in TYPES.items()}


def check_icmp_types(field: str, value: object, line: int) -> tuple[str | int, ...]:
    """A list of ICMP type names or numbers, kept as written (names checked per protocol later)."""
    items, lines = (value, value.item_lines) if isinstance(value, LineList) else ([value], [line])
    if not items:
        raise FieldError(line, f"{field} must list at least one ICMP type")
    out = []
    for item, item_line in zip(items, lines, strict=True):
        if isinstance(item, bool) or not isinstance(item, int | str) or (
                isinstance(item, int) and not 0 <= item <= 255):
            raise FieldError(item_line, f"{field}: {item!r} is not an ICMP type name or a number "
                                        "0-255")
        out.append(item.strip().lower() if isinstance(item, str) else item)
    return tuple(out)


def _type_name(proto: str, item: str | int, line: int) -> str:
    names = TYPES[proto]
    if isinstance(item, int) or item.isdigit():
        number = int(item)
        if not 0 <= number <= 255:
            raise FieldError(line, f"icmp_types: {item!r} is not an ICMP type number 0-255")
        return names.get(number, str(number))
    if item not in _NUMBERS[proto]:
        raise FieldError(line, f"icmp_types: {item!r} is not an {proto} type name (one of "
                               f"{', '.join(sorted(_NUMBERS[proto]))}, or a number)")
    return item


def check_icmp_fields(values: dict, item: LineMap) -> None:
    """ICMP rules take `icmp_types` (optional) and no ports; TCP/UDP rules need ports.

    Resolves `values["icmp_types"]` to type names for the rule's protocol; errors name the line.
    """
    proto = values["proto"]
    if proto not in ICMP_PROTOS:
        if "icmp_types" in values:
            raise FieldError(item.key_lines["icmp_types"], "icmp_types apply to icmp and icmpv6 "
                                                           "rules only")
        if "ports" not in values:
            raise FieldError(item.line, "missing field 'ports'")
        return
    if "ports" in values:
        raise FieldError(item.key_lines["ports"], f"an {proto} rule has no ports: list "
                                                  "icmp_types instead (or omit them for any type)")
    values["ports"] = ()
    if "icmp_types" not in values:
        return
    raw = item["icmp_types"]
    lines = raw.item_lines if isinstance(raw, LineList) else [item.value_lines["icmp_types"]]
    values["icmp_types"] = tuple(dict.fromkeys(
        _type_name(proto, name, n) for name, n in zip(values["icmp_types"], lines, strict=True)))


def type_number(proto: str, item: str | int) -> int | None:
    """The type number an ICMP type name or a number 0-255 stands for under proto, else None."""
    text = str(item).strip().lower()
    if text.isdigit():
        return int(text) if int(text) <= 255 else None
    return _NUMBERS[proto].get(text)


def type_names(proto: str) -> list[str]:
    """Every ICMP type name of proto, sorted (for messages)."""
    return sorted(_NUMBERS[proto])


def type_numbers(proto: str, names: tuple[str, ...]) -> frozenset[int]:
    """The ICMP type numbers a rule's `icmp_types` name (as resolved by check_icmp_fields)."""
    return frozenset(int(n) if n.isdigit() else _NUMBERS[proto][n] for n in names)


def family_fits(proto: str, *endpoints: str) -> bool:
    """False when an ICMP rule's version cannot reach these endpoints (icmpv6 between IPv4
    addresses or networks, icmp between IPv6 ones); `any` and non-ICMP protocols always fit."""
    import ipaddress

    if proto not in ICMP_PROTOS:
        return True
    for text in endpoints:
        try:
            version = ipaddress.ip_network(str(text), strict=False).version
        except ValueError:
            continue  # `any` or a name
        if version != (6 if proto == "icmpv6" else 4):
            return False
    return True
