"""The reference catalogue: loading, file:line errors, the bundled rules, the match table."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pandas as pd
import pytest
from input_files import with_line, write

from auditor.catalogue.loader import (
    DEFAULT_RPC_RANGE,
    STATUSES,
    catalogue_frame,
    check_catalogue,
    load_catalogue,
    rule_ports_frame,
)
from auditor.errors import CatalogueError
from auditor.schema import ROLES, RULE_COLUMNS, RULE_PORT_COLUMNS, column_names

DATA = Path(__file__).parent / "data" / "catalogue"

GOOD_RULE = """\
rules:
  - id: X01-test
    source: hub_transport
    destination: [edge_transport]
    proto: tcp
    ports: [25, 5065-5068, rpc-dynamic]
    service: smtp
    description: a test rule
    reference: {source: "X01 [S1]", status: CONFIRMED}
    configurable: "no"
    expected: true
    severity: high
    scope: strict
"""


@pytest.fixture(scope="module")
def bundled():
    return load_catalogue()


# ---- errors name file and line ----

# One field of GOOD_RULE's rule made wrong: id -> (line, its new text, message after the rule's
# name); the error names that line.
RULE_FIELD_ERRORS = {
    "unknown-field": (8, "    colour: blue",
                      "unknown field 'colour' (allowed: id, source, destination, proto, ports, "
                      "service, description, reference, configurable, expected, severity, scope, "
                      "note*)"),
    "bad-proto": (5, "    proto: gre", "proto must be one of tcp, udp, icmp, icmpv6, not 'gre'"),
    "port-zero": (6, "    ports: [25, 0]", "port 0 is out of range 1-65535"),
    "port-too-big": (6, "    ports: [65536]", "port 65536 is out of range 1-65535"),
    "reversed-range": (6, "    ports: [5068-5065]", "port range '5068-5065' is reversed"),
    "port-word": (6, "    ports: [smtp]",
                  "port 'smtp' is not a number, an 'a-b' range or rpc-dynamic"),
    "no-ports": (6, "    ports: []", "ports must list at least one port"),
    "unknown-role": (3, "    source: mbx",
                     "unknown role 'mbx' in source (roles: " + ", ".join(ROLES) + ")"),
    "bad-status": (9, '    reference: {source: "X01", status: confirmed}',
                   "reference: status must be one of CONFIRMED, PARTIAL, UNCONFIRMED, "
                   "not 'confirmed'"),
    "bad-severity": (12, "    severity: critical",
                     "severity must be one of info, low, medium, high, not 'critical'"),
    "bad-scope": (13, "    scope: external",
                  "scope must be one of internal, strict, not 'external'"),
    "yes-is-not-bool": (11, "    expected: yes", "expected must be true or false, not 'yes'"),
    "int-is-not-bool": (11, "    expected: 1", "expected must be true or false, not 1"),
}


@pytest.mark.parametrize(("line", "new", "message"), RULE_FIELD_ERRORS.values(),
                         ids=RULE_FIELD_ERRORS)
def test_bad_rule_field_error_names_file_line_and_rule(tmp_path, line, new, message):
    path = write(tmp_path, with_line(GOOD_RULE, line, new))
    with pytest.raises(CatalogueError) as err:
        check_catalogue(path)
    assert fnmatch.fnmatchcase(str(err.value), f"{path}:{line}: rule 'X01-test': {message}")


# Any other bad file: id -> (text, line the error names, message; '*' matches anything).
FILE_ERRORS = {
    "missing-field": (with_line(GOOD_RULE, 12, ""), 2, "rule 'X01-test': missing field 'severity'"),
    "duplicate-key": (with_line(GOOD_RULE, 8, "    proto: udp"), 8,
                      "duplicate key 'proto' (first at line 5)"),
    "bad-id": (with_line(GOOD_RULE, 2, "  - id: bad id!"), 2,
               "rule 'bad id!': id must be letters, digits, '.', '_' or '-', not 'bad id!'"),
    # libyaml and PyYAML word this differently; the position is what matters.
    "yaml-syntax": (with_line(GOOD_RULE, 6, "    ports: [25"), 7,
                    "YAML error: *expected ',' or ']'*"),
    "unknown-top-field": ("rules: []\ncolour: 1\n", 2,
                          "unknown field 'colour' (allowed: catalogue, description, citations, "
                          "*rules)"),
    "no-rules": ("catalogue: x\n", 1, "missing field 'rules'"),
    "empty-file": ("", 1, "empty catalogue (expected a mapping with a 'rules' list)"),
    "rule-not-mapping": ("rules:\n  - 3\n", 2, "rule #1: a rule must be a mapping"),
    "citation-not-in-citations": ("citations:\n  S2: something\n" + GOOD_RULE, 11,
                                  "rule 'X01-test': reference cites [S1], which is not in "
                                  "citations"),
}


@pytest.mark.parametrize(("text", "line", "message"), FILE_ERRORS.values(), ids=FILE_ERRORS)
def test_bad_catalogue_error_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(CatalogueError) as err:
        check_catalogue(path)
    if "*" in message:
        assert fnmatch.fnmatchcase(str(err.value), f"{path}:{line}: {message}"), str(err.value)
    else:
        assert str(err.value) == f"{path}:{line}: {message}"


def test_duplicate_rule_id_across_files_names_both_places(tmp_path):
    first = write(tmp_path, GOOD_RULE, "a.yaml")
    second = write(tmp_path, "# another file\n" + GOOD_RULE, "b.yaml")
    with pytest.raises(CatalogueError) as err:
        load_catalogue([first, second], replace=True)
    assert str(err.value) == (
        f"{second}:3: duplicate rule id 'X01-test' (first defined at {first}:2)")


def test_duplicate_of_a_bundled_rule_id_is_an_error(tmp_path):
    path = write(tmp_path, GOOD_RULE.replace("X01-test", "T02-hub-edge-smtp"))
    with pytest.raises(CatalogueError, match=r"duplicate rule id 'T02-hub-edge-smtp' "
                                             r"\(first defined at .*exchange2010.yaml:\d+\)"):
        load_catalogue([path])


def test_missing_file_is_a_catalogue_error(tmp_path):
    with pytest.raises(CatalogueError, match=r"nope.yaml: cannot read: No such file"):
        check_catalogue(tmp_path / "nope.yaml")


# ---- loading ----

def test_good_rule_parses_ports_as_written_and_as_ranges(tmp_path):
    path = write(tmp_path, GOOD_RULE)
    (rule,) = check_catalogue(path).rules
    assert rule.ports == (25, "5065-5068", "rpc-dynamic")
    assert rule.port_ranges == ((25, 25), (5065, 5068))
    assert rule.rpc_dynamic
    assert rule.source == ("hub_transport",) and rule.destination == ("edge_transport",)
    assert rule.expected is True
    assert rule.reference.status == "CONFIRMED"
    assert rule.defined_at == f"{path}:2"


def test_extra_file_adds_rules_and_replace_keeps_only_it():
    extra = DATA / "local.yaml"
    both = load_catalogue([extra])
    only = load_catalogue([extra], replace=True)
    bundled = load_catalogue()
    assert len(both.rules) == len(bundled.rules) + len(only.rules)
    assert [r.id for r in only.rules] == ["L01-hub-smarthost-smtp"]
    assert both.sources[-1] == str(extra)
    assert both.rules[-1].ports == (2525,)


def test_catalogue_frame_lists_rules_and_filters_by_role(bundled):
    frame = catalogue_frame(bundled)
    assert {n: str(d) for n, d in frame.dtypes.items()} == {c.name: c.dtype for c in RULE_COLUMNS}
    assert len(frame) == len(bundled.rules)
    assert frame["expected"].dtype == bool
    row = frame.set_index("id").loc["T05-mbx-hub-mailsubmission"]
    assert row["ports"] == "135,rpc-dynamic"
    assert row["source"] == "mailbox" and row["destination"] == "hub_transport"
    edge = catalogue_frame(bundled, role="edge_transport")
    assert set(edge["id"]) >= {"T02-hub-edge-smtp", "T03-edge-hub-smtp", "T08-hub-edge-edgesync"}
    assert edge.apply(lambda r: "edge_transport" in r["source"] + ";" + r["destination"],
                      axis=1).all()


# ---- the match table ----

def test_rpc_dynamic_uses_discovered_ports_per_server_plus_default_rows():
    cat = load_catalogue([DATA / "rpc.yaml"], replace=True)
    table = rule_ports_frame(cat, {"198.18.1.10": [49160, 49158, 49159, 55000],
                                   "::ffff:198.18.1.21": [6001]})
    assert list(table.columns) == column_names(RULE_PORT_COLUMNS)
    assert {c.name: str(table[c.name].dtype) for c in RULE_PORT_COLUMNS} == {
        c.name: c.dtype for c in RULE_PORT_COLUMNS}
    rows = {(r.server_ip, r.port_lo, r.port_hi, r.dynamic)
            for r in table.itertuples(index=False)}
    assert rows == {
        ("", 135, 135, False),
        ("198.18.1.10", 49158, 49160, True),  # contiguous ports folded into one range
        ("198.18.1.10", 55000, 55000, True),
        ("198.18.1.21", 6001, 6001, True),  # IPv4-mapped key normalised
        ("", *DEFAULT_RPC_RANGE, True),
    }
    assert set(table["src_role"]) == {"hub_transport"}
    assert set(table["dst_role"]) == {"mailbox"}


def test_legacy_rpc_range_adds_1025_5000_default_rows():
    cat = load_catalogue([DATA / "rpc.yaml"], replace=True)
    table = rule_ports_frame(cat, legacy_rpc_range=True)
    defaults = table[table["dynamic"]]
    assert sorted(zip(defaults["port_lo"], defaults["port_hi"], strict=True)) == [
        (1025, 5000), (49152, 65535)]
    assert (defaults["server_ip"] == "").all()


def test_match_table_expands_every_role_pair(bundled):
    table = rule_ports_frame(bundled)
    ad = table[table["rule_id"] == "A01-ldap-tcp"]
    assert sorted(ad["src_role"]) == sorted(
        ["mailbox", "client_access", "hub_transport", "unified_messaging"])
    assert set(ad["dst_role"]) == {"domain_controller"}
    assert (ad["port_lo"] == 389).all() and (ad["proto"] == "tcp").all()


def test_empty_catalogue_gives_typed_empty_frames(tmp_path):
    cat = check_catalogue(write(tmp_path, "rules: []\n"))
    assert list(rule_ports_frame(cat).columns) == column_names(RULE_PORT_COLUMNS)
    assert rule_ports_frame(cat).empty
    assert list(catalogue_frame(cat).columns) == column_names(RULE_COLUMNS)


# ---- docs: the bundled catalogue is complete and referenced ----

def test_every_bundled_rule_has_a_reference_description_and_known_roles(bundled):
    ids = [r.id for r in bundled.rules]
    assert len(ids) == len(set(ids))
    citations = dict(bundled.citations)
    for rule in bundled.rules:
        assert rule.description and rule.configurable, rule.id
        assert rule.reference.status in STATUSES, rule.id
        row = rule.id.split("-")[0]
        assert re.fullmatch(r"[TCUMAGLN]\d\d", row), rule.id
        assert row in rule.reference.source, f"{rule.id}: reference does not name row {row}"
        for key in re.findall(r"\[(S\d+[a-z]?)\]", rule.reference.source):
            assert key in citations, f"{rule.id} cites unknown [{key}]"
        assert set(rule.source) <= set(ROLES) and set(rule.destination) <= set(ROLES)
        assert rule.ports or rule.proto in ("icmp", "icmpv6"), rule.id
        if rule.rpc_dynamic:
            assert 135 in rule.ports or rule.proto == "udp", f"{rule.id}: RPC rule without 135"


def test_bundled_catalogue_covers_the_reference_rows(bundled):
    rows = {r.id.split("-")[0] for r in bundled.rules}
    for expected in ["T01", "T02", "T03", "T04", "T05", "T06", "T07", "T08", "T12", "T13",
                     "T14", "T15", "T16", "C01", "C07", "C08", "C09", "C10", "C11", "C13",
                     "C14", "C15", "C17", "U01", "U02", "U03", "U04", "U06", "M01", "M02",
                     "M03", "M04", "M14", "A01", "A02", "A05", "A06", "A07", "A08", "A09",
                     "A10", "A11", "G01", "G02", "G04", "G06"]:
        assert expected in rows, expected


def _expected_paths(cat) -> set[tuple[str, str, str, int]]:
    table = rule_ports_frame(cat)
    ids = {r.id for r in cat.rules if r.expected}
    exp = table[table["rule_id"].isin(ids) & ~table["dynamic"]]
    return {(r.src_role, r.dst_role, r.proto, p) for r in exp.itertuples(index=False)
            for p in range(int(r.port_lo), int(r.port_hi) + 1)}


def test_expected_paths_are_those_a_healthy_pilot_certainly_shows(bundled):
    paths = _expected_paths(bundled)
    for path in [
        ("hub_transport", "domain_controller", "tcp", 389),
        ("hub_transport", "domain_controller", "tcp", 3268),
        ("hub_transport", "domain_controller", "tcp", 88),
        ("hub_transport", "edge_transport", "tcp", 25),
        ("edge_transport", "hub_transport", "tcp", 25),
        ("hub_transport", "edge_transport", "tcp", 50636),
        ("mailbox", "mailbox", "tcp", 64327),
        ("mailbox", "mailbox", "udp", 3343),
        ("client", "client_access", "tcp", 443),
        ("voip_gateway", "unified_messaging", "tcp", 5060),
        ("unified_messaging", "hub_transport", "tcp", 25),
    ]:
        assert path in paths, path
    # The Edge is not a domain member: nothing lets it reach a DC (reference row A13).
    table = rule_ports_frame(bundled)
    assert table[(table["src_role"] == "edge_transport")
                 & (table["dst_role"] == "domain_controller")].empty
    # Optional or situational paths are never expected.
    for rule_id in ["T09-edge-adlds-local", "T17-edge-openproxy-test", "A09-netbios-udp",
                    "C19-cas-client-udp-notify", "M11-mrs-nettcp"]:
        assert not bundled.rule(rule_id).expected


def test_no_two_bundled_rules_claim_the_same_static_port_and_role_pair(bundled):
    # A flow is attributed to one rule; an overlap would let one rule steal another's flows
    # (and make an expected rule look missing). Dynamic default ranges may overlap statics.
    table = rule_ports_frame(bundled)
    static = table[~table["dynamic"]]
    claims: dict[tuple, str] = {}
    for r in static.itertuples(index=False):
        for port in range(int(r.port_lo), min(int(r.port_hi), int(r.port_lo) + 5) + 1):
            key = (r.src_role, r.dst_role, r.proto, port)
            assert claims.setdefault(key, r.rule_id) == r.rule_id, (key, claims[key], r.rule_id)
    wide = static[static["port_hi"] - static["port_lo"] > 5]
    for a in wide.itertuples(index=False):
        same = static[(static["src_role"] == a.src_role) & (static["dst_role"] == a.dst_role)
                      & (static["proto"] == a.proto) & (static["rule_id"] != a.rule_id)]
        hit = same[(same["port_lo"] <= a.port_hi) & (same["port_hi"] >= a.port_lo)]
        # rules that require different application protocols never claim the same flow
        apps = {r.id: r.app_protocol for r in bundled.rules}
        hit = hit[[not (apps[a.rule_id] and apps[b] and apps[a.rule_id] != apps[b])
                   for b in hit["rule_id"]]]
        assert hit.empty, (a.rule_id, list(hit["rule_id"]))


def test_scope_is_strict_for_client_internet_and_edge_paths(bundled):
    outward = {"client", "internet", "edge_transport", "voip_gateway", "admin"}
    for rule in bundled.rules:
        touches = (set(rule.source) | set(rule.destination)) & outward
        assert rule.scope == ("strict" if touches else "internal"), rule.id


def test_catalogue_frame_reference_column_matches_rules(bundled):
    frame = catalogue_frame(bundled).set_index("id")
    assert frame.loc["M01-dag-logship-seed", "configurable"].startswith(
        "Set-DatabaseAvailabilityGroup -ReplicationPort")
    assert frame.loc["M01-dag-logship-seed", "status"] == "CONFIRMED"
    assert isinstance(frame, pd.DataFrame)


# ---- ICMP rules: types instead of ports ----

ICMP_RULE = """\
rules:
  - id: X02-ping
    source: client
    destination: domain_controller
    proto: icmp
    icmp_types: [echo, 13]
    service: icmp
    description: a test ping rule
    reference: {source: "X02 [S1]", status: CONFIRMED}
    configurable: "no"
    expected: false
    severity: low
    scope: strict
"""

# id -> (line replaced, its new text, line the error names, message after the rule's name)
ICMP_ERRORS = {
    "unknown-type": (6, "    icmp_types: [echo, pong]", 6,
                     "icmp_types: 'pong' is not an icmp type name (one of address-mask, *)"),
    "icmpv6-name-on-icmp": (6, "    icmp_types: [packet-too-big]", 6,
                            "icmp_types: 'packet-too-big' is not an icmp type name*"),
    "type-too-big": (6, "    icmp_types: [256]", 6,
                     "icmp_types: 256 is not an ICMP type name or a number 0-255"),
    "empty-types": (6, "    icmp_types: []", 6, "icmp_types must list at least one ICMP type"),
    "ports-on-icmp": (6, "    ports: [7]", 6,
                      "an icmp rule has no ports: list icmp_types instead (or omit them for any "
                      "type)"),
    "types-on-tcp": (5, "    proto: tcp\n    ports: [25]", 7,
                     "icmp_types apply to icmp and icmpv6 rules only"),
}


@pytest.mark.parametrize(("line", "new", "at", "message"), ICMP_ERRORS.values(), ids=ICMP_ERRORS)
def test_bad_icmp_rule_error_names_file_line_and_rule(tmp_path, line, new, at, message):
    path = write(tmp_path, with_line(ICMP_RULE, line, new))
    with pytest.raises(CatalogueError) as err:
        check_catalogue(path)
    assert fnmatch.fnmatchcase(str(err.value), f"{path}:{at}: rule 'X02-ping': {message}"), (
        str(err.value))


def test_icmp_rule_keeps_type_names_and_shows_them_in_the_catalogue_table(tmp_path):
    cat = check_catalogue(write(tmp_path, ICMP_RULE))
    rule = cat.rule("X02-ping")
    assert (rule.proto, rule.ports, rule.icmp_types) == ("icmp", (), ("echo", "timestamp"))
    row = catalogue_frame(cat).iloc[0]
    assert (row["proto"], row["ports"], row["icmp_types"]) == ("icmp", "", "echo,timestamp")
    # no port rows: ICMP rules are matched by type (auditor/audit/icmp_rules.py)
    assert rule_ports_frame(cat).empty


def test_icmp_rule_without_types_allows_any_type(tmp_path):
    cat = check_catalogue(write(tmp_path, with_line(ICMP_RULE, 6, "")))
    assert cat.rule("X02-ping").icmp_types == ()


def test_tcp_rule_without_ports_is_still_an_error(tmp_path):
    path = write(tmp_path, with_line(GOOD_RULE, 6, ""))
    with pytest.raises(CatalogueError, match=r":2: rule 'X01-test': missing field 'ports'$"):
        check_catalogue(path)
