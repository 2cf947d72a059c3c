"""How the audit matches rpc-dynamic rules, on hand-made flows (no capture involved)."""

from __future__ import annotations

import pandas as pd
import pytest
from packet_factory import ACK, SYN, pkt, table

from auditor import audit_flows, build_flows, load_catalogue
from auditor.inventory.roles import Host, Inventory, Network
from auditor.schema import RPC_ENDPOINT_COLUMNS, empty_frame

CLIENT, CAS, DC = "198.18.10.7", "198.18.1.31", "198.18.1.10"
INVENTORY = Inventory(
    hosts=(Host("CAS1", (CAS,), ("client_access",)), Host("DC1", (DC,), ("domain_controller",))),
    networks=(Network("198.18.10.0/24", ("client",)),), default_roles=(), source="test")


def connection(client, server, port, t=1.0):
    return [pkt(t, client, 50123, server, port, flags=SYN, tcp_seq=1),
            pkt(t + 0.001, server, port, client, 50123, flags=SYN | ACK),
            pkt(t + 0.002, client, 50123, server, port, flags=ACK)]


def endpoint(server, port):
    """One endpoint row as discovery would give it (EMSMDB learned from an EPM reply)."""
    defaults = {"bool": False, "str": "", "int64": 1, "uint16": port,
                "datetime64[ns, UTC]": pd.Timestamp(1, unit="s", tz="UTC")}
    row = {c.name: defaults[c.dtype] for c in RPC_ENDPOINT_COLUMNS}
    row.update(server_ip=server, proto="tcp", evidence="epm", interface="EMSMDB",
               interface_uuid="a4f1db00-ca47-1067-b31f-00dd010662da", advertised=True, used=True)
    return pd.DataFrame([row]).astype({c.name: c.dtype for c in RPC_ENDPOINT_COLUMNS})


@pytest.fixture(scope="module")
def flows():
    return build_flows(table(connection(CLIENT, CAS, 55000) + connection(CAS, DC, 55001, t=2.0)))


def verdicts(result) -> dict:
    return {(r.src_ip, int(r.dst_port)): (r.verdict, r.rule) for r in result.flows.itertuples()}


def test_without_discovery_the_windows_range_is_assumed(flows):
    v = verdicts(audit_flows(flows, INVENTORY, load_catalogue()))
    assert v[(CLIENT, 55000)] == ("expected", "C08-client-cas-mapi-rpc")


def test_after_discovery_a_strict_path_needs_rpc_evidence(flows):
    result = audit_flows(flows, INVENTORY, load_catalogue(),
                         rpc_endpoints=empty_frame(RPC_ENDPOINT_COLUMNS))
    v = verdicts(result)
    assert v[(CLIENT, 55000)] == ("unexpected", "")  # client -> CAS with no RPC evidence
    assert v[(CAS, 55001)][0] == "expected"  # internal CAS -> DC stays advisory and allowed


def test_an_endpoint_learned_by_discovery_makes_the_strict_path_documented(flows):
    result = audit_flows(flows, INVENTORY, load_catalogue(), rpc_endpoints=endpoint(CAS, 55000))
    assert verdicts(result)[(CLIENT, 55000)] == ("expected", "C08-client-cas-mapi-rpc")
    assert isinstance(result.flows, pd.DataFrame)
