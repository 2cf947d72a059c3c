"""Firewall rule requests: what the network team must open, by design or as the pilot used it.

`design_requests` crosses the catalogue with the inventory; `asbuilt_requests` reads the
successful flows of an audit; `merge_requests` folds either into one row per
(source, destination, proto) with port ranges; `write_requests` renders csv, json or xlsx.
Every frame follows schema.FIREWALL_COLUMNS.
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import pandas as pd

from auditor.atomic import write_bytes, write_text
from auditor.catalogue.icmp import ICMP_PROTOS, TYPES, family_fits, type_numbers
from auditor.catalogue.loader import DEFAULT_RPC_RANGE, LEGACY_RPC_RANGE
from auditor.errors import AuditorError
from auditor.flows.protocols import QUERY_OF
from auditor.inventory.roles import normal_ip
from auditor.schema import FIREWALL_COLUMNS, column_names, empty_frame, typed_frame

ANY = "any"
FORMATS = ("csv", "json", "xlsx")
# Roles that stand for "everyone out there": with no inventory entry they become `any`.
ANY_ROLES = ("internet",)
# Links between these roles only are internal (Microsoft does not support filtering them);
# anything touching clients, the Internet, the Edge or unknown hosts is strict.
_INTERNAL_ROLES = frozenset({"mailbox", "client_access", "hub_transport", "unified_messaging",
                             "domain_controller", "dns", "witness"})
_SUCCESS = ("established", "midstream", "udp_answered", "answered")  # mid-stream sessions succeeded
_PORTED = ("tcp", "udp")
# A cell starting with one of these is run as a formula by spreadsheet programs (OWASP CSV
# injection); names come from captures, so they are attacker-controlled.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# How to pin the dynamic RPC ports of a destination role (docs/ports.md, "Exchange-specific pinning (2010)").
_WINDOWS_RANGE = ("no Exchange setting pins it: narrow the Windows range "
                  "(netsh int ipv4 set dynamicport tcp start=<n> num=<count>) or set "
                  "HKLM\\SOFTWARE\\Microsoft\\Rpc\\Internet Ports (KB154596)")
_PINNING = {
    "client_access": ('MSExchangeRPC "TCP/IP Port" (HKLM\\SYSTEM\\CurrentControlSet\\Services\\'
                      'MSExchangeRPC\\ParametersSystem, REG_DWORD) and MSExchangeAB "RpcTcpPort" '
                      '(...\\Services\\MSExchangeAB\\Parameters, REG_SZ, SP1 and later)'),
    "domain_controller": ('NTDS "TCP/IP Port" (HKLM\\SYSTEM\\CurrentControlSet\\Services\\NTDS\\'
                          'Parameters) and Netlogon "DCTcpipPort" (...\\Services\\Netlogon\\'
                          'Parameters) on the DC'),
}
_PINNING_PUBLIC_FOLDERS = ('MSExchangeRPC "TCP/IP Port" (HKLM\\SYSTEM\\CurrentControlSet\\'
                           'Services\\MSExchangeRPC\\ParametersSystem) on the public folder server')


# ---- ports ----


def parse_ports(text: str) -> list[tuple[int, int]]:
    """'25,5060-5061' -> [(25, 25), (5060, 5061)]; empty text gives no ports."""
    runs = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        runs.append((int(lo), int(hi or lo)))
    return runs


def merge_port_runs(runs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort (lo, hi) runs and join the overlapping and adjacent ones."""
    merged: list[list[int]] = []
    for lo, hi in sorted(runs):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def format_ports(runs: Iterable[tuple[int, int]]) -> str:
    """Merged runs as text: '135,49152-65535'."""
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merge_port_runs(runs))


# ---- endpoints ----


def _endpoints(inventory, roles: Sequence[str]) -> list[tuple[str, str, str]]:
    """(address or CIDR or any, name, host key) for every inventory entry holding a role."""
    out: dict[str, tuple[str, str, str]] = {}
    for host in inventory.hosts:
        if set(host.roles) & set(roles):
            for ip in host.addresses:
                out.setdefault(ip, (ip, host.name, f"host:{host.name}"))
    for net in inventory.networks:
        if set(net.roles) & set(roles):
            out.setdefault(net.cidr, (net.cidr, net.name or ";".join(net.roles), f"net:{net.cidr}"))
    if not out:
        missing = [r for r in roles if r in ANY_ROLES or r in (inventory.default_roles or ())]
        if missing:
            out[ANY] = (ANY, missing[0], ANY)
    return list(out.values())


def _address_key(text: str) -> tuple:
    """Sort addresses and networks numerically, IPv4 before IPv6, `any` and others last."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return (1, 0, 0, 0, str(text))
    return (0, net.version, int(net.network_address), net.prefixlen, "")


def _finish(rows: list[dict]) -> pd.DataFrame:
    """Rows -> a typed frame in FIREWALL_COLUMNS order, sorted deterministically."""
    return _sorted(typed_frame(rows, FIREWALL_COLUMNS))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric address order, then proto, first port, justified before not, rules."""
    keys = list(zip(
        frame["source"].map(_address_key), frame["destination"].map(_address_key),
        frame["proto"], frame["ports"].map(lambda p: parse_ports(p)[:1] or [(0, 0)]),
        ~frame["justified"], frame["rules"], frame["ports"], frame["source_name"],
        frame["destination_name"], strict=True,
    ))
    order = sorted(range(len(frame)), key=keys.__getitem__)
    return frame.iloc[order].reset_index(drop=True)


# ---- design ----


def _rpc_note(rule, dst_role: str, discovered: Sequence[int] | None, ranges: str) -> str:
    """Which dynamic RPC ports the row opens and the setting that pins them."""
    if dst_role in _PINNING:
        setting = _PINNING[dst_role]
    elif dst_role == "mailbox" and "client" in rule.source:
        setting = _PINNING_PUBLIC_FOLDERS
    else:
        setting = _WINDOWS_RANGE
    if discovered:
        ports = format_ports((p, p) for p in discovered)
        return (f"dynamic RPC: ports discovered for this server ({ports}); they stay stable "
                f"only when pinned: {setting}")
    return (f"dynamic RPC: documented range {ranges} because no port was discovered for this "
            f"server; recommend pinning: {setting}")


def _rpc_lookup(inventory, rpc_ports: Mapping[str, Sequence[int]] | None) -> dict[str, list[int]]:
    """rpc_ports keyed by address or host name -> by normalised address."""
    by_name = {h.name: h.addresses for h in inventory.hosts}
    out: dict[str, list[int]] = {}
    for key, ports in (rpc_ports or {}).items():
        ports = sorted({int(p) for p in ports})
        bad = [p for p in ports if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"rpc_ports[{key!r}]: port {bad[0]} is out of range 1-65535")
        if not ports:
            continue
        for ip in by_name.get(key, (normal_ip(key) or str(key),)):
            out.setdefault(ip, [])
            out[ip] = sorted(set(out[ip]) | set(ports))
    return out


def _dst_role(rule, inventory, dst_ip: str) -> str:
    """The destination role through which a host matched the rule (its first in rule order)."""
    held = set()
    for host in inventory.hosts:
        if dst_ip in host.addresses:
            held |= set(host.roles)
    for net in inventory.networks:
        if net.cidr == dst_ip:
            held |= set(net.roles)
    return next((r for r in rule.destination if r in held), rule.destination[0]).partition("@")[0]


def design_requests(inventory, catalogue, *, rpc_ports: Mapping[str, Sequence[int]] | None = None,
                    legacy_rpc_range: bool = False) -> pd.DataFrame:
    """What must be opened: one row per catalogue rule, source endpoint and destination."""
    from auditor.audit.versions import plan_versions

    plan = plan_versions(inventory, catalogue)  # a versioned inventory: each host its version's rules
    inventory, catalogue = plan.inventory, plan.catalogue
    discovered = _rpc_lookup(inventory, rpc_ports)
    defaults = [DEFAULT_RPC_RANGE] + ([LEGACY_RPC_RANGE] if legacy_rpc_range else [])
    default_text = format_ports(defaults)
    rows = []
    for rule in catalogue.rules:
        sources = _endpoints(inventory, rule.source)
        destinations = _endpoints(inventory, rule.destination)
        for dst, dst_name, dst_key in destinations:
            dst_ports = list(rule.port_ranges)
            note = ""
            if rule.rpc_dynamic:
                learned = discovered.get(dst)
                dst_ports += [(p, p) for p in learned] if learned else defaults
                note = _rpc_note(rule, _dst_role(rule, inventory, dst), learned, default_text)
            for src, src_name, src_key in sources:
                if src_key == dst_key and src_key.startswith("host:"):
                    continue  # a host talking to itself crosses no firewall
                if not family_fits(rule.proto, src, dst):
                    continue  # icmpv6 between IPv4 hosts (catalogue.icmp)
                rows.append({
                    "source": src, "source_name": src_name, "destination": dst,
                    "destination_name": dst_name, "proto": rule.proto,
                    "ports": format_ports(dst_ports), "service": rule.service, "rules": rule.id,
                    "justification": f"{rule.description} ({rule.reference.source})",
                    "scope": rule.scope, "justified": True, "note": note,
                    "icmp_types": ";".join(rule.icmp_types),
                })
    return _finish(rows)


# ---- as built ----


def _scope_of(src_role: str, dst_role: str) -> str:
    return "internal" if {src_role, dst_role} <= _INTERNAL_ROLES else "strict"


def _collapse(addresses: pd.Series, names: pd.Series, inventory) -> tuple[pd.Series, pd.Series]:
    """Inventory hosts keep their address; others fold into their network (or `any`)."""
    if inventory is None or addresses.empty:
        return addresses.astype(object), names.astype(object)
    hosts = {ip: h.name for h in inventory.hosts for ip in h.addresses}
    nets = sorted(inventory.networks, key=lambda n: -ipaddress.ip_network(n.cidr).prefixlen)
    default_any = bool(set(inventory.default_roles or ()) & set(ANY_ROLES))
    endpoint, label = {}, {}
    for ip in pd.unique(addresses):
        key = normal_ip(ip) or str(ip)
        if key in hosts:
            endpoint[ip], label[ip] = key, hosts[key]
            continue
        net = next((n for n in nets if normal_ip(ip) and
                    ipaddress.ip_address(key) in ipaddress.ip_network(n.cidr)), None)
        if net is not None:
            endpoint[ip], label[ip] = net.cidr, net.name or ";".join(net.roles)
        elif default_any:
            endpoint[ip], label[ip] = ANY, ";".join(inventory.default_roles)
    out = addresses.map(lambda a: endpoint.get(a, a)).astype(object)
    named = addresses.map(label)
    return out, named.where(named.notna(), names).fillna("").astype(object)


def _unjustified_reason(src_ip: str, dst_ip: str, src_role: str, dst_role: str, proto: str,
                        ports: str, interfaces: str) -> str:
    if src_role == "unknown" or dst_role == "unknown":
        who = src_ip if src_role == "unknown" else dst_ip
        reason = f"{who} has no role in the inventory"
    else:
        reason = f"no rule allows {src_role} -> {dst_role} on {proto}/{ports or '-'}"
    if interfaces:
        reason += f" (RPC interface {interfaces})"
    return f"not in the catalogue: {reason}"


def asbuilt_requests(result, inventory=None, catalogue=None) -> pd.DataFrame:
    """What the pilot needed: successful observed flows per endpoint pair and rule."""
    flows = result.flows
    ok = flows[flows["verdict"].isin(["expected", "unexpected"]) & flows["state"].isin(_SUCCESS)]
    # ICMP errors answer other traffic: the audit calls them expected but no rule opens them.
    ok = ok[~((ok["rule"] == "") & (ok["service"] == "icmp") & (ok["verdict"] == "expected"))]
    if ok.empty:
        return empty_frame(FIREWALL_COLUMNS)
    src, src_name = _collapse(ok["src_ip"], ok["src_name"], inventory)
    dst, dst_name = _collapse(ok["dst_ip"], ok["dst_name"], inventory)
    text = ["proto", "rule", "service", "src_role", "dst_role", "src_ip", "dst_ip", "rpc_interface"]
    work = pd.DataFrame({c: ok[c].astype(object).fillna("").to_numpy() for c in text})
    work = work.assign(
        source=src.to_numpy(), source_name=src_name.to_numpy(), destination=dst.to_numpy(),
        destination_name=dst_name.to_numpy(), port=ok["dst_port"].astype(int).to_numpy(),
        icmp_type=pd.to_numeric(ok["icmp_type"].astype(object), errors="coerce").fillna(-1)
        .astype(int).to_numpy(),
    )
    rules = {r.id: r for r in catalogue.rules} if catalogue is not None else {}
    rows = []
    keys = ["source", "destination", "proto", "rule"]
    for (source, destination, proto, rule_id), grp in work.groupby(keys, sort=False):
        # Unjustified traffic is split per role pair so each row gives one reason.
        parts = [grp] if rule_id else [g for _, g in grp.groupby(["src_role", "dst_role"])]
        for part in parts:
            rows.append(_asbuilt_row(source, destination, proto, rule_id, part, rules))
    return _finish(rows)


def _asbuilt_row(source, destination, proto, rule_id, grp: pd.DataFrame, rules: dict) -> dict:
    ports = format_ports((p, p) for p in grp["port"]) if proto in _PORTED else ""
    src_role, dst_role = grp["src_role"].iloc[0], grp["dst_role"].iloc[0]
    interfaces = "/".join(sorted({i for i in grp["rpc_interface"] if i}))
    rule = rules.get(rule_id)
    if not rule_id:
        justification = _unjustified_reason(grp["src_ip"].iloc[0], grp["dst_ip"].iloc[0],
                                            src_role, dst_role, proto, ports, interfaces)
    elif rule is not None:
        justification = f"{rule.description} ({rule.reference.source})"
    else:
        justification = f"catalogue rule {rule_id}"
    flows = len(grp)
    note = f"{flows} successful flow{'s' if flows != 1 else ''} observed"
    if rule_id and interfaces:
        note += f"; RPC interface {interfaces}"
    services = sorted({s for s in grp["service"] if s})
    return {
        "source": source, "source_name": _first(grp["source_name"]),
        "destination": destination, "destination_name": _first(grp["destination_name"]),
        "proto": proto, "ports": ports, "service": ";".join(services), "rules": rule_id,
        "justification": justification,
        "scope": rule.scope if rule is not None else _scope_of(src_role, dst_role),
        "justified": bool(rule_id), "note": note,
        "icmp_types": _observed_icmp_types(proto, grp["icmp_type"]) if proto in ICMP_PROTOS else "",
    }


def _observed_icmp_types(proto: str, types: Iterable[int]) -> str:
    """The query types of the observed ICMP flows, by number, ';'-joined names.

    A flow caught at its reply (an echo reply first) asks for its query type: the firewall
    opens the request and lets the reply back as established traffic. Flows of unknown type
    (-1) add none; with none known the row allows every type.
    """
    queries = sorted({QUERY_OF[proto].get(int(t), int(t)) for t in types if int(t) >= 0})
    return ";".join(TYPES[proto].get(t, str(t)) for t in queries)


def icmp_type_numbers(proto: str, text: str) -> tuple[int, ...]:
    """A row's `icmp_types` text as sorted type numbers; () is every type (or not ICMP)."""
    names = tuple(n for n in str(text or "").split(";") if n)
    if proto not in ICMP_PROTOS or not names:
        return ()
    return tuple(sorted(type_numbers(proto, names)))


def _merged_icmp_types(proto: str, grp: list[dict]) -> str:
    """Union of the rows' ICMP types; a row allowing every type makes the merge allow every one."""
    if proto not in ICMP_PROTOS:
        return ""
    per_row = [icmp_type_numbers(proto, r.get("icmp_types", "")) for r in grp]
    if any(not numbers for numbers in per_row):
        return ""
    return ";".join(TYPES[proto].get(t, str(t)) for t in sorted({t for n in per_row for t in n}))


def _first(values: Iterable[str]) -> str:
    return next((v for v in values if v), "")


# ---- merging ----


def _join(values: Iterable[str], sep: str) -> str:
    """Distinct non-empty parts of already-joined values, in first-seen order."""
    parts: dict[str, None] = {}
    for value in values:
        for part in str(value).split(sep):
            if part.strip():
                parts.setdefault(part.strip(), None)
    return sep.join(parts)


def merge_requests(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, destination, proto, justified) with ports merged into ranges.

    Justified and unjustified rows stay apart so a merge never hides an unjustified port.
    """
    groups: dict[tuple, list[dict]] = {}
    for rec in frame.to_dict("records"):
        key = (rec["source"], rec["destination"], rec["proto"], bool(rec["justified"]))
        groups.setdefault(key, []).append(rec)
    rows = []
    for (source, destination, proto, justified), grp in groups.items():
        # Texts are joined in port order whatever order the input rows came in.
        grp.sort(key=lambda r: (parse_ports(r["ports"])[:1], r["rules"], r["justification"],
                                r["note"]))
        rows.append({
            "source": source, "source_name": _join((r["source_name"] for r in grp), ";"),
            "destination": destination,
            "destination_name": _join((r["destination_name"] for r in grp), ";"),
            "proto": proto,
            "ports": format_ports(run for r in grp for run in parse_ports(r["ports"])),
            "service": _join_sorted(r["service"] for r in grp),
            "rules": _join_sorted(r["rules"] for r in grp),
            "justification": _join((r["justification"] for r in grp), " | "),
            "scope": "strict" if any(r["scope"] == "strict" for r in grp) else "internal",
            "justified": justified, "note": _join((r["note"] for r in grp), " | "),
            "icmp_types": _merged_icmp_types(proto, grp),
        })
    return _finish(rows)


def _join_sorted(values: Iterable[str]) -> str:
    return ";".join(sorted({p for v in values for p in str(v).split(";") if p}))


# ---- writing ----


def neutralise_cell(value: object) -> object:
    """Prefix text a spreadsheet would run as a formula with a quote (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame[column_names(FIREWALL_COLUMNS)].to_dict("records"):
        out.append({k: (bool(v) if k == "justified" else ("" if pd.isna(v) else str(v)))
                    for k, v in row.items()})
    return out


def _text_out(text: str, path_or_stream) -> None:
    if isinstance(path_or_stream, str | Path):
        write_text(path_or_stream, text, newline="")
    elif isinstance(path_or_stream, io.RawIOBase | io.BufferedIOBase):
        path_or_stream.write(text.encode("utf-8"))
    else:
        path_or_stream.write(text)


def _csv_text(frame: pd.DataFrame) -> str:
    safe = pd.DataFrame([{k: neutralise_cell(v) for k, v in r.items()} for r in _records(frame)],
                        columns=column_names(FIREWALL_COLUMNS))
    return safe.to_csv(index=False, lineterminator="\n")


def _xlsx_bytes(frame: pd.DataFrame) -> bytes:
    try:
        from openpyxl import Workbook
    except ImportError:
        raise AuditorError("xlsx output needs openpyxl: pip install 'auditor[xlsx]'") from None
    wb = Workbook()
    ws = wb.active
    ws.title = "firewall requests"
    names = column_names(FIREWALL_COLUMNS)
    ws.append(names)
    for r, record in enumerate(_records(frame), start=2):
        for c, name in enumerate(names, start=1):
            value = record[name]
            cell = ws.cell(row=r, column=c)
            if isinstance(value, bool):
                cell.value = value
                continue
            # openpyxl refuses control characters; names from captures may hold them.
            text = _XLSX_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
            cell.value = text
            # Text typed as a string with Excel's quote prefix is shown, never evaluated,
            # and still reads back unchanged.
            cell.data_type = "s"
            if text.startswith(_FORMULA_START):
                cell.quotePrefix = True
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    for c, name in enumerate(names, start=1):
        width = max([len(name)] + [len(str(ws.cell(row=r, column=c).value or ""))
                                   for r in range(2, min(ws.max_row, 200) + 1)])
        ws.column_dimensions[ws.cell(row=1, column=c).column_letter].width = min(width + 2, 60)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def write_requests(frame: pd.DataFrame, path_or_stream: str | Path | IO, fmt: str) -> None:
    """Write rule requests as csv, json (a list of objects) or xlsx to a path or stream."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if fmt == "csv":
        _text_out(_csv_text(frame), path_or_stream)
    elif fmt == "json":
        from auditor.render.json_tables import records, to_json

        _text_out(to_json(records(frame, FIREWALL_COLUMNS)), path_or_stream)
    else:
        data = _xlsx_bytes(frame)
        if isinstance(path_or_stream, str | Path):
            write_bytes(path_or_stream, data)
        else:
            getattr(path_or_stream, "buffer", path_or_stream).write(data)
