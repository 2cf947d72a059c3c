"""tshark missing, failing, crashing, hanging or printing what we cannot read: the audit goes on
with a one-line warning (a fake `tshark` first on PATH plays each part)."""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.audit.pipeline import observe
from auditor.cli import cli
from auditor.dissect.tshark import watchdog_s
from auditor.errors import DissectWarning
from auditor.options import PipelineOptions, RpcOptions

ROOT = Path(__file__).resolve().parents[1]
RPC = ROOT / "fixtures" / "pcaps" / "rpc" / "epm_fragmented.pcap"
INV = ROOT / "fixtures" / "pcaps" / "pilot" / "inventory.yaml"
FAKE = Path(__file__).with_name("fake_tshark.py")
REAL = shutil.which("tshark")


@pytest.fixture
def fake_tshark(tmp_path, monkeypatch):
    """Put a fake tshark alone on PATH; returns a function setting its mode."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "tshark"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_TSHARK_PIDFILE", str(tmp_path / "pids"))
    if REAL:
        monkeypatch.setenv("FAKE_TSHARK_REAL", REAL)

    def mode(name: str, **env):
        monkeypatch.setenv("FAKE_TSHARK", name)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return tmp_path / "pids"

    return mode


def _observe(timeout_s=30.0):
    opts = PipelineOptions(rpc_options=RpcOptions(tshark_timeout_s=timeout_s,
                                                  tshark_timeout_per_packet_s=0.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seen = observe([RPC], opts)
    notes = [str(w.message) for w in caught if issubclass(w.category, DissectWarning)]
    return seen, notes


def _alive(pidfile: Path) -> list[int]:
    pids = [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split()[2] != "Z":
                    out.append(pid)
        except (ProcessLookupError, FileNotFoundError):
            pass
    return out


FAULTS = {  # mode -> what the one warning line says
    "exit": "tshark failed: tshark: The file",
    "exit_after_read": "tshark failed: tshark: Unrecognized libpcap format",
    "crash": "tshark failed: killed by SIGSEGV",
    "truncated": "tshark's JSON output is cut or malformed",
    "shape": "tshark's JSON output is not a list of packets (a dict)",
}


@pytest.mark.parametrize("mode", sorted(FAULTS))
def test_failing_tshark_is_one_warning_and_the_flows_stay(fake_tshark, mode):
    fake_tshark(mode)
    seen, notes = _observe()
    assert len(seen.flows) > 0 and seen.rpc is None
    assert len(notes) == 1 and notes[0].startswith("RPC discovery and host naming skipped: ")
    assert FAULTS[mode] in notes[0] and "\n" not in notes[0]


def test_missing_tshark_is_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    seen, notes = _observe()
    assert len(seen.flows) > 0 and seen.rpc is None
    assert notes == ["RPC discovery and host naming skipped: tshark: tshark not found: "
                     "install it (apt-get install tshark)"]


@pytest.mark.parametrize("mode", ["hang", "hang_before_read"])
def test_hung_tshark_is_stopped_by_the_watchdog(fake_tshark, mode):
    pids = fake_tshark(mode)
    t0 = time.monotonic()
    seen, notes = _observe(timeout_s=1.5)
    assert time.monotonic() - t0 < 20
    assert len(seen.flows) > 0 and seen.rpc is None
    assert len(notes) == 1 and "tshark did not finish within 2 s; stopped it" in notes[0] \
        or "tshark did not start reading" in notes[0]
    assert _alive(pids) == []  # killed, not left behind


def test_watchdog_scales_with_the_packets_handed_to_tshark():
    assert watchdog_s(0) == 30.0
    assert watchdog_s(4000) == pytest.approx(30.0 + 80.0)
    assert watchdog_s(100, base_s=1.0, per_packet_s=0.5) == 51.0


@pytest.mark.tshark
@pytest.mark.skipif(REAL is None, reason="needs the real tshark behind the fake")
def test_old_tshark_without_epm_and_bind_fields_degrades_without_error(fake_tshark):
    fake_tshark("old")  # an older tshark: no epm.*, dcerpc.cn_* or tcp.stream fields
    seen, notes = _observe()
    assert len(seen.flows) > 0
    assert seen.rpc is not None or len(notes) == 1  # fewer facts, or one line saying why
    assert all("\n" not in n for n in notes)


@pytest.mark.tshark
@pytest.mark.skipif(REAL is None, reason="needs the real tshark behind the fake")
@pytest.mark.parametrize("drop", ["frame.", "ip.;ipv6.", "dcerpc.", "_source"])
def test_tshark_missing_basic_fields_is_not_an_internal_error(fake_tshark, drop):
    fake_tshark("old", FAKE_TSHARK_DROP=drop)
    res = CliRunner().invoke(cli, ["audit", str(RPC), "--inventory", str(INV)])
    assert res.exit_code == 0, res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr


def test_crashing_tshark_through_the_cli_is_exit_0_and_one_warning(fake_tshark):
    fake_tshark("crash")
    res = CliRunner().invoke(cli, ["audit", str(RPC), "--inventory", str(INV)])
    assert res.exit_code == 0, res.stderr
    warns = [ln for ln in res.stderr.splitlines() if "tshark" in ln]
    assert warns == [ln for ln in warns if ln.startswith("auditor: warning: RPC discovery")]
    assert len(warns) == 1 and "killed by SIGSEGV" in warns[0]
    assert "flows" in res.stdout
