"""The command line: every command documented, one-line errors, named exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.cli.main import ExitStatus

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"
PUBLIC = ROOT / "fixtures" / "pcaps" / "public"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command", cli.list_commands(None))
def test_every_command_has_help_and_a_readme_entry(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert cli.get_command(None, command).help
    assert f"`auditor {command}" in (ROOT / "README.md").read_text()


def test_not_a_capture_is_a_one_line_error_with_exit_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a capture\n")
    result = run("flows", bad)
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert result.output.count("\n") == 1
    assert result.output.startswith("auditor: error: ") and "notes.txt" in result.output
    assert "Traceback" not in result.output


def test_empty_file_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = run("flows", empty)
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert "empty.pcap" in result.output and result.output.count("\n") == 1


def test_missing_file_is_a_one_line_error(tmp_path):
    result = run("flows", tmp_path / "nope.pcap")
    assert result.exit_code == ExitStatus.BAD_INPUT and "nope.pcap" in result.output


def test_flows_csv_has_the_schema_columns():
    result = run("flows", PUBLIC / "aduser1.pcap", "--format", "csv")
    header = result.output.splitlines()[0]
    assert header.startswith('"flow_id","src_ip","src_port","dst_ip","dst_port","proto"')
    assert len(result.output.splitlines()) == 1 + 4


def test_flows_table_names_states_and_talkers():
    result = run("flows", PUBLIC / "aduser1.pcap")
    assert "4 flows, 53 packets" in result.output
    assert "Top talkers" in result.output and "established" in result.output


def test_fail_on_gives_the_findings_exit_code():
    args = ("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml", "--no-rpc")
    assert run(*args).exit_code == ExitStatus.OK
    assert run(*args, "--fail-on", "rejected").exit_code == ExitStatus.FINDINGS
    assert run(*args, "--fail-on", "nonsense").exit_code == 2


def test_audit_json_is_the_versioned_document():
    result = run("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml",
                 "--no-rpc", "--format", "json")
    doc = json.loads(result.output)
    assert doc["schema_version"] == "2.0" and doc["captures"][0]["name"] == "pilot.pcapng"


def test_bad_inventory_names_file_and_line(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  - name: X\n    addresses: [198.18.0.999]\n    roles: [mailbox]\n")
    result = run("audit", PUBLIC / "aduser1.pcap", "--inventory", inv, "--no-rpc")
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert f"{inv}:3" in result.output and result.output.count("\n") == 1


def test_catalogue_check_reports_file_and_line(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("rules:\n  - id: X1\n    sourc: mailbox\n")
    result = run("catalogue", "--check", bad)
    assert result.exit_code == ExitStatus.BAD_INPUT and f"{bad}:" in result.output


def test_catalogue_lists_rules_for_a_role():
    result = run("catalogue", "--role", "edge_transport", "--format", "csv")
    assert result.exit_code == 0 and "T08-hub-edge-edgesync" in result.output


def test_design_firewall_requests_as_csv():
    result = run("firewall", "--inventory", PILOT / "inventory.yaml")
    assert result.exit_code == 0
    assert "198.18.1.41" in result.output and "50636" in result.output


def test_terminal_output_escapes_control_characters_from_captures():
    from auditor.render.text import printable as _printable

    assert _printable("evil\x1b[2J.example") == "evil\\x1b[2J.example"
    assert _printable("dc1.pilot.test") == "dc1.pilot.test"


def test_audit_table_lists_findings_most_important_first():
    result = run("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml", "--no-rpc")
    lines = [line for line in result.output.splitlines() if line[:6].strip() in ("HIGH", "MEDIUM")]
    assert lines[0].startswith("HIGH") and "rejected" in lines[0]
    assert any("unexpected" in line and "tcp/8080" in line for line in lines)


def test_flows_table_counts_what_was_not_ip_or_skipped():
    edge = ROOT / "fixtures" / "pcaps" / "edge"
    assert "(pcap, 7 records, 1 not IP)" in run("flows", edge / "vlan_qinq.pcap").output
    result = CliRunner().invoke(cli, ["flows", str(edge / "truncated.pcap")])
    assert "1 skipped" in result.output and "truncated record at byte offset" in result.output


@pytest.mark.parametrize("error, line", [
    # a bug: still one line, and the way to see more
    (ValueError("boom"), r"auditor: internal error: ValueError: boom "
                         r"\(run with --traceback to see where\)"),
    # a limit (ulimit -v, the machine), not a bug: it says so, and what helps
    (MemoryError("Unable to allocate 16.0 MiB for an array with shape (16777216,)"),
     r"auditor: error: out of memory \(\d+ MiB at the peak\): read fewer capture files at a "
     r"time, or a --since/--until window"),
])
def test_an_unexpected_error_is_one_line_with_exit_1(monkeypatch, error, line):
    import re

    import auditor.engine.run

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(auditor.engine.run, "stream_flows", broken)
    result = CliRunner().invoke(cli, ["flows", str(PUBLIC / "aduser1.pcap")])
    assert result.exit_code == ExitStatus.ERROR
    assert re.fullmatch(line + "\n", result.output), result.output


def test_audit_table_lists_the_most_important_findings_and_counts_the_rest():
    from auditor import PipelineOptions, audit_captures, load_catalogue, load_inventory
    from auditor.render.text import audit_text

    result = audit_captures([PILOT / "pilot.pcapng"], load_inventory(PILOT / "inventory.yaml"),
                            load_catalogue(), PipelineOptions(rpc=False))
    text = audit_text(result, limit=2)
    assert "... and 4 more findings" in text
    assert text.count("\nHIGH ") == 2 and "tcp/110" in text  # the first two, most severe
    assert "more findings" not in audit_text(result, limit=None)


@pytest.mark.parametrize("command", [["flows", "--format", "csv"], ["roles"],
                                     ["flows", "--format", "json"]])
def test_output_dash_is_standard_output(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # a file named '-' would land here
    result = CliRunner().invoke(cli, [*command, str(PUBLIC / "dcerpc.pcap"), "-o", "-"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "192.168.1.20" in result.stdout and "wrote" not in result.output
    assert list(tmp_path.iterdir()) == []
