"""Mutation kinds: each builds one hostile capture file from a seeded `random.Random`.

A mutator returns (file bytes, file suffix). Structural mutators build a valid capture with
`capbuild` and set one field (or a few) to a value the file cannot back; the generic ones flip or
cut bytes of real fixtures, or shuffle their real blocks. `KINDS` maps each kind's name to its
function; `compressed_kinds` adds one kind per compression the reader can read.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

from tests.fuzz import capbuild as cb

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted(
    p for d in ("edge", "rpc", "public") for p in (ROOT / "fixtures" / "pcaps" / d).iterdir()
    if p.suffix in (".pcap", ".pcapng") and p.stat().st_size < 200_000
)
_BYTES: dict[Path, bytes] = {}

# values a length or count field is set to: edges, off-by-ones and claims no file can back
_HOSTILE_U32 = (0, 1, 3, 4, 7, 8, 11, 12, 13, 15, 16, 31, 32, 33, 65_535, 65_536, 262_144,
                262_145, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFC, 0xFFFFFFFF)
_HOSTILE_U16 = (0, 1, 2, 3, 4, 7, 8, 9, 255, 256, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
_LINKTYPES = (0, 1, 101, 108, 113, 228, 229, 276, 105, 127, 147, 0xFFFF, 0x03FFFFFF, 0xFFFFFFFF)


def fixture_bytes(path: Path) -> bytes:
    """A fixture's bytes, read once."""
    if path not in _BYTES:
        _BYTES[path] = path.read_bytes()
    return _BYTES[path]


def _u32(rng: random.Random) -> int:
    return rng.choice(_HOSTILE_U32) if rng.random() < 0.8 else rng.getrandbits(32)


def _u16(rng: random.Random) -> int:
    return rng.choice(_HOSTILE_U16) if rng.random() < 0.8 else rng.getrandbits(16)


def _packets(rng: random.Random, n=None) -> list[bytes]:
    return cb.sample_packets(rng, n or rng.randint(1, 12))


def _order(rng: random.Random) -> str:
    """A section byte order: big-endian one time in three (the reader's non-native path)."""
    return ">" if rng.random() < 1 / 3 else "<"


def _pick(rng: random.Random, n: int, k: int | None = None) -> list[int]:
    return rng.sample(range(n), min(n, k or rng.randint(1, 3)))


# -- classic pcap ------------------------------------------------------------------------------

def pcap_header(rng):
    """File header: magic, version, snaplen, link type."""
    cap = cb.pcap_of(_packets(rng), nano=rng.random() < 0.3)
    field = rng.randrange(4)
    if field == 0:
        cap.magic = rng.choice((0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1, 0xA1B2CD34,
                                0x0A0D0D0A, 0, rng.getrandbits(32)))
    elif field == 1:
        cap.version = (_u16(rng), _u16(rng))
    elif field == 2:
        cap.snaplen = _u32(rng)
    else:
        cap.linktype = rng.choice(_LINKTYPES) if rng.random() < 0.8 else rng.getrandbits(32)
    if rng.random() < 0.2:
        cap.order = ">"
    return cap.encode(), ".pcap"


def pcap_record_lengths(rng):
    """Record caplen/origlen: zero, past the data, past the file, 4 GB."""
    cap = cb.pcap_of(_packets(rng))
    for i in _pick(rng, len(cap.records)):
        rec = cap.records[i]
        if rng.random() < 0.6:
            rec.caplen = _u32(rng) if rng.random() < 0.7 else len(rec.data) + rng.randint(-20, 20)
        else:
            rec.origlen = _u32(rng)
    return cap.encode(), ".pcap"


def pcap_timestamps(rng):
    """Record timestamps: 0, 2**32-1, fractions of a second past 10**9, out of order."""
    cap = cb.pcap_of(_packets(rng), nano=rng.random() < 0.5)
    for i in _pick(rng, len(cap.records)):
        cap.records[i].ts_sec = rng.choice((0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.getrandbits(32)))
        cap.records[i].ts_frac = rng.choice((0, 999_999, 1_000_000, 999_999_999, 0xFFFFFFFF))
    return cap.encode(), ".pcap"


def linktype_payloads(rng):
    """Every link type the decoder knows, with frames too short for its header."""
    lt = rng.choice((0, 1, 101, 108, 113, 228, 229, 276))
    pkts = []
    for p in _packets(rng):
        ip = p[14:]
        head = {0: struct.pack("<I", 2), 108: struct.pack(">I", 2), 113: b"\0" * 14 + b"\x08\0",
                276: b"\0" * 20, 1: p[:14]}.get(lt, b"")
        frame = head + ip
        pkts.append(frame[: rng.randint(0, len(frame))] if rng.random() < 0.4 else frame)
    return cb.pcap_of(pkts, linktype=lt).encode(), ".pcap"


def pcap_variants(rng):
    """tshark's other pcap layouts (modified, Nokia, IXIA, AIX, pre-2.3), then one field broken."""
    variant = rng.choice(sorted(cb.PCAP_VARIANTS))
    data = bytearray(cb.pcap_variant(_packets(rng), variant, _order(rng)))
    k = rng.randrange(4)
    if k == 0 and len(data) > 40:  # a record length somewhere in the first records
        at = rng.randrange(24, min(len(data), 200) - 4)
        data[at : at + 4] = struct.pack("<I", _u32(rng))
    elif k == 1:
        data = data[: rng.randrange(len(data))]
    elif k == 2:
        struct.pack_into("<HH", data, 4, _u16(rng), _u16(rng))  # version: picks the layout
    return bytes(data), ".pcap"


# -- NetMon ------------------------------------------------------------------------------------

def netmon_header(rng):
    """NetMon 2.x header: version, media type, start time, frame-table offset and length."""
    cap = cb.netmon_of(_packets(rng), minor=rng.choice((0, 1, 2, 3, 4, 255)))
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(6)
        if k == 0:
            cap.media = rng.choice((0, 1, 2, 3, 7, 8, 9, 0xE001, 0xE065, 0xE085, 0xFFE0, 0xFFFF,
                                    rng.getrandbits(16)))
        elif k == 1:
            cap.start = tuple(rng.choice((0, 1, 12, 13, 31, 32, 59, 60, 999, 1000, 0xFFFF))
                              for _ in range(8))
        elif k == 2:
            cap.table_off = _u32(rng)
        elif k == 3:
            cap.table_len = _u32(rng) if rng.random() < 0.7 else rng.choice((1, 2, 3, 5))
        elif k == 4:
            cap.cut_table = True  # stopped before the table was written: walked from byte 128
        else:
            cap.major = rng.choice((1, 3, 0xFF))
    return cap.encode(), ".cap"


def netmon_frames(rng):
    """NetMon frames: caplen/origlen lies, table offsets into nowhere, repeats, media types."""
    pk = _packets(rng)
    cap = cb.netmon_of(pk, minor=rng.choice((1, 2, 3)))
    offs = None
    for _ in range(rng.randint(1, 3)):
        f = rng.choice(cap.frames)
        k = rng.randrange(5)
        if k == 0:
            f.caplen = _u32(rng)
        elif k == 1:
            f.origlen = _u32(rng)
        elif k == 2:
            f.media = rng.choice((0, 1, 7, 0xE001, 0xE08A, 0xFFFE, rng.getrandbits(16)))
        elif k == 3:
            f.ts_us = rng.choice((2**63, 2**64 - 1, rng.getrandbits(64)))
        else:
            offs = offs or [0] * len(cap.frames)
            offs[rng.randrange(len(offs))] = _u32(rng)
    if offs is not None:  # the true offsets, some replaced by lies; or many repeats of one
        true = [128]
        for fr in cap.frames[:-1]:
            true.append(true[-1] + 16 + len(fr.data) + cb.NETMON_TRAILER.get(cap.minor, 15))
        cap.table = [t if o == 0 else o for t, o in zip(true, offs, strict=True)]
        if rng.random() < 0.2:
            cap.table = [true[0]] * rng.choice((1000, 50_000))
    return cap.encode(), ".cap"


# -- pcapng ------------------------------------------------------------------------------------

def ng_block_lengths(rng):
    """Block total length, leading or trailing copy or both: small, unaligned, huge."""
    o = _order(rng)
    cap = cb.pcapng_of(_packets(rng), o=o)
    for i in _pick(rng, len(cap.blocks)):
        blk = cap.blocks[i]
        which = rng.randrange(3)
        value = _u32(rng) if rng.random() < 0.7 else len(blk.encode()) + rng.choice((-4, -1, 1, 4))
        if which in (0, 2):
            blk.length = value
        if which in (1, 2):
            blk.trailer = value
    return cap.encode(), ".pcapng"


def ng_section_header(rng):
    """Section header: byte-order magic, version, a second section in the other byte order."""
    o = _order(rng)
    cap = cb.pcapng_of(_packets(rng), o=o)
    k = rng.randrange(3)
    if k == 0:
        cap.blocks[0] = cb.shb(o=o, magic=rng.choice((0x4D3C2B1A, 0, rng.getrandbits(32))))
    elif k == 1:
        cap.blocks[0] = cb.shb(o=o, version=(_u16(rng), _u16(rng)))
    else:  # a second section in the other byte order, or one whose magic lies about it
        other = "<" if o == ">" else ">"
        second = bytearray(cb.pcapng_of(_packets(rng), o=other).encode())
        if rng.random() < 0.3:
            second[8:12] = second[8:12][::-1]
        return cap.encode() + bytes(second), ".pcapng"
    return cap.encode(), ".pcapng"


def _idb_options(rng, o="<") -> bytes:
    opts = b""
    for _ in range(rng.randint(1, 4)):
        code = rng.choice((2, 3, 4, 8, 9, 9, 9, 10, 11, 13, 14, 14, 1, 0, rng.getrandbits(16)))
        if code == 9:  # if_tsresol: every byte value is possible
            value = bytes([rng.randrange(256)])
        elif code == 14:  # if_tsoffset: any int64
            value = struct.pack(o + "q", rng.choice((0, 1, -1, 2**62, -(2**63), 2**63 - 1,
                                                  rng.getrandbits(63))))
        elif code == 13:  # if_fcslen
            value = bytes([rng.randrange(256)])
        elif code == 1:  # opt_comment
            value = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        else:
            value = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        length = None if rng.random() < 0.6 else _u16(rng)
        opts += cb.ng_option(code, value, length, o)
    if rng.random() < 0.7:
        opts += cb.ng_option(0, b"", o=o)
    return opts


def ng_interface_options(rng):
    """IDB options: if_tsresol, if_tsoffset, if_fcslen, comments, lengths past the block."""
    o = _order(rng)
    cap = cb.pcapng_of(_packets(rng), idb_options=_idb_options(rng, o), o=o)
    return cap.encode(), ".pcapng"


def ng_many_options(rng):
    """An IDB carrying a very large number of options (or claiming to)."""
    o = _order(rng)
    n = rng.choice((1000, 20_000, 100_000))
    opts = cb.ng_option(9, bytes([rng.randrange(256)]), o=o) * n
    cap = cb.pcapng_of(_packets(rng), idb_options=opts, o=o)
    if rng.random() < 0.5:  # ...or one IDB whose length claims a million options' worth
        cap.blocks[1].length = cap.blocks[1].trailer = 16 + 8 * 1_000_000
    return cap.encode(), ".pcapng"


def ng_interface_ids(rng):
    """Packet blocks naming interfaces that do not exist; many interfaces; IDBs mid-file."""
    o = _order(rng)
    pk = _packets(rng)
    n_if = rng.choice((1, 2, 3))
    cap = cb.pcapng_of(pk, ifaces=n_if, rng=rng, o=o)
    k = rng.randrange(3)
    if k == 0:
        for i in _pick(rng, len(pk)):
            cap.blocks[1 + n_if + i] = cb.epb(pk[i], o=o, iface=_u32(rng))
    elif k == 1:  # 100,000 interfaces (2 MB of IDBs) then packets on the last ones
        many = rng.choice((1000, 100_000))
        cap.blocks[1:1] = [cb.idb(o=o, linktype=rng.choice(_LINKTYPES) & 0xFFFF)
                           for _ in range(many)]
        for i in range(len(pk)):
            cap.blocks[1 + many + n_if + i] = cb.epb(pk[i], o=o,
                                                     iface=rng.randrange(many + n_if + 2))
    else:
        cap.blocks.insert(rng.randrange(1, len(cap.blocks) + 1),
                          cb.idb(o=o, linktype=rng.choice(_LINKTYPES) & 0xFFFF,
                                 options=_idb_options(rng, o)))
    return cap.encode(), ".pcapng"


def ng_packet_lengths(rng):
    """EPB caplen/origlen, SPB original length, OPB: values past the block and 4 GB claims."""
    o = _order(rng)
    pk = _packets(rng)
    cap = cb.pcapng_of(pk, o=o)
    for i in _pick(rng, len(pk)):
        k = rng.randrange(4)
        if k == 0:
            cap.blocks[2 + i] = cb.epb(pk[i], o=o, caplen=_u32(rng))
        elif k == 1:
            cap.blocks[2 + i] = cb.epb(pk[i], o=o, origlen=_u32(rng))
        elif k == 2:
            cap.blocks[2 + i] = cb.spb(pk[i], o=o, origlen=_u32(rng) if rng.random() < 0.7 else None)
        else:
            cap.blocks[2 + i] = cb.opb(pk[i], o=o, iface=_u16(rng) if rng.random() < 0.5 else 0)
    return cap.encode(), ".pcapng"


def ng_timestamps(rng):
    """EPB timestamps at the extremes, with odd resolutions and offsets."""
    o = _order(rng)
    pk = _packets(rng)
    opts = b""
    if rng.random() < 0.7:
        opts += cb.ng_option(9, bytes([rng.randrange(256)]), o=o)
    if rng.random() < 0.5:
        offset = rng.choice((2**62, -(2**62), 2**63 - 1, -1))
        opts += cb.ng_option(14, struct.pack(o + "q", offset), o=o)
    cap = cb.pcapng_of(pk, idb_options=opts, o=o)
    for i in _pick(rng, len(pk)):
        ts = rng.choice((0, 1, 2**63, 2**64 - 1, 2**32 - 1, rng.getrandbits(64)))
        cap.blocks[2 + i] = cb.epb(pk[i], o=o, ts=ts)
    return cap.encode(), ".pcapng"


def ng_block_types(rng):
    """Unknown, custom and reserved block types between the packets, some with bodies."""
    o = _order(rng)
    cap = cb.pcapng_of(_packets(rng), o=o)
    for _ in range(rng.randint(1, 4)):
        btype = rng.choice((4, 5, 7, 8, 9, 10, 0xBAD, 0xBAD | 0x40000000, 0x0A0D0D0A ^ 1,
                            rng.getrandbits(32)))
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40, 4)))
        cap.blocks.insert(rng.randrange(1, len(cap.blocks) + 1), cb.Block(btype, body, o=o))
    return cap.encode(), ".pcapng"


# -- network and transport headers --------------------------------------------------------------

def _container(rng, frames: list[bytes]):
    if rng.random() < 0.5:
        return cb.pcap_of(frames).encode(), ".pcap"
    return cb.pcapng_of(frames).encode(), ".pcapng"


def ipv4_header(rng):
    """IPv4 IHL (0..15) and total length (0, below IHL, past the frame), fragments."""
    frames = []
    for _ in range(rng.randint(1, 8)):
        body = cb.tcp() if rng.random() < 0.5 else cb.udp(payload=b"x" * rng.randrange(30))
        ip = cb.ipv4(6 if len(body) >= 20 and body[12] else 17, body,
                     ihl=rng.randrange(16) if rng.random() < 0.7 else 5,
                     total=_u16(rng) if rng.random() < 0.6 else None,
                     frag=rng.choice((0, 0x2000, 0x0001, 0x1FFF, 0x4000, 0xFFFF)))
        cut = rng.randint(0, len(ip)) if rng.random() < 0.3 else len(ip)
        frames.append(cb.ether(ip[:cut]))
    return _container(rng, frames)


def ipv6_header(rng):
    """IPv6 payload length and extension chains: loops, lengths past the end, 10 deep."""
    frames = []
    for _ in range(rng.randint(1, 6)):
        depth = rng.randint(0, 10)
        kinds = [rng.choice((0, 43, 44, 60, 51)) for _ in range(depth)]
        ext = []
        for j, kind in enumerate(kinds):
            nxt = kinds[j + 1] if j + 1 < len(kinds) else 6
            if rng.random() < 0.15:
                nxt = kind  # a header naming itself next: a loop
            units = None if rng.random() < 0.7 else rng.randrange(256)
            ext.append(cb.ext_header(kind, nxt, units))
        ip = cb.ipv6(6, cb.tcp(), plen=_u16(rng) if rng.random() < 0.4 else None, ext=ext)
        cut = rng.randint(0, len(ip)) if rng.random() < 0.3 else len(ip)
        frames.append(cb.ether(ip[:cut], ethertype=0x86DD))
    return _container(rng, frames)


def transport_header(rng):
    """TCP data offset 0..15 and UDP length 0..65535 against the bytes really there."""
    frames = []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.5:
            body = cb.tcp(doff=rng.randrange(16), payload=b"\x05\x00\x0b\x03" * rng.randrange(4))
            proto = 6
        else:
            body = cb.udp(payload=b"y" * rng.randrange(20), length=_u16(rng))
            proto = 17
        body = body[: rng.randint(0, len(body))] if rng.random() < 0.3 else body
        if rng.random() < 0.5:
            frames.append(cb.ether(cb.ipv4(proto, body)))
        else:
            frames.append(cb.ether(cb.ipv6(proto, body), ethertype=0x86DD))
    return _container(rng, frames)


def vlan_stack(rng):
    """0 to 8 VLAN tags of every TPID, frames cut inside the stack."""
    frames = []
    for _ in range(rng.randint(1, 6)):
        tags = [(rng.choice((0x8100, 0x88A8, 0x9100, 0x9200)), rng.getrandbits(16))
                for _ in range(rng.randint(0, 8))]
        f = cb.ether(cb.ipv4(6, cb.tcp()), vlans=tags)
        frames.append(f[: rng.randint(0, len(f))] if rng.random() < 0.3 else f)
    return _container(rng, frames)


def icmp_quotes(rng):
    """ICMP(v6) unreachables quoting truncated, lying or nested headers."""
    frames = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.5:
            inner = cb.ipv4(rng.choice((6, 17, 1, 132)), cb.tcp(), ihl=rng.randrange(16),
                            frag=rng.choice((0, 1, 0x2000)))
            if rng.random() < 0.2:  # an ICMP error quoting an ICMP error
                inner = cb.ipv4(1, cb.icmp(3, 1, inner))
            quoted = inner[: rng.randint(0, len(inner))]
            frames.append(cb.ether(cb.ipv4(1, cb.icmp(3, rng.randrange(16), quoted))))
        else:
            inner = cb.ipv6(rng.choice((6, 17, 58)), cb.tcp())
            quoted = inner[: rng.randint(0, len(inner))]
            frames.append(cb.ether(cb.ipv6(58, cb.icmp(1, rng.randrange(8), quoted)),
                                   ethertype=0x86DD))
    return _container(rng, frames)


# -- generic -----------------------------------------------------------------------------------

def byte_flips(rng):
    """A real fixture with 1-16 bytes set at random."""
    src = rng.choice(FIXTURES)
    out = bytearray(fixture_bytes(src))
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out), src.suffix


def cuts(rng):
    """A real fixture cut at a random byte (or with a random slice removed)."""
    src = rng.choice(FIXTURES)
    data = fixture_bytes(src)
    a = rng.randrange(len(data))
    if rng.random() < 0.5:
        return data[:a], src.suffix
    b = rng.randrange(a, len(data))
    return data[:a] + data[b:], src.suffix


def _ng_blocks(data: bytes) -> list[bytes]:
    """Split a little-endian pcapng into its blocks (stops at the first bad length)."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        blen = struct.unpack_from("<I", data, pos + 4)[0]
        if blen < 12 or pos + blen > len(data):
            break
        out.append(data[pos : pos + blen])
        pos += blen
    return out


def _pcap_records(data: bytes) -> list[bytes]:
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, pos = [], 24
    while pos + 16 <= len(data):
        n = struct.unpack_from(order + "I", data, pos + 8)[0]
        if pos + 16 + n > len(data):
            break
        out.append(data[pos : pos + 16 + n])
        pos += 16 + n
    return out


def block_sequences(rng):
    """Random sequences of a real file's blocks or records: dropped, repeated, reordered."""
    src = rng.choice(FIXTURES)
    data = fixture_bytes(src)
    if src.suffix == ".pcapng" and data[8:12] == b"\x4d\x3c\x2b\x1a":
        parts, head = _ng_blocks(data), b""
    else:
        parts, head = _pcap_records(data), data[:24]
    if not parts:
        return data, src.suffix
    seq = [rng.choice(parts) for _ in range(rng.randint(1, 2 * len(parts) + 1))]
    if rng.random() < 0.3 and head:
        head = b""  # records with no file header
    return head + b"".join(seq), src.suffix


_MEMBER_NAMES = ("a.pcap", "ring_00001.pcapng", "ring_00002.pcapng", "x.cap", "dir/y.pcap",
                 "=cmd|calc.pcap", "\x1b[31mred.pcap", "../../etc/evil.pcap", ".hidden.pcap",
                 "__MACOSX/z.pcap", "noext", "sp ace.pcap", "a" * 300 + ".pcap")


def _archive_of(rng, members: list[tuple[str, bytes]], deflate=False) -> tuple[bytes, str]:
    import io
    import tarfile
    import zipfile

    buf = io.BytesIO()
    if deflate or rng.random() < 0.5:
        method = zipfile.ZIP_DEFLATED if deflate else rng.choice((zipfile.ZIP_STORED,
                                                                  zipfile.ZIP_DEFLATED))
        with zipfile.ZipFile(buf, "w", method) as zf:
            for name, data in members:
                zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
        return buf.getvalue(), ".zip"
    mode, suffix = rng.choice((("w", ".tar"), ("w:gz", ".tar.gz")))
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue(), suffix


def archives(rng):
    """zip and tar(.gz) capture sets: hostile member names, broken members, archive cut or hit."""
    inner = [k for k in KINDS if k not in ("archives", "archive_bombs", "byte_flips", "cuts")]
    members = []
    for _ in range(rng.randint(1, 4)):
        data, _sfx = KINDS[rng.choice(inner)](rng) if rng.random() < 0.5 else (
            cb.pcap_of(_packets(rng)).encode(), ".pcap")
        members.append((rng.choice(_MEMBER_NAMES), data))
    blob, suffix = _archive_of(rng, members)
    out = bytearray(blob)
    k = rng.randrange(4)
    if k == 0:
        out = out[: rng.randrange(1, len(out))]
    elif k == 1:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out), suffix


def archive_bombs(rng):
    """A small file that inflates a lot: a capture header, then zeros (gzip or zip)."""
    kind = rng.choice(("pcap", "pcapng", "netmon"))
    head = {"pcap": cb.pcap_of([]).encode(), "pcapng": cb.pcapng_of([]).encode(),
            "netmon": cb.netmon_of([]).encode()[:128]}[kind]
    suffix = {"pcap": ".pcap", "pcapng": ".pcapng", "netmon": ".cap"}[kind]
    size = (300 << 20) if kind == "netmon" and rng.random() < 0.2 else rng.choice((1, 8, 32)) << 20
    if rng.random() < 0.5:  # chained gzip members of 16 MB of zeros, ~16 KB each
        return cb.COMPRESSORS["gzip"][1](head) + _zero_member() * max(1, size >> 24), suffix + ".gz"
    return _archive_of(rng, [("bomb" + suffix, head + bytes(size))], deflate=True)


_ZERO_MEMBER: list[bytes] = []


def _zero_member() -> bytes:
    """A gzip member of 16 MB of zeros (made once)."""
    if not _ZERO_MEMBER:
        _ZERO_MEMBER.append(cb.COMPRESSORS["gzip"][1](bytes(16 << 20)))
    return _ZERO_MEMBER[0]


def supported_compressions() -> list[str]:
    """Compressions the reader reads: try a tiny pcap through each one."""
    import tempfile
    import warnings

    from auditor.capture.packets import read_packets
    from auditor.errors import AuditorError

    good = []
    sample = cb.pcap_of(cb.sample_packets(random.Random(0), 3)).encode()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (suffix, compress) in cb.COMPRESSORS.items():
            try:
                data = compress(sample)
            except ImportError:
                continue
            path = Path(tmp) / f"probe.pcap{suffix}"
            path.write_bytes(data)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if len(read_packets([path]).packets) == 3:
                        good.append(name)
            except AuditorError:
                pass
    return good


def _compressed(name: str) -> Callable:
    suffix, compress = cb.COMPRESSORS[name]

    def mutate(rng):
        inner = rng.choice([k for k in KINDS if k not in ("byte_flips", "cuts")])
        data, sfx = KINDS[inner](rng) if rng.random() < 0.4 else (
            cb.pcapng_of(_packets(rng)).encode(), ".pcapng")
        z = bytearray(compress(data))
        k = rng.randrange(4)
        if k == 0:
            z = z[: rng.randrange(1, len(z))]
        elif k == 1:
            for _ in range(rng.randint(1, 6)):
                z[rng.randrange(len(z))] = rng.randrange(256)
        elif k == 2:  # a second stream appended, or trailing junk
            z += compress(data) if rng.random() < 0.5 else bytes(rng.getrandbits(8)
                                                                 for _ in range(rng.randrange(1, 64)))
        return bytes(z), sfx + suffix

    mutate.__doc__ = f"{name} streams (of valid or mutated captures) cut, corrupted or chained."
    return mutate


KINDS: dict[str, Callable] = {
    f.__name__: f for f in (
        pcap_header, pcap_record_lengths, pcap_timestamps, linktype_payloads, pcap_variants,
        netmon_header, netmon_frames,
        ng_block_lengths, ng_section_header, ng_interface_options, ng_many_options,
        ng_interface_ids, ng_packet_lengths, ng_timestamps, ng_block_types,
        ipv4_header, ipv6_header, transport_header, vlan_stack, icmp_quotes,
        byte_flips, cuts, block_sequences, archives, archive_bombs,
    )
}


def all_kinds(compressions: list[str]) -> dict[str, Callable]:
    """KINDS plus one kind per compression the reader supports."""
    out = dict(KINDS)
    for name in compressions:
        out[f"compressed_{name}"] = _compressed(name)
    return out
