"""dissect/dcerpc.py: tshark's view of EPM towers, binds, DCOM bindings, connectionless RPC and names."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest
from tshark_helpers import CAPTURES, CAS, CLIENT, EMSMDB, NSPI, RPC, tshark_fields

from auditor.dissect.dcerpc import (
    EPT_S_NOT_REGISTERED,
    _swap16,
    _tower,
    dissect_capture,
    dissect_names,
    dissect_rpc,
    tshark_available,
)
from auditor.errors import DissectError
from auditor.schema import (
    HOST_NAME_COLUMNS,
    RPC_BIND_COLUMNS,
    RPC_CL_COLUMNS,
    RPC_DCOM_COLUMNS,
    RPC_EPM_COLUMNS,
    column_names,
)

ASYNC_EMSMDB = "5261574a-4572-206e-b268-6b199213b4e4"
RFR = "1544f5e0-613c-11d1-93df-00c04fd7bd09"
DRSUAPI = "e3514235-4b06-11d1-ab04-00c04fc2dcd2"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"


@functools.cache
def dissected(path: Path):
    """tshark runs once per capture for the whole module (its start-up costs ~0.3 s)."""
    return dissect_capture(path)


def rpc_facts(path: Path):
    return dissected(path)[0]


def names_of(path: Path) -> pd.DataFrame:
    return dissected(path)[1]


# --- no tshark needed ----------------------------------------------------------------------------


def test_tower_version_words_are_read_little_endian():
    # tshark 4.0 shows EMSMDB 0.81 as uuid_version 0 and ver_min 20736 (0x5100)
    floor = {"epm.tower.proto_id": "0x0d", "epm.uuid": EMSMDB.upper(), "epm.uuid_version": "0",
             "epm.ver_min": "20736"}
    tcp = {"epm.tower.proto_id": "0x07", "epm.proto.tcp_port": "59532"}
    ip = {"epm.tower.proto_id": "0x09", "epm.proto.ip": CAS}
    tower = _tower({"epm.tower.num_floors": "5", "Floor 1": floor, "Floor 4": tcp, "Floor 5": ip})
    assert tower == {"interface_uuid": EMSMDB, "interface_version": "0.81", "tower_proto": "tcp",
                     "tower_ip": CAS, "port": 59532, "endpoint": ""}
    assert (_swap16(256), _swap16(1024), _swap16(56), _swap16(0x3800)) == (1, 4, 56, 56)


def test_missing_tshark_raises_dissect_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not tshark_available()
    with pytest.raises(DissectError, match="tshark not found"):
        dissect_rpc(RPC / "bind_nak.pcap")


def test_missing_capture_names_the_file(tmp_path):
    with pytest.raises(DissectError, match="nothere.pcap: no such capture file"):
        dissect_rpc(tmp_path / "nothere.pcap")


# --- hand-crafted fixtures -----------------------------------------------------------------------


@pytest.mark.tshark
def test_fragmented_epm_reply_yields_every_tower():
    epm = rpc_facts(RPC / "epm_fragmented.pcap").epm
    assert list(epm.columns) == column_names(RPC_EPM_COLUMNS)
    got = epm[["interface_uuid", "interface_version", "tower_proto", "tower_ip", "port",
               "endpoint", "status"]]
    assert got.astype(object).where(got.notna(), None).values.tolist() == [
        [EMSMDB, "0.81", "tcp", CAS, 59532, "", 0],
        [EMSMDB, "0.81", "http", CAS, 6001, "", 0],
        [EMSMDB, "0.81", "pipe", "", None, "\\PIPE\\exchange", 0],
        [EMSMDB, "0.81", "lrpc", "", None, "LRPC-0b6a45b6d4e4cd2e0b", 0],
    ]
    assert set(epm["client_ip"]) == {CLIENT} and set(epm["server_ip"]) == {CAS}
    assert set(epm["server_port"]) == {135} and set(epm["operation"]) == {"ept_map"}


@pytest.mark.tshark
def test_ept_s_not_registered_is_recorded_as_a_failure():
    epm = rpc_facts(RPC / "epm_not_registered.pcap").epm
    assert len(epm) == 1
    row = epm.iloc[0]
    assert row["status"] == EPT_S_NOT_REGISTERED == 0x16C9A0D6
    assert row["status_name"] == "EPT_S_NOT_REGISTERED"
    assert (row["interface_uuid"], row["interface_version"]) == (RFR, "1.0")  # from the request
    assert pd.isna(row["port"]) and row["tower_proto"] == ""


@pytest.mark.tshark
def test_bind_nak_and_refused_alter_context_are_rejected():
    binds = dissect_rpc(RPC / "bind_nak.pcap").binds
    assert list(binds.columns) == column_names(RPC_BIND_COLUMNS)
    got = binds[["server_port", "interface_uuid", "interface_version", "ptype", "result"]]
    assert got.values.tolist() == [
        [59533, NSPI, "56.0", "bind", "rejected"],
        [59532, EMSMDB, "0.81", "bind", "accepted"],
        [59532, ASYNC_EMSMDB, "0.1", "alter_context", "rejected"],
    ]
    assert set(binds["transport"]) == {"tcp"}


@pytest.mark.tshark
def test_oxid_resolver_reply_gives_dcom_string_bindings():
    dcom = rpc_facts(RPC / "oxid_resolve.pcap").dcom
    assert list(dcom.columns) == column_names(RPC_DCOM_COLUMNS)
    assert dcom[["server_ip", "client_ip", "tower_id", "host", "port"]].values.tolist() == [
        ["198.18.1.2", CAS, 7, "DC01", 49712],
        ["198.18.1.2", CAS, 7, "198.18.1.2", 49712],
    ]


# --- public captures -----------------------------------------------------------------------------


@pytest.mark.tshark
def test_connectionless_rpc_over_udp_is_reported_as_cl_rpc():
    facts = rpc_facts(CAPTURES / "dcerpc.pcap")
    assert facts.binds.empty and facts.epm.empty
    cl = facts.cl_rpc
    assert list(cl.columns) == column_names(RPC_CL_COLUMNS)
    requests = cl[cl["ptype"] == "request"]
    assert set(map(tuple, requests[["client_ip", "server_ip", "server_port",
                                     "interface_uuid"]].values.tolist())) == {
        ("192.168.1.11", "192.168.1.20", 34964, "dea00001-6c97-11d1-8271-00a02442df7d"),
        ("192.168.1.20", "192.168.1.11", 34964, "dea00002-6c97-11d1-8271-00a02442df7d"),
    }


@pytest.mark.tshark
def test_binds_inside_smb_pipes_are_marked_smb():
    binds = rpc_facts(CAPTURES / "CVE-2020-1472_exploit_win2019.pcap").binds
    smb = binds[binds["transport"] == "smb"]
    assert set(smb["interface_uuid"]) == {SAMR} and set(smb["server_port"]) == {445}
    assert len(binds[binds["transport"] == "tcp"]) == 42  # 21 EPM + 21 NETLOGON binds


@pytest.mark.tshark
def test_alter_context_of_a_midstream_connection_is_found():
    binds = rpc_facts(CAPTURES / "kerberos.pcap").binds
    assert set(map(tuple, binds[["server_ip", "server_port", "interface_uuid"]].values)) == {
        ("172.16.8.8", 49155, DRSUAPI)}
    assert set(binds["ptype"]) == {"alter_context"}
    # Neither alter_context is answered in the capture. The alter_context_resp of call 6 (frame
    # 64) answers frame 63, which tshark leaves undecoded after a lost segment; frame 65 is sent
    # after it (its TCP ack covers frame 64), so that answer is not lent to it.
    assert set(binds["result"]) == {"unknown"}


def _tshark_towers(path: Path) -> set[tuple[str, int, str]]:
    """(answering server, tcp port, interface uuid) straight from tshark -T fields."""
    towers = set()
    for src, uuids, ports in tshark_fields(path, "epm && dcerpc.pkt_type == 2", "ip.src",
                                           "epm.uuid", "epm.proto.tcp_port"):
        uuids, ports = uuids.split(","), ports.split(",")
        assert len(uuids) == 2 * len(ports)  # interface + NDR floors per TCP tower
        towers |= {(src, int(p), u) for p, u in zip(ports, uuids[::2], strict=True)}
    return towers


@pytest.mark.tshark
@pytest.mark.parametrize("name", ["CVE-2020-1472_exploit_win2019.pcap",
                                  "suricata-verify_bug-5162_input.pcap",
                                  "dcerpc_privacy_krb.pcapng", "dcerpc_msnrpc.pcapng"])
def test_epm_towers_equal_tshark_fields(name):
    epm = rpc_facts(CAPTURES / name).epm
    tcp = epm[epm["tower_proto"] == "tcp"]
    got = {(s, int(p), u) for s, p, u in tcp[["server_ip", "port", "interface_uuid"]].values}
    assert got == _tshark_towers(CAPTURES / name) and got


@pytest.mark.tshark
def test_names_from_dns_cname_smtp_banner_and_ehlo():
    names = dissect_names(CAPTURES / "smtp.pcap")
    assert list(names.columns) == column_names(HOST_NAME_COLUMNS)
    assert set(map(tuple, names.values.tolist())) == {
        ("74.53.140.153", "patriots.in", "dns", ""),
        ("74.53.140.153", "mail.patriots.in", "dns", ""),  # via the CNAME
        ("74.53.140.153", "xc90.websitewelcome.com", "smtp-banner", ""),
        ("10.10.1.4", "GP", "smtp-ehlo", ""),
        ("10.10.1.4", "", "smtp-ehlo", "smtp-auth"),  # a mail client authenticating
        ("192.168.133.102", "uprise", "smtp-banner", ""),
        ("10.10.1.20", "MIT-3D655AA09DD", "browser", ""),  # a workstation's announcement
        ("17.167.150.73", "p31-keyvalueservice.icloud.com", "tls-sni", ""),
    }
    # tshark's own fields are the oracle for the SNI and browser names
    assert tshark_fields(CAPTURES / "smtp.pcap", "tls.handshake.extensions_server_name",
                         "ip.dst", "tls.handshake.extensions_server_name") == [
        ["17.167.150.73", "p31-keyvalueservice.icloud.com"]]
    assert tshark_fields(CAPTURES / "smtp.pcap", "browser.server", "ip.src",
                         "browser.server") == [["10.10.1.20", "MIT-3D655AA09DD"]]


@pytest.mark.tshark
def test_names_from_nbns_skip_group_names():
    names = names_of(CAPTURES / "suricata-verify_bug-5162_input.pcap")
    # WINDOMAIN<00> is a group name and must not name the host
    assert names.values.tolist() == [["192.168.56.104", "WIN10", "nbns", ""]]


@pytest.mark.tshark
def test_names_from_kerberos_machine_accounts_and_the_kdc_realm():
    names = names_of(CAPTURES / "kerberos.pcap")
    assert names.values.tolist() == [["172.16.8.201", "JOHNSON-PC", "kerberos", ""],
                                     ["172.16.8.8", "", "kerberos", "kdc:HAPPYCRAFT.ORG"]]


@pytest.mark.tshark
def test_names_from_kerberos_service_principals_and_smb_tree_connects():
    names = names_of(CAPTURES / "kerberos_tso.pcapng")
    rows = set(map(tuple, names.values.tolist()))
    assert ("", "WIN-R5NF6DMLDVH", "kerberos", "spn:cifs") in rows  # named, not addressed
    assert ("172.16.0.100", "WIN-R5NF6DMLDVH.TEST.local", "smb", "") in rows
    assert ("172.16.0.5", "win7.test.local", "smb", "") in rows
    assert ("172.16.0.100", "", "kerberos", "kdc:TEST.LOCAL") in rows
    trees = tshark_fields(CAPTURES / "kerberos_tso.pcapng", "smb2.tree && smb2.flags.response == 0",
                          "ip.dst", "smb2.tree")
    assert ["172.16.0.100", "\\\\WIN-R5NF6DMLDVH.TEST.local\\IPC$"] in trees


@pytest.mark.tshark
def test_names_from_the_dc_locator_reply_with_its_dc_hint():
    names = names_of(CAPTURES / "cldap-leak.pcap")
    assert names.values.tolist() == [
        ["192.168.122.3", "obed.s4.howto.abartlet.net", "cldap",
         "dc-locator:obed.s4.howto.abartlet.net"],
        ["192.168.122.3", "OBED", "cldap", ""]]
    assert tshark_fields(CAPTURES / "cldap-leak.pcap", "mscldap.hostname", "ip.src",
                         "mscldap.hostname", "mscldap.netlogon.flags.ds")[0] == [
        "192.168.122.3", "obed.s4.howto.abartlet.net", "1"]


@pytest.mark.tshark
def test_unreadable_capture_raises_dissect_error_naming_it(tmp_path):
    bad = tmp_path / "garbage.pcap"
    bad.write_bytes(b"this is not a capture file at all" * 4)
    with pytest.raises(DissectError, match="garbage.pcap: tshark failed"):
        dissect_rpc(bad)
