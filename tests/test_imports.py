"""The common commands never import what only other commands need (issue 12: every command pays
its imports, and a cached re-audit with another inventory is little more than its imports).

Each command runs in a fresh interpreter on the pilot capture; afterwards none of the heavy
modules below may be in `sys.modules`. A module-level import of one of them on these paths
(a plot, a workbook, a template, a cluster, Parquet where the command reads none) fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"

# only other commands (plot, --report, --scheduler, URLs, per-file cache entries) need these
HEAVY = ("matplotlib", "openpyxl", "jinja2", "dask", "distributed", "fsspec", "scipy", "IPython",
         "PIL", "tornado", "pandas.io.formats.style", "pyarrow.parquet", "pyarrow.dataset")

# Run the command line in this process, then print what was imported and whether the audit's
# observation came from the cache (observed.load's answer, wrapped before the command runs).
SCRIPT = """\
import json, sys
import auditor.engine.observed as observed
hits = []
load = observed.load
def counted(*args, **kwargs):
    got = load(*args, **kwargs)
    hits.append(got is not None)
    return got
observed.load = counted
from auditor.cli import cli
cli(sys.argv[1:], standalone_mode=False)
print(json.dumps({"modules": sorted(sys.modules), "hits": hits}))
"""


def modules_after(*args: str) -> tuple[set[str], list[bool]]:
    """The modules one command line left imported, and its observation-cache answers."""
    got = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], capture_output=True,
                         text=True, cwd=ROOT, check=False)
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout.splitlines()[-1])
    return set(out["modules"]), out["hits"]


def heavy_in(modules: set[str]) -> set[str]:
    return {m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY}


def test_the_heavy_modules_are_installed_so_these_tests_can_fail():
    import importlib.util

    missing = [m for m in ("matplotlib", "openpyxl", "jinja2", "dask", "fsspec", "pyarrow.parquet")
               if importlib.util.find_spec(m) is None]
    assert not missing  # the dev extras ('.[dev,xlsx,dask]') bring every one


def test_flows_as_csv_imports_no_plotting_workbook_cluster_nor_yaml(tmp_path):
    modules, _ = modules_after("flows", PILOT / "pilot.pcapng", "--format", "csv",
                               "-o", tmp_path / "flows.csv", "--no-cache")
    assert (tmp_path / "flows.csv").read_text().count("\n") > 100
    assert "auditor.flows.build" in modules  # the command did run
    assert heavy_in(modules) == set()
    assert "yaml" not in modules  # flows read no inventory nor catalogue


def test_audit_as_json_without_cache_imports_no_heavy_module(tmp_path):
    modules, hits = modules_after("audit", PILOT / "pilot.pcapng", "--inventory",
                                  PILOT / "inventory.yaml", "--format", "json",
                                  "-o", tmp_path / "audit.json", "--no-cache", "--no-rpc")
    assert json.loads((tmp_path / "audit.json").read_text())["findings"]
    assert hits == []  # no cache: the observation was made, not looked up
    assert heavy_in(modules) == set()


def test_a_cached_reaudit_with_another_inventory_imports_no_heavy_module(tmp_path):
    cache = tmp_path / "cache"
    first = ["audit", PILOT / "pilot.pcapng", "--format", "json", "--cache", cache, "--no-rpc"]
    modules_after(*first, "--inventory", PILOT / "inventory.yaml", "-o", tmp_path / "first.json")
    other = tmp_path / "other.yaml"  # the hub transport left out: another audit, same capture
    text = (PILOT / "inventory.yaml").read_text()
    other.write_text(text.replace("  - name: HUB1\n    addresses: [198.18.1.41]\n"
                                  "    roles: [hub_transport]\n", ""))
    assert other.read_text() != text
    modules, hits = modules_after(*first, "--inventory", other, "-o", tmp_path / "other.json")
    assert hits == [True]  # the observation came from the cache
    assert (tmp_path / "other.json").read_text() != (tmp_path / "first.json").read_text()
    assert heavy_in(modules) == set()


@pytest.mark.tshark
def test_audit_with_rpc_discovery_imports_no_heavy_module(tmp_path):
    modules, _ = modules_after("audit", PILOT / "pilot.pcapng", "--inventory",
                               PILOT / "inventory.yaml", "--format", "json",
                               "-o", tmp_path / "audit.json", "--no-cache")
    assert "auditor.dissect.tshark" in modules
    assert heavy_in(modules) == set()
