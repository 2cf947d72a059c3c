"""`auditor audit` starts tshark before it imports pandas (dissect/prestart.py): tshark loads its
dissectors beside the imports, on the core they leave idle, and the discovery is fed to that one
tshark, not to a second one started later."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
PILOT = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps" / "pilot"

# every tshark started for a discovery: whether pandas was loaded then, and whether it was fed
_SPY = """
import json, sys
from auditor.dissect import tshark as T
starts = []
init, feed = T.PrestartedTshark.__init__, T.PrestartedTshark.feed
def spy_init(self, *a, **k):
    starts.append({"pandas": "pandas" in sys.modules, "fed": False})
    self._spy = starts[-1]
    init(self, *a, **k)
def spy_feed(self, write):
    self._spy["fed"] = True
    feed(self, write)
T.PrestartedTshark.__init__, T.PrestartedTshark.feed = spy_init, spy_feed
from auditor.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
finally:
    sys.stderr.write("\\nSTARTS " + json.dumps(starts) + "\\n")
"""


def _starts(*args: str) -> list[dict]:
    got = subprocess.run([sys.executable, "-c", _SPY, *args], capture_output=True, text=True,
                         check=False, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    line = [x for x in got.stderr.splitlines() if x.startswith("STARTS ")][-1]
    return json.loads(line[len("STARTS "):])


def _audit(tmp_path, *extra: str) -> list[str]:
    return ["audit", str(PILOT / "pilot.pcapng"), "--inventory", str(PILOT / "inventory.yaml"),
            "--format", "json", "-o", str(tmp_path / "out.json"), "--cache", str(tmp_path / "c"),
            *extra]


@needs_tshark
def test_audit_starts_one_tshark_before_pandas_and_feeds_it_the_discovery(tmp_path):
    starts = _starts(*_audit(tmp_path))
    assert starts == [{"pandas": False, "fed": True}]
    assert json.loads((tmp_path / "out.json").read_text())["summary"]["rpc_discovery"] is True


@needs_tshark
def test_no_tshark_without_discovery_nor_on_a_repeated_command(tmp_path):
    assert _starts(*_audit(tmp_path, "--no-rpc")) == []
    assert _starts(*_audit(tmp_path))  # fills the cache and the memo
    assert _starts(*_audit(tmp_path)) == []  # the same command again: its output replayed
