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


def ng_option(code: int, value: bytes, length: int | None = None, o: str = "<") -> bytes:
    """One pcapng option (length may lie), padded to 32 bits, in byte order o."""
    n = len(value) if length is None else length
    return struct.pack(o + "HH", code & 0xFFFF, n & 0xFFFF) + value + b"\0" * (-len(value) % 4)


@dataclass
class Block:
    """One pcapng block: type, body, and both length copies (None = correct)."""

    btype: int
    body: bytes
    length: int | None = None
    trailer: int | None = None
    o: str = "<"  # the section's byte order

    def encode(self) -> bytes:
        pad = b"\0" * (-len(self.body) % 4)
        total = 12 + len(self.body) + len(pad)
        head = self.length if self.length is not None else total
        tail = self.trailer if self.trailer is not None else total
        o = self.o
        return (struct.pack(o + "II", self.btype & 0xFFFFFFFF, head & 0xFFFFFFFF) + self.body
                + pad + struct.pack(o + "I", tail & 0xFFFFFFFF))


def shb(version=(1, 0), options=b"", magic=0x1A2B3C4D, o="<") -> Block:
    """Section header block (byte order o)."""
    body = struct.pack(o + "IHHq", magic, version[0] & 0xFFFF, version[1] & 0xFFFF, -1) + options
    return Block(0x0A0D0D0A, body, o=o)


def idb(linktype=1, snaplen=262_144, options=b"", o="<") -> Block:
    """Interface description block."""
    return Block(1, struct.pack(o + "HHI", linktype & 0xFFFF, 0, snaplen & 0xFFFFFFFF) + options,
                 o=o)


def epb(data: bytes, iface=0, ts=1_700_000_000_000_000, caplen=None, origlen=None,
        options=b"", o="<") -> Block:
    """Enhanced packet block (timestamp in the interface's units)."""
    cap = len(data) if caplen is None else caplen
    orig = len(data) if origlen is None else origlen
    body = struct.pack(o + "IIIII", iface & 0xFFFFFFFF, (ts >> 32) & 0xFFFFFFFF,
                       ts & 0xFFFFFFFF, cap & 0xFFFFFFFF, orig & 0xFFFFFFFF) + data
    if options:
        body += b"\0" * (-len(body) % 4) + options
    return Block(6, body, o=o)


def spb(data: bytes, origlen=None, o="<") -> Block:
    """Simple packet block."""
    orig = len(data) if origlen is None else origlen
    return Block(3, struct.pack(o + "I", orig & 0xFFFFFFFF) + data, o=o)


def opb(data: bytes, iface=0, ts=1_700_000_000_000_000, o="<") -> Block:
    """Obsolete packet block (16-bit interface id, 16-bit drops)."""
    body = struct.pack(o + "HHIIII", iface & 0xFFFF, 0, (ts >> 32) & 0xFFFFFFFF,
                       ts & 0xFFFFFFFF, len(data), len(data)) + data
    return Block(2, body, o=o)


@dataclass
class Pcapng:
    """A pcapng file: a list of blocks (the first one should be a section header)."""

    blocks: list[Block] = field(default_factory=list)

    def encode(self) -> bytes:
        return b"".join(b.encode() for b in self.blocks)


def pcapng_of(packets: list[bytes], idb_options=b"", ifaces=1, rng=None, o="<") -> Pcapng:
    """A one-section pcapng (byte order o) of `packets` over `ifaces` Ethernet interfaces."""
    blocks = [shb(o=o)] + [idb(options=idb_options, o=o) for _ in range(ifaces)]
    for i, p in enumerate(packets):
        iface = rng.randrange(ifaces) if rng else 0
        blocks.append(epb(p, iface=iface, ts=1_700_000_000_000_000 + i * 1000, o=o))
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


# -- NetMon 2.x --------------------------------------------------------------------------------

NETMON_TRAILER = {0: 0, 1: 2, 2: 6}  # minor version -> trailer bytes (3 and on: 15)


@dataclass
class NetmonFrame:
    """One NetMon frame: header fields may lie about the data."""

    data: bytes
    ts_us: int = 0
    origlen: int | None = None
    caplen: int | None = None
    media: int = 1


@dataclass
class Netmon:
    """A NetMon 2.x file: header, frames, then the frame table (offsets may be set to lie)."""

    frames: list[NetmonFrame]
    minor: int = 3
    major: int = 2
    media: int = 1
    start: tuple = (2024, 3, 2, 5, 9, 0, 0, 0)  # SYSTEMTIME: year, month, weekday, day, h, m, s, ms
    table: list[int] | None = None  # None: the true offsets
    table_off: int | None = None
    table_len: int | None = None
    cut_table: bool = False  # leave the table out (a capture stopped before it was written)

    def encode(self) -> bytes:
        trailer = NETMON_TRAILER.get(self.minor, 15)
        body, offs, pos = [], [], 128
        for f in self.frames:
            cap = len(f.data) if f.caplen is None else f.caplen
            orig = len(f.data) if f.origlen is None else f.origlen
            tail = struct.pack("<H", f.media & 0xFFFF) + b"\0" * max(0, trailer - 2)
            rec = (struct.pack("<QII", f.ts_us & (2**64 - 1), orig & 0xFFFFFFFF, cap & 0xFFFFFFFF)
                   + f.data + tail[:trailer])
            offs.append(pos)
            body.append(rec)
            pos += len(rec)
        table = offs if self.table is None else self.table
        blob = b"".join(struct.pack("<I", o & 0xFFFFFFFF) for o in table)
        t_off = pos if self.table_off is None else self.table_off
        t_len = len(blob) if self.table_len is None else self.table_len
        head = bytearray(128)
        head[:4] = b"GMBU"
        head[4], head[5] = self.minor & 0xFF, self.major & 0xFF
        struct.pack_into("<H", head, 6, self.media & 0xFFFF)
        struct.pack_into("<8H", head, 8, *(v & 0xFFFF for v in self.start))
        struct.pack_into("<II", head, 24, t_off & 0xFFFFFFFF, t_len & 0xFFFFFFFF)
        return bytes(head) + b"".join(body) + (b"" if self.cut_table else blob)


def netmon_of(packets: list[bytes], minor: int = 3) -> Netmon:
    """A NetMon 2.x file of Ethernet `packets`, 1 ms apart."""
    return Netmon([NetmonFrame(p, ts_us=i * 1000) for i, p in enumerate(packets)], minor=minor)


# -- classic pcap variants ----------------------------------------------------------------------

PCAP_VARIANTS = {  # name -> (magic, version, extra record-header bytes, extra file-header bytes)
    "standard": (0xA1B2C3D4, (2, 4), 0, 0),
    "modified": (0xA1B2CD34, (2, 4), 8, 0),  # Kuznetsov: ifindex, protocol, pkt_type, pad
    "ss990915": (0xA1B2CD34, (2, 4), 12, 0),
    "ss990417": (0xA1B2C3D4, (2, 4), 8, 0),
    "nokia": (0xA1B2C3D4, (2, 4), 4, 0),
    "ixia": (0x1C0001AC, (2, 4), 0, 4),
    "aix": (0xA1B2C3D4, (2, 2), 0, 0),  # nanoseconds, RFC 1573 ifType 6 for Ethernet
    "old_order": (0xA1B2C3D4, (2, 2), 0, 0),  # before 2.3: origlen came before caplen
}


def pcap_variant(packets: list[bytes], variant: str, order: str = "<") -> bytes:
    """`packets` in one of tshark's pcap layouts (PCAP_VARIANTS)."""
    magic, version, extra, head_extra = PCAP_VARIANTS[variant]
    network = 6 if variant == "aix" else 1
    head = struct.pack(order + "IHHiIII", magic, *version, 0, 0, 262_144, network)
    out = [head + b"\0" * head_extra]
    for i, p in enumerate(packets):
        a, b = len(p), len(p)
        out.append(struct.pack(order + "IIII", 1_700_000_000 + i, i * 1000, a, b)
                   + b"\0" * extra + p)
    return b"".join(out)
