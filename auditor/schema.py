"""Every table's columns in one place: name, dtype, unit and a one-line meaning.

Identity first (`src_ip, src_port, dst_ip, dst_port, proto`), unit suffixes (`_bytes`,
`_packets`, `_ns`), snake_case; the same names are used in YAML, reports and plots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, dtype, unit and meaning."""

    name: str
    dtype: str
    unit: str
    description: str


def _table(*cols: tuple[str, str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*c) for c in cols)


# Packet arrays produced by capture.read_packets: one row per IPv4/IPv6 packet.
# Addresses are 128-bit, IPv4 stored IPv4-mapped (::ffff:a.b.c.d), split into two uint64
# halves so numpy can sort and group them without Python objects.
PACKET_COLUMNS = _table(
    ("ts_ns", "int64", "ns", "capture timestamp, nanoseconds since the Unix epoch (UTC)"),
    ("file_index", "uint16", "", "index of the capture file in PacketTable.files"),
    ("record_index", "uint32", "", "0-based record number inside that file (all records)"),
    ("l3_offset", "uint16", "bytes", "offset of the IP header inside the captured record"),
    ("frame_len", "uint32", "bytes", "original frame length on the wire (Wireshark frame.len)"),
    ("ip_version", "uint8", "", "4 or 6"),
    ("src_ip_hi", "uint64", "", "upper 64 bits of the IPv6 (or IPv4-mapped) source address"),
    ("src_ip_lo", "uint64", "", "lower 64 bits of the source address"),
    ("dst_ip_hi", "uint64", "", "upper 64 bits of the destination address"),
    ("dst_ip_lo", "uint64", "", "lower 64 bits of the destination address"),
    ("proto", "uint8", "", "IP protocol number of the transport (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)"),
    ("src_port", "uint16", "", "TCP/UDP source port; 0 for other protocols and later fragments"),
    ("dst_port", "uint16", "", "TCP/UDP destination port; 0 for other protocols and later fragments"),
    ("tcp_flags", "uint8", "", "TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10); 0 otherwise"),
    ("payload_len", "uint32", "bytes", "transport payload length from the IP length fields"),
    ("payload_head", "uint32", "", "first 4 captured payload bytes, big-endian, zero-padded"),
    ("ip_id", "uint32", "", "IPv4 identification or IPv6 fragment-header identification"),
    ("frag_offset", "uint16", "8 bytes", "fragment offset; non-zero marks a non-first fragment"),
    ("more_fragments", "bool", "", "the more-fragments flag is set"),
    ("icmp_type", "uint8", "", "ICMP/ICMPv6 type; 0 for other protocols"),
    ("icmp_code", "uint8", "", "ICMP/ICMPv6 code; 0 for other protocols"),
)

# ICMP/ICMPv6 destination-unreachable messages, with the header they quote.
ICMP_ERROR_COLUMNS = _table(
    ("packet_index", "int64", "", "row of the ICMP packet in PacketTable.packets"),
    ("icmp_type", "uint8", "", "3 (ICMP) or 1 (ICMPv6) destination unreachable"),
    ("icmp_code", "uint8", "", "unreachable code; 13 (v4) / 1 (v6) = administratively prohibited"),
    ("inner_src_ip_hi", "uint64", "", "quoted packet's source address, upper half"),
    ("inner_src_ip_lo", "uint64", "", "quoted packet's source address, lower half"),
    ("inner_dst_ip_hi", "uint64", "", "quoted packet's destination address, upper half"),
    ("inner_dst_ip_lo", "uint64", "", "quoted packet's destination address, lower half"),
    ("inner_proto", "uint8", "", "quoted packet's IP protocol"),
    ("inner_src_port", "uint16", "", "quoted packet's source port (0 when not quoted)"),
    ("inner_dst_port", "uint16", "", "quoted packet's destination port (0 when not quoted)"),
)

FLOW_STATES = (
    "established",  # TCP handshake completed (SYN, SYN/ACK, ACK seen)
    "rejected",  # SYN answered by RST, or by an ICMP unreachable
    "unanswered",  # SYNs only, nothing came back
    "midstream",  # TCP flow whose start is not in the capture
    "udp_answered",  # UDP (or ICMP) with packets both ways
    "udp_unanswered",  # UDP (or ICMP) with packets one way only
)

# The flow table produced by flows.build_flows: one row per bidirectional flow.
FLOW_COLUMNS = _table(
    ("flow_id", "int64", "", "row number of the flow, stable for one build"),
    ("src_ip", "object", "", "initiator address (sender of the SYN; else the client side)"),
    ("src_port", "uint16", "", "initiator port (0 for ICMP)"),
    ("dst_ip", "object", "", "responder address"),
    ("dst_port", "uint16", "", "responder (service) port (0 for ICMP)"),
    ("proto", "object", "", "tcp, udp, icmp or icmpv6 (other IP protocols by number)"),
    ("first_seen", "datetime64[ns, UTC]", "", "timestamp of the flow's first packet"),
    ("last_seen", "datetime64[ns, UTC]", "", "timestamp of the flow's last packet"),
    ("src_packets", "int64", "packets", "packets sent by the initiator"),
    ("src_bytes", "int64", "bytes", "frame bytes sent by the initiator (sum of frame.len)"),
    ("dst_packets", "int64", "packets", "packets sent by the responder"),
    ("dst_bytes", "int64", "bytes", "frame bytes sent by the responder (sum of frame.len)"),
    ("src_payload_bytes", "int64", "bytes", "transport payload bytes sent by the initiator"),
    ("dst_payload_bytes", "int64", "bytes", "transport payload bytes sent by the responder"),
    ("state", "object", "", "outcome: " + ", ".join(FLOW_STATES)),
    ("end", "object", "", "how a TCP flow ended: fin, rst, or empty when not seen"),
    ("icmp_type", "Int64", "", "type of the ICMP unreachable that rejected the flow, else NA"),
    ("icmp_code", "Int64", "", "code of that ICMP unreachable (13 = administratively prohibited)"),
    ("client_payload_head", "uint32", "", "first 4 payload bytes the initiator sent (0 if none)"),
    ("capture", "object", "", "name of the capture file the flow started in"),
)


VERDICTS = ("expected", "unexpected", "rejected", "unanswered")
FINDING_KINDS = ("unexpected", "rejected", "unanswered", "missing")

# The flow table after audit.audit: FLOW_COLUMNS followed by these.
AUDIT_FLOW_COLUMNS = FLOW_COLUMNS + _table(
    ("src_name", "object", "", "initiator's name from the inventory or the capture, else empty"),
    ("dst_name", "object", "", "responder's name from the inventory or the capture, else empty"),
    ("src_roles", "object", "", "all roles of the initiator, ';'-separated"),
    ("dst_roles", "object", "", "all roles of the responder, ';'-separated"),
    ("src_role", "object", "", "the initiator role the verdict used (the matched rule's, else first)"),
    ("dst_role", "object", "", "the responder role the verdict used"),
    ("rule", "object", "", "id of the catalogue rule the flow matches, empty when none"),
    ("service", "object", "", "service family (smtp, ldap, rpc, ...) from the rule or the port"),
    ("rpc_interface", "object", "", "DCE/RPC interface learned for the flow's server port, else empty"),
    ("rpc_evidence", "object", "", "how that interface was learned: epm, bind, dcom, inferred"),
    ("documented", "bool", "", "a catalogue rule allows this path"),
    ("verdict", "object", "", "expected, unexpected, rejected or unanswered"),
)

# One row per finding, aggregated per (kind, src_ip, dst_ip, proto, dst_port).
FINDING_COLUMNS = _table(
    ("kind", "object", "", "unexpected, rejected, unanswered or missing"),
    ("severity", "object", "", "info, low, medium or high"),
    ("src_ip", "object", "", "initiator address (empty for role-level missing findings)"),
    ("dst_ip", "object", "", "responder address (empty for role-level missing findings)"),
    ("proto", "object", "", "tcp, udp, icmp or icmpv6"),
    ("dst_port", "Int64", "", "responder port (NA for a missing rule with several ports)"),
    ("src_name", "object", "", "initiator's name, else empty"),
    ("dst_name", "object", "", "responder's name, else empty"),
    ("src_role", "object", "", "initiator role"),
    ("dst_role", "object", "", "responder role"),
    ("documented", "bool", "", "a catalogue rule allows this path (a refused documented path is a likely firewall block)"),
    ("rule", "object", "", "matching or missing rule id, empty when none"),
    ("service", "object", "", "service family"),
    ("flows", "int64", "flows", "number of flows aggregated into the finding (0 for missing)"),
    ("packets", "int64", "packets", "packets of those flows, both directions"),
    ("bytes", "int64", "bytes", "frame bytes of those flows, both directions"),
    ("first_seen", "datetime64[ns, UTC]", "", "first packet of those flows (NaT for missing)"),
    ("last_seen", "datetime64[ns, UTC]", "", "last packet of those flows (NaT for missing)"),
    ("detail", "object", "", "one sentence: the reason, the rule, the ICMP code, ..."),
)

RULE_STATUSES = ("observed", "missing", "not_applicable")

# One row per catalogue rule after an audit.
RULE_STATUS_COLUMNS = _table(
    ("id", "object", "", "rule id"),
    ("service", "object", "", "service family"),
    ("source", "object", "", "source roles, ';'-separated"),
    ("destination", "object", "", "destination roles, ';'-separated"),
    ("proto", "object", "", "tcp or udp"),
    ("ports", "object", "", "ports as written in the catalogue (e.g. '135,rpc-dynamic')"),
    ("expected", "bool", "", "a healthy deployment should show it"),
    ("status", "object", "", "observed, missing (expected, both roles present, never seen) or not_applicable"),
    ("flows", "int64", "flows", "flows that matched the rule"),
    ("bytes", "int64", "bytes", "frame bytes of those flows"),
    ("host_pairs", "int64", "", "distinct (src_ip, dst_ip) pairs that matched"),
)


def empty_frame(columns: tuple[Column, ...]) -> pd.DataFrame:
    """Return an empty frame with the given columns and dtypes."""
    data = {}
    for col in columns:
        if col.dtype.startswith("datetime64"):
            data[col.name] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif col.dtype in ("object", "Int64", "string"):
            data[col.name] = pd.Series([], dtype=col.dtype)
        else:
            data[col.name] = pd.Series(np.array([], dtype=col.dtype))
    return pd.DataFrame(data)


def column_names(columns: tuple[Column, ...]) -> list[str]:
    """Return the names of a table's columns, in order."""
    return [c.name for c in columns]


# ---- Catalogue and roles (catalogue.py, roles.py) ----

# The role vocabulary used by the inventory, the catalogue, reports and plots (exactly these).
ROLES = (
    "mailbox",
    "client_access",
    "hub_transport",
    "edge_transport",
    "unified_messaging",
    "domain_controller",
    "client",
    "internet",
    "voip_gateway",
    "ocs",
    "witness",
    "admin",
    "dns",
    "unknown",
)

# catalogue.catalogue_frame: one row per catalogue rule, for listing.
RULE_COLUMNS = _table(
    ("id", "object", "", "rule id; starts with the reference row id (T02-hub-edge-smtp)"),
    ("source", "object", "", "source (initiator) roles, ';'-separated"),
    ("destination", "object", "", "destination (responder) roles, ';'-separated"),
    ("proto", "object", "", "tcp or udp"),
    ("ports", "object", "", "ports as written in the catalogue (e.g. '135,rpc-dynamic')"),
    ("service", "object", "", "service family for faceting (smtp, ldap, rpc, ...)"),
    ("description", "object", "", "what the path carries"),
    ("status", "object", "", "reference status: CONFIRMED, PARTIAL or UNCONFIRMED"),
    ("reference", "object", "", "reference row ids and [Sx] source keys"),
    ("configurable", "object", "", "how the port can be changed, or 'no'"),
    ("expected", "bool", "", "a healthy deployment shows this path (absence is a finding)"),
    ("severity", "object", "", "severity of a violation: info, low, medium or high"),
    ("scope", "object", "", "internal (advisory) or strict (client, Internet and Edge paths)"),
    ("note", "object", "", "caveats from the reference, else empty"),
    ("defined_at", "object", "", "file:line where the rule is defined"),
)

# catalogue.rule_ports_frame: the match table the audit merges flows against.
RULE_PORT_COLUMNS = _table(
    ("rule_id", "object", "", "catalogue rule id"),
    ("src_role", "object", "", "one source role of the rule"),
    ("dst_role", "object", "", "one destination role of the rule"),
    ("proto", "object", "", "tcp or udp"),
    ("port_lo", "uint16", "", "lowest destination port of the range"),
    ("port_hi", "uint16", "", "highest destination port of the range (= port_lo for one port)"),
    ("dynamic", "bool", "", "the range comes from rpc-dynamic (discovered or the default range)"),
    ("server_ip", "object", "", "server the discovered dynamic ports belong to; empty otherwise"),
)

# roles.assign_roles: one row per distinct address.
HOST_ROLE_COLUMNS = _table(
    ("ip", "object", "", "the address as given"),
    ("name", "object", "", "inventory host (or network) name, else empty"),
    ("roles", "object", "", "tuple of role names (host entry, else most specific network, else default)"),
)

# roles.propose_inventory: why each proposed role was given.
ROLE_EVIDENCE_COLUMNS = _table(
    ("ip", "object", "", "the host's address"),
    ("name", "object", "", "proposed host name (from the capture, else role + number)"),
    ("role", "object", "", "proposed role"),
    ("confidence", "float64", "", "0..1, how strongly the traffic supports the role"),
    ("evidence", "object", "", "the traffic that suggests it, e.g. 'answers 88/tcp, 389/tcp to 5 clients'"),
)
