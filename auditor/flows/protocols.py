"""Names of IP protocols and ICMP types, and which destinations are one-to-many.

Protocol keywords follow the IANA "Assigned Internet Protocol Numbers" registry (lower case, as
Wireshark and /etc/protocols print them); ICMP and ICMPv6 type names follow the IANA ICMP
parameter registries (RFC 792, RFC 4443, RFC 4861, RFC 2710/3810 for MLD).
"""

from __future__ import annotations

import numpy as np

IP_PROTOCOLS = {
    0: "hopopt", 1: "icmp", 2: "igmp", 3: "ggp", 4: "ipv4", 5: "st", 6: "tcp", 8: "egp",
    9: "igp", 17: "udp", 27: "rdp", 33: "dccp", 41: "ipv6", 43: "ipv6-route", 44: "ipv6-frag",
    46: "rsvp", 47: "gre", 50: "esp", 51: "ah", 55: "mobile", 58: "icmpv6", 59: "ipv6-nonxt",
    60: "ipv6-opts", 88: "eigrp", 89: "ospf", 94: "ipip", 97: "etherip", 98: "encap",
    103: "pim", 108: "ipcomp", 112: "vrrp", 113: "pgm", 115: "l2tp", 124: "isis", 132: "sctp",
    135: "mobility", 136: "udplite", 137: "mpls-in-ip", 139: "hip", 142: "rohc",
}

ICMP_TYPES = {
    0: "echo-reply", 3: "unreachable", 4: "source-quench", 5: "redirect", 8: "echo",
    9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded",
    12: "parameter-problem", 13: "timestamp", 14: "timestamp-reply", 17: "address-mask",
    18: "address-mask-reply",
}
# reply type -> the query type whose exchange it ends (RFC 792, RFC 950, RFC 4443, RFC 4861,
# RFC 2710): the flow table keys ICMP by it (capture/headers.py), rules match by it
QUERY_OF = {
    "icmp": {0: 8, 14: 13, 16: 15, 18: 17},
    "icmpv6": {129: 128, 131: 130, 132: 130, 143: 130, 134: 133, 136: 135},
}
ICMPV6_TYPES = {
    1: "unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
    128: "echo", 129: "echo-reply", 130: "mld-query", 131: "mld-report", 132: "mld-done",
    133: "router-solicitation", 134: "router-advertisement", 135: "neighbor-solicitation",
    136: "neighbor-advertisement", 137: "redirect", 143: "mldv2-report",
}


def protocol_names() -> np.ndarray:
    """Name of every IP protocol number 0..255 (the number as text when unassigned here)."""
    return np.array([IP_PROTOCOLS.get(p, str(p)) for p in range(256)], dtype=object)


def icmp_type_name(proto: str, icmp_type, icmp_code=None) -> str:
    """'echo', 'unreachable 3/13', ... for an ICMP or ICMPv6 type (and code); '' without one."""
    try:
        t = int(icmp_type)
    except (TypeError, ValueError):
        return ""
    name = (ICMPV6_TYPES if proto == "icmpv6" else ICMP_TYPES).get(t, f"type {t}")
    code = None
    try:
        code = int(icmp_code)
    except (TypeError, ValueError):
        pass
    if t in ((1, 2, 3, 4) if proto == "icmpv6" else (3, 5, 11, 12)) and code is not None:
        return f"{name} {t}/{code}"
    return name


def service_place(proto: str, dst_port, icmp: str = "/") -> str:
    """Where a flow goes, for sentences: '445/tcp', 'icmp echo' (icmp = 'type/code'), 'gre'."""
    if proto in ("icmp", "icmpv6"):
        return f"{proto} {icmp_type_name(proto, *str(icmp).split('/')[:2])}".strip()
    return f"{dst_port}/{proto}" if proto in ("tcp", "udp") else proto


_V4_MAPPED = np.uint64(0xFFFF)


def one_to_many(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Multicast (224.0.0.0/4, ff00::/8) or limited broadcast (255.255.255.255) addresses."""
    hi = np.asarray(hi, np.uint64)
    lo = np.asarray(lo, np.uint64)
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == _V4_MAPPED)
    v4addr = lo & np.uint64(0xFFFFFFFF)
    v4_multi = v4 & ((v4addr >> np.uint64(28)) == np.uint64(0xE))
    v4_bcast = v4 & (v4addr == np.uint64(0xFFFFFFFF))
    v6_multi = ~v4 & ((hi >> np.uint64(56)) == np.uint64(0xFF))
    return v4_multi | v4_bcast | v6_multi
