"""Wireshark display filters that isolate a finding's packets (from a finding to its packets).

`ip.addr==A && ip.addr==B && tcp.port==P` matches both directions of the path, and also the ICMP
errors that quote it (Wireshark dissects the quoted header, so its fields match too).
"""

from __future__ import annotations

import ipaddress

import pandas as pd

_L4 = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "icmpv6"}


def _addr_field(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    if addr.version == 4 or mapped is not None:
        return f"ip.addr=={mapped or addr}"
    return f"ipv6.addr=={addr.compressed}"


def display_filter(src_ip, dst_ip, proto, dst_port) -> str:
    """The display filter for one path; parts that are unknown (empty, NA) are left out."""
    parts = []
    for ip in (src_ip, dst_ip):
        if isinstance(ip, str) and ip:
            field = _addr_field(ip)
            if field:
                parts.append(field)
    tail = _l4_part(proto, dst_port)
    return " && ".join(parts + [tail] if tail else parts)


def _l4_part(proto, dst_port) -> str:
    """The protocol (and port) part of a display filter, '' when unknown."""
    proto = str(proto) if isinstance(proto, str) else ""
    port = None if dst_port is None or pd.isna(dst_port) else int(dst_port)
    if proto in ("tcp", "udp") and port:
        return f"{proto}.port=={port}"
    if proto in _L4:
        return _L4[proto]
    if proto.isdigit():
        return f"ip.proto=={int(proto)}"
    return ""


def display_filters(frame: pd.DataFrame) -> list[str]:
    """display_filter for every row of a frame with src_ip, dst_ip, proto and dst_port (each
    distinct address parsed once: a finding table names few)."""
    fields: dict = {}

    def field(ip):
        if not (isinstance(ip, str) and ip):
            return None
        if ip not in fields:
            fields[ip] = _addr_field(ip)
        return fields[ip]

    out = []
    for src, dst, proto, port in zip(frame["src_ip"].tolist(), frame["dst_ip"].tolist(),
                                     frame["proto"].tolist(), frame["dst_port"].tolist(),
                                     strict=True):
        parts = [f for f in (field(src), field(dst)) if f]
        tail = _l4_part(proto, port)
        out.append(" && ".join(parts + [tail] if tail else parts))
    return out


def tshark_command(capture: str, filter_text: str) -> str:
    """`tshark -r CAPTURE -Y '...'`, quoted for a POSIX shell."""
    import shlex

    return f"tshark -r {shlex.quote(str(capture))} -Y {shlex.quote(filter_text)}"
