"""The fixture recorders share their set-up (fixtures/pcaps/recorder/common.sh) instead of
repeating it, and every one of them is valid bash."""

from __future__ import annotations

import re
import subprocess

import pytest
from tshark_helpers import ROOT

PCAPS = ROOT / "fixtures" / "pcaps"
RECORDERS = [PCAPS / "record_pilot.sh", PCAPS / "record_midstream.sh",
             PCAPS / "record_names.sh", PCAPS / "recorder" / "coexist.sh"]
SHARED = ("log", "die", "install_deps", "recorder_cleanup", "wait_listen", "serve", "step",
          "capture_start_dumpcap", "capture_start_tcpdump", "capture_stop")


@pytest.mark.parametrize("script", RECORDERS, ids=lambda p: p.name)
def test_each_recorder_sources_common_sh_and_redefines_none_of_it(script):
    text = script.read_text()
    assert 'source "$REC/common.sh"' in text
    defined = set(re.findall(r"^\s*([a-z_]+)\(\)\s*\{", text, re.M))
    assert defined & set(SHARED) == set()
    assert "trap recorder_cleanup EXIT" in text


def test_common_sh_defines_what_the_recorders_share():
    text = (PCAPS / "recorder" / "common.sh").read_text()
    assert set(re.findall(r"^([a-z_]+)\(\)", text, re.M)) == set(SHARED)


@pytest.mark.parametrize("script", [*RECORDERS, *sorted((PCAPS / "recorder").glob("*.sh"))],
                         ids=lambda p: p.name)
def test_recorder_scripts_parse_as_bash(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
