"""Decode IP and transport headers of a chunk of capture records with numpy (the link layer:
`links`).

`decode_chunk` turns one `records.RecordChunk` into packet columns (schema.PACKET_COLUMNS less
the per-file ones), the ICMP destination-unreachable messages with the header they quote, the
non-IP and skipped-record counts, and how many packets were read from inside a tunnel. Loops run
over header depth (VLAN tags, IPv6 extension headers, tunnels in tunnels), never over packets.
"""

from __future__ import annotations

import numpy as np

from auditor.capture.links import be16 as _be16
from auditor.capture.links import be32 as _be32
from auditor.capture.links import be64 as _be64
from auditor.capture.links import link_decode, link_layer
from auditor.capture.records import RecordChunk, byte_rows
from auditor.flows.protocols import QUERY_OF
from auditor.schema import ICMP_ERROR_COLUMNS

_V4_MAPPED = np.uint64(0xFFFF << 32)
_V6_EXT = (0, 43, 44, 51, 60)  # hop-by-hop, routing, fragment, AH, destination options
ICMP_DTYPES = {c.name: np.dtype(c.dtype) for c in ICMP_ERROR_COLUMNS}
# Reasons a record is skipped after its link type is known (index = code in the decoder).
_REASONS = ("", "truncated link-layer header", "bad IP header", "truncated IP header")
_IP_COLUMNS = ("src_ip_hi", "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "proto", "src_port",
               "dst_port", "tcp_flags", "tcp_seq", "payload_len", "payload_head", "ip_id", "frag_offset",
               "more_fragments", "icmp_type", "icmp_code", "payload_b4", "payload_b12", "payload_b20")
PAYLOAD_KEPT = 28  # payload bytes kept per packet: enough for orientation evidence (flows/orient)


def decode_chunk(ch: RecordChunk):
    """Decode one chunk: packet columns (IP rows only), ICMP errors, non-IP and skip counts,
    and the number of packets (of the IP rows) read from inside a tunnel."""
    n = len(ch.data_off)
    width = ch.head.shape[1]
    flat = ch.head.reshape(-1)
    base = np.arange(n, dtype=np.int64) * width + ch.head_start
    room = width - ch.head_start  # bytes of each record the head holds
    cap = np.minimum(ch.caplen, room)
    l3, ver, reason, skipped = link_decode(flat, base, cap, ch.linktype)

    is_ip = ver > 0
    cand = np.flatnonzero(is_ip)
    every = len(cand) == n  # the usual case: every record is IP, so skip the fancy indexing

    def pick(a):
        return a if every or np.ndim(a) == 0 else a[cand]

    l3c = pick(l3)
    rest = pick(ch.origlen).astype(np.int64) - l3c  # original bytes from the IP header on
    ip = _ip_layer(flat, pick(base) + l3c, pick(base) + pick(cap), rest, pick(ver))
    # Rows whose headers reach past the copied head are decoded again from the file bytes.
    room_c = pick(room)
    redo = np.flatnonzero((ip["_deep"] + l3c > room_c) & (pick(ch.caplen) > room_c))
    if len(redo):
        r = cand[redo]
        sub = _ip_layer(ch.buf, ch.data_off[r] + l3[r], ch.data_off[r] + ch.caplen[r],
                        rest[redo], ver[r])
        for name, arr in sub.items():
            if not ip[name].flags.writeable:
                ip[name] = ip[name].copy()
            ip[name][redo] = arr
    redo, opened = _open_tunnels(ch, cand, pick(base), l3, ver, ip, redo)
    reason[cand] = ip["reason"]
    non_ip = int(((ver == 0) & (reason == 0)).sum())
    for code in np.unique(reason[reason > 0]):
        skipped[_REASONS[code]] += int((reason == code).sum())

    keep = ip["reason"] == 0
    idx = cand[keep]
    tunnelled = int(opened[keep].sum())
    if every and keep.all():
        out = {name: ip[name] for name in _IP_COLUMNS}
        out["ts_ns"], out["frame_len"], out["ip_version"] = ch.ts_ns, ch.origlen, ver
    else:
        out = {name: ip[name][keep] for name in _IP_COLUMNS}
        out["ts_ns"], out["frame_len"], out["ip_version"] = (
            ch.ts_ns[idx], ch.origlen[idx], ver[idx])
    out["record_index"] = (idx + ch.first_index).astype(np.uint32)
    out["l3_offset"] = l3[idx].astype(np.uint16)

    errs = {c: np.zeros(0, t) for c, t in ICMP_DTYPES.items()}
    unreach = keep & ip["_unreach"]
    if unreach.any():
        redone = np.zeros(len(cand), bool)
        redone[redo] = True
        u_head = np.flatnonzero(unreach & ~redone)
        u_file = np.flatnonzero(unreach & redone)
        parts = [
            _icmp_errors(flat, ip, u_head, base[cand[u_head]] + cap[cand[u_head]]),
            _icmp_errors(ch.buf, ip, u_file, ch.data_off[cand[u_file]] + ch.caplen[cand[u_file]]),
        ]
        errs = {c: np.concatenate([p[c] for p in parts]) for c in errs}
        order = np.argsort(errs["packet_index"], kind="stable")
        kept_at = np.cumsum(keep) - 1  # candidate row -> row among the kept ones
        errs = {c: a[order] for c, a in errs.items()}
        errs["packet_index"] = kept_at[errs["packet_index"]]
    return out, errs, non_ip, skipped, tunnelled


# UDP ports of the tunnels mirrors and overlays wrap whole frames in: VXLAN (IANA's, and 8472,
# the Linux kernel's and flannel's default), Geneve
VXLAN_PORTS = (4789, 8472)
GENEVE_PORT = 6081
_GRE = 47
_TEB, _ERSPAN_2, _ERSPAN_3 = 0x6558, 0x88BE, 0x22EB  # GRE/Geneve protocol types: Ethernet
_TUNNEL_DEPTH = 3  # tunnels inside tunnels opened at most this deep


def _open_tunnels(ch: RecordChunk, cand, base_c, l3, ver, ip, redo):
    """Decode the packet a tunnel carries in place of the tunnel's own headers: VXLAN and
    Geneve (UDP), GRE with an IP packet or an Ethernet frame inside, and ERSPAN types I, II
    and III (GRE). Traffic mirrors deliver what they copy that way (AWS VPC Traffic Mirroring
    and Azure vTAP in VXLAN, a switch's remote SPAN in ERSPAN), and a flow table of the mirror's
    own tunnel would hide every flow the capture holds. A tunnel whose inside is not a whole IP
    header (cut by the snap length, or not IP) keeps its outer headers: it stays the flow it is.

    Works on `ip` (the candidate rows' fields), `l3` and `ver` (per record) in place; the rows
    opened are decoded from the file's bytes: returns `redo` (rows decoded from there) with them
    added, and which rows were opened. Loops run over nesting depth, never over packets."""
    from_file = np.zeros(len(cand), bool)
    from_file[redo] = True
    stuck = np.zeros(len(cand), bool)  # a tunnel that did not open: not tried again
    opened = np.zeros(len(cand), bool)
    for _ in range(_TUNNEL_DEPTH):
        whole = (ip["reason"] == 0) & (ip["frag_offset"] == 0) & ~ip["more_fragments"] & ~stuck
        proto, dport = ip["proto"], ip["dst_port"]
        udp = whole & (proto == 17) & np.isin(dport, (*VXLAN_PORTS, GENEVE_PORT))
        rows = np.flatnonzero(udp | (whole & (proto == _GRE)))
        if not len(rows):
            break
        r = cand[rows]
        start = ch.data_off[r]
        end = start + ch.caplen[r]
        # the transport header in the file: _t counts from the head array or from the file
        t = ip["_t"][rows] - np.where(from_file[rows], start, base_c[rows]) + start
        inner, ether = _tunnel_inside(ch.buf, t, end, proto[rows], dport[rows])
        l3_new = np.full(len(rows), -1, np.int64)
        ver_new = np.zeros(len(rows), np.uint8)
        e = np.flatnonzero(ether & (inner >= 0))
        if len(e):
            l2, v, bad = link_layer(ch.buf, inner[e], end[e] - inner[e], 1)
            ok = bad == 0
            l3_new[e[ok]] = (inner[e] + l2 - start[e])[ok]
            ver_new[e[ok]] = v[ok]
        i = np.flatnonzero(~ether & (inner >= 0))
        if len(i):
            nibble = ch.buf[inner[i]] >> 4
            l3_new[i] = inner[i] - start[i]
            ver_new[i] = np.where(nibble == 4, 4, np.where(nibble == 6, 6, 0))
        go = np.flatnonzero((ver_new > 0) & (l3_new >= 0) & (l3_new < 1 << 16))
        done = np.zeros(len(rows), bool)
        if len(go):
            sub = _ip_layer(ch.buf, start[go] + l3_new[go], end[go],
                            ch.origlen[r[go]].astype(np.int64) - l3_new[go], ver_new[go])
            fine = sub["reason"] == 0
            go = go[fine]
            at = rows[go]
            for name, arr in sub.items():
                if not ip[name].flags.writeable:
                    ip[name] = ip[name].copy()
                ip[name][at] = arr[fine]
            l3[r[go]] = l3_new[go]
            ver[r[go]] = ver_new[go]
            from_file[at] = opened[at] = done[go] = True
        stuck[rows[~done]] = True
    return np.flatnonzero(from_file), opened


def _tunnel_inside(buf, t, end, proto, dport):
    """Where the packet inside each tunnel starts in `buf` (-1: not a tunnel opened here), and
    whether it is an Ethernet frame (else an IP packet). `t`: the outer transport header."""
    n = len(t)
    inner = np.full(n, -1, np.int64)
    ether = np.zeros(n, bool)
    # VXLAN (RFC 7348): 8 bytes after UDP's, the I flag set, then an Ethernet frame
    h = byte_rows(buf, t + 8, 8)
    vx = (proto == 17) & np.isin(dport, VXLAN_PORTS) & ((h[:, 0] & 0x08) != 0)
    inner[vx], ether[vx] = (t + 16)[vx], True
    # Geneve (RFC 8926): version 0, options of 4-byte words, then what its protocol type says
    gn = (proto == 17) & (dport == GENEVE_PORT) & ((h[:, 0] >> 6) == 0)
    kind = _be16(h, 2)
    at = t + 16 + (h[:, 0] & 0x3F).astype(np.int64) * 4
    for is_ether, types in ((True, (_TEB,)), (False, (0x0800, 0x86DD))):
        m = gn & np.isin(kind, types)
        inner[m], ether[m] = at[m], is_ether
    # GRE (RFC 2784, 2890): version 0, no routing; checksum, key and sequence words optional
    g = byte_rows(buf, t, 4)
    flags, kind = _be16(g, 0), _be16(g, 2)
    gre = (proto == _GRE) & ((flags & 0x4007) == 0)
    at = t + 4 + 4 * (((flags & 0x8000) != 0).astype(np.int64) + ((flags & 0x2000) != 0)
                      + ((flags & 0x1000) != 0))
    for is_ether, m, skip in (
            (False, gre & np.isin(kind, (0x0800, 0x86DD)), 0),
            (True, gre & (kind == _TEB), 0),
            # ERSPAN type I has no header of its own and no sequence number; type II has 8 bytes
            (True, gre & (kind == _ERSPAN_2) & ((flags & 0x1000) == 0), 0),
            (True, gre & (kind == _ERSPAN_2) & ((flags & 0x1000) != 0), 8)):
        inner[m], ether[m] = (at + skip)[m], is_ether
    # ERSPAN type III: 12 bytes, then 8 more when its O flag says a platform header follows
    e3 = gre & (kind == _ERSPAN_3)
    if e3.any():
        o = byte_rows(buf, at, 12)[:, 11] & 1
        inner[e3], ether[e3] = (at + 12 + 8 * o.astype(np.int64))[e3], True
    inner[(inner >= end) | (inner < 0)] = -1
    return inner, ether


def _ip_layer(buf, off, end, rest, ver):
    """Decode IPv4/IPv6 and transport headers of the candidate rows (reason != 0 marks bad)."""
    m = len(off)
    nibble = buf[np.minimum(off, len(buf) - 1)] >> 4
    reason = np.where(end - off < 1, 3, np.where(nibble != ver, 2, 0)).astype(np.int8)
    out = None
    for version, parse in ((4, _ipv4), (6, _ipv6)):
        mask = (ver == version) & (reason == 0)
        if mask.all():  # the usual case: one IP version throughout, nothing to scatter
            out, bad = parse(buf, off, end, rest)
            reason = bad
            break
        sel = np.flatnonzero(mask)
        if not len(sel):
            continue
        fields, bad = parse(buf, off[sel], end[sel], rest[sel])
        if out is None:
            out = {k: np.zeros(m, a.dtype) for k, a in fields.items()}
        for name, arr in fields.items():
            out[name][sel] = arr
        reason[sel] = bad
    if out is None:  # no decodable IP header at all
        out, _ = _ipv4(buf, off, end, rest)
    first = out["frag_offset"] == 0
    out.update(_transport(buf, out["_t"], end, out["proto"], out["_plen"], first))
    out["reason"] = reason
    out["_ver"] = ver
    proto, itype = out["proto"], out["icmp_type"]
    out["_unreach"] = first & (((ver == 4) & (proto == 1) & (itype == 3))
                               | ((ver == 6) & (proto == 58) & (itype == 1)))
    # How far into the packet (from the IP header) decoding looked; errors and ICMP quotes
    # count as "everything" so those rows are always decoded from the full record.
    deep = np.maximum(out["_t"] + 14, out.pop("_start") + np.minimum(out["payload_len"], PAYLOAD_KEPT)) - off
    deep[(reason != 0) | out["_unreach"]] = 1 << 40
    out["_deep"] = deep
    return out


def _ipv4(buf, off, end, rest):
    """IPv4 header fields; `rest` (original bytes from the header on) stands in for TSO's 0."""
    h = byte_rows(buf, off, 20)
    ihl = (h[:, 0] & 15).astype(np.int64) * 4
    total = _be16(h, 2).astype(np.int64)
    total = np.where(total == 0, rest, total)  # TSO/LSO: the NIC fills the length in later
    frag = _be16(h, 6)
    bad = np.where(end - off < np.maximum(ihl, 20), 3, np.where(ihl < 20, 2, 0)).astype(np.int8)
    fields = {
        "src_ip_hi": np.zeros(len(off), np.uint64),
        "src_ip_lo": _be32(h, 12).astype(np.uint64) | _V4_MAPPED,
        "dst_ip_hi": np.zeros(len(off), np.uint64),
        "dst_ip_lo": _be32(h, 16).astype(np.uint64) | _V4_MAPPED,
        "proto": h[:, 9].copy(),  # a copy: a view would keep the whole head array alive
        "ip_id": _be16(h, 4).astype(np.uint32),
        "frag_offset": frag & 0x1FFF,
        "more_fragments": (frag & 0x2000) != 0,
        "_t": off + ihl,
        "_plen": np.maximum(total - ihl, 0),
    }
    return fields, bad


def _ipv6(buf, off, end, rest):
    """IPv6 header fields, walking extension headers to the transport header."""
    h = byte_rows(buf, off, 40)
    plen = _be16(h, 4).astype(np.int64)
    nh = h[:, 6].copy()
    plen = np.where((plen == 0) & (nh != 59), rest - 40, plen)  # TSO, as for IPv4
    t = off + 40
    nh, t, frag, mf, ident = _ipv6_ext(buf, t, nh, end)
    fields = {
        "src_ip_hi": _be64(h, 8), "src_ip_lo": _be64(h, 16),
        "dst_ip_hi": _be64(h, 24), "dst_ip_lo": _be64(h, 32),
        "proto": nh, "ip_id": ident, "frag_offset": frag, "more_fragments": mf,
        "_t": t, "_plen": np.maximum(plen - (t - off - 40), 0),
    }
    return fields, np.where(end - off < 40, 3, 0).astype(np.int8)


def _ipv6_ext(buf, t, nh, end):
    """Skip IPv6 extension headers (loop over depth); stop after a non-first fragment header."""
    n = len(t)
    frag = np.zeros(n, np.uint16)
    mf = np.zeros(n, bool)
    ident = np.zeros(n, np.uint32)
    active = np.ones(n, bool)
    for _ in range(8):
        e = np.flatnonzero(active & np.isin(nh, _V6_EXT) & (t + 8 <= end))
        if not len(e):
            break
        h = byte_rows(buf, t[e], 8)
        kind = nh[e]
        is_frag = kind == 44
        size = np.where(is_frag, 8, np.where(kind == 51, (h[:, 1].astype(np.int64) + 2) * 4,
                                               (h[:, 1].astype(np.int64) + 1) * 8))
        fo = _be16(h, 2)
        f = e[is_frag]
        frag[f] = fo[is_frag] >> 3
        mf[f] = (fo[is_frag] & 1) != 0
        ident[f] = _be32(h, 4)[is_frag]
        nh[e] = h[:, 0]
        t[e] += size
        active[f[frag[f] != 0]] = False  # what follows is the middle of a datagram
    return nh, t, frag, mf, ident


def _icmp_kinds(pairs: dict[int, int]) -> np.ndarray:
    """Per ICMP type, the exchange it belongs to: a reply's query type, else the type itself
    (never 0, which the flow table keeps for ICMP's ports)."""
    table = np.arange(256, dtype=np.uint16)
    for reply, query in pairs.items():
        table[reply] = query
    table[0] = table[0] or 256  # (ICMP's echo reply is 8's; ICMPv6's type 0 is unassigned)
    table.flags.writeable = False
    return table


_ICMP_KIND = _icmp_kinds(QUERY_OF["icmp"])
_ICMPV6_KIND = _icmp_kinds(QUERY_OF["icmpv6"])


def _transport(buf, t, end, proto, plen, first):
    """Ports, TCP flags, ICMP type/code, payload length and the first payload bytes."""
    h = byte_rows(buf, t, 14)
    avail = end - t
    tcp = first & (proto == 6)
    udp = first & (proto == 17)
    icmp = first & ((proto == 1) | (proto == 58))
    ports = (tcp | udp) & (avail >= 4)
    doff = np.where(avail >= 13, (h[:, 12] >> 4).astype(np.int64) * 4, 20)
    hdr = np.select([tcp, udp, icmp], [np.maximum(doff, 20), 8, 8], 0)
    payload = np.maximum(plen - hdr, 0)
    start = t + hdr
    ncap = np.clip(np.minimum(end - start, payload), 0, PAYLOAD_KEPT)
    # bytes not captured are zero (uint8 times bool: a new, contiguous uint8 array)
    head = byte_rows(buf, start, PAYLOAD_KEPT) * (np.arange(PAYLOAD_KEPT) < ncap[:, None])
    # an ICMP message's exchange stands in for ports on both sides, so that the flows of one
    # pair of hosts are one per exchange (a ping, an unreachable) and not one of everything
    kind = np.zeros(len(t), np.uint16)
    at = np.flatnonzero(icmp & (avail >= 1))
    if len(at):
        kind[at] = np.where(proto[at] == 1, _ICMP_KIND[h[at, 0]], _ICMPV6_KIND[h[at, 0]])
    return {
        "src_port": np.where(ports, _be16(h, 0), kind).astype(np.uint16),
        "dst_port": np.where(ports, _be16(h, 2), kind).astype(np.uint16),
        "tcp_flags": np.where(tcp & (avail >= 14), h[:, 13], 0).astype(np.uint8),
        "tcp_seq": np.where(tcp & (avail >= 8), _be32(h, 4), 0).astype(np.uint32),
        "payload_len": payload.astype(np.uint32),
        "payload_head": _be32(head, 0), "payload_b4": _be64(head, 4),
        "payload_b12": _be64(head, 12), "payload_b20": _be64(head, 20),
        "icmp_type": np.where(icmp & (avail >= 1), h[:, 0], 0).astype(np.uint8),
        "icmp_code": np.where(icmp & (avail >= 2), h[:, 1], 0).astype(np.uint8),
        "_start": start,
    }


def _icmp_errors(buf, ip, sel, end):
    """The quoted header of each ICMP(v6) unreachable in rows `sel` (packet_index = row)."""
    ver = ip["_ver"][sel]
    inner = ip["_t"][sel] + 8
    nibble = buf[np.minimum(inner, len(buf) - 1)] >> 4
    out = {c: np.zeros(len(sel), t) for c, t in ICMP_DTYPES.items()}
    ok = np.zeros(len(sel), bool)
    for version, parse, need in ((4, _ipv4, 20), (6, _ipv6, 40)):
        s = np.flatnonzero((nibble == version) & (ver == version) & (end - inner >= need))
        if not len(s):
            continue
        f, _ = parse(buf, inner[s], end[s], np.zeros(len(s), np.int64))
        for a in ("src_ip_hi", "src_ip_lo", "dst_ip_hi", "dst_ip_lo", "proto"):
            out["inner_" + a][s] = f[a]
        ports = (np.isin(f["proto"], (6, 17, 132)) & (f["frag_offset"] == 0)
                 & (end[s] - f["_t"] >= 4))
        pr = byte_rows(buf, f["_t"], 4)
        out["inner_src_port"][s] = np.where(ports, _be16(pr, 0), 0)
        out["inner_dst_port"][s] = np.where(ports, _be16(pr, 2), 0)
        ok[s] = True
    out["packet_index"] = np.asarray(sel, np.int64)
    out["icmp_type"] = ip["icmp_type"][sel]
    out["icmp_code"] = ip["icmp_code"][sel]
    return {name: arr[ok] for name, arr in out.items()}
