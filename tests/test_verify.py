"""`auditor verify`: a firewall ruleset tested against the pilot's observed flows."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from auditor import (
    audit_captures,
    design_requests,
    load_catalogue,
    load_inventory,
    merge_requests,
    write_requests,
)
from auditor.cli import cli
from auditor.errors import RulesetError
from auditor.firewall.requests import parse_ports
from auditor.firewall.ruleset import load_ruleset, parse_ruleset
from auditor.firewall.verify import verify_flows, verify_json_schema, verify_to_dict

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
HUB1, EDGE1, MBX1, DC1 = "198.18.1.41", "198.18.2.61", "198.18.1.21", "198.18.1.10"

pytestmark = pytest.mark.tshark


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(PILOT / "inventory.yaml")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def flows(inventory, catalogue):
    return audit_captures([PILOT / "pilot.pcapng"], inventory, catalogue).flows


@pytest.fixture(scope="module")
def design_csv(inventory, catalogue, tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "design.csv"
    write_requests(merge_requests(design_requests(inventory, catalogue)), path, "csv")
    return path


def _paths(frame):
    return {(r.src_ip, r.dst_ip, r.proto, int(r.dst_port)) for r in frame.itertuples()}


def _in(text: str, ip: str) -> bool:
    return text == "any" or ipaddress.ip_address(ip) in ipaddress.ip_network(text, strict=False)


def test_design_ruleset_permits_every_documented_flow(design_csv, inventory, flows, catalogue):
    result = verify_flows(load_ruleset(design_csv, inventory), flows, catalogue)
    documented = flows[flows["documented"]]
    assert result.coverage == 1.0
    assert result.summary["documented_successful_flows"] > 200
    assert not result.would_block["documented"].any()
    permitted = result.paths[result.paths["verdict"] == "permitted"]
    assert _paths(documented) <= _paths(permitted)
    # what it blocks is exactly the pilot's two undocumented anomalies
    assert _paths(result.would_block) == {(HUB1, "198.19.0.25", "tcp", 8080),
                                          ("198.18.5.99", MBX1, "tcp", 3389)}


def _covers(row: dict, flow) -> bool:
    """Independent oracle: does a written request row allow this flow?"""
    ports = parse_ports(row["ports"])
    return (row["proto"] == flow.proto and _in(row["source"], flow.src_ip)
            and _in(row["destination"], flow.dst_ip)
            and (not ports or any(lo <= flow.dst_port <= hi for lo, hi in ports)))


def test_removing_one_documented_row_blocks_exactly_its_flows(design_csv, inventory, flows,
                                                              catalogue, tmp_path):
    import csv

    lines = design_csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    records = list(csv.DictReader(lines))
    full = verify_flows(load_ruleset(design_csv, inventory), flows, catalogue)
    used_lines = set(range(2, len(rows) + 2)) - set(full.unused["ruleset_line"])
    assert len(used_lines) >= 15
    documented = list(flows[flows["documented"]].itertuples())
    for line in sorted(used_lines):
        path = tmp_path / f"without-{line}.csv"
        path.write_text("\n".join([header, *rows[:line - 2], *rows[line - 1:]]) + "\n")
        removed, others = records[line - 2], records[:line - 2] + records[line - 1:]
        # the oracle: documented flows the removed row allowed and no other row does
        expected = [f for f in documented
                    if _covers(removed, f) and not any(_covers(o, f) for o in others)]
        assert expected or removed["source"] == "198.18.10.0/24", f"row {line} was needed"
        result = verify_flows(load_ruleset(path, inventory), flows, catalogue)
        blocked = result.would_block[result.would_block["documented"]]
        assert _paths(blocked) == {(f.src_ip, f.dst_ip, f.proto, f.dst_port) for f in expected}, \
            f"row {line}: {rows[line - 2][:60]}"
        assert int(blocked["flows"].sum()) == len(expected)
        assert all(b.startswith(r) for b, r in zip(blocked["breaks"], blocked["rule"], strict=True))
        # the undocumented blocks stay what they were
        assert _paths(result.would_block[~result.would_block["documented"]]) == _paths(
            full.would_block)


def test_a_ruleset_denying_nothing_has_coverage_one(flows, tmp_path):
    path = tmp_path / "open.csv"
    path.write_text("source,destination,proto,ports,action\nany,any,any,,allow\n")
    result = verify_flows(load_ruleset(path), flows)
    assert result.coverage == 1.0
    assert result.would_block.empty and result.unused.empty
    assert set(result.paths["verdict"]) == {"permitted", "related"}


def test_generic_ruleset_with_names_deny_and_scope(inventory, flows, tmp_path):
    path = tmp_path / "generic.csv"
    path.write_text("source,destination,proto,ports,action\n"
                    "HUB1,EDGE1,tcp,50636,deny\n"
                    "HUB1,EDGE1,tcp,1-65535,permit\n"
                    "HUB1,198.18.99.0/24,udp,53,allow\n")
    result = verify_flows(load_ruleset(path, inventory), flows)
    blocked = result.would_block.set_index(["src_ip", "dst_ip", "proto", "dst_port"])
    assert blocked.loc[(HUB1, EDGE1, "tcp", 50636), "ruleset_line"] == 2
    assert pd_isna(blocked.loc[(HUB1, DC1, "tcp", 389), "ruleset_line"])  # implicit deny
    permitted = result.paths[result.paths["verdict"] == "permitted"]
    assert _paths(permitted) == {(HUB1, EDGE1, "tcp", 25)}
    # neither end is HUB1 or EDGE1: outside the ruleset's scope
    outside = result.paths[result.paths["verdict"] == "outside_scope"]
    assert ("198.18.1.31", DC1, "tcp", 389) in _paths(outside)
    assert not any(HUB1 in (s, d) or EDGE1 in (s, d) for s, d, _, _ in _paths(outside))
    assert list(result.unused["ruleset_line"]) == [4]


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_verify_json_follows_its_schema_and_fails_on_would_block(design_csv, tmp_path):
    out = tmp_path / "verify.json"
    args = ["verify", str(design_csv), str(PILOT / "pilot.pcapng"), "--inventory",
            str(PILOT / "inventory.yaml"), "--format", "json", "-o", str(out)]
    res = CliRunner().invoke(cli, args + ["--fail-on", "would_block"])
    assert res.exit_code == 3, res.output
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, verify_json_schema())
    assert doc["coverage"] == 1.0 and doc["summary"]["documented_paths_blocked"] == 0
    assert [(w["dst_ip"], w["dst_port"], w["ruleset_line"]) for w in doc["would_block"]] == [
        ("198.19.0.25", 8080, None), (MBX1, 3389, None)]
    assert CliRunner().invoke(cli, args).exit_code == 0


def test_verify_table_names_the_documented_rule_each_block_breaks(design_csv, tmp_path):
    lines = design_csv.read_text().splitlines()
    path = tmp_path / "less.csv"
    path.write_text("\n".join(line for line in lines if not line.startswith(f"{HUB1},HUB1,{EDGE1},"))
                    + "\n")
    res = CliRunner().invoke(cli, ["verify", str(path), str(PILOT / "pilot.pcapng"), "--inventory",
                                   str(PILOT / "inventory.yaml")])
    assert res.exit_code == 0, res.output
    text = res.output.splitlines()
    first = text.index(next(t for t in text if t.startswith(("BLOCKS", "blocks"))))
    assert text[first].startswith("BLOCKS HUB1 (198.18.1.41) -> EDGE1 (198.18.2.61) tcp/25 1 flow")
    assert text[first + 1].strip().startswith("breaks documented rule T02-hub-edge-smtp:")
    assert text[first + 2].startswith("BLOCKS HUB1 (198.18.1.41) -> EDGE1 (198.18.2.61) tcp/50636")


def test_verify_markdown_and_csv(design_csv):
    base = ["verify", str(design_csv), str(PILOT / "pilot.pcapng"), "--inventory",
            str(PILOT / "inventory.yaml")]
    md = CliRunner().invoke(cli, base + ["--format", "md"])
    assert md.exit_code == 0 and "## Would be blocked" in md.output and "`198.18.5.99`" in md.output
    csv_out = CliRunner().invoke(cli, base + ["--format", "csv"])
    header = csv_out.output.splitlines()[0]
    assert header.startswith('"verdict","src_ip"') or header.startswith("verdict,src_ip")
    assert csv_out.output.splitlines()[1].split(",")[0].strip('"') == "would_block"


def test_verify_document_of_an_empty_flow_table_has_coverage_one():
    import pandas as pd

    from auditor.schema import AUDIT_FLOW_COLUMNS, empty_frame

    result = verify_flows(parse_ruleset("source,destination,proto,ports\nany,any,tcp,25\n"),
                          empty_frame(AUDIT_FLOW_COLUMNS))
    doc = verify_to_dict(result)
    jsonschema.validate(doc, verify_json_schema())
    assert doc["coverage"] == 1.0 and doc["unused"][0]["ruleset_line"] == 2
    assert isinstance(result.paths, pd.DataFrame)


BAD = [
    ("source,destination,proto,ports\nHUB1,198.18.1.0/33,tcp,25\n", 2, "malformed address or CIDR"),
    ("source,destination,proto,ports\nHUB1,EDGE1,tcp,25\nNOPE,EDGE1,tcp,25\n", 3, "unknown name"),
    ("# comment\nsource,destination,proto,ports\n", 1, "missing column"),
    ("source,destination,proto,ports\nHUB1,EDGE1,tcp,\"25,500-400\"\n", 2, "inverted port range"),
    ("source,destination,proto\nHUB1,EDGE1,tcp\n", 1, "missing column ports"),
    ("source,destination,proto,ports,action\nHUB1,EDGE1,tcp,25,maybe\n", 2, "unknown action"),
    ("source,destination,proto,ports\nHUB1,EDGE1,tcp,99999\n", 2, "port .99999. is out of range"),
    ("source,destination,proto,ports,icmp_types\nHUB1,EDGE1,tcp,25,echo\n", 2,
     "icmp_types given for proto tcp"),
    ("source,destination,proto,ports,icmp_types\nHUB1,EDGE1,icmp,,echo;pong\n", 2,
     "'pong' is not an icmp type"),
    ("source,destination,proto,ports,icmp_types\nHUB1,EDGE1,icmpv6,,256\n", 2,
     "'256' is not an icmpv6 type"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[b[2] for b in BAD])
def test_bad_ruleset_is_one_line_naming_file_and_line(text, line, message, tmp_path):
    path = tmp_path / "rules.csv"
    path.write_text(text)
    inv = load_inventory(PILOT / "inventory.yaml")
    with pytest.raises(RulesetError, match=f"^{path}:{line}: {message}"):
        load_ruleset(path, inv)
    res = CliRunner().invoke(cli, ["verify", str(path), str(PILOT / "pilot.pcapng"),
                                   "--inventory", str(PILOT / "inventory.yaml")])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and f"{path}:{line}: " in res.output


MIDSTREAM = PILOT.parent / "midstream"
CLIENT1 = "198.18.10.101"  # pings DC1 in the mid-stream recording (iputils ping, type 8)


@pytest.fixture(scope="module")
def ping_flows(catalogue):
    inv = load_inventory(MIDSTREAM / "inventory.yaml")
    return audit_captures([MIDSTREAM / "midstream.pcap"], inv, catalogue).flows


def _icmp_verdict(ruleset_text, flows, tmp_path):
    path = tmp_path / "icmp.csv"
    path.write_text("source,destination,proto,ports,icmp_types,action\n" + ruleset_text)
    result = verify_flows(load_ruleset(path), flows)
    return result, result.paths.set_index(["src_ip", "dst_ip", "proto", "icmp_type"])


@pytest.mark.parametrize(("types", "verdict"), [
    ("echo", "permitted"), ("8", "permitted"), ("echo-reply", "would_block"),
    ("timestamp;unreachable", "would_block"), ("", "permitted"), ("any", "permitted"),
])
def test_a_rulesets_icmp_types_decide_an_icmp_path_by_its_type(ping_flows, types, verdict,
                                                               tmp_path):
    echo = ping_flows[(ping_flows["proto"] == "icmp") & (ping_flows["src_ip"] == CLIENT1)]
    assert list(echo["icmp_type"]) == [8]  # the recording's one ping
    _, paths = _icmp_verdict(f"{CLIENT1},{DC1},icmp,,{types},allow\n", ping_flows, tmp_path)
    assert paths.loc[(CLIENT1, DC1, "icmp", "echo"), "verdict"] == verdict


def test_an_echo_rule_covers_a_ping_caught_at_its_reply(ping_flows, tmp_path):
    # the same ping seen from the other end first: a flow of type 0 (echo-reply)
    reply = ping_flows[(ping_flows["proto"] == "icmp") & (ping_flows["src_ip"] == CLIENT1)]
    reply = reply.assign(icmp_type=reply["icmp_type"] * 0)
    result, paths = _icmp_verdict(f"{CLIENT1},{DC1},icmp,,echo,allow\n", reply, tmp_path)
    assert paths.loc[(CLIENT1, DC1, "icmp", "echo-reply"), "verdict"] == "permitted"
    assert result.unused.empty


def test_the_design_ruleset_opens_echo_only_and_round_trips_through_verify(design_csv,
                                                                           ping_flows):
    rules = load_ruleset(design_csv)
    echo_rows = [r for r in rules.rows if r.proto == "icmp"]
    assert echo_rows and all(r.icmp_types == frozenset({8}) for r in echo_rows)
    ping = ping_flows[(ping_flows["proto"] == "icmp") & (ping_flows["src_ip"] == CLIENT1)]
    permitted = verify_flows(rules, ping)
    assert list(permitted.paths["verdict"]) == ["permitted"]
    other = verify_flows(rules, ping.assign(icmp_type=ping["icmp_type"] * 0 + 13))  # timestamp
    assert list(other.paths["verdict"]) == ["would_block"]
    assert list(other.paths["icmp_type"]) == ["timestamp"]
    doc = verify_to_dict(other)
    jsonschema.validate(doc, verify_json_schema())
    assert doc["would_block"][0]["icmp_type"] == "timestamp"
