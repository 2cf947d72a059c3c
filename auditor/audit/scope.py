"""Multicast, broadcast and link-local destinations: local noise, never `internet` nor a network.

Windows hosts talk to groups all day (NBNS and NetBIOS datagrams, LLMNR, mDNS, SSDP, DHCP and
DHCPv6, IGMP and MLD). Those addresses get a role of their own (`multicast`, `broadcast`,
`link_local`) before roles from networks and `default_roles` apply, the catalogue's `L` rules
document the usual ones, and their findings are at most `low`. IGMP (no ports, no types) and
MLD/neighbour discovery count as local control traffic here; rule L08 names the ICMPv6 part.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

LOCAL_ROLES = ("multicast", "broadcast", "link_local")
_GROUP_ROLES = ("multicast", "broadcast")

# Well-known groups, named so that reports say what they are (IANA multicast registries).
GROUP_NAMES = {
    "224.0.0.1": "all-hosts", "224.0.0.2": "all-routers", "224.0.0.22": "igmpv3-reports",
    "224.0.0.251": "mdns", "224.0.0.252": "llmnr", "239.255.255.250": "ssdp",
    "224.0.1.1": "ntp", "224.0.1.24": "wins-autodiscovery", "255.255.255.255": "broadcast",
    "ff02::1": "all-nodes", "ff02::2": "all-routers", "ff02::16": "mldv2-reports",
    "ff02::fb": "mdns", "ff02::1:3": "llmnr", "ff02::c": "ssdp", "ff02::1:2": "dhcpv6-agents",
    "ff05::1:3": "dhcpv6-servers",
}

# Local control traffic no catalogue rule can name (IGMP; ICMPv6 MLD, router and neighbour
# discovery): expected when it stays on the link.
_LOCAL_ICMPV6 = (130, 131, 132, 133, 134, 135, 136, 143)
# Neighbour discovery never leaves the link whatever its addresses (RFC 4861 7.1: receivers drop
# it unless the hop limit is 255): unicast NS/NA between global addresses (NUD) is link control too.
_ON_LINK_ICMPV6 = (133, 134, 135, 136, 137)
_IGMP = "igmp"
# LLMNR and mDNS answer a multicast question by unicast, from the responder's port to the asker
# (RFC 4795 2.1.1, RFC 6762 6.7), so host-to-host flows on these ports sit beside every query.
# Both protocols are link-scoped: between internal hosts such a flow is the link resolving a
# name, not a path to document; with the Internet or an Edge at one end it stays a finding.
_LINK_NAME_PORTS = (5353, 5355)
_NOT_ON_A_LAN = ("internet", "edge_transport")


def address_scope(addresses, inventory=None) -> np.ndarray:
    """'multicast', 'broadcast', 'link_local' or '' per address text.

    Broadcast: 255.255.255.255 and the broadcast address of every IPv4 inventory network.
    Link-local: fe80::/10, 169.254.0.0/16 and the unspecified 0.0.0.0 and ::.
    """
    broadcasts = {"255.255.255.255"}
    for net in getattr(inventory, "networks", ()) or ():
        n = ipaddress.ip_network(net.cidr, strict=False)
        if n.version == 4 and n.prefixlen <= 30:
            broadcasts.add(str(n.broadcast_address))
    out = np.full(len(addresses), "", dtype=object)
    for i, text in enumerate(addresses):
        try:
            ip = ipaddress.ip_address(str(text))
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if str(ip) in broadcasts:
            out[i] = "broadcast"
        elif ip.is_multicast:
            out[i] = "multicast"
        elif ip.is_link_local or ip.is_unspecified:  # 0.0.0.0: a DHCP client without a lease
            out[i] = "link_local"
    return out


def with_scope_roles(hosts: pd.DataFrame, inventory) -> pd.DataFrame:
    """Hosts (ip, name, roles) with group and link-local addresses given their own role.

    Groups always get theirs (no host can be 255.255.255.255). A link-local address keeps the
    roles of an inventory host entry that lists it; otherwise it is `link_local`, not whatever
    network or default role would have applied.
    """
    if hosts.empty:
        return hosts
    scope = address_scope(hosts["ip"].tolist(), inventory)
    listed = {ip for h in getattr(inventory, "hosts", ()) for ip in h.addresses}
    listed_mask = np.array([ip in listed for ip in hosts["ip"]], dtype=bool)
    change = (np.isin(scope, _GROUP_ROLES)) | ((scope == "link_local") & ~listed_mask)
    if not change.any():
        return hosts
    out = hosts.copy()
    roles = out["roles"].to_numpy(dtype=object).copy()
    names = out["name"].to_numpy(dtype=object).copy()
    for i in np.flatnonzero(change):
        roles[i] = (scope[i],)
        if scope[i] != "link_local":
            names[i] = GROUP_NAMES.get(str(out["ip"].iat[i]), names[i] or "")
    out["roles"] = roles
    out["name"] = names
    return out


def coded(values) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize of a column (a Series or any array): per value its code, and the distinct
    values; `isin` takes the pair to test several sets without factorizing again (a pair is
    returned as it is)."""
    if isinstance(values, tuple):
        return values
    return pd.factorize(values if isinstance(values, pd.Series) else np.asarray(values,
                                                                                dtype=object))


def isin(values, allowed) -> np.ndarray:
    """Per value, whether it is one of `allowed` (False for missing values), worked out once per
    distinct value: a flow table holds few distinct roles or protocols. `values`: a column, or
    its `coded` pair."""
    codes, uniques = coded(values)
    allowed = set(allowed)
    hit = np.array([u in allowed for u in uniques] + [False], dtype=bool)
    return hit[codes]  # code -1 (missing) takes the last False


def local_verdicts(flows, verdict: np.ndarray) -> np.ndarray:
    """Verdicts with local traffic settled: nothing answers a group; IGMP/MLD/ND and unicast
    LLMNR/mDNS answers between internal hosts are expected.

    `flows`: a frame or a mapping of per-flow arrays (src_role, dst_role, documented, proto,
    icmp_type, dst_port).
    """
    src_role, dst_role, proto = (coded(flows[c]) for c in ("src_role", "dst_role", "proto"))
    icmp_type = pd.Series(flows["icmp_type"]).to_numpy(dtype=float, na_value=np.nan)
    to_group = isin(dst_role, _GROUP_ROLES)
    silent = to_group & (verdict == "unanswered")
    out = np.where(silent, np.where(np.asarray(flows["documented"], dtype=bool), "expected",
                                    "unexpected"), verdict)
    local = isin(src_role, LOCAL_ROLES) | isin(dst_role, LOCAL_ROLES)
    icmpv6 = isin(proto, ("icmpv6",))
    control = isin(proto, (_IGMP,)) | (icmpv6 & np.isin(icmp_type, _LOCAL_ICMPV6))
    on_link = icmpv6 & np.isin(icmp_type, _ON_LINK_ICMPV6)
    names = (isin(proto, ("udp",)) & np.isin(np.asarray(flows["dst_port"]), _LINK_NAME_PORTS)
             & ~isin(src_role, _NOT_ON_A_LAN) & ~isin(dst_role, _NOT_ON_A_LAN)
             & (out == "unexpected"))
    return np.where((local & control) | on_link | names, "expected", out).astype(object)


def cap_local_severity(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings involving a group or link-local address: at most `low`, never high or medium."""
    if findings.empty:
        return findings
    local = findings["src_role"].isin(LOCAL_ROLES) | findings["dst_role"].isin(LOCAL_ROLES)
    strong = findings["severity"].isin(("high", "medium"))
    if not (local & strong).any():
        return findings
    out = findings.copy()
    out.loc[local & strong, "severity"] = "low"
    out.loc[local & strong, "detail"] = out.loc[local & strong, "detail"] + (
        " (local multicast/broadcast/link-local traffic: low at most)")
    return out
