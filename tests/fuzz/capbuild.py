"""Build capture files field by field, so a fuzz mutator can set any one field to a bad value.

Packets are built as lists of named byte fields rather than with scapy: a structural mutation
("IPv4 IHL = 15", "second VLAN tag", "pcapng trailer length off by 4") then needs one line.
Every builder is deterministic; randomness comes only from the `random.Random` the caller passes.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
from dataclasses import dataclass, field

# -- packets (link layer on) -------------------------------------------------------------------

ETH_SRC, ETH_DST = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
V4_A, V4_B = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
V6_A = bytes.fromhex("20010db8000000000000000000000001")
V6_B = bytes.fromhex("20010db8000000000000000000000002")


def csum(data: bytes) -> int:
    """The internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp(sport=49152, dport=135, flags=0x18, payload=b"", doff=5, seq=1) -> bytes:
    """A TCP header (data offset in words, options zero-filled) and payload."""
    opts = b"\0" * max(0, doff * 4 - 20)
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (doff & 15) << 4, flags, 8192, 0,
                       0) + opts + payload


def udp(sport=53, dport=49152, payload=b"", length=None) -> bytes:
    """A UDP header (length may lie) and payload."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length,
                       0) + payload


def icmp(itype=3, code=13, quoted=b"") -> bytes:
    """An ICMP message whose body quotes (part of) another packet."""
    return struct.pack("!BBHI", itype, code, 0, 0) + quoted


def ipv4(proto: int, body: bytes, src=V4_A, dst=V4_B, ihl=5, total=None, frag=0,
         ident=1) -> bytes:
    """An IPv4 header (IHL and total length may lie; options zero-filled) and body."""
    opts = b"\0" * max(0, ihl * 4 - 20)
    tot = 20 + len(opts) + len(body) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | (ihl & 15), 0, tot & 0xFFFF, ident, frag, 64,
                      proto, 0, src, dst) + opts
    return hdr + body


def ipv6(nh: int, body: bytes, src=V6_A, dst=V6_B, plen=None, ext=()) -> bytes:
    """An IPv6 header, then extension headers ext = [(type, next_header, bytes)], then body."""
    chain = b""
    for _kind, nxt, data in ext:
        chain += bytes([nxt]) + data
    first = ext[0][0] if ext else nh
    pl = len(chain) + len(body) if plen is None else plen
    return struct.pack("!IHBB16s16s", 6 << 28, pl & 0xFFFF, first, 64, src, dst) + chain + body


def ext_header(kind: int, nxt: int, length_units: int | None = None, size=8) -> tuple:
    """One IPv6 extension header (hop-by-hop 0, routing 43, fragment 44, dest-opts 60, AH 51)."""
    if kind == 44:
        return kind, nxt, b"\0" + b"\0\0" + b"\0\0\0\1"
    units = (size // 8 - 1) if length_units is None else length_units
    body = bytes([units & 0xFF]) + b"\0" * (size - 2)
    return kind, nxt, body


def ether(payload: bytes, ethertype=0x0800, vlans=()) -> bytes:
    """An Ethernet II frame with an optional stack of (tpid, vid) tags."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return ETH_DST + ETH_SRC + tags + struct.pack("!H", ethertype) + payload


def sample_packets(rng: random.Random, n: int) -> list[bytes]:
    """n ordinary Ethernet frames of the kinds the auditor sees (TCP, UDP, ICMP, IPv6)."""
    out = []
    for i in range(n):
        kind = rng.randrange(5)
        if kind == 0:
            out.append(ether(ipv4(6, tcp(49152 + i, 135, 0x02))))
        elif kind == 1:
            out.append(ether(ipv4(6, tcp(135, 49152 + i, 0x12))))
        elif kind == 2:
            out.append(ether(ipv4(17, udp(53, 40000 + i, b"\x12\x34" + b"\0" * 10))))
        elif kind == 3:
            inner = ipv4(6, tcp(49152, 6001, 0x02), src=V4_B, dst=V4_A)[:28]
            out.append(ether(ipv4(1, icmp(3, 13, inner))))
        else:
            out.append(ether(ipv6(6, tcp(49152 + i, 443, 0x02)), ethertype=0x86DD))
    return out


# -- containers --------------------------------------------------------------------------------

PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


@dataclass
class PcapRecord:
    """One classic pcap record; any field may be set to a value that does not fit the data."""

    data: bytes
    ts_sec: int = 1_700_000_000
    ts_frac: int = 0
    caplen: int | None = None
    origlen: int | None = None

    def encode(self, order: str) -> bytes:
        cap = len(self.data) if self.caplen is None else self.caplen
        orig = len(self.data) if self.origlen is None else self.origlen
        return struct.pack(order + "IIII", self.ts_sec & 0xFFFFFFFF, self.ts_frac & 0xFFFFFFFF,
                           cap & 0xFFFFFFFF, orig & 0xFFFFFFFF) + self.data


@dataclass
class Pcap:
    """A classic pcap file."""

    records: list[PcapRecord]
    magic: int = PCAP_MAGIC_US
    order: str = "<"
    version: tuple[int, int] = (2, 4)
    snaplen: int = 262_144
    linktype: int = 1

    def encode(self) -> bytes:
        o = self.order
        head = struct.pack(o + "IHHiIII", self.magic, self.version[0] & 0xFFFF,
                           self.version[1] & 0xFFFF, 0, 0, self.snaplen & 0xFFFFFFFF,
                           self.linktype & 0xFFFFFFFF)
        return head + b"".join(r.encode(o) for r in self.records)


def ng_option(code: int, value: bytes, length: int | None = None) -> bytes:
    """One pcapng option (length may lie), padded to 32 bits."""
    n = len(value) if length is None else length
    return struct.pack("<HH", code & 0xFFFF, n & 0xFFFF) + value + b"\0" * (-len(value) % 4)


@dataclass
class Block:
    """One pcapng block: type, body, and both length copies (None = correct)."""

    btype: int
    body: bytes
    length: int | None = None
    trailer: int | None = None

    def encode(self) -> bytes:
        pad = b"\0" * (-len(self.body) % 4)
        total = 12 + len(self.body) + len(pad)
        head = self.length if self.length is not None else total
        tail = self.trailer if self.trailer is not None else total
        return (struct.pack("<II", self.btype & 0xFFFFFFFF, head & 0xFFFFFFFF) + self.body + pad
                + struct.pack("<I", tail & 0xFFFFFFFF))


def shb(version=(1, 0), options=b"", magic=0x1A2B3C4D) -> Block:
    """Section header block (little-endian section)."""
    body = struct.pack("<IHHq", magic, version[0] & 0xFFFF, version[1] & 0xFFFF, -1) + options
    return Block(0x0A0D0D0A, body)


def idb(linktype=1, snaplen=262_144, options=b"") -> Block:
    """Interface description block."""
    return Block(1, struct.pack("<HHI", linktype & 0xFFFF, 0, snaplen & 0xFFFFFFFF) + options)


def epb(data: bytes, iface=0, ts=1_700_000_000_000_000, caplen=None, origlen=None,
        options=b"") -> Block:
    """Enhanced packet block (timestamp in the interface's units)."""
    cap = len(data) if caplen is None else caplen
    orig = len(data) if origlen is None else origlen
    body = struct.pack("<IIIII", iface & 0xFFFFFFFF, (ts >> 32) & 0xFFFFFFFF, ts & 0xFFFFFFFF,
                       cap & 0xFFFFFFFF, orig & 0xFFFFFFFF) + data
    if options:
        body += b"\0" * (-len(body) % 4) + options
    return Block(6, body)


def spb(data: bytes, origlen=None) -> Block:
    """Simple packet block."""
    orig = len(data) if origlen is None else origlen
    return Block(3, struct.pack("<I", orig & 0xFFFFFFFF) + data)


def opb(data: bytes, iface=0, ts=1_700_000_000_000_000) -> Block:
    """Obsolete packet block (16-bit interface id, 16-bit drops)."""
    body = struct.pack("<HHIIII", iface & 0xFFFF, 0, (ts >> 32) & 0xFFFFFFFF, ts & 0xFFFFFFFF,
                       len(data), len(data)) + data
    return Block(2, body)


@dataclass
class Pcapng:
    """A pcapng file: a list of blocks (the first one should be a section header)."""

    blocks: list[Block] = field(default_factory=list)

    def encode(self) -> bytes:
        return b"".join(b.encode() for b in self.blocks)


def pcapng_of(packets: list[bytes], idb_options=b"", ifaces=1, rng=None) -> Pcapng:
    """A one-section pcapng of `packets` over `ifaces` Ethernet interfaces."""
    blocks = [shb()] + [idb(options=idb_options) for _ in range(ifaces)]
    for i, p in enumerate(packets):
        iface = rng.randrange(ifaces) if rng else 0
        blocks.append(epb(p, iface=iface, ts=1_700_000_000_000_000 + i * 1000))
    return Pcapng(blocks)


def pcap_of(packets: list[bytes], linktype=1, nano=False) -> Pcap:
    """A little-endian classic pcap of `packets`."""
    recs = [PcapRecord(p, ts_sec=1_700_000_000 + i // 10, ts_frac=(i % 10) * 1000)
            for i, p in enumerate(packets)]
    return Pcap(recs, magic=PCAP_MAGIC_NS if nano else PCAP_MAGIC_US, linktype=linktype)


# -- compression -------------------------------------------------------------------------------

def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


COMPRESSORS = {  # name -> (suffix, compress); the reader is asked which ones it can read
    "gzip": (".gz", lambda d: gzip.compress(d, mtime=0)),
    "bzip2": (".bz2", bz2.compress),
    "xz": (".xz", lzma.compress),
    "zstd": (".zst", _zstd),
    "lz4": (".lz4", _lz4),
}
