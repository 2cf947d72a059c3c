"""Host roles: the inventory (YAML or CSV) and address -> roles resolution.

The inventory proposed from traffic, and inventory YAML text, are `propose.py`'s.
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.catalogue.loader import VERSIONS, normal_ip
from auditor.errors import InventoryError
from auditor.schema import HOST_ROLE_COLUMNS
from auditor.yamlcheck import (
    FieldError,
    LineList,
    LineMap,
    check_fields,
    check_roles,
    check_size,
    check_text,
    read_yaml,
)


@dataclass(frozen=True)
class Host:
    """A named host: its addresses and roles (a host may hold several roles)."""

    name: str
    addresses: tuple[str, ...]
    roles: tuple[str, ...]
    version: str = ""  # Exchange version (2010, 2013, 2016, 2019); "" = the catalogue's default


@dataclass(frozen=True)
class Network:
    """An address range whose unlisted hosts share roles."""

    cidr: str
    roles: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class Inventory:
    """Hosts and networks with roles; default_roles for addresses outside every entry."""

    hosts: tuple[Host, ...] = ()
    networks: tuple[Network, ...] = ()
    default_roles: tuple[str, ...] = ()
    source: str = ""


# ---- addresses ----


def _to128(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """IPv4 as ::ffff:a.b.c.d so one 128-bit space holds both families."""
    return (0xFFFF << 32 | int(addr)) if addr.version == 4 else int(addr)


def _net128(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """(network value, prefix length) in the 128-bit space."""
    if net.version == 4:
        return _to128(net.network_address), net.prefixlen + 96
    return int(net.network_address), net.prefixlen


def _halves(values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([v >> 64 for v in values], dtype=np.uint64),
            np.array([v & (2**64 - 1) for v in values], dtype=np.uint64))


def _in_network(hi: np.ndarray, lo: np.ndarray, value: int, prefix: int) -> np.ndarray:
    """Vectorised membership of 128-bit addresses (split in halves) in one network."""
    mask = ((1 << prefix) - 1) << (128 - prefix) if prefix else 0
    mhi, mlo = np.uint64(mask >> 64), np.uint64(mask & (2**64 - 1))
    vhi, vlo = np.uint64(value >> 64), np.uint64(value & (2**64 - 1))
    return ((hi & mhi) == vhi) & ((lo & mlo) == vlo)


# ---- loading ----


def _check_addresses(field: str, value: object, line: int) -> tuple[str, ...]:
    items, lines = (value, value.item_lines) if isinstance(value, LineList) else ([value], [line])
    if not items:
        raise FieldError(line, f"{field} must list at least one address")
    out = []
    for item, item_line in zip(items, lines, strict=True):
        ip = normal_ip(item) if isinstance(item, str) else None
        if ip is not None and "%" in ip:  # captures carry no zone id, so it could never match
            raise FieldError(item_line, f"address {item!r} has an IPv6 zone id; captures do not "
                                        "carry one: write the address without it")
        if ip is None:
            raise FieldError(item_line, f"bad address {item!r}")
        out.append(ip)
    return tuple(dict.fromkeys(out))


def _check_cidr(field: str, value: object, line: int) -> str:
    try:
        net = ipaddress.ip_network(str(value).strip()) if isinstance(value, str) else None
    except ValueError as exc:
        raise FieldError(line, f"bad cidr {value!r} ({exc})") from None
    if net is None:
        raise FieldError(line, f"bad cidr {value!r}")
    return str(net)


def _check_list(field: str, value: object, line: int) -> LineList:
    if value is None:
        return LineList()
    if not isinstance(value, LineList):
        raise FieldError(line, f"{field} must be a list")
    return value


def _check_version(field: str, value: object, line: int) -> str:
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if text not in VERSIONS:
        raise FieldError(line, f"{field} {value!r} is not one of {', '.join(VERSIONS)}")
    return text


_HOST_SCHEMA = {
    "name": (True, check_text),
    "addresses": (True, _check_addresses),
    "roles": (True, check_roles),
    "version": (False, _check_version),
}
_NETWORK_SCHEMA = {
    "cidr": (True, _check_cidr),
    "roles": (True, check_roles),
    "name": (False, check_text),
}
_FILE_SCHEMA = {
    "hosts": (False, _check_list),
    "networks": (False, _check_list),
    "default_roles": (False, check_roles),
}


def _assemble(hosts: list[tuple[Host, int]], networks: list[tuple[Network, int]],
              default_roles: tuple[str, ...], source: str) -> Inventory:
    """Check entries against each other (addresses, names, networks) and build the Inventory."""
    owner: dict[str, tuple[Host, int]] = {}
    names: dict[str, int] = {}
    for host, line in hosts:
        if host.name in names:
            raise FieldError(line, f"host {host.name!r} is already at line {names[host.name]}")
        names[host.name] = line
        for ip in host.addresses:
            first, first_line = owner.get(ip, (host, line))
            if set(first.roles) != set(host.roles):
                raise FieldError(line, f"address {ip} of host {host.name!r} is also host "
                                       f"{first.name!r} (line {first_line}) with other roles")
            owner.setdefault(ip, (host, line))
    nets: dict[str, tuple[Network, int]] = {}
    for net, line in networks:
        # Networks with the same prefix length overlap only when they are the same network.
        first, first_line = nets.setdefault(net.cidr, (net, line))
        if set(first.roles) != set(net.roles):
            raise FieldError(line, f"network {net.cidr} is also defined at line {first_line} "
                                   f"with other roles ({';'.join(first.roles)})")
    return Inventory(tuple(h for h, _ in hosts), tuple(n for n, _ in nets.values()),
                     default_roles, source)


def _load_yaml_inventory(path: str) -> Inventory:
    doc = read_yaml(path, InventoryError)
    try:
        if doc is None:
            raise FieldError(1, "empty inventory (expected hosts, networks or default_roles)")
        top = check_fields(doc, _FILE_SCHEMA, "an inventory", 1)
        hosts = []
        for item, line in zip(top.get("hosts", []), top.get("hosts", LineList()).item_lines,
                              strict=True):
            label = f"host {item.get('name')!r}: " if isinstance(item, LineMap) else ""
            try:
                hosts.append((Host(**check_fields(item, _HOST_SCHEMA, "a host", line)), line))
            except FieldError as exc:
                raise FieldError(exc.line, label + exc.message) from None
        nets = top.get("networks", LineList())
        networks = [(Network(**check_fields(item, _NETWORK_SCHEMA, "a network", line)), line)
                    for item, line in zip(nets, nets.item_lines, strict=True)]
        return _assemble(hosts, networks, top.get("default_roles", ()), path)
    except FieldError as exc:
        raise InventoryError(f"{path}:{exc.line}: {exc.message}") from None


_CSV_COLUMNS = ("name", "address", "cidr", "roles", "version")  # version optional


def _load_csv_inventory(path: str) -> Inventory:
    """CSV with columns name,address,cidr,roles (roles ';'-separated); one of address/cidr."""
    check_size(path, InventoryError)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            unknown = [f for f in fields if f not in _CSV_COLUMNS]
            if unknown or "roles" not in fields:
                what = f"unknown column {unknown[0]!r}" if unknown else "missing column 'roles'"
                raise FieldError(1, f"{what} (columns: {', '.join(_CSV_COLUMNS)})")
            rows = [(reader.line_num, row) for row in reader]
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except FieldError as exc:
        raise InventoryError(f"{path}:{exc.line}: {exc.message}") from None
    try:
        by_name: dict[str, list] = {}
        networks = []
        for line, row in rows:
            cells = {k: (row.get(k) or "").strip() for k in _CSV_COLUMNS}
            roles = check_roles("roles", _role_list(cells["roles"], line), line)
            if bool(cells["address"]) == bool(cells["cidr"]):
                raise FieldError(line, "give exactly one of address and cidr")
            if cells["cidr"]:
                cidr = _check_cidr("cidr", cells["cidr"], line)
                networks.append((Network(cidr, roles, cells["name"]), line))
                continue
            ip = _check_addresses("address", cells["address"], line)[0]
            name = cells["name"] or ip
            version = _check_version("version", cells["version"], line) if cells["version"] else ""
            entry = by_name.setdefault(name, [[], roles, line, version])
            if set(entry[1]) != set(roles) or entry[3] != version:
                raise FieldError(line, f"host {name!r} has other roles or version at line {entry[2]}")
            entry[0].append(ip)
        hosts = [(Host(n, tuple(dict.fromkeys(a)), r, v), line)
                 for n, (a, r, line, v) in by_name.items()]
        return _assemble(hosts, networks, (), path)
    except FieldError as exc:
        raise InventoryError(f"{path}:{exc.line}: {exc.message}") from None


def _role_list(text: str, line: int) -> LineList:
    out = LineList()
    for part in text.split(";"):
        if part.strip():
            out.append(part.strip())
            out.item_lines.append(line)
    return out


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory (YAML, or CSV when the file ends in .csv)."""
    path = str(path)
    if path.lower().endswith(".csv"):
        inv = _load_csv_inventory(path)
    else:
        inv = _load_yaml_inventory(path)
    return inv


# ---- resolution ----


def assign_roles(inventory: Inventory, addresses: Iterable[str]) -> pd.DataFrame:
    """ip, name, roles per distinct address: host, else most specific network, else default."""
    values = addresses if isinstance(addresses, pd.Series | np.ndarray) else list(addresses)
    uniq = [str(a) for a in pd.unique(pd.Series(values, dtype=object))]
    parsed = [normal_ip(a) for a in uniq]
    names = np.full(len(uniq), "", dtype=object)
    roles = np.empty(len(uniq), dtype=object)
    done = np.zeros(len(uniq), dtype=bool)
    hosts = {ip: h for h in reversed(inventory.hosts) for ip in h.addresses}
    for i, ip in enumerate(parsed):
        host = hosts.get(ip)
        if host is not None:
            names[i], roles[i], done[i] = host.name, host.roles, True
    valid = np.array([ip is not None for ip in parsed], dtype=bool)
    values = [_to128(ipaddress.ip_address(ip)) if ip else 0 for ip in parsed]
    hi, lo = _halves(values)
    nets = sorted(inventory.networks, key=lambda n: -_net128(ipaddress.ip_network(n.cidr))[1])
    for net in nets:
        value, prefix = _net128(ipaddress.ip_network(net.cidr))
        hit = valid & ~done & _in_network(hi, lo, value, prefix)
        names[hit] = net.name
        for i in np.flatnonzero(hit):  # element-wise: numpy would broadcast a list of tuples
            roles[i] = net.roles
        done |= hit
    for i in np.flatnonzero(~done):
        roles[i] = inventory.default_roles or ("unknown",)
    data = {"ip": uniq, "name": list(names), "roles": list(roles)}
    return pd.DataFrame({c.name: pd.Series(data[c.name], dtype=c.dtype)
                         for c in HOST_ROLE_COLUMNS})
