"""A proposed inventory: roles guessed from what hosts serve and answer in a capture.

`propose_inventory` reads successful and mid-stream flows, the RPC interfaces discovery found
and the capture's names and role hints; the heuristics (heuristics.py, over the evidence
gathered in evidence.py) name each guess with a confidence and the evidence behind it.
`inventory_to_yaml` (yaml_text.py) writes it with that evidence as comments.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import numpy as np
import pandas as pd

from auditor.catalogue.loader import normal_ip
from auditor.dissect.names import NAME_SOURCES
from auditor.inventory import heuristics
from auditor.inventory.evidence import (
    HostEvidence,
    _port_text,
    canonical,
    grouped_flows,
    host_hints,
    served_interfaces,
)
from auditor.inventory.roles import Host, Inventory, Network, _halves, _in_network, _net128, _to128
from auditor.inventory.yaml_text import inventory_to_yaml
from auditor.schema import ROLE_EVIDENCE_COLUMNS, ROLES, column_names, typed_frame

__all__ = ["DEFAULT_INTERNAL", "inventory_to_yaml", "propose_from_observation",
           "propose_inventory"]

# Ranges treated as "ours" when proposing an inventory: RFC 1918, CGNAT 100.64.0.0/10 (RFC 6598),
# the benchmark range 198.18.0.0/15 (RFC 2544) used by test networks, link-local, loopback and
# IPv6 ULA.
DEFAULT_INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                    "198.18.0.0/15", "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "fe80::/10",
                    "::1/128")
_SUCCESS = ("established", "midstream", "udp_answered", "answered")  # mid-stream sessions succeeded

# ---- proposing an inventory from traffic ----

_ABBREV = {"domain_controller": "DC", "dns": "DNS", "mailbox": "MBX", "client_access": "CAS",
           "hub_transport": "HUB", "edge_transport": "EDGE", "unified_messaging": "UM",
           "voip_gateway": "GW", "admin": "ADMIN", "client": "CLIENT", "internet": "INET",
           "unknown": "HOST"}


def propose_inventory(flows: pd.DataFrame, names: pd.DataFrame | None = None, *,
                      internal: Sequence[str] | None = None,
                      rpc=None) -> tuple[Inventory, pd.DataFrame]:
    """Guess roles from what hosts serve and answer; return the inventory and its evidence.

    Successful and mid-stream flows count; `rpc` (an RpcDiscovery) adds the RPC interfaces
    each host serves, and `names` (schema.HOST_NAME_COLUMNS) the capture's names and role hints.
    `internal` lists the networks that are ours (default: private, CGNAT, ULA and
    198.18.0.0/15); the ones holding seen hosts are proposed as client networks, hosts outside
    them are internet unless they show server evidence. Every address seen gets an evidence row.
    """
    cidrs = list(internal or DEFAULT_INTERNAL)
    nets = [_net128(ipaddress.ip_network(c)) for c in cidrs]
    ok = grouped_flows(flows, (*_SUCCESS, "midstream"))
    every = _seen_hosts(flows)
    ips = list(dict.fromkeys(list(ok["src_ip"]) + list(ok["dst_ip"]) + every))
    values = [_to128(ipaddress.ip_address(ip)) if normal_ip(ip) else 0 for ip in ips]
    hi, lo = _halves(values)
    inside = np.zeros(len(ips), dtype=bool)
    holding = []  # the internal networks that hold a seen host
    for cidr, (value, prefix) in zip(cidrs, nets, strict=True):
        member = _in_network(hi, lo, value, prefix)
        inside |= member
        if member.any():
            holding.append(cidr)
    is_internal = dict(zip(ips, inside.tolist(), strict=True))
    ev = HostEvidence(ok, is_internal, served_interfaces(rpc), host_hints(names))
    roles = _infer(ev, set(every) - set(ok["src_ip"]) - set(ok["dst_ip"]))
    host_names = _choose_names(roles, names)
    return _build(roles, host_names, is_internal, holding)


def propose_from_observation(seen, *, internal: Sequence[str] | None = None):
    """propose_inventory on an audit.pipeline.Observation (flows, RPC endpoints, names)."""
    from auditor.inventory.versions import propose_observed_versions

    names = seen.rpc.names if seen.rpc is not None else None
    inv, evidence = propose_inventory(seen.flows, names, internal=internal, rpc=seen.rpc)
    return propose_observed_versions(inv, evidence, seen)  # each Exchange server's version


def _seen_hosts(flows: pd.DataFrame) -> list[str]:
    """Every address in the flows but multicast and broadcast destinations."""
    seen = pd.unique(pd.concat([flows["src_ip"], flows["dst_ip"]], ignore_index=True))
    out = []
    for ip in seen:
        text = canonical(ip)
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            continue
        if addr.is_multicast or text == "255.255.255.255" or addr.is_unspecified:
            continue
        out.append(text)
    return out


def _infer(ev: HostEvidence, failed_only: set[str]) -> dict[str, list[tuple[str, float, str]]]:
    """ip -> [(role, confidence, evidence)], strongest evidence first."""
    roles: dict[str, list[tuple[str, float, str]]] = {ip: [] for ip in ev.internal}
    for ip, internal in ev.internal.items():
        if ip in failed_only:
            continue
        if not internal:
            found = heuristics.strong_server(ev, ip)  # server evidence beats the address
            roles[ip].append(found or ("internet", 0.9, "outside the internal networks"))
            continue
        for infer in heuristics.SERVER_HEURISTICS:
            found = infer(ev, ip)
            if found:
                roles[ip].append(found)
    _gateways(ev, roles)
    _edge_peers(ev, roles)
    for ip, found in roles.items():
        if found:
            continue
        served = ev.answered.get(ip, {})
        if ip in failed_only:
            found.append(("unknown", 0.1, _FAILED_ONLY))
        elif served:
            found.append(("unknown", 0.3, f"answers {_port_text(served)}; no role "
                                          "heuristic matched"))
        else:
            found.append(heuristics.initiator(ev, ip))
    return roles


_FAILED_ONLY = "seen only in flows nobody answered"


def _gateways(ev: HostEvidence, roles) -> None:
    """SIP peers of UM servers that hold no other role become voip_gateway."""
    um = {ip for ip, found in roles.items()
          if any(r == "unified_messaging" and c >= 0.8 for r, c, _ in found)}
    for ip in um:
        for peer in ev.internal_peers(ev.answers(ip, heuristics.SIP),
                                      ev.talks_to(ip, heuristics.SIP, None)):
            found = roles[peer]
            if all(r == "voip_gateway" for r, _, _ in found):
                found.clear()
                found.append(("voip_gateway", 0.6, "SIP with a UM server"))


def _edge_peers(ev: HostEvidence, roles) -> None:
    """SMTP peers of an Edge that are not Hubs (no directory traffic, no EdgeSync, no Exchange
    SMTP evidence, no other server role) are the Internet's mail servers."""
    edges = [ip for ip, found in roles.items() if any(r == "edge_transport" for r, _, _ in found)]
    for ip in edges:
        hits = [ev.answers(ip, (25,), "tcp"), ev.talks_to(ip, (25,))]
        for peer in sorted({p for h in hits for peers in h.values() for p in peers}):
            found = roles.get(peer)
            if not found or peer in edges:
                continue
            hub = (ev.talks_to(peer, heuristics.AD_PORTS, None) or ev.hint(peer, "exchange-smtp")
                   or ev.talks_to(peer, (50636,)))
            plain = {r for r, _, _ in found} <= {"unknown", "client", "hub_transport"}
            if plain and not hub:
                found.clear()
                found.append(("internet", 0.7, f"SMTP peer of the Edge {ip} that is not a Hub "
                                               "(no directory traffic)"))


def _choose_names(roles: dict, names: pd.DataFrame | None) -> dict[str, str]:
    """A name per proposed host: from the capture (best source first), else role + number."""
    chosen: dict[str, str] = {}
    if names is not None and not names.empty:
        rank = {s: i for i, s in enumerate(NAME_SOURCES)}
        seen = names.assign(ip=names["ip"].map(lambda a: normal_ip(a) or str(a)),
                            _rank=names["source"].map(rank).fillna(len(rank)))
        for row in seen.sort_values("_rank", kind="stable").itertuples(index=False):
            if row.ip in roles and isinstance(row.name, str) and row.name and (
                    row.ip not in chosen):
                chosen[row.ip] = str(row.name)
    used = set(chosen.values())
    for ip, found in roles.items():
        if ip in chosen or not _listed(found):
            continue
        stem, n = _ABBREV.get(found[0][0], "HOST"), 1
        while f"{stem}{n}" in used:
            n += 1
        chosen[ip] = f"{stem}{n}"
        used.add(chosen[ip])
    return chosen


_ROLE_ORDER = {r: i for i, r in enumerate(ROLES)}


def _listed(found: list, internal: bool = False) -> bool:
    """A host entry is proposed for a host with some answer and a role other than internet
    (or internet inside an internal network, which would otherwise make it a client)."""
    return bool(found) and (found[0][0] != "internet" or internal) and (
        found[0][2] != _FAILED_ONLY)


def _build(roles: dict, host_names: dict, is_internal: dict, holding: Sequence[str] = ()):
    """Hosts for servers; clients of a /24 (/64) without servers folded into a network; the
    internal ranges that hold seen hosts as client networks (their unlisted hosts)."""
    def block(ip: str) -> str:
        return str(ipaddress.ip_network(f"{ip}/{24 if ':' not in ip else 64}", strict=False))

    clients = {ip for ip, f in roles.items() if [r for r, _, _ in f] == ["client"]}
    others = {block(ip) for ip, f in roles.items() if ip not in clients and is_internal[ip]}
    groups: dict[str, list[str]] = {}
    for ip in clients:
        groups.setdefault(block(ip), []).append(ip)
    folded = {b: ips for b, ips in groups.items() if len(ips) > 1 and b not in others}
    in_net = {ip for ips in folded.values() for ip in ips}

    hosts, rows = [], []
    for ip, found in sorted(roles.items(), key=lambda kv: (
            _ROLE_ORDER[kv[1][0][0]] if kv[1] else 99, _sort_key(kv[0]))):
        name = host_names.get(ip, "") if ip not in in_net else ""
        for role, conf, text in found:
            rows.append((ip, name, role, round(conf, 2), text))
        if _listed(found, is_internal.get(ip, False)) and ip not in in_net:
            hosts.append(Host(name, (ip,), tuple(r for r, _, _ in found)))
    networks = [Network(b, ("client",)) for b in sorted(folded, key=_sort_key)]
    networks += [Network(str(ipaddress.ip_network(c)), ("client",))
                 for c in sorted(holding, key=_sort_key)]
    outside = any(not v for v in is_internal.values())
    inv = Inventory(tuple(hosts), tuple(networks), ("internet",) if outside else (), "proposed")
    evidence = pd.DataFrame(rows, columns=column_names(ROLE_EVIDENCE_COLUMNS))
    return inv, typed_frame(evidence, ROLE_EVIDENCE_COLUMNS)


def _sort_key(text: str) -> tuple:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:  # not an address: after all addresses, by text
        return (9, 0, 0, text)
    return (net.version, int(net.network_address), net.prefixlen, "")
