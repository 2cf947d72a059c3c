"""The per-key rule match and the chunked JSON records give what the per-flow versions gave."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from auditor import PipelineOptions, audit_captures
from auditor.audit.rule_match import best_rules, distinct_rows
from auditor.catalogue.loader import load_catalogue
from auditor.inventory.roles import load_inventory
from auditor.render.json_export import result_to_dict, result_to_json
from auditor.render.json_tables import records, records_json
from auditor.schema import FINDING_COLUMNS, RULE_PORT_COLUMNS, typed_frame

PILOT = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "pilot"
CATALOGUE = SimpleNamespace(rules=[SimpleNamespace(id=i, scope=s) for i, s in (
    ("R1", "open"), ("R2", "open"), ("R3", "strict"))])


def table(*rows) -> pd.DataFrame:
    names = [c.name for c in RULE_PORT_COLUMNS]
    return typed_frame([dict(zip(names, r, strict=True)) for r in rows], RULE_PORT_COLUMNS)


def keys(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["src_roles", "dst_roles", "proto", "port", "dst_ip"])


def test_distinct_rows_numbers_rows_by_first_appearance():
    codes, first = distinct_rows(np.array([5, 1, 5, 1, 5]), np.array([0, 0, 0, 2, 0]))
    assert codes.tolist() == [0, 1, 0, 2, 0]
    assert first.tolist() == [0, 1, 3]


def test_distinct_rows_of_wide_columns_does_not_overflow():
    wide = np.array([0, 2**62, 0, 2**62], dtype=np.int64)
    codes, first = distinct_rows(wide, wide[::-1], np.arange(4) % 2)
    assert codes.tolist() == [0, 1, 0, 1] and first.tolist() == [0, 1]


def test_exact_port_beats_a_range_and_a_narrow_range_a_wide_one():
    match = table(("R1", "client", "mailbox", "tcp", 1024, 65535, False, ""),
                  ("R2", "client", "mailbox", "tcp", 6000, 7000, False, ""),
                  ("R3", "client", "mailbox", "tcp", 6001, 6001, False, ""))
    got = best_rules(keys((("client",), ("mailbox",), "tcp", 6001, ""),
                          (("client",), ("mailbox",), "tcp", 6500, ""),
                          (("client",), ("mailbox",), "tcp", 9000, ""),
                          (("client",), ("mailbox",), "udp", 6001, "")), match, CATALOGUE)
    assert got["rule"].tolist() == ["R3", "R2", "R1", None]


def test_the_first_listed_role_pair_wins_when_one_rule_matches_several():
    match = table(("R1", "client", "mailbox", "tcp", 443, 443, False, ""),
                  ("R1", "admin", "mailbox", "tcp", 443, 443, False, ""))
    got = best_rules(keys((("admin", "client"), ("mailbox",), "tcp", 443, ""),
                          (("client", "admin"), ("mailbox",), "tcp", 443, "")), match, CATALOGUE)
    assert got["src_role"].tolist() == ["admin", "client"]
    assert got["dst_role"].tolist() == ["mailbox", "mailbox"]


def test_learned_dynamic_ports_belong_to_their_server_and_replace_its_default_range():
    match = table(("R1", "client", "mailbox", "tcp", 59531, 59531, True, "198.18.1.21"),
                  ("R1", "client", "mailbox", "tcp", 49152, 65535, True, ""))
    got = best_rules(keys((("client",), ("mailbox",), "tcp", 59531, "198.18.1.21"),
                          (("client",), ("mailbox",), "tcp", 60000, "198.18.1.21"),
                          (("client",), ("mailbox",), "tcp", 60000, "")), match, CATALOGUE)
    assert got["rule"].tolist() == ["R1", None, "R1"]


def test_a_strict_rules_bare_range_needs_rpc_evidence_once_discovery_ran():
    match = table(("R3", "client", "mailbox", "tcp", 49152, 65535, True, ""))
    two = keys((("client",), ("mailbox",), "tcp", 50000, ""),
               (("client",), ("mailbox",), "tcp", 50000, ""))
    assert best_rules(two, match, CATALOGUE)["rule"].tolist() == ["R3", "R3"]
    got = best_rules(two, match, CATALOGUE, evidenced=np.array([True, False]))
    assert got["rule"].tolist() == ["R3", None]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_records_json_is_json_dumps_of_the_records_whatever_the_chunks(chunk_rows):
    frame = typed_frame({
        "kind": ["rejected", "missing", "unexpected"], "severity": ["high", "low", "médium"],
        "src_ip": ["198.18.1.1", "", "198.18.1.2"], "dst_ip": ["198.18.1.3", "", "ff02::1"],
        "proto": ["tcp", "udp", "udp"], "dst_port": pd.array([443, None, 5355], dtype="Int64"),
        **{c: ["x", "", "\"quoted\" \\ \n"] for c in (
            "src_name", "dst_name", "src_role", "dst_role", "rule", "service", "detail",
            "orientation", "src_name_source", "dst_name_source", "display_filter", "src_version",
            "dst_version")},
        "documented": [True, False, True], "flows": [1, 0, 2], "packets": [3, 0, 4],
        "bytes": [100, 0, 2**40],
        "first_seen": pd.to_datetime(["2024-01-01T00:00:00.5Z", None, "2024-01-02T00:00:00.000001Z"],
                                 utc=True, format="ISO8601"),
        "last_seen": pd.to_datetime(["2024-01-01T00:00:01Z", None, "2024-01-02T00:00:00.000001Z"],
                                 utc=True, format="ISO8601"),
    }, FINDING_COLUMNS)
    expected = json.dumps(records(frame, FINDING_COLUMNS), ensure_ascii=False)
    assert records_json(frame, FINDING_COLUMNS, chunk_rows=chunk_rows) == expected
    assert records_json(frame.iloc[0:0], FINDING_COLUMNS) == "[]"


def test_audit_json_text_is_json_dumps_of_the_document():
    result = audit_captures([PILOT / "pilot.pcapng"], load_inventory(PILOT / "inventory.yaml"),
                            load_catalogue(), PipelineOptions(rpc=False))
    assert len(result.findings)
    text = json.dumps(result_to_dict(result), ensure_ascii=False) + "\n"
    assert result_to_json(result) == text
