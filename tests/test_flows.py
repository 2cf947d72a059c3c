"""Flow building on hand-made packet tables: initiator, counts, state, splitting."""

import numpy as np
import pandas as pd
from packet_factory import ACK, FIN, PSH, RST, SYN, icmp_error, pkt, table

from auditor import FlowOptions, build_flows, build_flows_labelled, flows_summary
from auditor.schema import FLOW_COLUMNS, column_names

C, S = "198.18.10.101", "198.18.1.31"


def handshake(t, sport=50000, dport=443, close=True):
    rows = [
        pkt(t, C, sport, S, dport, flags=SYN, length=74, tcp_seq=int(t * 1000) + 1),
        pkt(t + 0.001, S, dport, C, sport, flags=SYN | ACK, length=74),
        pkt(t + 0.002, C, sport, S, dport, flags=ACK, length=66),
        pkt(t + 0.003, C, sport, S, dport, flags=PSH | ACK, length=166, payload=100,
            head=0x16030100),
        pkt(t + 0.004, S, dport, C, sport, flags=PSH | ACK, length=1066, payload=1000),
    ]
    if close:
        rows += [
            pkt(t + 0.005, C, sport, S, dport, flags=FIN | ACK, length=66),
            pkt(t + 0.006, S, dport, C, sport, flags=FIN | ACK, length=66),
            pkt(t + 0.007, C, sport, S, dport, flags=ACK, length=66),
        ]
    return rows


def one(flows):
    assert len(flows) == 1
    return flows.iloc[0]


def test_handshake_is_established_with_initiator_and_counts():
    f = one(build_flows(table(handshake(1.0))))
    assert (f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.proto) == (C, 50000, S, 443, "tcp")
    assert (f.src_packets, f.dst_packets) == (5, 3)
    assert (f.src_bytes, f.dst_bytes) == (74 + 66 + 166 + 66 + 66, 74 + 1066 + 66)
    assert (f.src_payload_bytes, f.dst_payload_bytes) == (100, 1000)
    assert (f.state, f.end) == ("established", "fin")
    assert f.client_payload_head == 0x16030100
    assert f.first_seen == pd.Timestamp(1.0, unit="s", tz="UTC")
    assert f.capture == "test.pcap"


def test_syn_without_synack_is_unanswered():
    rows = [pkt(t, C, 50001, S, 993, flags=SYN) for t in (1.0, 2.0, 4.0)]
    f = one(build_flows(table(rows)))
    assert (f.state, f.src_packets, f.dst_packets, f.dst_port) == ("unanswered", 3, 0, 993)


def test_syn_answered_by_rst_is_rejected():
    rows = [pkt(1.0, C, 50002, S, 110, flags=SYN), pkt(1.001, S, 110, C, 50002, flags=RST | ACK)]
    f = one(build_flows(table(rows)))
    assert (f.state, f.end, f.src_ip, f.dst_port) == ("rejected", "rst", C, 110)


def test_icmp_admin_prohibited_rejects_the_quoted_flow():
    rows = [
        pkt(1.0, C, 50003, S, 135, flags=SYN),
        pkt(1.001, S, 0, C, 0, proto=1, icmp_type=3, icmp_code=13, length=102),
    ]
    errors = [icmp_error(1, C, 50003, S, 135, icmp_code=13)]
    flows = build_flows(table(rows, errors))
    tcp = flows[flows.proto == "tcp"].iloc[0]
    assert (tcp.state, tcp.icmp_type, tcp.icmp_code) == ("rejected", 3, 13)
    icmp = flows[flows.proto == "icmp"].iloc[0]
    assert (icmp.src_ip, icmp.icmp_type, icmp.icmp_code) == (S, 3, 13)


def test_icmp_port_unreachable_rejects_udp_flow():
    rows = [
        pkt(1.0, C, 40000, S, 3343, proto=17, length=90, payload=48),
        pkt(1.001, S, 0, C, 0, proto=1, icmp_type=3, icmp_code=3, length=118),
    ]
    errors = [icmp_error(1, C, 40000, S, 3343, proto=17, icmp_code=3)]
    udp = build_flows(table(rows, errors)).query("proto == 'udp'").iloc[0]
    assert (udp.state, udp.icmp_code) == ("rejected", 3)


def test_fragmentation_needed_does_not_reject():
    rows = [pkt(1.0, C, 40000, S, 53, proto=17), pkt(1.001, S, 0, C, 0, proto=1, icmp_type=3,
                                                      icmp_code=4)]
    errors = [icmp_error(1, C, 40000, S, 53, proto=17, icmp_code=4)]
    udp = build_flows(table(rows, errors)).query("proto == 'udp'").iloc[0]
    assert udp.state == "udp_unanswered" and pd.isna(udp.icmp_code)


def test_midstream_flow_takes_client_from_ephemeral_port():
    rows = [
        pkt(1.0, S, 445, C, 51000, flags=PSH | ACK, payload=100),
        pkt(1.1, C, 51000, S, 445, flags=ACK),
    ]
    f = one(build_flows(table(rows)))
    assert (f.src_ip, f.src_port, f.dst_port, f.state) == (C, 51000, 445, "midstream")
    assert (f.src_packets, f.dst_packets) == (1, 1)


def test_midstream_between_two_ephemeral_ports_takes_first_sender():
    rows = [pkt(1.0, S, 49667, C, 49700, flags=ACK), pkt(1.1, C, 49700, S, 49667, flags=ACK)]
    f = one(build_flows(table(rows)))
    assert (f.src_ip, f.src_port) == (S, 49667)


def test_synack_without_syn_names_the_server():
    rows = [pkt(1.0, S, 49667, C, 49700, flags=SYN | ACK), pkt(1.1, C, 49700, S, 49667, flags=ACK)]
    f = one(build_flows(table(rows)))
    assert (f.src_ip, f.dst_port, f.state) == (C, 49667, "established")


def test_registered_service_port_beats_ephemeral_for_udp():
    rows = [pkt(1.0, S, 3343, C, 60000, proto=17), pkt(1.2, C, 60000, S, 3343, proto=17)]
    f = one(build_flows(table(rows)))
    assert (f.src_ip, f.dst_port, f.state) == (C, 3343, "udp_answered")


def test_udp_one_way_is_unanswered_and_initiator_is_first_sender_on_equal_ports():
    rows = [pkt(1.0, C, 3343, S, 3343, proto=17), pkt(2.0, C, 3343, S, 3343, proto=17)]
    f = one(build_flows(table(rows)))
    assert (f.src_ip, f.state, f.src_packets) == (C, "udp_unanswered", 2)


def test_port_reuse_after_fin_starts_a_new_flow():
    flows = build_flows(table(handshake(1.0) + handshake(5.0)))
    assert len(flows) == 2
    assert list(flows.state) == ["established", "established"]
    assert list(flows.src_packets) == [5, 5]


def test_retransmitted_syn_stays_in_its_flow_after_an_earlier_close():
    rows = handshake(1.0) + [pkt(t, C, 50000, S, 443, flags=SYN, tcp_seq=77) for t in (5.0, 6.0, 8.0)]
    flows = build_flows(table(rows))
    assert len(flows) == 2
    assert (flows.iloc[1].state, flows.iloc[1].src_packets) == ("unanswered", 3)


def test_syn_retried_after_rst_with_the_same_sequence_is_one_rejected_attempt():
    rows = []
    for i in range(3):
        rows += [pkt(1.0 + i, C, 50000, S, 110, flags=SYN, tcp_seq=1000),
                 pkt(1.5 + i, S, 110, C, 50000, flags=RST | ACK)]
    rows.append(pkt(9.0, C, 50000, S, 110, flags=SYN, tcp_seq=9000))  # a new connect: new ISN
    flows = build_flows(table(rows))
    assert list(flows.state) == ["rejected", "unanswered"]
    assert list(flows.src_packets) == [3, 1]


def test_idle_udp_flow_is_split_by_the_timeout():
    rows = [pkt(t, C, 123, S, 123, proto=17) for t in (0, 10, 1000, 1010)]
    assert len(build_flows(table(rows))) == 2
    assert len(build_flows(table(rows), FlowOptions(udp_idle_timeout_s=float("inf")))) == 1


def test_non_first_fragment_counts_to_its_first_fragment_flow():
    rows = [
        pkt(1.0, C, 40000, S, 53, proto=17, length=1514, payload=1472, ip_id=7,
            more_fragments=True),
        pkt(1.0001, C, 0, S, 0, proto=17, length=200, payload=0, ip_id=7, frag_offset=185),
        pkt(1.1, S, 53, C, 40000, proto=17, length=100),
    ]
    f = one(build_flows(table(rows)))
    assert (f.src_packets, f.src_bytes, f.dst_port, f.state) == (2, 1714, 53, "udp_answered")


def test_labels_map_every_packet_to_its_flow():
    rows = handshake(1.0) + [pkt(3.0, C, 40000, S, 53, proto=17)]
    flows, labels = build_flows_labelled(table(rows))
    assert len(labels) == len(rows)
    udp_id = flows.loc[flows.proto == "udp", "flow_id"].iloc[0]
    assert (labels == udp_id).sum() == 1
    assert sorted(np.bincount(labels)) == [1, 8]


def test_ipv6_addresses_are_formatted():
    rows = [pkt(1.0, "2001:db8::1", 50000, "2001:db8::2", 443, flags=SYN, ip_version=6)]
    f = one(build_flows(table(rows)))
    assert (f.src_ip, f.dst_ip) == ("2001:db8::1", "2001:db8::2")


def test_empty_table_gives_empty_frame_with_schema():
    flows = build_flows(table([]))
    assert flows.empty and list(flows.columns) == column_names(FLOW_COLUMNS)


def test_flow_columns_and_dtypes_follow_the_schema():
    flows = build_flows(table(handshake(1.0)))
    assert list(flows.columns) == column_names(FLOW_COLUMNS)
    for col in FLOW_COLUMNS:
        assert str(flows[col.name].dtype) == col.dtype, col.name


def test_summary_ranks_talkers_by_bytes():
    rows = handshake(1.0) + [pkt(3.0, C, 40000, S, 53, proto=17, length=80)]
    summary = flows_summary(build_flows(table(rows)))
    assert summary["top_talkers"].iloc[0].dst_port == 443
    assert set(summary["states"].state) == {"established", "udp_unanswered"}
