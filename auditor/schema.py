"""Every table's columns in one place: name, dtype, unit and a one-line meaning.

Identity first (`src_ip, src_port, dst_ip, dst_port, proto`), unit suffixes (`_bytes`,
`_packets`, `_ns`), snake_case; the same names are used in YAML, reports and plots.
"""

from __future__ import annotations

# Column and the frame helpers live in auditor/frames.py; re-exported here, where callers look.
from auditor.frames import Column as Column
from auditor.frames import _table
from auditor.frames import column_names as column_names
from auditor.frames import empty_frame as empty_frame
from auditor.frames import typed_frame as typed_frame

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
    ("tcp_seq", "uint32", "", "TCP sequence number (tells a retried SYN from a new connection); 0 otherwise"),
    ("payload_len", "uint32", "bytes", "transport payload length from the IP length fields"),
    ("payload_head", "uint32", "", "first 4 captured payload bytes, big-endian, zero-padded"),
    ("ip_id", "uint32", "", "IPv4 identification or IPv6 fragment-header identification"),
    ("frag_offset", "uint16", "8 bytes", "fragment offset; non-zero marks a non-first fragment"),
    ("more_fragments", "bool", "", "the more-fragments flag is set"),
    ("icmp_type", "uint8", "", "ICMP/ICMPv6 type; 0 for other protocols"),
    ("icmp_code", "uint8", "", "ICMP/ICMPv6 code; 0 for other protocols"),
    ("payload_b4", "uint64", "", "captured payload bytes 4-11, big-endian, zero-padded"),
    ("payload_b12", "uint64", "", "captured payload bytes 12-19, big-endian, zero-padded"),
    ("payload_b20", "uint64", "", "captured payload bytes 20-27, big-endian, zero-padded"),
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

# What decided a flow's initiator (flows.orient): the strongest evidence first.
ORIENTATIONS = (
    "handshake",  # TCP SYN (or SYN/ACK) seen
    "multicast",  # the other side is a multicast or broadcast address, which never sends
    "payload",  # protocol evidence in the first payload bytes: request vs response
    "listener",  # one side accepted a handshake (or answered) elsewhere in the capture set
    "epm",  # one side is an RPC endpoint advertised by EPM, a bind or a DCOM binding
    "port",  # one side's port is a service port, the other's is not
    "first_packet",  # a guess: the sender of the first captured packet
)

FLOW_STATES = (
    "established",  # TCP handshake completed (SYN, SYN/ACK, ACK seen)
    "rejected",  # SYN answered by RST, or by an ICMP unreachable
    "unanswered",  # SYNs only, nothing came back
    "midstream",  # TCP flow whose start is not in the capture
    "udp_answered",  # UDP (or ICMP) with packets both ways
    "udp_unanswered",  # UDP with packets one way only
    "answered",  # another IP protocol (ICMP, GRE, ESP, ...) with packets both ways
    "one_way",  # another IP protocol with packets one way only (IGMP reports, ...)
    "multicast",  # sent to a multicast or broadcast address: one to many, nothing answers on it
)

# The flow table produced by flows.build_flows: one row per bidirectional flow.
FLOW_COLUMNS = _table(
    ("flow_id", "int64", "", "row number of the flow, stable for one build"),
    ("src_ip", "str", "", "initiator address (sender of the SYN; else the client side)"),
    ("src_port", "uint16", "", "initiator port (0 for ICMP)"),
    ("dst_ip", "str", "", "responder address"),
    ("dst_port", "uint16", "", "responder (service) port (0 for ICMP)"),
    ("proto", "str", "", "IP protocol by its IANA keyword: tcp, udp, icmp, icmpv6, igmp, gre, esp, "
     "... (the number when unnamed)"),
    ("first_seen", "datetime64[ns, UTC]", "", "timestamp of the flow's first packet"),
    ("last_seen", "datetime64[ns, UTC]", "", "timestamp of the flow's last packet"),
    ("src_packets", "int64", "packets", "packets sent by the initiator"),
    ("src_bytes", "int64", "bytes", "frame bytes sent by the initiator (sum of frame.len)"),
    ("dst_packets", "int64", "packets", "packets sent by the responder"),
    ("dst_bytes", "int64", "bytes", "frame bytes sent by the responder (sum of frame.len)"),
    ("src_payload_bytes", "int64", "bytes", "transport payload bytes sent by the initiator"),
    ("dst_payload_bytes", "int64", "bytes", "transport payload bytes sent by the responder"),
    ("state", "str", "", "outcome: " + ", ".join(FLOW_STATES)),
    ("end", "str", "", "how a TCP flow ended: fin, rst, or empty when not seen"),
    ("icmp_type", "Int64", "", "type of the ICMP unreachable that rejected the flow, else NA"),
    ("icmp_code", "Int64", "", "code of that ICMP unreachable (13 = administratively prohibited)"),
    ("client_payload_head", "uint32", "", "first 4 payload bytes the initiator sent (0 if none)"),
    ("capture", "str", "", "name of the capture file the flow started in"),
    ("orientation", "str", "", "what decided the initiator: " + ", ".join(ORIENTATIONS)),
    ("src_payload_prefix", "str", "", "first payload bytes (up to 28) the initiator sent, hex"),
    ("dst_payload_prefix", "str", "", "first payload bytes (up to 28) the responder sent, hex"),
)


VERDICTS = ("expected", "unexpected", "rejected", "unanswered", "cut_off")
FINDING_KINDS = ("unexpected", "rejected", "unanswered", "missing", "cut_off")

# The flow table after audit.audit: FLOW_COLUMNS followed by these.
AUDIT_FLOW_COLUMNS = FLOW_COLUMNS + _table(
    ("src_name", "str", "", "initiator's name from the inventory or the capture, else empty"),
    ("dst_name", "str", "", "responder's name from the inventory or the capture, else empty"),
    ("src_roles", "str", "", "all roles of the initiator, ';'-separated", ";"),
    ("dst_roles", "str", "", "all roles of the responder, ';'-separated", ";"),
    ("src_role", "str", "", "the initiator role the verdict used (the matched rule's, else first)"),
    ("dst_role", "str", "", "the responder role the verdict used"),
    ("rule", "str", "", "id of the catalogue rule the flow matches, empty when none"),
    ("service", "str", "", "service family (smtp, ldap, rpc, ...) from the rule or the port"),
    ("rpc_interface", "str", "", "DCE/RPC interface learned for the flow's server port, else empty"),
    ("rpc_evidence", "str", "", "how that interface was learned: epm, bind, dcom, inferred"),
    ("documented", "bool", "", "a catalogue rule allows this path"),
    ("verdict", "str", "", "expected, unexpected, rejected, unanswered or cut_off (an unanswered "
     "request sent within its retry window before the capture ended)"),
    ("src_name_source", "str", "", "where src_name came from: inventory, a capture source "
     "(dns, cldap, nbns, smtp-banner, tls-sni, ...; see HOST_NAME_COLUMNS), else empty"),
    ("dst_name_source", "str", "", "where dst_name came from, as src_name_source"),
    ("src_version", "str", "", "initiator's Exchange version (inventory, else catalogue) if Exchange"),
    ("dst_version", "str", "", "responder's Exchange version, if an Exchange host"),
)

# One row per finding, aggregated per (kind, src_ip, dst_ip, proto, dst_port).
FINDING_COLUMNS = _table(
    ("kind", "str", "", "unexpected, rejected, unanswered, missing or cut_off"),
    ("severity", "str", "", "info, low, medium or high"),
    ("src_ip", "str", "", "initiator address (empty for role-level missing findings)"),
    ("dst_ip", "str", "", "responder address (empty for role-level missing findings)"),
    ("proto", "str", "", "tcp, udp, icmp or icmpv6"),
    ("dst_port", "Int64", "", "responder port (NA for a missing rule with several ports)"),
    ("src_name", "str", "", "initiator's name, else empty"),
    ("dst_name", "str", "", "responder's name, else empty"),
    ("src_role", "str", "", "initiator role"),
    ("dst_role", "str", "", "responder role"),
    ("documented", "bool", "", "a catalogue rule allows this path (refused: a likely firewall block)"),
    ("rule", "str", "", "matching or missing rule id, empty when none"),
    ("service", "str", "", "service family"),
    ("flows", "int64", "flows", "number of flows aggregated into the finding (0 for missing)"),
    ("packets", "int64", "packets", "packets of those flows, both directions"),
    ("bytes", "int64", "bytes", "frame bytes of those flows, both directions"),
    ("first_seen", "datetime64[ns, UTC]", "", "first packet of those flows (NaT for missing)"),
    ("last_seen", "datetime64[ns, UTC]", "", "last packet of those flows (NaT for missing)"),
    ("detail", "str", "", "one sentence: the reason, the rule, the ICMP code, ..."),
    ("orientation", "str", "", "weakest orientation of those flows ('port', 'first_packet' = a "
     "guess); empty for missing"),
    ("src_name_source", "str", "", "where src_name came from: inventory, a capture source "
     "(dns, cldap, nbns, smtp-banner, tls-sni, ...), else empty"),
    ("dst_name_source", "str", "", "where dst_name came from, as src_name_source"),
    ("display_filter", "str", "", "Wireshark display filter isolating the finding's packets, both "
     "directions and quoting ICMP errors (ip.addr==A && ip.addr==B && tcp.port==P)"),
    ("src_version", "str", "", "Exchange version of the initiator, empty for non-Exchange ends"),
    ("dst_version", "str", "", "Exchange version of the responder, empty for non-Exchange ends"),
)

RULE_STATUSES = ("observed", "missing", "not_applicable")

# One row per catalogue rule after an audit.
RULE_STATUS_COLUMNS = _table(
    ("id", "str", "", "rule id"),
    ("service", "str", "", "service family"),
    ("source", "str", "", "source roles, ';'-separated", ";"),
    ("destination", "str", "", "destination roles, ';'-separated", ";"),
    ("proto", "str", "", "tcp, udp, icmp or icmpv6"),
    ("ports", "str", "", "ports as written in the catalogue (e.g. '135,rpc-dynamic')", ","),
    ("expected", "bool", "", "a healthy deployment should show it"),
    ("status", "str", "", "observed, missing (expected, both roles present, never seen) or not_applicable"),
    ("flows", "int64", "flows", "flows that matched the rule"),
    ("bytes", "int64", "bytes", "frame bytes of those flows"),
    ("host_pairs", "int64", "", "distinct (src_ip, dst_ip) pairs that matched"),
)


# ---- Catalogue and roles (catalogue/, inventory/) ----

# The role vocabulary used by the inventory, the catalogue, reports and plots (exactly these).
ROLES = (
    "mailbox", "client_access", "hub_transport", "edge_transport", "unified_messaging",  # Exchange
    "domain_controller",
    "client",
    "internet",
    "voip_gateway",
    "ocs",
    "witness",
    "admin",
    "dns",
    "unknown",
    "multicast",  # 224.0.0.0/4, ff00::/8 (audit/scope.py; never an inventory role)
    "broadcast",  # 255.255.255.255 and each inventory network's broadcast address
    "link_local",  # fe80::/10, 169.254.0.0/16 not listed as an inventory host
)
EXCHANGE_ROLES = frozenset(ROLES[:5])  # the roles an inventory `version` (2010 ... 2019) applies to

# catalogue.catalogue_frame: one row per catalogue rule, for listing.
RULE_COLUMNS = _table(
    ("id", "str", "", "rule id; starts with the reference row id (T02-hub-edge-smtp)"),
    ("source", "str", "", "source (initiator) roles, ';'-separated", ";"),
    ("destination", "str", "", "destination (responder) roles, ';'-separated", ";"),
    ("proto", "str", "", "tcp, udp, icmp or icmpv6"),
    ("ports", "str", "", "ports as written in the catalogue (e.g. '135,rpc-dynamic')", ","),
    ("service", "str", "", "service family for faceting (smtp, ldap, rpc, ...)"),
    ("description", "str", "", "what the path carries"),
    ("status", "str", "", "reference status: CONFIRMED, PARTIAL or UNCONFIRMED"),
    ("reference", "str", "", "reference row ids and [Sx] source keys"),
    ("configurable", "str", "", "how the port can be changed, or 'no'"),
    ("expected", "bool", "", "a healthy deployment shows this path (absence is a finding)"),
    ("severity", "str", "", "severity of a violation: info, low, medium or high"),
    ("scope", "str", "", "internal (advisory) or strict (client, Internet and Edge paths)"),
    ("note", "str", "", "caveats from the reference, else empty"),
    ("defined_at", "str", "", "file:line where the rule is defined"),
    ("versions", "str", "", "Exchange versions the rule is for, ','-separated; empty for any", ","),
    ("source_versions", "str", "", "coexistence: versions of the source end only", ","),
    ("destination_versions", "str", "", "coexistence: versions of the destination end only", ","),
    ("interfaces", "str", "", "DCE/RPC interfaces the rule documents, ';'-separated (empty: any)",
     ";"),
    ("app_protocol", "str", "", "application protocol the flow must show (rtp, sip, ...), else any"),
    ("icmp_types", "str", "", "icmp/icmpv6 rules: ICMP type names (echo, unreachable, ...), "
     "','-separated; empty for any type", ","),
)

# catalogue.rule_ports_frame: the match table the audit merges flows against.
RULE_PORT_COLUMNS = _table(
    ("rule_id", "str", "", "catalogue rule id"),
    ("src_role", "str", "", "one source role of the rule"),
    ("dst_role", "str", "", "one destination role of the rule"),
    ("proto", "str", "", "tcp or udp"),
    ("port_lo", "uint16", "", "lowest destination port of the range"),
    ("port_hi", "uint16", "", "highest destination port of the range (= port_lo for one port)"),
    ("dynamic", "bool", "", "the range comes from rpc-dynamic (discovered or the default range)"),
    ("server_ip", "str", "", "server the discovered dynamic ports belong to; empty otherwise"),
)

# roles.assign_roles: one row per distinct address.
HOST_ROLE_COLUMNS = _table(
    ("ip", "str", "", "the address as given"),
    ("name", "str", "", "inventory host (or network) name, else empty"),
    ("roles", "object", "", "tuple of roles: host entry, else most specific network, else default"),
)

# roles.propose_inventory: why each proposed role was given.
ROLE_EVIDENCE_COLUMNS = _table(
    ("ip", "str", "", "the host's address"),
    ("name", "str", "", "proposed host name (from the capture, else role + number)"),
    ("role", "str", "", "proposed role"),
    ("confidence", "float64", "", "0..1, how strongly the traffic supports the role"),
    ("evidence", "str", "", "traffic behind it, e.g. 'answers 88/tcp, 389/tcp to 5 clients'"),
)

# --- DCE/RPC discovery (dissect/) -------------------------------------------------------
# Interface versions are "major.minor" text; UUIDs are lower-case text; *_ip are address text.

# dissect.dissect_rpc: one row per tower of an ept_map/ept_lookup response, or one per failed ept_map.
RPC_EPM_COLUMNS = _table(
    ("ts", "datetime64[ns, UTC]", "", "time of the EPM response"),
    ("client_ip", "str", "", "who asked the endpoint mapper"),
    ("client_port", "uint16", "", "the asker's source port"),
    ("server_ip", "str", "", "who answered (the endpoint mapper's address)"),
    ("server_port", "uint16", "", "the endpoint mapper's port (135, or 593 for ncacn_http)"),
    ("operation", "str", "", "ept_map or ept_lookup"),
    ("interface_uuid", "str", "", "interface in the tower (for a failure: the one asked for)"),
    ("interface_version", "str", "", "that interface's major.minor version"),
    ("tower_proto", "str", "", "tcp, udp, http, pipe, lrpc or other; empty for a failure"),
    ("tower_ip", "str", "", "address in the tower; empty when absent (0.0.0.0 means 'the server')"),
    ("port", "Int64", "", "TCP/UDP/HTTP port in the tower, NA for pipes, LRPC and failures"),
    ("endpoint", "str", "", "pipe or LRPC endpoint name, else empty"),
    ("status", "int64", "", "EPM return code: 0 ok, 0x16c9a0d6 EPT_S_NOT_REGISTERED, ..."),
    ("status_name", "str", "", "ok, EPT_S_NOT_REGISTERED, or the code in hex"),
)

RPC_BIND_RESULTS = ("accepted", "rejected", "unknown")

# dissect.dissect_rpc: one row per (bind or alter_context PDU, interface).
RPC_BIND_COLUMNS = _table(
    ("ts", "datetime64[ns, UTC]", "", "time of the bind"),
    ("client_ip", "str", "", "the binding client"),
    ("client_port", "uint16", "", "its TCP port"),
    ("server_ip", "str", "", "the server bound to"),
    ("server_port", "uint16", "", "the server's TCP port (445 for binds inside SMB pipes)"),
    ("transport", "str", "", "tcp (ncacn_ip_tcp), smb (ncacn_np) or http (ncacn_http)"),
    ("interface_uuid", "str", "", "abstract syntax asked for"),
    ("interface_version", "str", "", "its major.minor version"),
    ("ptype", "str", "", "bind or alter_context"),
    ("result", "str", "", "accepted, rejected (bind_nak or every context refused) or unknown"),
)

# dissect.dissect_rpc: one row per DCOM string binding (OXID resolver or activation replies).
RPC_DCOM_COLUMNS = _table(
    ("ts", "datetime64[ns, UTC]", "", "time of the reply carrying the binding"),
    ("client_ip", "str", "", "receiver of the reply"),
    ("server_ip", "str", "", "sender of the reply (the object exporter's host)"),
    ("tower_id", "int64", "", "protocol sequence: 7 ncacn_ip_tcp, 8 ncadg_ip_udp, 15 ncacn_np, ..."),
    ("binding", "str", "", "the string binding as sent, e.g. 'DC01[49712]'"),
    ("host", "str", "", "network address part of the binding (name or address)"),
    ("port", "Int64", "", "port in brackets, NA when the binding has none"),
    ("interface_uuid", "str", "", "an interface the binding serves: an IID a RemoteCreateInstance "
     "or RemoteGetClassObject reply returned (else the one asked for); empty for an OXID "
     "resolver reply, which names none"),
)

# dissect.dissect_rpc: one row per connectionless (ncadg, UDP) DCE/RPC PDU.
RPC_CL_COLUMNS = _table(
    ("ts", "datetime64[ns, UTC]", "", "time of the PDU"),
    ("client_ip", "str", "", "caller (sender of requests and pings)"),
    ("client_port", "uint16", "", "caller's UDP port"),
    ("server_ip", "str", "", "callee"),
    ("server_port", "uint16", "", "callee's UDP port"),
    ("ptype", "str", "", "request, ping, response, fault, working, nocall, reject, ack, ..."),
    ("interface_uuid", "str", "", "interface in the PDU header"),
    ("interface_version", "str", "", "its major.minor version"),
    ("activity_uuid", "str", "", "activity id (one client call sequence)"),
)

# dissect.dissect_names: one row per distinct (ip, name, source, hint).
HOST_NAME_COLUMNS = _table(
    ("ip", "str", "", "the named address; empty when the packet names a host, not an address "
                      "(a Kerberos service principal, a DNS SRV target)"),
    ("name", "str", "", "host name as seen (DNS, NetBIOS, SMTP, TLS, ... name); empty for a hint "
                        "alone"),
    ("source", "str", "", "dns, cldap, ldap, nbns, browser, smtp-ehlo, smtp-banner, kerberos, "
                          "smb, tls-certificate, tls-sni, dhcp, llmnr or mdns"),
    ("hint", "str", "", "role evidence of the same packet, 'kind:detail': dc-locator, browser-dc, "
                        "srv-dc, ldap-rootdse, kdc, spn, exchange-smtp, smtp-auth; else empty"),
)

RPC_EVIDENCE = ("epm", "bind", "dcom", "inferred")

# rpc.discover_endpoints: one row per (server_ip, port, proto, interface_uuid).
RPC_ENDPOINT_COLUMNS = _table(
    ("server_ip", "str", "", "host serving the endpoint"),
    ("port", "uint16", "", "TCP or UDP port of the endpoint"),
    ("proto", "str", "", "tcp or udp"),
    ("interface_uuid", "str", "", "interface served there; empty when unknown (dcom, inferred)"),
    ("interface", "str", "", "interface name from rpc_interfaces.csv, else empty"),
    ("evidence", "str", "", "strongest evidence: epm, bind, dcom or inferred"),
    ("advertised", "bool", "", "an EPM reply in the capture named this endpoint"),
    ("used", "bool", "", "some flow reached it: handshake completed, mid-stream data, or UDP answered"),
    ("unanswered", "bool", "", "some flow's SYNs to it (or UDP packets) got no answer"),
    ("rejected", "bool", "", "some flow to it was refused (RST or ICMP unreachable)"),
    ("clients", "int64", "", "distinct addresses that used, tried or learned the endpoint"),
    ("flows", "int64", "flows", "flows to (server_ip, port, proto), whatever their interface"),
    ("bytes", "int64", "bytes", "frame bytes of those flows, both directions"),
    ("first_seen", "datetime64[ns, UTC]", "", "earliest evidence or flow"),
    ("last_seen", "datetime64[ns, UTC]", "", "latest evidence or flow"),
    ("captures", "str", "", "capture files with evidence or flows for it, ';'-separated", ";"),
    ("bound", "bool", "", "a client bound (or altered context) to this interface on this port"),
    ("use", "str", "", "used, refused, never answered (flows got no answer) or advertised only "
     "(an EPM reply or DCOM binding named it, nobody tried it)"),
)

# rpc.dynamic_ranges: one row per server with dynamic RPC endpoints.
RPC_RANGE_COLUMNS = _table(
    ("server_ip", "str", "", "the RPC server"),
    ("lowest_port", "int64", "", "lowest dynamic endpoint port seen"),
    ("highest_port", "int64", "", "highest dynamic endpoint port seen"),
    ("ports", "int64", "", "distinct dynamic endpoint ports"),
    ("interfaces", "str", "", "interface names served, ';'-separated", ";"),
    ("expected_range", "str", "", "default dynamic range for the server, e.g. '49152-65535'"),
    ("expected_basis", "str", "", "why that range: Windows 2008+, Windows 2003, Exchange 2010 CAS"),
    ("outside_ports", "str", "", "ports outside the expected range, ';'-separated", ";"),
    ("pinned_ports", "str", "", "ports that look pinned (same interface and port in several captures)",
     ";"),
    ("recommendation", "str", "", "the documented settings that pin these interfaces' ports"),
)


# firewall.design_requests / asbuilt_requests / merge_requests: one row per rule request.
FIREWALL_COLUMNS = _table(
    ("source", "str", "", "source address, network CIDR, or 'any'"),
    ("source_name", "str", "", "inventory host or network name, else the capture's, else empty"),
    ("destination", "str", "", "destination address, network CIDR, or 'any'"),
    ("destination_name", "str", "", "inventory host or network name, else empty"),
    ("proto", "str", "", "tcp, udp, icmp or icmpv6"),
    ("ports", "str", "", "destination ports merged into ranges ('25', '5060-5061,5065-5068')", ","),
    ("service", "str", "", "service families, ';'-joined", ";"),
    ("rules", "str", "", "catalogue rule ids that justify the request, ';'-joined", ";"),
    ("justification", "str", "", "why: the rules' descriptions, or 'not in the catalogue: ...'"),
    ("scope", "str", "", "internal (Exchange/AD servers) or strict (client, Internet, Edge)"),
    ("justified", "bool", "", "a catalogue rule justifies every port of the row"),
    ("note", "str", "", "dynamic RPC advice (pinning setting) or observed flow counts"),
    ("icmp_types", "str", "", "icmp/icmpv6 rows: the ICMP types to allow, names as the flow "
                              "table shows them ('echo' opens echo requests; replies return as "
                              "established traffic); empty: every type", ";"),
)


# firewall.verify_flows: one row per observed path (src_ip, dst_ip, proto, dst_port).
VERIFY_PATH_COLUMNS = _table(
    ("verdict", "str", "", "permitted, would_block, outside_scope (no row names either end) or "
                           "related (ICMP error answering another flow)"),
    ("src_ip", "str", "", "initiator address"),
    ("src_name", "str", "", "initiator's name, else empty"),
    ("dst_ip", "str", "", "responder address"),
    ("dst_name", "str", "", "responder's name, else empty"),
    ("proto", "str", "", "tcp, udp, icmp or icmpv6"),
    ("dst_port", "int64", "", "responder port (0 for ICMP)"),
    ("flows", "int64", "flows", "observed flows on the path"),
    ("successful_flows", "int64", "flows", "of those, flows that succeeded (handshake, UDP answer)"),
    ("documented", "bool", "", "a catalogue rule allows this path"),
    ("rule", "str", "", "the catalogue rule the path matches, else empty"),
    ("breaks", "str", "", "for a blocked documented path: the catalogue rule and its description"),
    ("ruleset_line", "Int64", "", "line of the ruleset row that decided (NA: the implicit deny)"),
    ("first_seen", "datetime64[ns, UTC]", "", "first packet of those flows"),
    ("icmp_type", "str", "", "icmp/icmpv6 paths: the flows' ICMP type as the flow table names it "
                             "(ICMP paths are tested per type), else empty"),
)

# firewall.verify_flows: ruleset rows that no observed flow matched first.
VERIFY_UNUSED_COLUMNS = _table(
    ("ruleset_line", "int64", "", "line of the row in the ruleset file"),
    ("source", "str", "", "source as written"),
    ("destination", "str", "", "destination as written"),
    ("proto", "str", "", "proto (tcp, udp, icmp, icmpv6, a number or any)"),
    ("ports", "str", "", "ports as written (empty: every port)"),
    ("action", "str", "", "allow or deny"),
    ("icmp_types", "str", "", "icmp_types as written (empty: every ICMP type)"),
)

# audit.diff_findings: one row per finding that is new, resolved or changed between two audits.
DIFF_FINDING_COLUMNS = _table(
    ("status", "str", "", "new, resolved or changed"),
    ("kind", "str", "", "the finding's kind in the new audit (empty when resolved)"),
    ("old_kind", "str", "", "its kind in the old audit (empty when new)"),
    ("severity", "str", "", "severity in the new audit (empty when resolved)"),
    ("old_severity", "str", "", "severity in the old audit (empty when new)"),
    ("src_ip", "str", "", "initiator address (empty for role-level missing findings)"),
    ("src_name", "str", "", "initiator's name, else empty"),
    ("dst_ip", "str", "", "responder address"),
    ("dst_name", "str", "", "responder's name, else empty"),
    ("proto", "str", "", "tcp, udp, icmp or icmpv6"),
    ("dst_port", "Int64", "", "responder port (NA for a missing rule with several ports)"),
    ("rule", "str", "", "catalogue rule of the finding, else empty"),
    ("documented", "bool", "", "a catalogue rule allows this path"),
    ("flows", "int64", "flows", "flows of the finding in the new audit (0 when resolved)"),
    ("old_flows", "int64", "flows", "flows of the finding in the old audit (0 when new)"),
    ("changes", "str", "", "what changed: 'kind rejected -> unanswered; flows 1 -> 3'"),
)

# audit.diff_rules: catalogue rules whose status changed between two audits.
DIFF_RULE_COLUMNS = _table(
    ("id", "str", "", "rule id"),
    ("change", "str", "", "newly_observed, newly_missing, no_longer_observed, removed or status_changed"),
    ("old_status", "str", "", "status in the old audit (empty: not in its catalogue)"),
    ("new_status", "str", "", "status in the new audit (empty: not in its catalogue)"),
)

# audit.diff_rpc: RPC interfaces whose server ports changed between two audits.
DIFF_RPC_COLUMNS = _table(
    ("server_ip", "str", "", "the RPC server"),
    ("proto", "str", "", "tcp or udp"),
    ("interface_uuid", "str", "", "the interface"),
    ("interface", "str", "", "its name, else empty"),
    ("old_ports", "str", "", "ports it was served on in the old audit, ';'-separated"),
    ("new_ports", "str", "", "ports it is served on in the new audit, ';'-separated"),
)
