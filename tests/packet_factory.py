"""Build small PacketTables by hand for flow tests (no capture file involved)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from auditor.capture.packets import CaptureFile, PacketTable
from auditor.schema import ICMP_ERROR_COLUMNS, PACKET_COLUMNS, empty_frame

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def ip_halves(text: str) -> tuple[int, int]:
    """Split an address into the (hi, lo) uint64 halves the packet table uses."""
    addr = ipaddress.ip_address(text)
    if addr.version == 4:
        addr = ipaddress.IPv6Address("::ffff:" + text)
    value = int(addr)
    return value >> 64, value & ((1 << 64) - 1)


def pkt(t, src, sport, dst, dport, proto=6, flags=0, length=60, payload=0, head=0, **extra):
    """One packet row as a dict; t in seconds."""
    s_hi, s_lo = ip_halves(src)
    d_hi, d_lo = ip_halves(dst)
    row = dict(
        ts_ns=int(t * 1e9), file_index=0, record_index=0, l3_offset=14, frame_len=length,
        ip_version=4 if "." in src else 6, src_ip_hi=s_hi, src_ip_lo=s_lo, dst_ip_hi=d_hi,
        dst_ip_lo=d_lo, proto=proto, src_port=sport, dst_port=dport, tcp_flags=flags, tcp_seq=0,
        payload_len=payload, payload_head=head, ip_id=0, frag_offset=0, more_fragments=False,
        icmp_type=0, icmp_code=0, payload_b4=0, payload_b12=0, payload_b20=0,
    )
    row.update(extra)
    if row["proto"] in (1, 58) and not (sport or dport):  # as the decoder keys ICMP
        from auditor.capture.headers import _ICMP_KIND, _ICMPV6_KIND

        kinds = _ICMP_KIND if row["proto"] == 1 else _ICMPV6_KIND
        row["src_port"] = row["dst_port"] = int(kinds[row["icmp_type"]])
    return row


def random_traffic(rng, packets, hosts, ports, protos, flags, seq=False) -> list[dict]:
    """Seeded random packets among 198.18.0.1..hosts: exponential gaps (mean 0.8 s), ports and
    protocol numbers drawn from the lists, TCP flags from `flags`, a 0-2 tcp_seq when `seq`."""
    rows, t = [], 0.0
    for _ in range(packets):
        t += float(rng.exponential(0.8))
        a, b = rng.integers(1, hosts + 1, size=2)
        sport, dport = (int(x) for x in rng.choice(ports, size=2))
        proto = int(rng.choice(protos))
        fl = int(rng.choice(flags)) if proto == 6 else 0
        extra = {"tcp_seq": int(rng.integers(0, 3))} if seq else {}
        rows.append(pkt(t, f"198.18.0.{a}", sport, f"198.18.0.{b}", dport, proto=proto,
                        flags=fl, **extra, payload=int(rng.integers(0, 2))))
    return rows


def table(rows, icmp_errors=None, name="test.pcap") -> PacketTable:
    """A PacketTable from packet dicts (and optional ICMP error dicts)."""
    frame = empty_frame(PACKET_COLUMNS)
    if rows:
        frame = pd.DataFrame(rows)
        for col in PACKET_COLUMNS:
            frame[col.name] = frame[col.name].astype(col.dtype)
        frame = frame.sort_values("ts_ns", kind="stable").reset_index(drop=True)
        frame["record_index"] = np.arange(len(frame), dtype=np.uint32)
    errors = empty_frame(ICMP_ERROR_COLUMNS)
    if icmp_errors:
        errors = pd.DataFrame(icmp_errors)
        for col in ICMP_ERROR_COLUMNS:
            errors[col.name] = errors[col.name].astype(col.dtype)
    ts = frame["ts_ns"]
    info = CaptureFile(
        path=name, name=name, format="pcap", records=len(frame), ip_packets=len(frame), non_ip=0,
        skipped={}, first_ts_ns=int(ts.min()) if len(ts) else None,
        last_ts_ns=int(ts.max()) if len(ts) else None,
    )
    return PacketTable(packets=frame, icmp_errors=errors, files=(info,))


def icmp_error(packet_index, src, sport, dst, dport, proto=6, icmp_type=3, icmp_code=13):
    """An ICMP unreachable quoting a packet src:sport -> dst:dport."""
    s_hi, s_lo = ip_halves(src)
    d_hi, d_lo = ip_halves(dst)
    return dict(
        packet_index=packet_index, icmp_type=icmp_type, icmp_code=icmp_code, inner_src_ip_hi=s_hi,
        inner_src_ip_lo=s_lo, inner_dst_ip_hi=d_hi, inner_dst_ip_lo=d_lo, inner_proto=proto,
        inner_src_port=sport, inner_dst_port=dport,
    )
