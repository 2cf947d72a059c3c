"""Tell a capture's container and compression from its first bytes, never from its name.

`compression_of` names the compression wrapping a stream (gzip, zstd, lz4, bzip2, xz) and
`container_of` the capture format inside it: the ones read natively (pcap and its variants, pcapng,
NetMon 2.x), an ETL trace (refused with how to convert it), or None for anything else, which
`convert` hands to editcap.
"""

from __future__ import annotations

from dataclasses import dataclass

SNIFF_BYTES = 64  # bytes of (decompressed) stream the sniffers look at

_COMPRESSIONS = (  # (magic, name); bzip2's "BZh" is checked with its block size digit below
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xfd7zXZ\x00", "xz"),
)

# pcap magic -> (byte order, ns per fraction unit, variant family); the modified magic (a1b2cd34)
# and the standard one each cover several record-header layouts, told apart by `pcap.py`.
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, "standard"),
    b"\xa1\xb2\xc3\xd4": (">", 1000, "standard"),
    b"\x4d\x3c\xb2\xa1": ("<", 1, "nsec"),
    b"\xa1\xb2\x3c\x4d": (">", 1, "nsec"),
    b"\x34\xcd\xb2\xa1": ("<", 1000, "modified"),
    b"\xa1\xb2\xcd\x34": (">", 1000, "modified"),
    b"\xac\x01\x00\x1c": ("<", 1000, "ixia"),  # IXIA hardware/software: 4 more header bytes
    b"\x1c\x00\x01\xac": (">", 1000, "ixia"),
    b"\xab\x01\x00\x1c": ("<", 1000, "ixia"),
    b"\x1c\x00\x01\xab": (">", 1000, "ixia"),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
NETMON2_MAGIC = b"GMBU"


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes of a (decompressed) stream say."""

    container: str | None  # "pcap", "pcapng", "netmon", "etl", or None: ask editcap
    detail: str = ""  # e.g. the pcap variant family


def compression_of(head: bytes) -> str | None:
    """The compression whose magic starts `head`, or None for an uncompressed stream."""
    for magic, name in _COMPRESSIONS:
        if head.startswith(magic):
            return name
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bzip2"
    return None


def container_of(head: bytes, name: str = "") -> Sniffed:
    """The capture format whose magic starts `head` (name is used only to recognise ETL)."""
    if head[:4] in PCAP_MAGICS:
        return Sniffed("pcap", PCAP_MAGICS[head[:4]][2])
    if head[:4] == PCAPNG_MAGIC:
        return Sniffed("pcapng")
    if head[:4] == NETMON2_MAGIC and head[5:6] == b"\x02":  # major version 2
        return Sniffed("netmon")
    if looks_like_etl(head, name):
        return Sniffed("etl")
    return Sniffed(None)


def looks_like_etl(head: bytes, name: str = "") -> bool:
    """An Event Trace Log (netsh trace, pktmon) by its .etl name: its buffers have no magic."""
    return name.lower().endswith(".etl")
