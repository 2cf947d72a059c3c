"""A proposed inventory: roles guessed from the services hosts answer in a flow table.

`propose_inventory` reads only successful flows; its heuristics name each guess with a
confidence and the evidence behind it. `inventory_to_yaml` writes any inventory (a proposed one
with that evidence as comments) as YAML text that `roles.load_inventory` reads back.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import yaml

from auditor.catalogue.loader import normal_ip
from auditor.inventory.roles import Host, Inventory, Network, _halves, _in_network, _net128, _to128
from auditor.schema import ROLE_EVIDENCE_COLUMNS, ROLES, column_names, typed_frame

# Ranges treated as "ours" when proposing an inventory: RFC 1918, the benchmark range
# 198.18.0.0/15 (RFC 2544) used by test networks, link-local, loopback and IPv6 ULA.
DEFAULT_INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "198.18.0.0/15",
                    "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")
_SUCCESS = ("established", "udp_answered")

# ---- proposing an inventory from traffic ----

_ABBREV = {"domain_controller": "DC", "dns": "DNS", "mailbox": "MBX", "client_access": "CAS",
           "hub_transport": "HUB", "edge_transport": "EDGE", "unified_messaging": "UM",
           "voip_gateway": "GW", "admin": "ADMIN", "client": "CLIENT", "unknown": "HOST"}
_NAME_SOURCES = ("dns", "nbns", "smtp-ehlo", "smtp-banner", "kerberos")
_SIP = (5060, 5061, 5065, 5066, 5067, 5068)
_AD_PORTS = (88, 389, 3268)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _port_text(pairs: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"{port}/{proto}" for port, proto in sorted(set(pairs)))


def propose_inventory(flows: pd.DataFrame, names: pd.DataFrame | None = None, *,
                      internal: Sequence[str] | None = None) -> tuple[Inventory, pd.DataFrame]:
    """Guess roles from the services hosts answer; return the inventory and its evidence.

    Only successful flows (established, udp_answered) count. `internal` lists the networks that
    are ours (default: private, ULA and 198.18.0.0/15); hosts outside them are internet.
    """
    nets = [_net128(ipaddress.ip_network(c)) for c in (internal or DEFAULT_INTERNAL)]
    ok = flows[flows["state"].isin(_SUCCESS)]
    seen = pd.unique(pd.concat([ok["src_ip"], ok["dst_ip"]], ignore_index=True))
    canon = {a: normal_ip(a) or str(a) for a in seen}  # parse each address once
    # One row per (initiator, responder, service): a busy pair counts once as evidence.
    ok = (ok.assign(src_ip=ok["src_ip"].map(canon), dst_ip=ok["dst_ip"].map(canon),
                    dst_port=ok["dst_port"].astype(np.int64))
          .groupby(["src_ip", "dst_ip", "dst_port", "proto"], as_index=False, sort=False)
          .agg(flows=("flow_id", "size")))
    ips = list(dict.fromkeys(list(ok["src_ip"]) + list(ok["dst_ip"])))
    values = [_to128(ipaddress.ip_address(ip)) if normal_ip(ip) else 0 for ip in ips]
    hi, lo = _halves(values)
    inside = np.zeros(len(ips), dtype=bool)
    for value, prefix in nets:
        inside |= _in_network(hi, lo, value, prefix)
    is_internal = dict(zip(ips, inside.tolist(), strict=True))
    ev = _Evidence(ok, is_internal)
    roles = ev.infer()
    host_names = _choose_names(roles, names)
    return _build(roles, host_names, is_internal)


class _Evidence:
    """Who answers what, from successful flows, with the role heuristics on top."""

    def __init__(self, ok: pd.DataFrame, is_internal: dict[str, bool]):
        self.internal = is_internal
        # ip -> {(port, proto): peers}; plain dicts, since heuristics ask per host.
        self.answered: dict[str, dict[tuple[int, str], set[str]]] = {}
        self.initiated: dict[str, dict[tuple[int, str], set[str]]] = {}
        self.flows: dict[str, int] = {}
        for src, dst, port, proto, n in zip(ok["src_ip"], ok["dst_ip"], ok["dst_port"],
                                            ok["proto"], ok["flows"], strict=True):
            key = (int(port), proto)
            self.answered.setdefault(dst, {}).setdefault(key, set()).add(src)
            self.initiated.setdefault(src, {}).setdefault(key, set()).add(dst)
            self.flows[src] = self.flows.get(src, 0) + int(n)

    @staticmethod
    def _pick(table: dict, ip: str, ports: Iterable[int], proto: str | None) -> dict:
        ports = set(ports)
        return {k: v for k, v in table.get(ip, {}).items()
                if k[0] in ports and (proto is None or k[1] == proto)}

    def answers(self, ip: str, ports: Iterable[int], proto: str | None = None) -> dict:
        """{(port, proto): clients} of the given ports that `ip` answered."""
        return self._pick(self.answered, ip, ports, proto)

    def talks_to(self, ip: str, ports: Iterable[int], proto: str | None = "tcp") -> dict:
        """{(port, proto): servers} that `ip` reached on the given ports."""
        return self._pick(self.initiated, ip, ports, proto)

    def infer(self) -> dict[str, list[tuple[str, float, str]]]:
        """ip -> [(role, confidence, evidence)]."""
        roles: dict[str, list[tuple[str, float, str]]] = {ip: [] for ip in self.internal}
        for ip, internal in self.internal.items():
            if not internal:
                roles[ip].append(("internet", 0.9, "outside the internal networks"))
                continue
            for infer in (self._dc, self._dns, self._mailbox, self._transport, self._cas,
                          self._um):
                found = infer(ip)
                if found:
                    roles[ip].append(found)
        self._gateways(roles)
        for ip, found in roles.items():
            if found or not self.internal[ip]:
                continue
            served = self.answered.get(ip, {})
            if served:
                roles[ip].append(("unknown", 0.3, f"answers {_port_text(served)}; no role "
                                                  "heuristic matched"))
            else:
                roles[ip].append(self._initiator(ip))
        return roles

    def _internal_peers(self, *hits: dict) -> set[str]:
        return {p for h in hits for peers in h.values() for p in peers if self.internal.get(p)}

    def _dc(self, ip):
        hits = self.answers(ip, (88, 389, 3268, 53, 135, 445))
        ports = {p for p, _ in hits}
        if not {88, 389} <= ports:
            return None
        conf = min(1.0, 0.6 + 0.1 * len(ports & {3268, 53, 135, 445}))
        return ("domain_controller", conf,
                f"answers {_port_text(hits)} to {_count(_n_peers(hits), 'client')}")

    def _dns(self, ip):
        hits = self.answers(ip, (53,))
        if not hits:
            return None
        n = _n_peers(hits)
        return ("dns", 0.9 if n > 1 else 0.7,
                f"answers {_port_text(hits)} to {_count(n, 'client')}")

    def _mailbox(self, ip):
        for port, proto, conf, what in ((64327, "tcp", 0.9, "DAG replication"),
                                        (3343, "udp", 0.7, "cluster")):
            peers = self._internal_peers(self.answers(ip, (port,), proto),
                                         self.talks_to(ip, (port,), proto))
            if peers:
                return ("mailbox", conf, f"{what} {port}/{proto} with {_count(len(peers), 'peer')}")
        return None

    def _transport(self, ip):
        if self.answers(ip, (50636,), "tcp"):
            return ("edge_transport", 0.9, "answers EdgeSync 50636/tcp")
        smtp = self.answers(ip, (25, 587), "tcp")
        internal_peers = self._internal_peers(smtp)
        both = [self.answers(ip, (25,), "tcp"), self.talks_to(ip, (25,))]
        outside = {p for h in both for peers in h.values() for p in peers
                   if not self.internal.get(p, True)}
        if outside and not self.talks_to(ip, _AD_PORTS, None):
            return ("edge_transport", 0.5, f"SMTP with {_count(len(outside), 'outside host')} "
                                           "and no directory traffic")
        if internal_peers:
            return ("hub_transport", 0.8 if (25, "tcp") in smtp else 0.6,
                    f"answers {_port_text(smtp)} to {_count(len(internal_peers), 'internal host')}")
        return None

    def _cas(self, ip):
        hits = self.answers(ip, (443, 80, 135), "tcp")
        n = _n_peers(hits)
        if (443, "tcp") not in hits or n < 2:
            return None
        extra = 0.1 * ((80, "tcp") in hits) + 0.1 * ((135, "tcp") in hits)
        return ("client_access", min(0.95, 0.5 + 0.1 * (n - 1) + extra),
                f"answers {_port_text(hits)} to {_count(n, 'client')}")

    def _um(self, ip):
        hits = self.answers(ip, _SIP, "tcp")
        if not hits:
            return None
        worker = any(p in (5065, 5066, 5067, 5068) for p, _ in hits)
        # A gateway also answers SIP (outbound calls); a UM server is a domain member.
        member = bool(self.talks_to(ip, _AD_PORTS, None) or self.talks_to(ip, (25,)))
        return ("unified_messaging", 0.8 if worker or member else 0.4,
                f"answers SIP {_port_text(hits)}" + ("" if worker or member else
                                                     " (no directory traffic: maybe a gateway)"))

    def _gateways(self, roles) -> None:
        """SIP peers of UM servers that hold no other role become voip_gateway."""
        um = {ip for ip, found in roles.items()
              if any(r == "unified_messaging" and c >= 0.8 for r, c, _ in found)}
        for ip in um:
            for peer in self._internal_peers(self.answers(ip, _SIP, "tcp"),
                                             self.talks_to(ip, _SIP)):
                found = roles[peer]
                if all(r == "unified_messaging" and c < 0.8 for r, c, _ in found):
                    found.clear()
                    found.append(("voip_gateway", 0.6, "SIP with a UM server"))

    def _initiator(self, ip):
        admin = self.talks_to(ip, (3389, 5985, 5986))
        if admin:
            return ("admin", 0.4, f"only initiates; management {_port_text(admin)}")
        reached = _n_peers(self.initiated.get(ip, {}))
        return ("client", 0.6, f"only initiates ({_count(self.flows.get(ip, 0), 'flow')} to "
                               f"{_count(reached, 'host')})")


def _n_peers(hits: dict) -> int:
    return len(set().union(*hits.values())) if hits else 0


def _choose_names(roles: dict, names: pd.DataFrame | None) -> dict[str, str]:
    """A name per proposed host: from the capture (best source first), else role + number."""
    chosen: dict[str, str] = {}
    if names is not None and not names.empty:
        rank = {s: i for i, s in enumerate(_NAME_SOURCES)}
        seen = names.assign(ip=names["ip"].map(lambda a: normal_ip(a) or str(a)),
                            _rank=names["source"].map(rank).fillna(len(rank)))
        for row in seen.sort_values("_rank", kind="stable").itertuples(index=False):
            if row.ip in roles and isinstance(row.name, str) and row.name and (
                    row.ip not in chosen):
                chosen[row.ip] = str(row.name)
    used = set(chosen.values())
    for ip, found in roles.items():
        if ip in chosen or not found or found[0][0] == "internet":
            continue
        stem, n = _ABBREV.get(found[0][0], "HOST"), 1
        while f"{stem}{n}" in used:
            n += 1
        chosen[ip] = f"{stem}{n}"
        used.add(chosen[ip])
    return chosen


_ROLE_ORDER = {r: i for i, r in enumerate(ROLES)}


def _build(roles: dict, host_names: dict, is_internal: dict):
    """Hosts for servers; clients of a /24 (/64) without servers folded into a network."""
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
        if found and found[0][0] != "internet" and ip not in in_net:
            hosts.append(Host(name, (ip,), tuple(r for r, _, _ in found)))
    networks = [Network(b, ("client",)) for b in sorted(folded, key=_sort_key)]
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


# ---- writing ----

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./\-]*")


def _scalar(text: str) -> str:
    """Plain YAML when it reads back as the same string, else a JSON (YAML) quoted string."""
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def _flow(items: Iterable[str]) -> str:
    return "[" + ", ".join(_scalar(i) for i in items) + "]"


def inventory_to_yaml(inv: Inventory, evidence: pd.DataFrame | None = None) -> str:
    """The inventory as YAML text that load_inventory reads; evidence as comments."""
    notes: dict[str, list[str]] = {}
    if evidence is not None:
        for row in evidence.itertuples(index=False):
            notes.setdefault(row.ip, []).append(
                f"{row.role} {row.confidence:.2f}: {row.evidence}".replace("\n", " "))
    out = ["# Inventory; roles: " + ", ".join(ROLES)]
    if inv.source == "proposed":
        out.append("# Proposed from observed traffic: check every entry before auditing with it.")
    out.append("hosts:" if inv.hosts else "hosts: []")
    for host in inv.hosts:
        out += [f"  - name: {_scalar(host.name)}",
                f"    addresses: {_flow(host.addresses)}",
                f"    roles: {_flow(host.roles)}"]
        out += [f"    # {ip} {note}" if len(host.addresses) > 1 else f"    # {note}"
                for ip in host.addresses for note in notes.get(ip, [])]
    listed = {ip for host in inv.hosts for ip in host.addresses}
    out.append("networks:" if inv.networks else "networks: []")
    for net in inv.networks:
        out.append(f"  - cidr: {_scalar(net.cidr)}")
        out.append(f"    roles: {_flow(net.roles)}")
        if net.name:
            out.append(f"    name: {_scalar(net.name)}")
        members = [ip for ip in notes if ip not in listed and normal_ip(ip)
                   and ipaddress.ip_address(ip) in ipaddress.ip_network(net.cidr)]
        out += [f"    # {ip} {note}" for ip in members for note in notes[ip]]
    if inv.default_roles:
        out.append(f"default_roles: {_flow(inv.default_roles)}")
        outside = [ip for ip, lines in notes.items()
                   if any(n.startswith("internet ") for n in lines)]
        if outside:
            out.append(f"# {_count(len(outside), 'host')} outside the internal networks, e.g. "
                       + ", ".join(outside[:5]))
    return "\n".join(out) + "\n"
