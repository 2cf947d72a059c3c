"""Synthetic audit results for the plot and report tests (no capture or catalogue file)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from auditor.audit.verdicts import AuditResult
from auditor.schema import (
    AUDIT_FLOW_COLUMNS,
    FINDING_COLUMNS,
    RPC_ENDPOINT_COLUMNS,
    RPC_RANGE_COLUMNS,
    RULE_STATUS_COLUMNS,
    column_names,
    empty_frame,
)

T0 = pd.Timestamp("2024-03-05 09:00:00", tz="UTC")


@dataclass(frozen=True)
class FakeRule:
    """The fields of catalogue.Rule the diagram reads."""

    id: str
    source: tuple[str, ...]
    destination: tuple[str, ...]
    proto: str
    ports: tuple
    service: str
    expected: bool = True


@dataclass(frozen=True)
class FakeCatalogue:
    rules: tuple[FakeRule, ...]
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class FakeCaptureFile:
    """The fields of capture.CaptureFile."""

    path: str
    name: str
    format: str
    records: int
    ip_packets: int
    non_ip: int
    skipped: dict = field(default_factory=dict)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None


_EXCH = ("hub_transport", "client_access", "mailbox", "unified_messaging")


def _r(id_, src, dst, proto, ports, service, expected=True):
    src = (src,) if isinstance(src, str) else src
    dst = (dst,) if isinstance(dst, str) else dst
    return FakeRule(id_, src, dst, proto, tuple(ports), service, expected)


RULES = (
    _r("T01-hub-hub-smtp", "hub_transport", "hub_transport", "tcp", [25], "smtp"),
    _r("T02-hub-edge-smtp", "hub_transport", "edge_transport", "tcp", [25], "smtp"),
    _r("T03-edge-hub-smtp", "edge_transport", "hub_transport", "tcp", [25], "smtp"),
    _r("T05-mbx-hub-submission", "mailbox", "hub_transport", "tcp", [135, "rpc-dynamic"], "rpc"),
    _r("T06-hub-mbx-mapi", "hub_transport", "mailbox", "tcp", [135, "rpc-dynamic"], "rpc"),
    _r("T07-um-hub-smtp", "unified_messaging", "hub_transport", "tcp", [25], "smtp"),
    _r("T08-hub-edge-edgesync", "hub_transport", "edge_transport", "tcp", [50636], "ldap"),
    _r("T13-inet-edge-smtp", "internet", "edge_transport", "tcp", [25], "smtp"),
    _r("T14-edge-inet-smtp", "edge_transport", "internet", "tcp", [25], "smtp"),
    _r("T16-edge-dns", "edge_transport", "dns", "udp", [53], "dns"),
    _r("C01-client-cas-https", "client", "client_access", "tcp", [443, 80], "http"),
    _r("C08-client-cas-mapi", "client", "client_access", "tcp", [135, "rpc-dynamic"], "rpc"),
    _r("C09-client-mbx-pf", "client", "mailbox", "tcp", [135, "rpc-dynamic"], "rpc", False),
    _r("C10-client-cas-pop3", "client", "client_access", "tcp", [110, 995], "pop3", False),
    _r("C12-client-hub-587", "client", "hub_transport", "tcp", [587], "smtp", False),
    _r("C13-inet-cas-https", "internet", "client_access", "tcp", [443], "http", False),
    _r("C15-cas-mbx-mapi", "client_access", "mailbox", "tcp", [135, "rpc-dynamic"], "rpc"),
    _r("C17-cas-um-sip", "client_access", "unified_messaging", "tcp", [5060, 5061], "sip", False),
    _r("U01-gw-um-sip", "voip_gateway", "unified_messaging", "tcp", [5060, 5061], "sip"),
    _r("U02-gw-umworker-sip", "voip_gateway", "unified_messaging", "tcp", ["5065-5068"], "sip"),
    _r("U03-gw-um-rtp", "voip_gateway", "unified_messaging", "udp", ["1024-65535"], "rtp"),
    _r("U04-um-gw-sip", "unified_messaging", "voip_gateway", "tcp", [5060], "sip"),
    _r("U06-um-mbx-rpc", "unified_messaging", "mailbox", "tcp", [135, "rpc-dynamic"], "rpc"),
    _r("M01-dag-replication", "mailbox", "mailbox", "tcp", [64327], "replication"),
    _r("M02-cluster-heartbeat", "mailbox", "mailbox", "udp", [3343], "cluster"),
    _r("M04-fsw-smb", "mailbox", "witness", "tcp", [445], "smb", False),
    _r("A01-ldap", _EXCH, "domain_controller", "tcp", [389], "ldap"),
    _r("A01u-cldap", _EXCH, "domain_controller", "udp", [389], "ldap"),
    _r("A02-gc", _EXCH, "domain_controller", "tcp", [3268], "ldap"),
    _r("A05-kerberos", (*_EXCH, "client"), "domain_controller", "tcp", [88], "kerberos"),
    _r("A05u-kerberos", (*_EXCH, "client"), "domain_controller", "udp", [88], "kerberos"),
    _r("A07-dns", (*_EXCH, "client"), "dns", "udp", [53], "dns"),
    _r("A08-rpc-netlogon", _EXCH, "domain_controller", "tcp", [135, "rpc-dynamic"], "rpc"),
    _r("A10-smb", (*_EXCH, "client"), "domain_controller", "tcp", [445], "smb"),
    _r("A11-ntp", _EXCH, "domain_controller", "udp", [123], "ntp", False),
    _r("G01-remote-powershell", "admin", ("client_access", "mailbox"), "tcp", [80, 443],
       "management", False),
    _r("G04-rdp", "admin", ("edge_transport", "hub_transport", "domain_controller"), "tcp",
       [3389], "management", False),
)
CATALOGUE = FakeCatalogue(RULES)

HOSTS = {  # ip -> (name, roles)
    "203.0.113.9": ("mx.example.net", "internet"),
    "198.18.0.10": ("EDGE1", "edge_transport"),
    "198.18.1.11": ("HUB1", "hub_transport"),
    "198.18.1.12": ("HUB2", "hub_transport"),
    "198.18.1.21": ("CAS1", "client_access"),
    "198.18.1.31": ("MBX1", "mailbox"),
    "198.18.1.32": ("MBX2", "mailbox"),
    "198.18.1.41": ("UM1", "unified_messaging"),
    "198.18.1.2": ("DC1", "domain_controller;dns"),
    "198.18.1.3": ("DC2", "domain_controller;dns"),
    "198.18.2.50": ("GW1", "voip_gateway"),
    "198.18.10.101": ("PC101", "client"),
    "198.18.10.102": ("", "client"),
}


def flow_row(src_ip, dst_ip, dst_port, *, proto="tcp", verdict="expected", rule="", service="",
             src_role=None, dst_role=None, n=1, src_name=None, dst_name=None, rpc_interface="",
             seconds=0.0):
    """One audited flow as a dict with every AUDIT_FLOW_COLUMNS field."""
    s_name, s_roles = HOSTS.get(src_ip, ("", "unknown"))
    d_name, d_roles = HOSTS.get(dst_ip, ("", "unknown"))
    state = {"expected": "established", "unexpected": "established", "rejected": "rejected",
             "unanswered": "unanswered"}[verdict]
    if proto == "udp":
        state = "udp_unanswered" if verdict == "unanswered" else "udp_answered"
    first = T0 + pd.Timedelta(seconds=seconds)
    return dict(
        flow_id=0, src_ip=src_ip, src_port=49000 + int(seconds) % 10000, dst_ip=dst_ip,
        dst_port=dst_port, proto=proto, first_seen=first, last_seen=first + pd.Timedelta(seconds=2),
        src_packets=6 * n, src_bytes=900 * n, dst_packets=5 * n, dst_bytes=4000 * n,
        src_payload_bytes=500 * n, dst_payload_bytes=3500 * n, state=state,
        end="fin" if state == "established" else "", icmp_type=pd.NA, icmp_code=pd.NA,
        client_payload_head=0, capture="pilot-a.pcapng", orientation="handshake",
        src_payload_prefix="", dst_payload_prefix="",
        src_name=s_name if src_name is None else src_name,
        dst_name=d_name if dst_name is None else dst_name,
        src_roles=s_roles, dst_roles=d_roles,
        src_role=src_role or s_roles.split(";")[0], dst_role=dst_role or d_roles.split(";")[0],
        rule=rule, service=service, rpc_interface=rpc_interface,
        rpc_evidence="epm" if rpc_interface else "", documented=bool(rule), verdict=verdict,
    )


def audit_flows(rows: list[dict]) -> pd.DataFrame:
    """Rows to a frame with exactly AUDIT_FLOW_COLUMNS and their dtypes."""
    template = empty_frame(AUDIT_FLOW_COLUMNS)
    if not rows:
        return template
    frame = pd.DataFrame(rows, columns=column_names(AUDIT_FLOW_COLUMNS))
    frame["flow_id"] = range(len(frame))
    return frame.astype(template.dtypes.to_dict())


def pilot_flows() -> pd.DataFrame:
    """A small pilot: most documented paths, one unexpected path, one blocked, one unanswered."""
    f = flow_row
    rows = [
        f("203.0.113.9", "198.18.0.10", 25, rule="T13-inet-edge-smtp", service="smtp", n=3),
        f("198.18.0.10", "198.18.1.11", 25, rule="T03-edge-hub-smtp", service="smtp", n=2),
        f("198.18.1.11", "198.18.0.10", 25, rule="T02-hub-edge-smtp", service="smtp"),
        f("198.18.1.11", "198.18.0.10", 50636, rule="T08-hub-edge-edgesync", service="ldap"),
        f("198.18.1.11", "198.18.1.12", 25, rule="T01-hub-hub-smtp", service="smtp"),
        f("198.18.1.11", "198.18.1.31", 135, rule="T06-hub-mbx-mapi", service="rpc"),
        f("198.18.1.11", "198.18.1.31", 6001, rule="T06-hub-mbx-mapi", service="rpc",
          rpc_interface="EMSMDB"),
        f("198.18.1.31", "198.18.1.11", 135, rule="T05-mbx-hub-submission", service="rpc"),
        f("198.18.1.21", "198.18.1.31", 135, rule="C15-cas-mbx-mapi", service="rpc"),
        f("198.18.1.21", "198.18.1.31", 52113, rule="C15-cas-mbx-mapi", service="rpc",
          rpc_interface="EMSMDB"),
        f("198.18.1.31", "198.18.1.32", 64327, rule="M01-dag-replication", service="replication",
          n=40),
        f("198.18.1.32", "198.18.1.31", 3343, proto="udp", rule="M02-cluster-heartbeat",
          service="cluster", n=10),
        f("198.18.10.101", "198.18.1.21", 443, rule="C01-client-cas-https", service="http", n=25),
        f("198.18.10.102", "198.18.1.21", 443, rule="C01-client-cas-https", service="http", n=9),
        f("198.18.10.101", "198.18.1.21", 135, rule="C08-client-cas-mapi", service="rpc"),
        f("198.18.10.101", "198.18.1.21", 59532, rule="C08-client-cas-mapi", service="rpc",
          rpc_interface="EMSMDB"),
        f("198.18.10.101", "198.18.1.2", 88, rule="A05-kerberos", service="kerberos", n=4),
        f("198.18.10.101", "198.18.1.2", 53, proto="udp", rule="A07-dns", service="dns",
          dst_role="dns", n=12),
        f("198.18.2.50", "198.18.1.41", 5060, rule="U01-gw-um-sip", service="sip"),
        f("198.18.2.50", "198.18.1.41", 5065, rule="U02-gw-umworker-sip", service="sip"),
        f("198.18.2.50", "198.18.1.41", 31000, proto="udp", rule="U03-gw-um-rtp", service="rtp"),
        f("198.18.1.41", "198.18.1.31", 135, rule="U06-um-mbx-rpc", service="rpc"),
    ]
    for i, src in enumerate(("198.18.1.11", "198.18.1.21", "198.18.1.31", "198.18.1.41")):
        rows += [
            f(src, "198.18.1.2", 389, rule="A01-ldap", service="ldap", n=3, seconds=i),
            f(src, "198.18.1.3", 3268, rule="A02-gc", service="ldap", n=2, seconds=i),
            f(src, "198.18.1.2", 88, rule="A05-kerberos", service="kerberos", seconds=i),
            f(src, "198.18.1.3", 53, proto="udp", rule="A07-dns", service="dns", dst_role="dns",
              seconds=i),
            f(src, "198.18.1.2", 135, rule="A08-rpc-netlogon", service="rpc", seconds=i),
        ]
    rows += [
        # Undocumented: a client talking SMB to a mailbox server, RDP from a client to the hub.
        f("198.18.10.101", "198.18.1.31", 445, verdict="unexpected", service="smb", n=2,
          seconds=30),
        f("198.18.10.102", "198.18.1.11", 3389, verdict="unexpected", service="management",
          seconds=31),
        # A documented path refused (likely a firewall), and one never answered.
        f("198.18.1.41", "198.18.1.11", 25, verdict="rejected", rule="T07-um-hub-smtp",
          service="smtp", n=3, seconds=40),
        f("198.18.1.21", "198.18.1.41", 5061, verdict="unanswered", service="sip", seconds=41),
    ]
    return audit_flows(rows)


def findings_from(flows: pd.DataFrame, missing: list[tuple[str, str, str]] = ()) -> pd.DataFrame:
    """Aggregate non-expected flows into FINDING_COLUMNS, plus role-level missing findings."""
    template = empty_frame(FINDING_COLUMNS)
    bad = flows[flows["verdict"] != "expected"]
    severity = {"unexpected": "medium", "rejected": "high", "unanswered": "low"}
    rows = []
    keys = ["verdict", "src_ip", "dst_ip", "proto", "dst_port"]
    for (kind, src, dst, proto, port), g in bad.groupby(keys, sort=True):
        first = g.iloc[0]
        rows.append(dict(
            kind=kind, severity=severity[kind], src_ip=src, dst_ip=dst, proto=proto,
            dst_port=int(port), src_name=first["src_name"], dst_name=first["dst_name"],
            src_role=first["src_role"], dst_role=first["dst_role"],
            documented=bool(first["documented"]), rule=first["rule"], service=first["service"],
            flows=len(g), packets=int((g["src_packets"] + g["dst_packets"]).sum()),
            bytes=int((g["src_bytes"] + g["dst_bytes"]).sum()),
            first_seen=g["first_seen"].min(), last_seen=g["last_seen"].max(),
            detail=f"{kind} {proto}/{port} from {first['src_role']} to {first['dst_role']}",
            orientation="handshake",
        ))
    by_id = {r.id: r for r in RULES}
    for rule_id, src_role, dst_role in missing:
        rule = by_id[rule_id]
        ports = [p for p in rule.ports if isinstance(p, int)]
        rows.append(dict(
            kind="missing", severity="low", src_ip="", dst_ip="", proto=rule.proto,
            dst_port=ports[0] if len(ports) == 1 else pd.NA, src_name="", dst_name="",
            src_role=src_role, dst_role=dst_role, documented=True, rule=rule_id,
            service=rule.service, flows=0, packets=0, bytes=0, first_seen=pd.NaT,
            last_seen=pd.NaT, detail=f"expected path {rule_id} was never seen", orientation="",
        ))
    if not rows:
        return template
    frame = pd.DataFrame(rows, columns=column_names(FINDING_COLUMNS))
    frame["first_seen"] = pd.to_datetime(frame["first_seen"], utc=True)
    frame["last_seen"] = pd.to_datetime(frame["last_seen"], utc=True)
    return frame.astype(template.dtypes.to_dict())


def rule_status(flows: pd.DataFrame) -> pd.DataFrame:
    """RULE_STATUS_COLUMNS for RULES against the flows (missing = expected and never matched)."""
    rows = []
    for rule in RULES:
        matched = flows[flows["rule"] == rule.id]
        status = "observed" if len(matched) else ("missing" if rule.expected else "not_applicable")
        rows.append(dict(
            id=rule.id, service=rule.service, source=";".join(rule.source),
            destination=";".join(rule.destination), proto=rule.proto,
            ports=",".join(str(p) for p in rule.ports), expected=rule.expected, status=status,
            flows=len(matched), bytes=int((matched["src_bytes"] + matched["dst_bytes"]).sum()),
            host_pairs=len(matched[["src_ip", "dst_ip"]].drop_duplicates()),
        ))
    template = empty_frame(RULE_STATUS_COLUMNS)
    return pd.DataFrame(rows, columns=column_names(RULE_STATUS_COLUMNS)).astype(
        template.dtypes.to_dict())


def rpc_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """An endpoints frame (RPC_ENDPOINT_COLUMNS) and a dynamic-range frame (RPC_RANGE_COLUMNS)."""
    common = dict(proto="tcp", interface_uuid="a4f1db00-ca47-1067-b31f-00dd010662da",
                  interface="EMSMDB", used=True, unanswered=False, rejected=False, clients=1,
                  flows=1, bytes=4900, first_seen=T0, last_seen=T0 + pd.Timedelta(seconds=2),
                  captures="pilot-a.pcapng", use="used")
    endpoints = pd.DataFrame([
        dict(server_ip="198.18.1.21", port=59532, evidence="epm", advertised=True, **common),
        dict(server_ip="198.18.1.31", port=52113, evidence="bind", advertised=False, **common),
    ], columns=column_names(RPC_ENDPOINT_COLUMNS))
    ranges = pd.DataFrame([
        dict(server_ip="198.18.1.21", lowest_port=59532, highest_port=59532, ports=1,
             interfaces="EMSMDB", expected_range="6005-59530",
             expected_basis="Exchange 2010 CAS", outside_ports="59532", pinned_ports="",
             recommendation="Pin RPC Client Access with MSExchangeRPC ParametersSystem "
                            "'TCP/IP Port'"),
    ], columns=column_names(RPC_RANGE_COLUMNS))
    return endpoints, ranges


def hosts_frame(flows: pd.DataFrame) -> pd.DataFrame:
    """The per-host view: ip, name, roles, flows, bytes."""
    rows = []
    for ip, (name, roles) in HOSTS.items():
        mine = flows[(flows["src_ip"] == ip) | (flows["dst_ip"] == ip)]
        rows.append(dict(ip=ip, name=name, roles=roles, flows=len(mine),
                         bytes=int((mine["src_bytes"] + mine["dst_bytes"]).sum())))
    return pd.DataFrame(rows)


def make_result(flows: pd.DataFrame | None = None, *, missing=None, hosts=None) -> AuditResult:
    """A complete AuditResult around the given (default: pilot) flows."""
    flows = pilot_flows() if flows is None else flows
    if missing is None:
        missing = [("T07-um-hub-smtp", "unified_messaging", "hub_transport"),
                   ("A05u-kerberos", "hub_transport", "domain_controller")]
    findings = findings_from(flows, missing)
    endpoints, ranges = rpc_frames()
    captures = (
        FakeCaptureFile("captures/pilot-a.pcapng", "pilot-a.pcapng", "pcapng", 1200, 1180, 20,
                        {"linktype 105": 3}, int(T0.value), int(T0.value) + 60_000_000_000),
    )
    counts = findings["kind"].value_counts().to_dict()
    summary = {"flows": len(flows), "hosts": len(HOSTS), **{f"{k}_findings": v
                                                             for k, v in counts.items()}}
    return AuditResult(
        flows=flows, findings=findings, rules=rule_status(flows), rpc=endpoints,
        rpc_ranges=ranges, hosts=hosts_frame(flows) if hosts is None else hosts,
        captures=captures, warnings=("pilot-a.pcapng: 3 records skipped (linktype 105)",),
        summary=summary,
    )
