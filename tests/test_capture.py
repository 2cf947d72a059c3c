"""Tests for the capture reader: byte-literal captures built here, edge fixtures, real captures."""

from __future__ import annotations

import gzip
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from auditor.capture import bytesource, records
from auditor.capture.packets import (
    PacketTable,
    expand_sources,
    format_ip,
    parse_ip,
    read_packets,
    write_packets,
)
from auditor.errors import CaptureError, CaptureWarning
from auditor.schema import ICMP_ERROR_COLUMNS, PACKET_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
EDGE = ROOT / "fixtures" / "pcaps" / "edge"
PUBLIC = ROOT / "fixtures" / "pcaps" / "public"
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
NS = 1_000_000_000
SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# -- packet and container builders --------------------------------------------------------------


def ip4(text):
    return socket.inet_aton(text)


def ip6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def tcp(sport, dport, flags, payload=b"", options=b""):
    doff = 5 + len(options) // 4
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, doff << 4, flags, 8192, 0, 0) \
        + options + payload


def udp(sport, dport, payload=b""):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(type_, code, body):
    return struct.pack(">BBHI", type_, code, 0, 0) + body


def ipv4(src, dst, proto, payload, *, ident=1, frag=0, mf=False, options=b"", total=None):
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(payload) if total is None else total
    flags = (0x2000 if mf else 0) | frag
    return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, flags, 64, proto, 0,
                       ip4(src), ip4(dst)) + options + payload


def ipv6(src, dst, nh, payload, plen=None):
    length = len(payload) if plen is None else plen
    return struct.pack(">IHBB16s16s", 0x60000000, length, nh, 64, ip6(src), ip6(dst)) + payload


def ext6(nh, units=0):
    """A hop-by-hop / routing / destination-options header of 8 * (units + 1) bytes."""
    return struct.pack("BB", nh, units) + b"\0" * (6 + 8 * units)


def frag6(nh, offset, more, ident):
    return struct.pack(">BBHI", nh, 0, (offset << 3) | int(more), ident)


def ah6(nh, icv=12):
    return struct.pack(">BBHII", nh, (12 + icv) // 4 - 2, 0, 0x100, 1) + b"\0" * icv


def ether(payload, ethertype=0x0800, tags=()):
    head = b"\x02\0\0\0\0\x25" + b"\x02\0\0\0\0\x10"
    for tpid, vid in tags:
        head += struct.pack(">HH", tpid, vid)
    return head + struct.pack(">H", ethertype) + payload


def pcap(records, linktype=1, *, order="<", nano=False, snaplen=262144):
    """Classic pcap; records are (ns since T0, data) or (ns, data, orig_len)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for rec in records:
        ns, data = rec[0], rec[1]
        orig = rec[2] if len(rec) > 2 else len(data)
        sec, frac = divmod(T0 * NS + ns, NS)
        out += struct.pack(order + "IIII", sec, frac if nano else frac // 1000, len(data), orig)
        out += data
    return out


def block(btype, body, order="<"):
    body += b"\0" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(order + "II", btype, size) + body + struct.pack(order + "I", size)


def option(code, value, order="<"):
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order="<"):
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(linktype, *, snaplen=0, tsresol=None, tsoffset=None, order="<"):
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        opts += option(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += option(0, b"", order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts, order)


def epb(iface, units, data, *, orig=None, order="<"):
    body = struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig) + data
    return block(6, body, order)


def spb(data, orig, order="<"):
    return block(3, struct.pack(order + "I", orig) + data, order)


def opb(iface, units, data, order="<"):
    body = struct.pack(order + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(data),
                       len(data)) + data
    return block(2, body, order)


def syn_frame(sport=50000, dport=445, src="198.18.0.10", dst="198.19.0.25"):
    return ether(ipv4(src, dst, 6, tcp(sport, dport, SYN)))


def read(tmp_path, data, name="t.pcap") -> PacketTable:
    path = tmp_path / name
    path.write_bytes(data)
    return read_packets([path])


def addrs(table, which="src"):
    pk = table.packets
    return list(format_ip(pk[f"{which}_ip_hi"], pk[f"{which}_ip_lo"]))


def col(table, name):
    return table.packets[name].tolist()


# -- pcap -------------------------------------------------------------------------------------


def test_pcap_fields_of_a_tcp_segment(tmp_path):
    frame = ether(ipv4("198.18.0.10", "198.19.0.25", 6, tcp(50000, 445, PSH | ACK, b"\xfeSMBxx"),
                       ident=0x1234))
    t = read(tmp_path, pcap([(1_500_000, frame)]))
    row = t.packets.iloc[0]
    assert row.ts_ns == T0 * NS + 1_500_000
    assert (row.file_index, row.record_index, row.l3_offset, row.frame_len) == (0, 0, 14, 60)
    assert (row.ip_version, row.proto, row.src_port, row.dst_port) == (4, 6, 50000, 445)
    assert (row.tcp_flags, row.payload_len, row.payload_head) == (0x18, 6, 0xFE534D42)
    assert (row.ip_id, row.frag_offset, row.more_fragments) == (0x1234, 0, False)
    assert addrs(t) == ["198.18.0.10"] and addrs(t, "dst") == ["198.19.0.25"]
    info = t.files[0]
    assert (info.format, info.records, info.ip_packets, info.non_ip, info.skipped) == (
        "pcap", 1, 1, 0, {})
    assert info.first_ts_ns == info.last_ts_ns == T0 * NS + 1_500_000


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_magics_in_both_byte_orders(tmp_path, order, nano):
    ns = 2_000_123_456 if nano else 2_000_123_000
    t = read(tmp_path, pcap([(0, syn_frame()), (ns, syn_frame(50001))], order=order, nano=nano))
    assert t.files[0].format == ("pcap-ns" if nano else "pcap")
    assert col(t, "ts_ns") == [T0 * NS, T0 * NS + ns]
    assert col(t, "src_port") == [50000, 50001]


def test_packet_table_has_the_schema_columns_and_dtypes(tmp_path):
    t = read(tmp_path, pcap([(0, syn_frame())]))
    assert [(c, str(t.packets[c].dtype)) for c in t.packets.columns] == [
        (c.name, c.dtype) for c in PACKET_COLUMNS]
    assert [(c, str(t.icmp_errors[c].dtype)) for c in t.icmp_errors.columns] == [
        (c.name, c.dtype) for c in ICMP_ERROR_COLUMNS]
    assert list(t.packets.index) == [0]


def test_header_only_capture_gives_an_empty_table(tmp_path):
    t = read(tmp_path, pcap([]))
    assert len(t.packets) == 0 and list(t.packets.columns) == [c.name for c in PACKET_COLUMNS]
    assert str(t.packets["ts_ns"].dtype) == "int64"
    assert (t.files[0].records, t.files[0].first_ts_ns) == (0, None)


def test_not_a_capture_names_file_and_first_bytes(tmp_path):
    with pytest.raises(CaptureError,
                       match=r"notes\.txt: not a capture format auditor or tshark reads .*0x68656c6c"):
        read(tmp_path, b"hello world\n", "notes.txt")


def test_pcapng_with_a_bad_byte_order_magic_is_not_a_capture(tmp_path):
    with pytest.raises(CaptureError, match=r"t\.pcapng: not a pcapng file \(bad byte-order"):
        read(tmp_path, b"\x0a\x0d\x0d\x0a\x1c\0\0\0" + b"\xff" * 20, "t.pcapng")


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(CaptureError, match=r"empty\.pcap: empty file"):
        read(tmp_path, b"", "empty.pcap")


def test_truncated_pcap_keeps_complete_records(tmp_path):
    data = pcap([(0, syn_frame()), (1000, syn_frame(50001)), (2000, syn_frame(50002))])
    offset = len(pcap([(0, syn_frame()), (1000, syn_frame(50001))]))
    with pytest.warns(CaptureWarning, match=rf"t\.pcap: truncated record at byte offset {offset}"):
        t = read(tmp_path, data[:-30])
    assert col(t, "src_port") == [50000, 50001]
    assert t.files[0].skipped == {"truncated record": 1} and t.files[0].records == 2


def test_truncated_record_header_keeps_complete_records(tmp_path):
    data = pcap([(0, syn_frame()), (1000, syn_frame(50001))])
    with pytest.warns(CaptureWarning, match=rf"truncated record at byte offset {len(data)}"):
        t = read(tmp_path, data + b"\x01\x02\x03\x04\x05")
    assert len(t.packets) == 2


def test_absurd_record_length_stops_with_offset(tmp_path):
    good = pcap([(0, syn_frame()), (1000, syn_frame(50001))])
    bad = struct.pack("<IIII", T0, 0, 0x7FFFFFF0, 0x7FFFFFF0) + b"\0" * 64
    with pytest.warns(CaptureWarning, match=rf"absurd record length at byte offset {len(good)}"):
        t = read(tmp_path, good + bad + pcap([(0, syn_frame())])[24:])
    assert col(t, "src_port") == [50000, 50001]
    assert t.files[0].skipped == {"absurd record length": 1}


def test_record_length_past_end_of_file(tmp_path):
    good = pcap([(0, syn_frame())])
    bad = struct.pack("<IIII", T0, 0, 5000, 5000) + b"\0" * 100
    with pytest.warns(CaptureWarning, match=rf"truncated record at byte offset {len(good)}"):
        t = read(tmp_path, good + bad)
    assert len(t.packets) == 1


def test_unsupported_link_type_is_skipped_with_one_warning(tmp_path):
    data = pcap([(0, b"\x08\x02" + b"\0" * 30), (1, b"\x08\x02" + b"\0" * 30)], linktype=105)
    with pytest.warns(CaptureWarning, match=r"t\.pcap: skipped 2 records \(linktype 105\)") as rec:
        t = read(tmp_path, data)
    assert len(rec) == 1
    assert len(t.packets) == 0
    assert (t.files[0].records, t.files[0].skipped) == (2, {"linktype 105": 2})


def test_non_ip_records_are_counted_not_skipped(tmp_path):
    arp = ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20, ethertype=0x0806)
    t = read(tmp_path, pcap([(0, arp), (1000, syn_frame())]))
    assert (t.files[0].records, t.files[0].ip_packets, t.files[0].non_ip) == (2, 1, 1)
    assert col(t, "record_index") == [1]


def test_bad_ip_version_is_skipped_as_bad_header(tmp_path):
    frame = ether(ipv6("2001:db8::1", "2001:db8::2", 59, b""), ethertype=0x0800)
    with pytest.warns(CaptureWarning, match=r"skipped 1 records \(bad IP header\)"):
        t = read(tmp_path, pcap([(0, frame), (1, syn_frame())]))
    assert len(t.packets) == 1


# -- link layers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("tags", "l3"), [
    ([(0x8100, 10)], 18),
    ([(0x88A8, 100), (0x8100, 10)], 22),
    ([(0x9100, 7), (0x8100, 10)], 22),
    ([(0x88A8, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4)], 30),
])
def test_vlan_tags_are_skipped(tmp_path, tags, l3):
    frame = ether(ipv4("198.18.0.10", "198.19.0.25", 17, udp(53000, 53, b"\x12\x34")), tags=tags)
    t = read(tmp_path, pcap([(0, frame)]))
    assert col(t, "l3_offset") == [l3]
    assert (col(t, "dst_port"), col(t, "payload_len"), col(t, "payload_head")) == (
        [53], [2], [0x12340000])


def test_vlan_tag_around_non_ip_is_non_ip(tmp_path):
    frame = ether(b"\0" * 28, ethertype=0x0806, tags=[(0x8100, 5)])
    t = read(tmp_path, pcap([(0, frame)]))
    assert (len(t.packets), t.files[0].non_ip) == (0, 1)


def test_linux_cooked_v1_and_v2(tmp_path):
    pkt = ipv4("198.18.0.10", "198.19.0.25", 6, tcp(50000, 25, SYN))
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + pkt
    sll2 = struct.pack(">HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, b"\x02" * 8) + ipv6(
        "2001:db8::10", "2001:db8::25", 17, udp(5353, 53))
    t1 = read(tmp_path, pcap([(0, sll)], linktype=113), "sll.pcap")
    t2 = read(tmp_path, pcap([(0, sll2)], linktype=276), "sll2.pcap")
    assert (col(t1, "l3_offset"), col(t1, "dst_port"), addrs(t1)) == ([16], [25], ["198.18.0.10"])
    assert (col(t2, "l3_offset"), col(t2, "dst_port"), addrs(t2)) == ([20], [53], ["2001:db8::10"])


@pytest.mark.parametrize("linktype", [101, 12, 14, 228])
def test_raw_ipv4_link_types(tmp_path, linktype):
    t = read(tmp_path, pcap([(0, ipv4("198.18.0.10", "198.19.0.25", 6, tcp(1, 2, SYN)))],
                            linktype=linktype))
    assert (col(t, "l3_offset"), col(t, "ip_version"), col(t, "dst_port")) == ([0], [4], [2])


@pytest.mark.parametrize("linktype", [101, 229])
def test_raw_ipv6_link_types(tmp_path, linktype):
    t = read(tmp_path, pcap([(0, ipv6("2001:db8::1", "2001:db8::2", 17, udp(1, 2)))],
                            linktype=linktype))
    assert (col(t, "ip_version"), addrs(t, "dst")) == ([6], ["2001:db8::2"])


def test_null_loopback_in_either_byte_order_and_loop_in_network_order(tmp_path):
    v4 = ipv4("198.18.0.1", "198.18.0.2", 17, udp(1, 2))
    v6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(3, 4))
    null = [(0, struct.pack("<I", 2) + v4), (1, struct.pack(">I", 30) + v6),
            (2, struct.pack("<I", 24) + v6), (3, struct.pack("<I", 28) + v6),
            (4, struct.pack("<I", 7) + v4)]
    t = read(tmp_path, pcap(null, linktype=0), "null.pcap")
    assert col(t, "ip_version") == [4, 6, 6, 6]
    assert (col(t, "l3_offset"), t.files[0].non_ip) == ([4] * 4, 1)
    loop = read(tmp_path, pcap([(0, struct.pack(">I", 2) + v4)], linktype=108), "loop.pcap")
    assert col(loop, "dst_port") == [2]


# -- IP and transport -------------------------------------------------------------------------


def test_ipv6_extension_headers_are_walked_to_the_transport(tmp_path):
    seg = tcp(50000, 443, SYN | ACK, b"\x16\x03\x01\x00\x05")
    chain = ext6(43, 1) + ext6(60) + ext6(51, 2) + ah6(6) + seg  # hop, routing, dest, AH
    t = read(tmp_path, pcap([(0, ether(ipv6("2001:db8::10", "2001:db8::25", 0, chain),
                                       ethertype=0x86DD))]))
    assert (col(t, "proto"), col(t, "dst_port"), col(t, "tcp_flags")) == ([6], [443], [0x12])
    assert (col(t, "payload_len"), col(t, "payload_head")) == ([5], [0x16030100])


def test_headers_deeper_than_the_copied_head_are_still_decoded(tmp_path):
    chain = ext6(60, 10) + ext6(17, 10) + udp(1234, 3343, b"\xca\xfe\xba\xbe")  # 176 bytes
    t = read(tmp_path, pcap([(0, ether(ipv6("2001:db8::10", "2001:db8::25", 0, chain),
                                       ethertype=0x86DD))]))
    assert (col(t, "proto"), col(t, "src_port"), col(t, "dst_port")) == ([17], [1234], [3343])
    assert (col(t, "payload_len"), col(t, "payload_head")) == ([4], [0xCAFEBABE])


def test_ipv6_fragments_only_the_first_has_ports(tmp_path):
    first = frag6(17, 0, True, 0xABCD) + udp(5000, 2049, b"\x07" * 32)[:40]
    later = frag6(17, 5, False, 0xABCD) + b"\x07" * 16
    t = read(tmp_path, pcap([
        (0, ether(ipv6("2001:db8::10", "2001:db8::25", 44, first), ethertype=0x86DD)),
        (1, ether(ipv6("2001:db8::10", "2001:db8::25", 44, later), ethertype=0x86DD))]))
    assert col(t, "dst_port") == [2049, 0]
    assert (col(t, "frag_offset"), col(t, "more_fragments")) == ([0, 5], [True, False])
    assert (col(t, "ip_id"), col(t, "proto")) == ([0xABCD, 0xABCD], [17, 17])


def test_ipv4_fragments_first_has_ports_later_do_not(tmp_path):
    dgram = udp(5000, 88, b"\x6a" + b"\0" * 23)
    t = read(tmp_path, pcap([
        (0, ether(ipv4("198.18.0.10", "198.19.0.25", 17, dgram[:16], ident=77, mf=True))),
        (1, ether(ipv4("198.18.0.10", "198.19.0.25", 17, dgram[16:], ident=77, frag=2)))]))
    assert (col(t, "src_port"), col(t, "dst_port")) == ([5000, 0], [88, 0])
    assert (col(t, "frag_offset"), col(t, "more_fragments"), col(t, "ip_id")) == (
        [0, 2], [True, False], [77, 77])
    assert col(t, "payload_len") == [8, 16]


def test_ipv4_options_move_the_transport_header(tmp_path):
    pkt = ipv4("198.18.0.10", "198.19.0.25", 6, tcp(1, 2, SYN, b"ab"), options=b"\x01" * 8)
    t = read(tmp_path, pcap([(0, ether(pkt))]))
    assert (col(t, "dst_port"), col(t, "payload_len"), col(t, "payload_head")) == (
        [2], [2], [0x61620000])


def test_payload_length_comes_from_ip_even_when_snaplen_cut_the_frame(tmp_path):
    full = ether(ipv4("198.18.0.10", "198.19.0.25", 6, tcp(1, 445, ACK, b"\xfeSMB" + b"x" * 996)))
    t = read(tmp_path, pcap([(0, full[:64], len(full))], snaplen=64))
    assert (col(t, "payload_len"), col(t, "payload_head"), col(t, "frame_len")) == (
        [1000], [0xFE534D42], [len(full)])
    cut = read(tmp_path, pcap([(0, full[:56], len(full))], snaplen=56), "cut.pcap")
    assert (col(cut, "payload_len"), col(cut, "payload_head")) == ([1000], [0xFE530000])


def test_ethernet_padding_is_not_payload(tmp_path):
    frame = ether(ipv4("198.18.0.10", "198.19.0.25", 6, tcp(1, 2, ACK))) + b"\xee" * 6
    t = read(tmp_path, pcap([(0, frame)]))
    assert (col(t, "payload_len"), col(t, "payload_head"), col(t, "frame_len")) == ([0], [0], [60])


def test_zero_ip_length_from_tso_uses_the_frame_length(tmp_path):
    frame = ether(ipv4("198.18.0.10", "198.19.0.25", 6, tcp(1, 445, ACK, b"z" * 3000), total=0))
    t = read(tmp_path, pcap([(0, frame)]))
    assert col(t, "payload_len") == [3000]


def test_other_ip_protocols_are_rows_without_ports(tmp_path):
    gre = ipv4("198.18.0.10", "198.19.0.25", 47, b"\0\0\x08\0" + b"\0" * 20)
    t = read(tmp_path, pcap([(0, ether(gre))]))
    assert (col(t, "proto"), col(t, "src_port"), col(t, "payload_len")) == ([47], [0], [24])


def test_icmp_unreachable_quotes_the_rejected_syn(tmp_path):
    syn = ipv4("198.18.0.10", "198.19.0.25", 6, tcp(50123, 135, SYN))
    reply = ipv4("198.18.0.1", "198.18.0.10", 1, icmp(3, 13, syn[:28]))
    syn6 = ipv6("2001:db8::10", "2001:db8::25", 6, tcp(50124, 443, SYN))
    reply6 = ipv6("2001:db8::1", "2001:db8::10", 58, icmp(1, 1, syn6))
    # the v4 reply is stored first but stamped last: packet_index must follow the time sort
    t = read(tmp_path, pcap([(9000, ether(reply)), (0, ether(syn)), (1000, ether(syn6, 0x86DD)),
                             (2000, ether(reply6, 0x86DD))]))
    e = t.icmp_errors
    assert list(e.packet_index) == [2, 3]
    assert list(t.packets.record_index[e.packet_index]) == [3, 0]
    assert (list(e.icmp_type), list(e.icmp_code)) == ([1, 3], [1, 13])
    assert list(format_ip(e.inner_src_ip_hi, e.inner_src_ip_lo)) == ["2001:db8::10", "198.18.0.10"]
    assert list(format_ip(e.inner_dst_ip_hi, e.inner_dst_ip_lo)) == ["2001:db8::25", "198.19.0.25"]
    assert (list(e.inner_proto), list(e.inner_src_port), list(e.inner_dst_port)) == (
        [6, 6], [50124, 50123], [443, 135])
    assert col(t, "icmp_type") == [0, 0, 1, 3]


def test_icmp_unreachable_quoting_only_the_ip_header_has_no_ports(tmp_path):
    syn = ipv4("198.18.0.10", "198.19.0.25", 6, tcp(50123, 135, SYN))
    t = read(tmp_path, pcap([(0, ether(ipv4("198.18.0.1", "198.18.0.10", 1,
                                             icmp(3, 1, syn[:20]))))]))
    e = t.icmp_errors
    assert (list(e.inner_proto), list(e.inner_dst_port)) == ([6], [0])


def test_icmp_echo_is_not_an_error(tmp_path):
    t = read(tmp_path, pcap([(0, ether(ipv4("198.18.0.1", "198.18.0.2", 1, icmp(8, 0, b"x"))))]))
    assert (col(t, "icmp_type"), len(t.icmp_errors)) == ([8], 0)


# -- pcapng -----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_in_both_byte_orders(tmp_path, order):
    us = (T0 * NS + 1_234_000) // 1000
    data = shb(order) + idb(1, order=order) + epb(0, us, syn_frame(), order=order)
    t = read(tmp_path, data, "t.pcapng")
    assert t.files[0].format == "pcapng"
    assert (col(t, "ts_ns"), col(t, "dst_port")) == ([T0 * NS + 1_234_000], [445])


def test_pcapng_interfaces_have_their_own_link_type_and_resolution(tmp_path):
    raw = ipv4("198.18.0.10", "198.19.0.25", 17, udp(1000, 53))
    data = (shb() + idb(1) + idb(101, tsresol=9) + idb(1, tsresol=0x80 | 10, tsoffset=-10)
            + epb(0, T0 * 1_000_000 + 5, syn_frame())  # default: microseconds
            + epb(1, T0 * NS + 7_000_001, raw)  # nanoseconds
            + epb(2, (T0 + 10) * 1024 + 512, syn_frame(50001)))  # 2**-10 s, 10 s offset
    t = read(tmp_path, data, "t.pcapng")
    assert col(t, "ts_ns") == [T0 * NS + 5000, T0 * NS + 7_000_001, T0 * NS + 500_000_000]
    assert (col(t, "l3_offset"), col(t, "dst_port")) == ([14, 0, 14], [445, 53, 445])


def test_pcapng_interface_blocks_in_a_row_are_read_without_a_walk_each(tmp_path, monkeypatch):
    # hand-made (a fuzz case: 100k interface blocks, then packets): the numpy walk over plain
    # blocks is for runs of packets; started at each interface block it stopped at once, and
    # 2 MB of them took 2.6 s of CPU. The packets name the last interfaces.
    from auditor.capture.pcapng import PcapngWalker

    runs = []
    real = PcapngWalker._run

    def counted(self, buf, pos, lim):
        runs.append(pos)
        return real(self, buf, pos, lim)

    monkeypatch.setattr(PcapngWalker, "_run", counted)
    n = 20_000
    data = (shb() + idb(101) * (n - 1) + idb(1, tsresol=9)
            + epb(n - 1, T0 * NS + 9, syn_frame()) + epb(n - 2, T0 * 1_000_000 + 3,
                                                          ipv4("198.18.0.10", "198.19.0.25", 17,
                                                               udp(1000, 53))))
    t = read(tmp_path, data, "t.pcapng")
    assert col(t, "ts_ns") == [T0 * NS + 9, T0 * NS + 3000]  # ns, then µs resolution
    assert col(t, "dst_port") == [445, 53]
    assert len(runs) < 10


def test_pcapng_simple_packet_block_uses_first_interface_and_its_snaplen(tmp_path):
    frame = ether(ipv4("198.18.0.10", "198.19.0.25", 6, tcp(1, 25, ACK, b"DATA" + b"." * 40)))
    data = shb() + idb(1, snaplen=60) + epb(0, T0 * 1_000_000 + 9, syn_frame()) \
        + spb(frame[:60], len(frame))
    t = read(tmp_path, data, "t.pcapng")
    assert (col(t, "frame_len"), col(t, "payload_len")) == ([54, len(frame)], [0, 44])
    assert col(t, "payload_head")[1] == int.from_bytes(b"DATA", "big")
    assert col(t, "ts_ns") == [T0 * NS + 9000] * 2  # no timestamp: the previous record's


def test_pcapng_obsolete_packet_block(tmp_path):
    data = shb() + idb(1, tsresol=3) + opb(0, T0 * 1000 + 42, syn_frame())
    t = read(tmp_path, data, "t.pcapng")
    assert (col(t, "ts_ns"), col(t, "dst_port")) == ([T0 * NS + 42_000_000], [445])


def test_pcapng_unknown_blocks_are_skipped_silently(tmp_path):
    data = (shb() + block(0x0BAD, b"custom") + idb(1) + block(4, b"\0" * 8)
            + epb(0, T0 * 1_000_000, syn_frame()) + block(5, b"\0" * 12)
            + block(0x40000BAD, b"x" * 100) + epb(0, T0 * 1_000_000 + 1, syn_frame(50001)))
    t = read(tmp_path, data, "t.pcapng")
    assert (col(t, "src_port"), col(t, "record_index")) == ([50000, 50001], [0, 1])
    assert t.files[0].skipped == {}


def test_pcapng_sections_can_switch_byte_order(tmp_path):
    data = (shb("<") + idb(1) + epb(0, T0 * 1_000_000, syn_frame())
            + shb(">") + idb(101, order=">")
            + epb(0, T0 * 1_000_000 + 1, ipv4("198.18.0.1", "198.18.0.2", 17, udp(7, 9)),
                  order=">"))
    t = read(tmp_path, data, "t.pcapng")
    assert (col(t, "l3_offset"), col(t, "dst_port")) == ([14, 0], [445, 9])


def test_pcapng_packet_naming_a_missing_interface_is_skipped(tmp_path):
    data = shb() + idb(1) + epb(3, T0 * 1_000_000, syn_frame()) + epb(0, T0 * 1_000_000,
                                                                       syn_frame(50001))
    with pytest.warns(CaptureWarning, match=r"skipped 1 records \(bad interface id\)"):
        t = read(tmp_path, data, "t.pcapng")
    assert col(t, "record_index") == [1]


def test_pcapng_corrupt_block_length_keeps_earlier_blocks(tmp_path):
    good = shb() + idb(1) + epb(0, T0 * 1_000_000, syn_frame())
    bad = struct.pack("<II", 6, 13) + b"\0" * 40
    with pytest.warns(CaptureWarning, match=rf"corrupt block at byte offset {len(good)}"):
        t = read(tmp_path, good + bad, "t.pcapng")
    assert len(t.packets) == 1


def test_pcapng_trailing_length_mismatch_is_corrupt(tmp_path):
    second = bytearray(epb(0, T0 * 1_000_000, syn_frame(50001)))
    second[-4:] = struct.pack("<I", 999)
    good = shb() + idb(1) + epb(0, T0 * 1_000_000, syn_frame())
    with pytest.warns(CaptureWarning, match=rf"corrupt block at byte offset {len(good)}"):
        t = read(tmp_path, good + bytes(second) + epb(0, 0, syn_frame()), "t.pcapng")
    assert col(t, "src_port") == [50000]


def test_pcapng_truncated_final_block(tmp_path):
    data = shb() + idb(1) + epb(0, T0 * 1_000_000, syn_frame())
    last = epb(0, T0 * 1_000_000, syn_frame(50001))
    with pytest.warns(CaptureWarning, match=rf"truncated record at byte offset {len(data)}"):
        t = read(tmp_path, data + last[:40], "t.pcapng")
    assert len(t.packets) == 1


# -- gzip, chunks, several files --------------------------------------------------------------


def test_gzip_is_detected_by_magic_not_name(tmp_path):
    plain = pcap([(0, syn_frame()), (1000, syn_frame(50001))])
    ng = shb() + idb(1) + epb(0, T0 * 1_000_000, syn_frame())
    t = read(tmp_path, gzip.compress(plain), "looks_plain.pcap")
    t2 = read(tmp_path, gzip.compress(ng), "x.pcapng.gz")
    assert (t.files[0].format, col(t, "src_port")) == ("pcap+gzip", [50000, 50001])
    assert (t2.files[0].format, len(t2.packets)) == ("pcapng+gzip", 1)


def test_truncated_gzip_keeps_what_decompressed(tmp_path):
    data = gzip.compress(pcap([(i * 1000, syn_frame(40000 + i)) for i in range(2000)]))
    with pytest.warns(CaptureWarning) as rec:
        t = read(tmp_path, data[: len(data) // 2])
    assert 0 < len(t.packets) < 2000
    assert col(t, "src_port")[:3] == [40000, 40001, 40002]
    assert any("decompressed stream" in str(w.message) for w in rec)


@pytest.mark.parametrize("compress", [False, True])
def test_small_chunks_give_the_same_table(tmp_path, monkeypatch, compress):
    frames = [(i * 1000, syn_frame(40000 + i)) for i in range(300)]
    frames[100] = (100_000, ether(ipv6("2001:db8::1", "2001:db8::2", 0,
                                       ext6(17, 20) + udp(9, 10)), 0x86DD))
    data = pcap(frames)
    ng = shb() + idb(1) + b"".join(epb(0, T0 * 1_000_000 + i, f) for i, (_, f) in enumerate(frames))
    if compress:
        data, ng = gzip.compress(data), gzip.compress(ng)
    whole = read(tmp_path, data).packets
    monkeypatch.setattr(records, "CHUNK_BYTES", 500)
    monkeypatch.setattr(bytesource, "WINDOW", 700)
    small = read(tmp_path, data, "small.pcap").packets
    small_ng = read(tmp_path, ng, "small.pcapng").packets
    assert small.equals(whole)
    assert small_ng.drop(columns="ts_ns").equals(whole.drop(columns="ts_ns"))
    assert col_of(small, "dst_port")[99:102] == [445, 10, 445]


def col_of(frame, name):
    return frame[name].tolist()


def test_several_files_are_one_capture_sorted_by_time(tmp_path):
    folder = tmp_path / "ring"
    folder.mkdir()
    (folder / "cap_00002_20240101000010.pcap").write_bytes(
        pcap([(1000, syn_frame(2)), (3000, syn_frame(4))]))
    (folder / "cap_00001_20240101000000.pcapng").write_bytes(
        shb() + idb(1) + epb(0, T0 * 1_000_000, syn_frame(1)) + epb(0, T0 * 1_000_000 + 2,
                                                                    syn_frame(3)))
    (folder / "notes.txt").write_text("not a capture")
    t = read_packets([folder])
    assert [f.name for f in t.files] == ["cap_00001_20240101000000.pcapng",
                                         "cap_00002_20240101000010.pcap"]
    assert col(t, "src_port") == [1, 2, 3, 4]
    assert (col(t, "file_index"), col(t, "record_index")) == ([0, 1, 0, 1], [0, 0, 1, 1])


def test_expand_sources_sorts_numbers_naturally_and_rejects_missing_paths(tmp_path):
    for name in ["x.pcap10", "x.pcap9", "x.pcap", "b.pcapng.gz", ".hidden.pcap", "a.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_sources([tmp_path])] == [
        "b.pcapng.gz", "x.pcap", "x.pcap9", "x.pcap10"]
    with pytest.raises(CaptureError, match=r"nope\.pcap: no such file or folder"):
        expand_sources([tmp_path / "nope.pcap"])


def test_progress_reaches_the_total(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.pcap")
        paths[-1].write_bytes(pcap([(0, syn_frame())]))
    calls = []
    read_packets(paths, progress=lambda done, total: calls.append((done, total)))
    total = sum(p.stat().st_size for p in paths)
    assert calls[-1] == (total, total)
    assert all(b == total for _, b in calls) and [a for a, _ in calls] == sorted(a for a, _ in calls)


# -- writing and addresses --------------------------------------------------------------------


def test_write_packets_round_trip(tmp_path):
    frames = [(0, syn_frame(1)), (1000, ether(ipv6("2001:db8::1", "2001:db8::2", 17, udp(5, 6)),
                                             0x86DD, tags=[(0x8100, 3)])), (2000, syn_frame(3))]
    src = tmp_path / "src.pcap.gz"
    src.write_bytes(gzip.compress(pcap(frames)))
    t = read_packets([src])
    out = tmp_path / "out.pcap"
    assert write_packets(t, np.array([2, 1]), out) == 2
    back = read_packets([out])
    assert back.files[0].format == "pcap"
    assert (col(back, "src_port"), col(back, "l3_offset")) == ([5, 3], [0, 0])
    assert col(back, "ts_ns") == [T0 * NS + 1000, T0 * NS + 2000]
    assert addrs(back) == ["2001:db8::1", "198.18.0.10"]


def test_write_packets_keeps_nanoseconds(tmp_path):
    t = read(tmp_path, pcap([(123, syn_frame())], nano=True))
    write_packets(t, [0], tmp_path / "out.pcap")
    back = read_packets([tmp_path / "out.pcap"])
    assert (back.files[0].format, col(back, "ts_ns")) == ("pcap-ns", [T0 * NS + 123])


@pytest.mark.tshark
@needs_tshark
def test_tshark_reads_what_write_packets_wrote(tmp_path):
    t = read_packets([EDGE / "two_interfaces.pcapng"])
    out = tmp_path / "sel.pcap"
    write_packets(t, np.arange(len(t.packets)), out)
    fields = tshark_fields(out, "frame.len")
    assert len(fields) == len(t.packets)
    assert [int(x) for x in fields] == (t.packets.frame_len - t.packets.l3_offset).tolist()


def test_format_ip_and_parse_ip_round_trip():
    texts = ["198.18.0.10", "2001:db8::25", "::1", "::ffff:0:1", "0.0.0.0", "198.18.0.10"]
    halves = [parse_ip(x) for x in texts]
    assert halves[0] == (0, 0xFFFF_C612_000A)
    hi = np.array([h for h, _ in halves], np.uint64)
    lo = np.array([low for _, low in halves], np.uint64)
    assert list(format_ip(hi, lo)) == ["198.18.0.10", "2001:db8::25", "::1", "0.0.0.1",
                                       "0.0.0.0", "198.18.0.10"]
    assert format_ip(np.array([], np.uint64), np.array([], np.uint64)).shape == (0,)


# -- edge fixtures and real captures ----------------------------------------------------------


def test_edge_fixture_vlan_qinq():
    t = read_packets([EDGE / "vlan_qinq.pcap"])
    assert col(t, "l3_offset") == [22, 22, 22, 22, 18, 18]
    assert (t.files[0].records, t.files[0].non_ip) == (7, 1)
    assert col(t, "tcp_flags")[:3] == [SYN, SYN | ACK, ACK]


def test_edge_fixture_two_interfaces():
    t = read_packets([EDGE / "two_interfaces.pcapng"])
    assert col(t, "l3_offset") == [14, 0, 14, 0, 14, 14]
    assert [x - T0 * NS for x in col(t, "ts_ns")] == [0, 1_000_013, 2_000_000, 3_000_039,
                                                      4_000_000, 5_000_000]


def test_edge_fixture_fragments():
    t = read_packets([EDGE / "ipv4_fragments.pcap"])
    assert (col(t, "frag_offset"), col(t, "dst_port")) == ([0, 185, 370, 0], [88, 0, 0,
                                                                            col(t, "src_port")[0]])
    assert (col(t, "src_port")[1:], col(t, "more_fragments")) == ([0, 0, 88],
                                                                  [True, True, False, False])
    assert col(t, "ip_id")[:3] == [0x4242] * 3
    t6 = read_packets([EDGE / "ipv6_ext_headers.pcap"])
    client = col(t6, "src_port")[0]
    assert col(t6, "dst_port") == [443, client, 443, 443, 500, 2049]
    assert (col(t6, "ip_id")[5], col(t6, "payload_len")[5]) == (0x1234, 64)


def test_edge_fixture_icmp_unreachables():
    t = read_packets([EDGE / "icmp_admin_prohibited.pcap"])
    assert (list(t.icmp_errors.icmp_code), list(t.icmp_errors.inner_dst_port)) == ([13, 3],
                                                                                   [135, 161])
    t6 = read_packets([EDGE / "icmp6_unreachable.pcap"])
    assert (list(t6.icmp_errors.icmp_code), list(t6.icmp_errors.inner_dst_port)) == ([1, 4],
                                                                                     [443, 3343])


def test_edge_fixture_truncated():
    with pytest.warns(CaptureWarning, match=r"truncated\.pcap: truncated record at byte offset"):
        t = read_packets([EDGE / "truncated.pcap"])
    assert col(t, "tcp_flags") == [SYN, SYN | ACK, ACK]


def tshark_fields(path, *fields, display="ip||ipv6"):
    """tshark's field values (first occurrence) for the IP packets of a capture, one line each."""
    cmd = ["tshark", "-r", str(path), "-Y", display, "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return [line for line in done.stdout.splitlines() if line]


ORACLE_FILES = sorted(PUBLIC.glob("*.pcap*")) + sorted(
    p for p in EDGE.glob("*.pcap*") if p.name != "truncated.pcap")
ORACLE_FIELDS = ("frame.number", "frame.len", "frame.time_epoch", "ip.src", "ipv6.src", "ip.dst",
                 "ipv6.dst", "tcp.srcport", "udp.srcport", "tcp.dstport", "udp.dstport",
                 "tcp.flags", "tcp.len")


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("path", ORACLE_FILES, ids=lambda p: p.name)
def test_packets_match_tshark(path):
    """Count and frame bytes per file, and per packet time, addresses, ports, flags, length."""
    t = read_packets([path])
    rows = [dict(zip(ORACLE_FIELDS, line.split("\t"), strict=True))
            for line in tshark_fields(path, *ORACLE_FIELDS)]
    lens = [int(r["frame.len"]) for r in rows]
    assert (len(t.packets), int(t.packets.frame_len.sum())) == (len(lens), sum(lens))
    pk = t.packets.set_index("record_index")
    src = dict(zip(pk.index, format_ip(pk.src_ip_hi, pk.src_ip_lo), strict=True))
    dst = dict(zip(pk.index, format_ip(pk.dst_ip_hi, pk.dst_ip_lo), strict=True))
    for r in rows:
        i = int(r["frame.number"]) - 1
        p = pk.loc[i]
        sec, frac = r["frame.time_epoch"].split(".")
        assert p.ts_ns == int(sec) * NS + int(frac.ljust(9, "0")), i
        assert (src[i], dst[i]) == (r["ip.src"] or r["ipv6.src"], r["ip.dst"] or r["ipv6.dst"]), i
        whole = p.frag_offset == 0 and not p.more_fragments  # tshark puts ports on reassembly
        if whole and p.proto in (6, 17):
            sport = int(r["tcp.srcport"] or r["udp.srcport"])
            dport = int(r["tcp.dstport"] or r["udp.dstport"])
            assert (p.src_port, p.dst_port) == (sport, dport), i
        if whole and p.proto == 6:
            assert (p.tcp_flags, p.payload_len) == (int(r["tcp.flags"], 16) & 0xFF,
                                                    int(r["tcp.len"])), i
