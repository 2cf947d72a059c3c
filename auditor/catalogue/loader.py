"""The reference catalogue: documented Exchange 2010 paths as data (`rules/*.yaml`).

Rules parse into frozen dataclasses; every malformed value raises CatalogueError naming
`file:line`. `rule_ports_frame` expands the rules into the match table the audit joins
flows against, resolving the `rpc-dynamic` symbol per server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from auditor.catalogue.icmp import ICMP_PROTOS, check_icmp_fields, check_icmp_types
from auditor.errors import CatalogueError
from auditor.schema import RULE_COLUMNS, RULE_PORT_COLUMNS, typed_frame
from auditor.yamlcheck import (
    Check,
    FieldError,
    LineList,
    LineMap,
    check_bool,
    check_fields,
    check_roles,
    check_text,
    choice,
    pattern,
    read_yaml,
)

BUNDLED_NAME = "exchange2010.yaml"
# Bundled catalogues by name (rules/<name>.yaml); the first is the default.
BUNDLED = ("exchange2010", "exchange2013", "exchange2016", "coexistence")
# Exchange versions an inventory host or a catalogue may name (2016 also stands for SE).
VERSIONS = ("2010", "2013", "2016", "2019")
PROTOS = ("tcp", "udp") + ICMP_PROTOS
STATUSES = ("CONFIRMED", "PARTIAL", "UNCONFIRMED")
SEVERITIES = ("info", "low", "medium", "high")
SCOPES = ("internal", "strict")
RPC_DYNAMIC = "rpc-dynamic"
DEFAULT_RPC_RANGE = (49152, 65535)  # Windows Vista / Server 2008 and later (KB929851)
LEGACY_RPC_RANGE = (1025, 5000)  # Windows 2000 / XP / Server 2003

# Application protocols a rule may require (`app_protocol`), told from the first payload bytes
# of the flow (auditor/audit/rpc_rules.py): for wide port ranges, where the port says nothing.
APP_PROTOCOLS = ("rtp", "sip", "dcerpc", "tls", "http")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SERVICE = re.compile(r"[a-z][a-z0-9-]*")
_CITATION = re.compile(r"\[(S\d+[a-z]?)\]")


def _parse_port(value: object, line: int) -> int | str:
    """One port item: a number, an 'a-b' range or rpc-dynamic (kept as written)."""
    if value == RPC_DYNAMIC:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        lo = hi = value
    elif isinstance(value, str) and value.strip().isdigit():
        lo = hi = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\d+-\d+", value.replace(" ", "")):
        lo, hi = (int(x) for x in value.replace(" ", "").split("-"))
    else:
        raise FieldError(line, f"port {value!r} is not a number, an 'a-b' range or {RPC_DYNAMIC}")
    for port in (lo, hi):
        if not 1 <= port <= 65535:
            raise FieldError(line, f"port {port} is out of range 1-65535")
    if lo > hi:
        raise FieldError(line, f"port range {value!r} is reversed")
    return lo if lo == hi else f"{lo}-{hi}"


def _check_ports(field: str, value: object, line: int) -> tuple[int | str, ...]:
    items, lines = (value, value.item_lines) if isinstance(value, LineList) else ([value], [line])
    if not items:
        raise FieldError(line, f"{field} must list at least one port")
    return tuple(dict.fromkeys(_parse_port(v, n) for v, n in zip(items, lines, strict=True)))


# ---- the rule model ----


@dataclass(frozen=True)
class Reference:
    """Where a rule comes from: reference row ids with [Sx] keys, and the reference's status."""

    source: str
    status: str


@dataclass(frozen=True)
class Rule:
    """One documented communication path (see rules/README.md for each field)."""

    id: str
    source: tuple[str, ...]
    destination: tuple[str, ...]
    proto: str
    ports: tuple[int | str, ...]  # as written: 25, "5065-5068", "rpc-dynamic"
    service: str
    description: str
    reference: Reference
    configurable: str
    expected: bool
    severity: str
    scope: str
    note: str = ""
    interfaces: tuple[str, ...] = ()  # DCE/RPC interfaces documented (names or UUIDs); () = any
    interface_source: str = ""  # where the interface list comes from
    app_protocol: str = ""  # application protocol the flow must show (APP_PROTOCOLS); "" = any
    file: str = ""
    line: int = 0
    versions: tuple[str, ...] = ()  # Exchange versions the rule is for; () = any
    source_versions: tuple[str, ...] = ()  # coexistence: versions of the source end only
    destination_versions: tuple[str, ...] = ()  # coexistence: versions of the destination end
    icmp_types: tuple[str, ...] = ()  # icmp/icmpv6 rules: type names (echo, ...); () = any type

    @property
    def port_ranges(self) -> tuple[tuple[int, int], ...]:
        """Static ports as (lo, hi) ranges, without rpc-dynamic."""
        out = []
        for port in self.ports:
            if isinstance(port, int):
                out.append((port, port))
            elif port != RPC_DYNAMIC:
                lo, hi = port.split("-")
                out.append((int(lo), int(hi)))
        return tuple(out)

    @property
    def rpc_dynamic(self) -> bool:
        """The rule includes the server's dynamic RPC ports."""
        return RPC_DYNAMIC in self.ports

    @property
    def interface_uuids(self) -> frozenset[str]:
        """The documented interfaces as lower-case UUIDs (names resolved via rpc_interfaces.csv)."""
        from auditor.dissect.rpc import interface_uuid

        return frozenset(interface_uuid(name) for name in self.interfaces)

    @property
    def defined_at(self) -> str:
        """file:line of the rule."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Catalogue:
    """All rules loaded, in file order, and the files they came from."""

    rules: tuple[Rule, ...]
    sources: tuple[str, ...]
    citations: tuple[tuple[str, str], ...] = ()  # ([Sx] key, what it is) from every file
    default_version: str = ""  # the first file's first version: hosts without a version have it

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError if none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def _check_reference(field: str, value: object, line: int) -> Reference:
    try:
        return Reference(**check_fields(value, _REFERENCE_SCHEMA, field, line))
    except FieldError as exc:
        raise FieldError(exc.line, f"{field}: {exc.message}") from None


_REFERENCE_SCHEMA: dict[str, tuple[bool, Check]] = {
    "source": (True, check_text),
    "status": (True, choice(STATUSES)),
}

def _check_versions(field: str, value: object, line: int) -> tuple[str, ...]:
    """Exchange versions: 2010, 2013, 2016, 2019 (one, or a list)."""
    items = list(value) if isinstance(value, LineList) else [value]
    out = []
    for item in items:
        text = str(item).strip() if isinstance(item, int | str) and not isinstance(item, bool) else ""
        if text not in VERSIONS:
            raise FieldError(line, f"{field}: {item!r} is not one of {', '.join(VERSIONS)}")
        out.append(text)
    if not out:
        raise FieldError(line, f"{field} must list at least one version")
    return tuple(dict.fromkeys(out))


def _check_interfaces(field: str, value: object, line: int) -> tuple[str, ...]:
    """A list of interface names from rpc_interfaces.csv or UUIDs, as written."""
    from auditor.dissect.rpc import interface_uuid

    if not isinstance(value, LineList) or not value:
        raise FieldError(line, f"{field} must be a non-empty list of RPC interface names or UUIDs")
    for item, item_line in zip(value, value.item_lines, strict=True):
        text = str(item).strip().strip("{}").lower()
        if not isinstance(item, str) or not (_UUID.fullmatch(text) or interface_uuid(item)):
            raise FieldError(item_line, f"{field}: {item!r} is neither an interface name from "
                             "auditor/data/rpc_interfaces.csv nor a UUID")
    return tuple(dict.fromkeys(str(v) for v in value))


# The whole rule format in one table: field -> (required, check).
_RULE_SCHEMA: dict[str, tuple[bool, Check]] = {
    "id": (True, pattern(_ID, "letters, digits, '.', '_' or '-'")),
    "source": (True, check_roles),
    "destination": (True, check_roles),
    "proto": (True, choice(PROTOS)),
    "ports": (False, _check_ports),  # required for tcp/udp, refused for icmp (catalogue.icmp)
    "service": (True, pattern(_SERVICE, "a lower-case word such as smtp or rpc")),
    "description": (True, check_text),
    "reference": (True, _check_reference),
    "configurable": (True, check_text),
    "expected": (True, check_bool),
    "severity": (True, choice(SEVERITIES)),
    "scope": (True, choice(SCOPES)),
    "note": (False, check_text),
    "versions": (False, _check_versions),
    "source_versions": (False, _check_versions),
    "destination_versions": (False, _check_versions),
    "interfaces": (False, _check_interfaces),
    "interface_source": (False, check_text),
    "app_protocol": (False, choice(APP_PROTOCOLS)),
    "icmp_types": (False, check_icmp_types),
}


def _check_rpc_fields(values: dict, item: LineMap) -> None:
    """interfaces need a source and RPC ports (135 or rpc-dynamic)."""
    if "interfaces" not in values:
        if "interface_source" in values:
            raise FieldError(item.key_lines["interface_source"],
                             "interface_source without interfaces")
        return
    line = item.key_lines["interfaces"]
    if "interface_source" not in values:
        raise FieldError(line, "interfaces need an interface_source (where the list comes from)")
    if values["proto"] != "tcp" or not (RPC_DYNAMIC in values["ports"] or 135 in values["ports"]):
        raise FieldError(line, f"interfaces apply to RPC rules only (tcp ports 135 or {RPC_DYNAMIC})")


def _check_citations(field: str, value: object, line: int) -> dict[str, str]:
    if not isinstance(value, LineMap):
        raise FieldError(line, f"{field} must map [Sx] keys to descriptions")
    for key, text in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"S\d+[a-z]?", key):
            raise FieldError(value.key_lines[key], f"citation key {key!r} is not like S12 or S1c")
        check_text(f"citation {key}", text, value.value_lines[key])
    return dict(value)


def _check_rule_list(field: str, value: object, line: int) -> LineList:
    if not isinstance(value, LineList):
        raise FieldError(line, f"{field} must be a list of rules")
    return value


_FILE_SCHEMA: dict[str, tuple[bool, Check]] = {
    "catalogue": (False, check_text),
    "description": (False, check_text),
    "citations": (False, _check_citations),
    "versions": (False, _check_versions),
    "rules": (True, _check_rule_list),
}


def _load_rule(item: object, index: int, line: int, path: str, citations: dict,
               versions: tuple[str, ...] = ()) -> Rule:
    """Validate one rule mapping; errors name the rule."""
    label = f"rule #{index + 1}"
    if isinstance(item, LineMap) and isinstance(item.get("id"), str):
        label = f"rule {item['id']!r}"
    try:
        values = check_fields(item, _RULE_SCHEMA, "a rule", line)
        check_icmp_fields(values, item)
        _check_rpc_fields(values, item)
        if citations:
            for key in _CITATION.findall(values["reference"].source):
                if key not in citations:
                    raise FieldError(item.value_lines["reference"],
                                     f"reference cites [{key}], which is not in citations")
    except FieldError as exc:
        raise FieldError(exc.line, f"{label}: {exc.message}") from None
    values.setdefault("versions", versions)  # a rule without versions has its file's
    return Rule(**values, file=path, line=item.line)


def _load_file(path: str | Path) -> tuple[list[Rule], dict[str, str], tuple[str, ...]]:
    path = str(path)
    doc = read_yaml(path, CatalogueError)
    try:
        if doc is None:
            raise FieldError(1, "empty catalogue (expected a mapping with a 'rules' list)")
        top = check_fields(doc, _FILE_SCHEMA, "a catalogue", 1)
        citations = top.get("citations", {})
        versions = top.get("versions", ())
        items = top["rules"]
        rules = [_load_rule(item, i, n, path, citations, versions)
                 for i, (item, n) in enumerate(zip(items, items.item_lines, strict=True))]
    except FieldError as exc:
        raise CatalogueError(f"{path}:{exc.line}: {exc.message}") from None
    return rules, citations, versions


def _bundled_path(name: str) -> Path:
    """rules/<name>.yaml next to the package (source tree), else auditor/data/<name>.yaml."""
    file = f"{name}.yaml"
    beside = Path(__file__).resolve().parents[2] / "rules" / file
    if beside.is_file():
        return beside
    data = resources.files("auditor") / "data" / file
    if data.is_file():
        return Path(str(data))
    raise CatalogueError(f"{beside}: bundled catalogue not found (nor auditor/data/{file})")


def _bundled_path_or_none(name: str) -> Path | None:
    try:
        return _bundled_path(name)
    except CatalogueError:
        return None


def bundled_catalogue_path(name: str = BUNDLED[0]) -> Path:
    """Path of a bundled catalogue by name (default exchange2010)."""
    if name not in BUNDLED:
        raise CatalogueError(f"{name}: no such bundled catalogue (bundled: {', '.join(BUNDLED)})")
    return _bundled_path(name)


def bundled_catalogues() -> list[dict[str, object]]:
    """Name, versions, description, rule count and path of every bundled catalogue."""
    out = []
    for name in BUNDLED:
        path = bundled_catalogue_path(name)
        rules, _, versions = _load_file(path)
        doc = read_yaml(str(path), CatalogueError)
        out.append({"name": name, "versions": list(versions), "rules": len(rules),
                    "description": str(doc.get("description", "")), "path": str(path)})
    return out


def resolve_catalogue(value: str | Path) -> Path:
    """A bundled catalogue name (exchange2016) or a file path."""
    text = str(value)
    if text in BUNDLED and not Path(text).is_file():
        return bundled_catalogue_path(text)
    return Path(value)


def load_catalogue(paths: Sequence[str | Path] | None = None, *,
                   replace: bool = False) -> Catalogue:
    """Load the bundled catalogue plus `paths` (replace=True: only `paths`).

    Each path is a file or a bundled name (`exchange2016`); a bundled name replaces the
    default exchange2010 instead of adding to it.
    """
    given = [resolve_catalogue(p) for p in ([paths] if isinstance(paths, str | Path) else paths or [])]
    # A bundled name given takes the place of the default catalogue; files add to it.
    named = [p for p in given if p in {_bundled_path_or_none(n) for n in BUNDLED}]
    files = [] if replace or named else [bundled_catalogue_path()]
    files = [f for f in files if f not in given] + given
    if not files:
        raise CatalogueError("no catalogue files given (replace=True needs at least one path)")
    rules: list[Rule] = []
    citations: dict[str, str] = {}
    first: dict[str, Rule] = {}
    default_version = ""
    for path in files:
        file_rules, file_citations, file_versions = _load_file(path)
        default_version = default_version or (file_versions[0] if file_versions else "")
        for rule in file_rules:
            if rule.id in first:
                raise CatalogueError(f"{rule.defined_at}: duplicate rule id {rule.id!r} "
                                     f"(first defined at {first[rule.id].defined_at})")
            first[rule.id] = rule
        rules += file_rules
        for key, text in file_citations.items():
            citations.setdefault(key, text)
    return Catalogue(tuple(rules), tuple(str(p) for p in files), tuple(citations.items()),
                     default_version)


def check_catalogue(path: str | Path) -> Catalogue:
    """Validate one catalogue file on its own (for `auditor catalogue --check`)."""
    return load_catalogue([path], replace=True)


# ---- frames ----


def catalogue_frame(cat: Catalogue, role: str | None = None) -> pd.DataFrame:
    """One row per rule (schema.RULE_COLUMNS); `role` keeps rules with it at either end."""
    rules = [r for r in cat.rules if role is None or role in r.source or role in r.destination]
    rows: dict[str, list] = {c.name: [] for c in RULE_COLUMNS}
    for r in rules:
        for name, value in (
            ("id", r.id), ("source", ";".join(r.source)), ("destination", ";".join(r.destination)),
            ("proto", r.proto), ("ports", ",".join(str(p) for p in r.ports)),
            ("service", r.service), ("description", r.description),
            ("status", r.reference.status), ("reference", r.reference.source),
            ("configurable", r.configurable), ("expected", r.expected),
            ("severity", r.severity), ("scope", r.scope), ("note", r.note),
            ("defined_at", r.defined_at), ("versions", ",".join(r.versions)),
            ("source_versions", ",".join(r.source_versions)),
            ("destination_versions", ",".join(r.destination_versions)),
            ("interfaces", ";".join(r.interfaces)),
            ("app_protocol", r.app_protocol), ("icmp_types", ",".join(r.icmp_types)),
        ):
            rows[name].append(value)
    return typed_frame(rows, RULE_COLUMNS)


def _port_runs(ports: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted distinct ports folded into contiguous (lo, hi) runs."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return [(lo, hi) for lo, hi in runs]


def normal_ip(text: object) -> str | None:
    """Canonical address text (IPv4-mapped IPv6 as IPv4), or None when not an address."""
    try:
        addr = ipaddress.ip_address(str(text).strip())
    except ValueError:
        return None
    return str(getattr(addr, "ipv4_mapped", None) or addr)


def rule_ports_frame(cat: Catalogue, rpc_ports: Mapping[str, Sequence[int]] | None = None,
                     *, legacy_rpc_range: bool = False) -> pd.DataFrame:
    """The match table (schema.RULE_PORT_COLUMNS): one row per rule, role pair and port range.

    rpc-dynamic gives rows per server in `rpc_ports` (its discovered ports, server_ip set) and
    default-range rows (server_ip empty) for servers where nothing was discovered.
    """
    discovered = {}
    for ip, ports in (rpc_ports or {}).items():
        bad = [p for p in ports if not 1 <= int(p) <= 65535]
        if bad:
            raise ValueError(f"rpc_ports[{ip!r}]: port {bad[0]} is out of range 1-65535")
        if len(ports):
            discovered[normal_ip(ip) or str(ip)] = _port_runs(int(p) for p in ports)
    defaults = [DEFAULT_RPC_RANGE] + ([LEGACY_RPC_RANGE] if legacy_rpc_range else [])
    rows: dict[str, list] = {c.name: [] for c in RULE_PORT_COLUMNS}

    def add(rule: Rule, src: str, dst: str, lo: int, hi: int, dynamic: bool, server: str):
        for name, value in (("rule_id", rule.id), ("src_role", src), ("dst_role", dst),
                            ("proto", rule.proto), ("port_lo", lo), ("port_hi", hi),
                            ("dynamic", dynamic), ("server_ip", server)):
            rows[name].append(value)

    for rule in cat.rules:
        for src in rule.source:
            for dst in rule.destination:
                for lo, hi in rule.port_ranges:
                    add(rule, src, dst, lo, hi, False, "")
                if not rule.rpc_dynamic:
                    continue
                for server, runs in discovered.items():
                    for lo, hi in runs:
                        add(rule, src, dst, lo, hi, True, server)
                for lo, hi in defaults:
                    add(rule, src, dst, lo, hi, True, "")
    return typed_frame(rows, RULE_PORT_COLUMNS)
