"""Link layers of capture records with numpy: Ethernet (VLAN tags, MPLS label stacks, PPPoE
sessions), Linux cooked capture, BSD loopback and raw IP; and the big-endian field readers the
header decoders share. `headers` decodes what follows.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from auditor.capture.records import BAD_INTERFACE, NON_PACKET, UNSUPPORTED_MEDIA, byte_rows

_ETHER_BASED = {1: (12, 14), 113: (14, 16), 276: (0, 20)}  # link type -> (ethertype at, header)
_RAW_IP = (101, 12, 14, 228, 229)
_PSEUDO_LABELS = {BAD_INTERFACE: "bad interface id", UNSUPPORTED_MEDIA: "unsupported NetMon media type"}


# Big-endian fields at column `at` of an (n, k) byte array whose rows are contiguous: a view
# of the field's bytes as one number each (no copy of the bytes), then one conversion.
def be16(h: np.ndarray, at: int) -> np.ndarray:
    """The big-endian 16-bit field at column `at` of each row."""
    return h[:, at : at + 2].view(">u2")[:, 0].astype(np.uint16)


def be32(h: np.ndarray, at: int) -> np.ndarray:
    """The big-endian 32-bit field at column `at` of each row."""
    return h[:, at : at + 4].view(">u4")[:, 0].astype(np.uint32)


def be64(h: np.ndarray, at: int) -> np.ndarray:
    """The big-endian 64-bit field at column `at` of each row."""
    return h[:, at : at + 8].view(">u8")[:, 0].astype(np.uint64)


def link_decode(buf, base, cap, linktype):
    """Link layer of every record, grouped by link type: (l3 offset, version, reason, skips)."""
    n = len(base)
    l3 = np.zeros(n, np.int64)
    ver = np.zeros(n, np.uint8)
    reason = np.zeros(n, np.int8)
    skipped: Counter[str] = Counter()
    if isinstance(linktype, int | np.integer):
        groups = [(int(linktype), None)]
    else:
        groups = [(int(lt), linktype == lt) for lt in np.unique(linktype)]
    for lt, m in groups:
        sel = slice(None) if m is None else m
        if lt == NON_PACKET:  # valid records without a frame (NetMon events): not IP
            continue
        res = link_layer(buf, base[sel], cap[sel], lt)
        if res is None:
            label = _PSEUDO_LABELS.get(lt) or f"linktype {lt}"
            skipped[label] += n if m is None else int(m.sum())
            reason[sel] = -1  # counted here, not as non-IP nor by reason code
            continue
        l3[sel], ver[sel], reason[sel] = res
    return l3, ver, reason, skipped


def link_layer(buf, base, caplen, lt):
    """Return (l3 offset, IP version or 0, reason code) per record, or None if lt is unknown."""
    n = len(base)
    if lt in _ETHER_BASED:
        et_at, l2 = _ETHER_BASED[lt]
        head = byte_rows(buf, base, l2 + 18)  # room for up to four VLAN tags
        ok = caplen >= l2
        et = be16(head, et_at)
        l2 = np.full(n, l2, np.int64)
        ar = np.arange(n)
        for _ in range(4):  # 802.1Q, 802.1ad and pre-standard QinQ tags, outermost first
            tag = ok & ((et == 0x8100) | (et == 0x88A8) | (et == 0x9100)) & (caplen >= l2 + 4)
            if not tag.any():
                break
            inner = (head[ar, l2 + 2].astype(np.uint16) << 8) | head[ar, l2 + 3]
            et = np.where(tag, inner, et)
            l2 = l2 + 4 * tag
        l2, et = _mpls_pppoe(buf, base, caplen, l2, et, ok)
        ver = np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0)).astype(np.uint8)
        ver[~ok] = 0
        return l2, ver, np.where(ok, 0, 1).astype(np.int8)
    if lt in (0, 108):  # BSD loopback: 4-byte address family
        head = byte_rows(buf, base, 4)
        if lt == 108:  # LOOP: network byte order
            af = head.view(">u4")[:, 0].astype(np.uint32)
        else:  # NULL: the writer's byte order, so accept either (as Wireshark does)
            af = head.view("<u4")[:, 0].astype(np.uint32)
            af = np.where(af > 0xFFFF, af.byteswap(), af)
        ok = caplen >= 4
        ver = np.where(af == 2, 4, np.where(np.isin(af, (24, 28, 30)), 6, 0)).astype(np.uint8)
        ver[~ok] = 0
        return np.full(n, 4, np.int64), ver, np.where(ok, 0, 1).astype(np.int8)
    if lt in _RAW_IP:
        nibble = buf[np.minimum(base, len(buf) - 1)] >> 4
        if lt == 228:
            ver = np.full(n, 4, np.uint8)
        elif lt == 229:
            ver = np.full(n, 6, np.uint8)
        else:  # raw IP of either version; anything else is a bad header, not "non-IP"
            ver = np.where(nibble == 6, 6, 4).astype(np.uint8)
        return np.zeros(n, np.int64), ver, np.where(caplen >= 1, 0, 3).astype(np.int8)
    return None


_MPLS = (0x8847, 0x8848)  # unicast, multicast
_PPPOE_SESSION = 0x8864
_MPLS_DEPTH = 8  # labels stepped over at most


def _mpls_pppoe(buf, base, caplen, l2, et, ok):
    """Step over MPLS label stacks and PPPoE session headers (carrier and DSL links hand frames
    over in them): the link header's end and the EtherType of what follows. Under an MPLS
    stack the packet is IPv4 or IPv6 by its first nibble, as Wireshark guesses it; anything
    else (a pseudowire's control word, a stack deeper than _MPLS_DEPTH) is not IP. Under PPPoE,
    PPP protocol 0x0021 is IPv4 and 0x0057 IPv6."""
    m = np.flatnonzero(ok & np.isin(et, _MPLS))
    p = np.flatnonzero(ok & (et == _PPPOE_SESSION))
    if not (len(m) or len(p)):
        return l2, et
    et = np.array(et, dtype=np.uint16)
    l2 = np.array(l2, dtype=np.int64)
    if len(m):
        at = base[m] + l2[m]
        off = np.zeros(len(m), np.int64)
        live = np.ones(len(m), bool)  # still in the stack
        for _ in range(_MPLS_DEPTH):
            bottom = (byte_rows(buf, at + off, 4)[:, 2] & 1) != 0
            off += 4 * live
            live &= ~bottom
            if not live.any():
                break
        nibble = byte_rows(buf, at + off, 1)[:, 0] >> 4
        kind = np.where(nibble == 4, 0x0800, np.where(nibble == 6, 0x86DD, 0))
        et[m] = np.where(~live & (caplen[m] > l2[m] + off), kind, 0)
        l2[m] += off
    if len(p):
        h = byte_rows(buf, base[p] + l2[p], 8)
        session = (h[:, 0] == 0x11) & (h[:, 1] == 0)  # version 1, type 1, code 0: session data
        proto = be16(h, 6)
        kind = np.where(proto == 0x0021, 0x0800, np.where(proto == 0x0057, 0x86DD, 0))
        et[p] = np.where(session & (caplen[p] >= l2[p] + 8), kind, 0)
        l2[p] += 8
    return l2, et
