"""Options of every stage, in one cheap module that any layer can import.

Each stage takes its own frozen dataclass; `PipelineOptions` carries them all down from the CLI
or a notebook. Nothing here imports numpy, pandas or another auditor module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["AuditOptions", "EngineOptions", "FlowOptions", "PipelineOptions", "RpcOptions"]


@dataclass(frozen=True)
class FlowOptions:
    """How packets are cut into flows."""

    tcp_idle_timeout_s: float = 3600.0  # a TCP 5-tuple silent this long starts a new flow
    udp_idle_timeout_s: float = 300.0  # same for UDP, ICMP and other protocols
    zeek: bool = False  # also fold what Zeek's conn.log needs (flows.conn: history letters
    # and IP bytes per side): `auditor flows --format zeek`; the flow table is the same


@dataclass(frozen=True)
class RpcOptions:
    """How many packets discovery hands to tshark, and how flows are inferred."""

    # Flows are sampled round-robin over clients: every client's first flow, then every client's
    # second, ..., so one chatty client cannot crowd out the others.
    # Every payload packet of every EPM conversation is read by default (None = no cap): one
    # conversation may carry hundreds of lookups, each reply naming a port. Setting a cap makes
    # discovery warn when it leaves something unread.
    epm_flows_per_client: int | None = None  # EPM conversations per (client, server, file)
    epm_flows_per_server: int | None = None
    epm_packets: int | None = None  # payload packets per EPM conversation
    bind_flows_per_client: int | None = 4  # flows with a bind per (client, server port, file)
    bind_flows_per_port: int | None = 16  # ... and per (server port, file)
    bind_packets: int = 4  # bind, bind_ack and a spare segment each way
    cl_flows_per_port: int | None = 2  # connectionless RPC flows per (server, port)
    max_packets: int | None = 4000  # cap on RPC packets given to tshark (a warning says what
    # was cut; None = no cap, `--rpc-packets all`)
    names: bool = True  # also dissect DNS, SMTP, NBNS and Kerberos for host names
    max_name_packets: int | None = 600  # cap on name packets (each packet costs tshark ~0.2 ms,
    # and a few DNS answers per client name every server; a warning says what was cut)
    name_flows: int = 200  # SMTP, NBNS and Kerberos flows each
    name_flows_per_client: int = 1
    dns_flows_per_client: int = 3  # DNS fills what the other name sources leave of the cap
    name_packets: int = 4  # payload packets per name flow (2 for DNS: query and answer)
    infer_window_s: float = 30.0  # a dynamic-port flow this soon after a 135 exchange is "inferred"
    tshark_timeout_s: float = 30.0  # watchdog: tshark is stopped after this many seconds...
    tshark_timeout_per_packet_s: float = 0.02  # ...plus this much per packet handed to it
    candidates: bool = True  # keep the packets discovery may dissect (the flow table alone: no)


def unlimited_rpc_options(**changes) -> RpcOptions:
    """RpcOptions with every sampling cap and budget lifted (`--rpc-packets all`)."""
    return RpcOptions(**{"epm_flows_per_client": None, "epm_flows_per_server": None,
                         "epm_packets": None, "bind_flows_per_client": None,
                         "bind_flows_per_port": None, "cl_flows_per_port": None,
                         "max_packets": None, "max_name_packets": None, **changes})


@dataclass(frozen=True)
class AuditOptions:
    """Knobs of the comparison."""

    legacy_rpc_range: bool = False  # also accept 1025-5000 as the dynamic RPC range
    # UDP services that answer every request: silence there is a likely block, elsewhere normal
    udp_request_services: tuple[str, ...] = ("dns", "ldap", "kerberos", "ntp", "kpasswd")
    # destination roles whose absence is reported per source host (every server needs them)
    per_host_missing_roles: tuple[str, ...] = ("domain_controller", "dns")
    # captures shorter than this (seconds) may miss periodic paths: their missing findings are info
    short_capture_s: float = 900.0


@dataclass(frozen=True)
class EngineOptions:
    """Where and how capture files are read (auditor.engine)."""

    workers: int = 0  # worker processes reading files and byte ranges of them (0: every core)
    cache_dir: str | None = None  # keep each file's partial aggregates here; None: no cache
    scheduler: str | None = None  # Dask scheduler address: read the files on that cluster
    chunk_bytes: int | None = None  # file bytes per chunk (None: the reader's default)
    range_bytes: int | None = None  # smallest byte range of one file a worker reads (None: 64 MiB)
    flow_pieces: bool = False  # give the flows as flows.pieces.FlowPieces where the engine
    # finishes them itself (a caller writing them piece by piece: `auditor flows` csv/json)


@dataclass(frozen=True)
class PipelineOptions:
    """Options of every stage, passed down explicitly."""

    flows: FlowOptions = field(default_factory=FlowOptions)
    audit: AuditOptions = field(default_factory=AuditOptions)
    rpc: bool = True  # run dynamic-RPC discovery and host naming (needs tshark)
    rpc_options: RpcOptions = field(default_factory=RpcOptions)
    engine: EngineOptions = field(default_factory=EngineOptions)


def audit_read_options(options: PipelineOptions, inventory_given: bool) -> PipelineOptions:
    """The options an audit reads its captures with: with an inventory and no discovery, no
    candidate packets are kept, since only discovery dissects them (a proposed inventory reads
    SMTP and HTTP payloads among them). The result memo keys an audit by these, as the
    observation it reads is stored under them."""
    if options.rpc or not inventory_given or not options.rpc_options.candidates:
        return options
    return replace(options, rpc_options=replace(options.rpc_options, candidates=False))
