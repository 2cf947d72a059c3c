"""What the capture says each host does: services it answers, RPC interfaces it serves, hints.

`HostEvidence` gathers, per address, the services it answered (successful and mid-stream flows),
the services it reached, the DCE/RPC interfaces it serves (EPM replies, accepted binds, also
inside SMB pipes) and the role hints the name dissection found (schema.HOST_NAME_COLUMNS `hint`:
a DC locator reply, a browser announcement, an SRV answer, Exchange SMTP extensions, ...).
The role heuristics (heuristics.py) ask it questions; it decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from auditor.catalogue.loader import normal_ip


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _port_text(pairs: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"{port}/{proto}" for port, proto in sorted(set(pairs)))


def _n_peers(hits: dict) -> int:
    return len(set().union(*hits.values())) if hits else 0


def canonical(ip) -> str:
    """One spelling per address (IPv4-mapped IPv6 as IPv4), else the text as given."""
    return normal_ip(ip) or str(ip)


class HostEvidence:
    """Who answers what, which RPC interfaces each host serves, and the capture's role hints."""

    def __init__(self, ok: pd.DataFrame, is_internal: dict[str, bool],
                 interfaces: dict[str, dict[str, str]] | None = None,
                 hints: dict[str, dict[str, set[str]]] | None = None):
        self.internal = is_internal
        # ip -> {(port, proto): peers}; plain dicts, since heuristics ask per host.
        self.answered: dict[str, dict[tuple[int, str], set[str]]] = {}
        self.initiated: dict[str, dict[tuple[int, str], set[str]]] = {}
        self.flows: dict[str, int] = {}
        self.interfaces = interfaces or {}  # ip -> {interface name: how it was learned}
        self.hints = hints or {}  # ip -> {hint: {detail, ...}}
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

    def serves(self, ip: str, names: Iterable[str]) -> dict[str, str]:
        """{interface: evidence} of the named RPC interfaces `ip` serves."""
        mine = self.interfaces.get(ip, {})
        return {n: mine[n] for n in names if n in mine}

    def hint(self, ip: str, name: str) -> set[str]:
        """Details of one hint about `ip` (empty when the capture gave none)."""
        return self.hints.get(ip, {}).get(name, set())

    def internal_peers(self, *hits: dict) -> set[str]:
        """Internal addresses among the peers of the given hits."""
        return {p for h in hits for peers in h.values() for p in peers if self.internal.get(p)}


_HOW = ("bound", "bound over SMB", "used", "advertised by EPM")  # strongest first


def served_interfaces(rpc) -> dict[str, dict[str, str]]:
    """ip -> {interface name: how it is known served} from an RpcDiscovery (or None).

    An EPM reply naming an interface says the server registered it even if no one used it;
    an accepted bind says a client reached it (also inside an SMB pipe, e.g. \\netlogon).
    """
    out: dict[str, dict[str, str]] = {}
    if rpc is None:
        return out

    def add(ip, name, how):
        mine = out.setdefault(canonical(ip), {})
        if name not in mine or _HOW.index(how) < _HOW.index(mine[name]):
            mine[name] = how

    e = rpc.endpoints
    for ip, name, how, bound, used in zip(e["server_ip"], e["interface"], e["evidence"],
                                          e["bound"], e["used"], strict=True):
        if name and how in ("epm", "bind"):
            add(ip, str(name), "bound" if bound else "used" if used and how == "bind"
                else "advertised by EPM")
    binds = rpc.facts.binds
    if len(binds):
        from auditor.dissect.rpc import interface_name

        accepted = binds[(binds["result"] == "accepted") & (binds["transport"] == "smb")]
        for ip, uuid in zip(accepted["server_ip"], accepted["interface_uuid"], strict=True):
            name = interface_name(uuid)
            if name:
                add(ip, name, "bound over SMB")
    return out


def host_hints(names: pd.DataFrame | None) -> dict[str, dict[str, set[str]]]:
    """ip -> {hint: {detail}} from the name table's `hint` column.

    A hint given for a name only (a Kerberos service principal names its host, not an
    address) is tied to the addresses the same capture gives that name.
    """
    out: dict[str, dict[str, set[str]]] = {}
    if names is None or names.empty or "hint" not in names:
        return out
    rows = names[names["hint"].fillna("") != ""]
    if rows.empty:
        return out
    by_name: dict[str, set[str]] = {}
    for ip, name in zip(names["ip"], names["name"], strict=True):
        if ip and name:
            for key in _name_keys(str(name)):
                by_name.setdefault(key, set()).add(canonical(ip))
    for ip, name, hint in zip(rows["ip"], rows["name"], rows["hint"], strict=True):
        kind, _, detail = str(hint).partition(":")
        ips = {canonical(ip)} if ip else set().union(
            *(by_name.get(k, set()) for k in _name_keys(str(name))))
        for addr in ips:
            out.setdefault(addr, {}).setdefault(kind, set()).add(detail or str(name))
    return out


def _name_keys(name: str) -> list[str]:
    """A name and its first label, lower-case: cas1.contoso.com also matches CAS1."""
    name = name.lower().rstrip(".")
    return list(dict.fromkeys([name, name.split(".")[0]])) if name else []


def grouped_flows(flows: pd.DataFrame, states: Iterable[str]) -> pd.DataFrame:
    """One row per (initiator, responder, port, proto) of the flows in `states`, with a count."""
    ok = flows[flows["state"].isin(tuple(states))]
    seen = pd.unique(pd.concat([ok["src_ip"], ok["dst_ip"]], ignore_index=True))
    canon = {a: canonical(a) for a in seen}  # parse each address once
    # A busy pair counts once as evidence.
    return (ok.assign(src_ip=ok["src_ip"].map(canon), dst_ip=ok["dst_ip"].map(canon),
                      dst_port=ok["dst_port"].astype(np.int64))
            .groupby(["src_ip", "dst_ip", "dst_port", "proto"], as_index=False, sort=False)
            .agg(flows=("flow_id", "size")))
