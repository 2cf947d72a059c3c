"""Inventories (YAML and CSV), role resolution, and the inventory proposed from traffic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from input_files import with_line, write

from auditor import (
    Host,
    Inventory,
    Network,
    assign_roles,
    inventory_to_yaml,
    load_inventory,
    propose_inventory,
)
from auditor.errors import InventoryError
from auditor.schema import (
    FLOW_COLUMNS,
    HOST_ROLE_COLUMNS,
    ROLE_EVIDENCE_COLUMNS,
    ROLES,
    empty_frame,
)

DATA = Path(__file__).parent / "data" / "inventory"

GOOD = """\
hosts:
  - name: MBX1
    addresses: [198.18.0.21, "2001:db8::21"]
    roles: [mailbox]
networks:
  - cidr: 198.18.10.0/24
    roles: [client]
default_roles: [internet]
"""


def dtypes_of(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def roles_of(frame: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    return dict(zip(frame["ip"], frame["roles"], strict=True))


# ---- errors name file and line ----

ALL_ROLES = ", ".join(ROLES)


def with_entry(before: str, entry: str) -> str:
    """GOOD with `entry` inserted just before the line that starts with `before`."""
    return GOOD.replace(before, entry + before)


# id -> (inventory text, line the error names, message)
YAML_ERRORS = {
    "bad-address": (with_line(GOOD, 3, "    addresses: [198.18.0.300]"), 3,
                    "host 'MBX1': bad address '198.18.0.300'"),
    "bad-cidr": (with_line(GOOD, 6, "  - cidr: 198.18.10.0/33"), 6,
                 "bad cidr '198.18.10.0/33' ('198.18.10.0/33' does not appear to be an IPv4 or "
                 "IPv6 network)"),
    "host-bits": (with_line(GOOD, 6, "  - cidr: 198.18.10.1/24"), 6,
                  "bad cidr '198.18.10.1/24' (198.18.10.1/24 has host bits set)"),
    "unknown-role": (with_line(GOOD, 4, "    roles: [mailbox, mbx]"), 4,
                     f"host 'MBX1': unknown role 'mbx' in roles (roles: {ALL_ROLES})"),
    "unknown-default-role": (with_line(GOOD, 8, "default_roles: [outside]"), 8,
                             f"unknown role 'outside' in default_roles (roles: {ALL_ROLES})"),
    "unknown-host-field": (with_line(GOOD, 4, "    colour: blue"), 4,
                           "host 'MBX1': unknown field 'colour' (allowed: name, addresses, roles, version)"),
    "unknown-top-field": (GOOD + "servers: []\n", 9,
                          "unknown field 'servers' (allowed: hosts, networks, default_roles)"),
    "duplicate-key": (with_line(GOOD, 4, "    name: MBX2"), 4,
                      "duplicate key 'name' (first at line 2)"),
    "missing-field": (GOOD.replace("    roles: [mailbox]\n", ""), 2,
                      "host 'MBX1': missing field 'roles'"),
    "empty": ("", 1, "empty inventory (expected hosts, networks or default_roles)"),
    "hosts-not-list": ("hosts: 3\n", 1, "hosts must be a list"),
    "address-in-two-hosts-with-other-roles": (
        with_entry("networks:", "  - name: HUB1\n    addresses: [198.18.0.21]\n"
                                "    roles: [hub_transport]\n"), 5,
        "address 198.18.0.21 of host 'HUB1' is also host 'MBX1' (line 2) with other roles"),
    "network-twice-with-other-roles": (
        with_entry("default_roles", "  - cidr: 198.18.10.0/24\n    roles: [admin]\n"), 8,
        "network 198.18.10.0/24 is also defined at line 6 with other roles (client)"),
    "duplicate-host-name": (
        with_entry("networks:", "  - name: MBX1\n    addresses: [198.18.0.22]\n"
                                "    roles: [mailbox]\n"), 5,
        "host 'MBX1' is already at line 2"),
}


@pytest.mark.parametrize(("text", "line", "message"), YAML_ERRORS.values(), ids=YAML_ERRORS)
def test_bad_inventory_error_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert str(err.value) == f"{path}:{line}: {message}"


def test_same_address_in_two_hosts_with_the_same_roles_is_accepted(tmp_path):
    text = with_entry("networks:", "  - name: MBX1-alias\n    addresses: [198.18.0.21]\n"
                                   "    roles: [mailbox]\n")
    inv = load_inventory(write(tmp_path, text))
    assert roles_of(assign_roles(inv, ["198.18.0.21"])) == {"198.18.0.21": ("mailbox",)}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name,address,cidr,roles\nMBX1,198.18.0.300,,mailbox\n", 2,
         "bad address '198.18.0.300'"),
        ("name,address,cidr,roles\nX,198.18.0.1,198.18.0.0/24,mailbox\n", 2,
         "give exactly one of address and cidr"),
        ("name,address,cidr,roles\nX,198.18.0.1,,mailbox;mbx\n", 2,
         f"unknown role 'mbx' in roles (roles: {ALL_ROLES})"),
        ("name,address,roles,colour\n", 1,
         "unknown column 'colour' (columns: name, address, cidr, roles, version)"),
        ("name,address\n", 1, "missing column 'roles' (columns: name, address, cidr, roles, version)"),
        ("name,address,cidr,roles\nX,198.18.0.1,,mailbox\nX,198.18.0.2,,admin\n", 3,
         "host 'X' has other roles or version at line 2"),
    ],
    ids=["bad-address", "address-and-cidr", "unknown-role", "unknown-column", "no-roles",
         "host-roles-disagree"],
)
def test_bad_csv_inventory_error_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text, "inventory.csv")
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert str(err.value) == f"{path}:{line}: {message}"


# ---- resolution ----

PRECEDENCE = """\
hosts:
  - name: MBX9
    addresses: [198.18.10.200]
    roles: [mailbox]
  - name: DC1
    addresses: [198.18.1.10, "2001:db8:1::10"]
    roles: [domain_controller, dns]
networks:
  - cidr: 198.18.0.0/16
    roles: [witness]
  - cidr: 198.18.10.0/24
    roles: [client]
    name: clients
  - cidr: 198.18.10.128/25
    roles: [admin]
  - cidr: 2001:db8::/32
    roles: [client]
default_roles: [internet]
"""


def test_host_beats_network_and_most_specific_network_wins(tmp_path):
    inv = load_inventory(write(tmp_path, PRECEDENCE))
    frame = assign_roles(inv, ["198.18.10.200", "198.18.10.201", "198.18.10.5", "198.18.99.1",
                               "8.8.8.8", "2001:db8:1::10", "2001:db8:2::1", "198.18.10.5"])
    assert dtypes_of(frame) == {c.name: c.dtype for c in HOST_ROLE_COLUMNS}
    assert roles_of(frame) == {
        "198.18.10.200": ("mailbox",),  # host entry inside the /25
        "198.18.10.201": ("admin",),  # /25 beats /24 and /16
        "198.18.10.5": ("client",),
        "198.18.99.1": ("witness",),
        "8.8.8.8": ("internet",),  # default_roles
        "2001:db8:1::10": ("domain_controller", "dns"),  # multi-role host, IPv6 address
        "2001:db8:2::1": ("client",),
    }
    names = dict(zip(frame["ip"], frame["name"], strict=True))
    assert names["198.18.10.200"] == "MBX9" and names["198.18.10.5"] == "clients"
    assert names["198.18.10.201"] == "" and names["8.8.8.8"] == ""


def test_without_default_roles_unlisted_addresses_are_unknown():
    inv = Inventory(hosts=(Host("MBX1", ("198.18.0.21",), ("mailbox",)),),
                    networks=(Network("198.18.10.0/24", ("client",)),))
    frame = assign_roles(inv, ["198.18.5.99", "198.18.0.21", "not-an-address"])
    assert roles_of(frame) == {"198.18.5.99": ("unknown",), "198.18.0.21": ("mailbox",),
                               "not-an-address": ("unknown",)}


def test_addresses_match_in_any_spelling_and_keep_the_given_text():
    inv = Inventory(hosts=(Host("MBX1", ("198.18.0.21", "2001:db8::21"), ("mailbox",)),))
    frame = assign_roles(inv, ["::ffff:198.18.0.21", "2001:0db8:0::0021"])
    assert roles_of(frame) == {"::ffff:198.18.0.21": ("mailbox",),
                               "2001:0db8:0::0021": ("mailbox",)}


def test_assign_roles_on_no_addresses_is_an_empty_typed_frame():
    frame = assign_roles(Inventory(), [])
    assert frame.empty and dtypes_of(frame) == {c.name: c.dtype for c in HOST_ROLE_COLUMNS}


def test_csv_inventory_groups_rows_by_host_name():
    inv = load_inventory(DATA / "pilot.csv")
    mbx1 = next(h for h in inv.hosts if h.name == "MBX1")
    assert mbx1.addresses == ("198.18.1.21", "2001:db8::21")
    assert next(h for h in inv.hosts if h.name == "DC1").roles == ("domain_controller", "dns")
    assert inv.networks == (Network("198.18.10.0/24", ("client",), "clients"),
                            Network("198.19.0.0/16", ("internet",), ""))
    frame = assign_roles(inv, ["198.18.10.50", "198.18.10.77", "198.19.0.25", "2001:db8::21"])
    assert roles_of(frame) == {"198.18.10.50": ("admin",), "198.18.10.77": ("client",),
                               "198.19.0.25": ("internet",), "2001:db8::21": ("mailbox",)}


def test_yaml_and_csv_pilot_inventories_agree():
    yml, csv = load_inventory(DATA / "pilot.yaml"), load_inventory(DATA / "pilot.csv")
    ips = ["198.18.1.10", "198.18.1.21", "198.18.1.31", "198.18.10.50", "198.18.10.101",
           "198.19.0.25", "198.18.5.99"]
    assert roles_of(assign_roles(yml, ips)) == roles_of(assign_roles(csv, ips))


def test_inventory_yaml_round_trips(tmp_path):
    inv = load_inventory(DATA / "pilot.yaml")
    again = load_inventory(write(tmp_path, inventory_to_yaml(inv)))
    assert (again.hosts, again.networks, again.default_roles) == (
        inv.hosts, inv.networks, inv.default_roles)


# ---- proposing an inventory from flows ----

DC, MBX1, MBX2, CAS, HUB, UM = (f"198.18.1.{n}" for n in (10, 21, 22, 31, 41, 51))
EDGE, GW, INET = "198.18.2.61", "198.18.2.70", "198.19.0.25"
CLIENT1, CLIENT2, ADMIN = "198.18.10.101", "198.18.10.102", "198.18.10.50"


def flows_frame(rows: list[tuple]) -> pd.DataFrame:
    """A flow table (schema.FLOW_COLUMNS) from (src, dst, port, proto, state) tuples."""
    template = empty_frame(FLOW_COLUMNS)
    data = {c: [] for c in template.columns}
    for i, (src, dst, port, proto, state) in enumerate(rows):
        values = dict.fromkeys(template.columns, 0)
        values.update(flow_id=i, src_ip=src, src_port=50000 + i, dst_ip=dst, dst_port=port,
                      proto=proto, state=state, end="", capture="synthetic.pcap",
                      first_seen=pd.Timestamp("2024-01-01", tz="UTC"),
                      last_seen=pd.Timestamp("2024-01-01", tz="UTC"), icmp_type=pd.NA,
                      icmp_code=pd.NA, src_packets=3, dst_packets=3)
        for c in template.columns:
            data[c].append(values[c])
    return pd.DataFrame(data).astype(template.dtypes.to_dict())


def pilot_flows() -> pd.DataFrame:
    est, ans = "established", "udp_answered"
    rows = []
    for member in (MBX1, MBX2, CAS, HUB, UM):
        rows += [(member, DC, 88, "udp", ans), (member, DC, 88, "tcp", est),
                 (member, DC, 389, "tcp", est), (member, DC, 389, "udp", ans),
                 (member, DC, 3268, "tcp", est), (member, DC, 53, "udp", ans),
                 (member, DC, 135, "tcp", est), (member, DC, 445, "tcp", est)]
    rows += [
        (HUB, EDGE, 25, "tcp", est), (EDGE, HUB, 25, "tcp", est), (HUB, EDGE, 50636, "tcp", est),
        (EDGE, INET, 25, "tcp", est), (INET, EDGE, 25, "tcp", est), (HUB, INET, 8080, "tcp", est),
        (CLIENT1, HUB, 587, "tcp", est),
        (CLIENT1, CAS, 443, "tcp", est), (CLIENT2, CAS, 443, "tcp", est),
        (ADMIN, CAS, 80, "tcp", est),
        (MBX1, MBX2, 64327, "tcp", est), (MBX1, MBX2, 3343, "udp", ans),
        (MBX2, MBX1, 3343, "udp", ans),
        (GW, UM, 5060, "tcp", est), (UM, GW, 5060, "tcp", est),  # an outbound call too
        # Failed flows are not evidence: nobody answered these.
        (CLIENT1, CAS, 110, "tcp", "rejected"), (CLIENT1, CAS, 993, "tcp", "unanswered"),
        ("198.18.5.98", MBX1, 25, "tcp", "unanswered"), (CLIENT2, UM, 53, "udp", "udp_unanswered"),
    ]
    return flows_frame(rows)


@pytest.fixture(scope="module")
def proposal():
    names = pd.DataFrame({
        "ip": [DC, HUB, HUB, "::ffff:198.18.1.21"],
        "name": ["dc1.pilot.test", "HUB1$", "hub1.pilot.test", "mbx1.pilot.test"],
        "source": ["dns", "kerberos", "smtp-ehlo", "dns"],
    })
    return propose_inventory(pilot_flows(), names, internal=["198.18.0.0/16"])


def test_proposed_inventory_assigns_every_pilot_role(proposal):
    inv, _ = proposal
    ips = [DC, MBX1, MBX2, CAS, HUB, UM, EDGE, GW, CLIENT1, CLIENT2, ADMIN, INET]
    assert roles_of(assign_roles(inv, ips)) == {
        DC: ("domain_controller", "dns"),
        MBX1: ("mailbox",), MBX2: ("mailbox",),
        CAS: ("client_access",),
        HUB: ("hub_transport",),
        UM: ("unified_messaging",),
        EDGE: ("edge_transport",),
        GW: ("voip_gateway",),
        CLIENT1: ("client",), CLIENT2: ("client",), ADMIN: ("client",),
        INET: ("internet",),
    }
    # Clients of one /24 without servers become a network, the internal range holding seen
    # hosts a client network; outside hosts get the default.
    assert inv.networks == (Network("198.18.10.0/24", ("client",)),
                            Network("198.18.0.0/16", ("client",)))
    assert inv.default_roles == ("internet",)


def test_host_seen_only_in_failed_flows_is_listed_in_the_evidence_not_as_a_host(proposal):
    inv, evidence = proposal
    assert "198.18.5.98" not in {a for h in inv.hosts for a in h.addresses}
    row = evidence[evidence["ip"] == "198.18.5.98"].iloc[0]
    assert (row["role"], row["evidence"]) == ("unknown", "seen only in flows nobody answered")
    # its internal network makes it a client when audited with the proposal
    assert roles_of(assign_roles(inv, ["198.18.5.98"])) == {"198.18.5.98": ("client",)}


def test_proposed_names_prefer_the_best_capture_source_else_role_numbers(proposal):
    inv, _ = proposal
    names = {h.addresses[0]: h.name for h in inv.hosts}
    assert names[DC] == "dc1.pilot.test"
    assert names[HUB] == "hub1.pilot.test"  # smtp-ehlo beats kerberos
    assert names[MBX1] == "mbx1.pilot.test"  # IPv4-mapped name address matched
    assert names[MBX2] == "MBX1" and names[CAS] == "CAS1" and names[GW] == "GW1"


def test_role_evidence_explains_each_role_with_a_confidence(proposal):
    _, evidence = proposal
    assert dtypes_of(evidence) == {c.name: c.dtype for c in ROLE_EVIDENCE_COLUMNS}
    assert evidence["confidence"].between(0, 1).all()
    rows = {(r.ip, r.role): r for r in evidence.itertuples(index=False)}
    dc = rows[(DC, "domain_controller")]
    # Kerberos, CLDAP, LDAP, GC, DNS, EPM and SMB without RPC interfaces: graded, not certain
    assert dc.confidence == 0.84
    assert dc.evidence == ("answers 53/udp, 88/tcp, 88/udp, 135/tcp, 389/tcp, 389/udp, "
                           "445/tcp, 3268/tcp to 5 clients")
    assert rows[(EDGE, "edge_transport")].evidence == "answers EdgeSync 50636/tcp"
    assert rows[(MBX2, "mailbox")].evidence == "DAG replication 64327/tcp with 1 peer"
    assert rows[(CAS, "client_access")].evidence == "answers 80/tcp, 443/tcp to 3 clients"
    assert rows[(HUB, "hub_transport")].evidence == (
        "answers 25/tcp, 587/tcp to 2 internal hosts")
    assert rows[(INET, "internet")].evidence == "outside the internal networks"
    assert rows[(CLIENT1, "client")].evidence == "only initiates (2 flows to 2 hosts)"


def test_proposed_inventory_yaml_reads_back_with_evidence_comments(proposal, tmp_path):
    inv, evidence = proposal
    text = inventory_to_yaml(inv, evidence)
    assert "    # domain_controller 0.84: answers 53/udp" in text
    assert "    # 198.18.10.101 client 0.60: only initiates" in text
    again = load_inventory(write(tmp_path, text))
    assert (again.hosts, again.networks, again.default_roles) == (
        inv.hosts, inv.networks, inv.default_roles)


def test_unknown_service_host_and_default_internal_ranges():
    flows = flows_frame([
        ("10.0.0.5", "10.0.0.9", 8080, "tcp", "established"),
        ("10.0.0.5", "203.0.113.7", 443, "tcp", "established"),
    ])
    inv, evidence = propose_inventory(flows)
    frame = roles_of(assign_roles(inv, ["10.0.0.5", "10.0.0.9", "203.0.113.7"]))
    assert frame == {"10.0.0.5": ("client",), "10.0.0.9": ("unknown",),
                     "203.0.113.7": ("internet",)}
    row = evidence[evidence["ip"] == "10.0.0.9"].iloc[0]
    assert row["evidence"] == "answers 8080/tcp; no role heuristic matched"


def test_empty_flows_propose_an_empty_inventory():
    inv, evidence = propose_inventory(empty_frame(FLOW_COLUMNS))
    assert inv.hosts == () and inv.networks == () and inv.default_roles == ()
    assert evidence.empty
    assert dtypes_of(evidence) == {c.name: c.dtype for c in ROLE_EVIDENCE_COLUMNS}
    assert inventory_to_yaml(inv).endswith("hosts: []\nnetworks: []\n")
