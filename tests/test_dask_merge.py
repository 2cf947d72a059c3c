"""Merging on a Dask cluster (engine/dask_run.py, setmerge.py) and capture files named by fsspec
URLs (engine/remote.py, urlset.py): the same flows, candidates and findings as one core."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.engine import cache as cache_mod
from auditor.engine.dask_run import read_and_merge
from auditor.engine.fileread import read_file_partial, rebase
from auditor.engine.remote import is_url, url_name
from auditor.engine.run import stream_flows
from auditor.flows.partial import merge_partials
from auditor.options import EngineOptions, FlowOptions, RpcOptions

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"
RING = PILOT / "ring"
FILES = sorted(RING.iterdir())

cluster_warnings = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def address(dask_cluster):
    return dask_cluster.scheduler_address


def one_core(sources, **kw):
    return stream_flows(sources, engine=EngineOptions(workers=1, **kw))


def assert_same(got, want):
    pd.testing.assert_frame_equal(got.flows, want.flows)
    pd.testing.assert_frame_equal(got.table.packets, want.table.packets)
    np.testing.assert_array_equal(got.labels, want.labels)


@cluster_warnings
def test_the_workers_merge_the_files_and_the_client_gets_one_partial(address):
    heads, merged, workers = read_and_merge(address, [str(p) for p in FILES], FlowOptions(),
                                            RpcOptions())
    assert len(heads) == 4 and all(h.parts.empty and h.candidates.empty for h in heads)
    assert [h.info.name for h in heads] == [p.name for p in FILES]
    assert 1 <= workers <= 2
    local = [rebase(read_file_partial(str(p)), i) for i, p in enumerate(FILES)]
    expected, _, _ = merge_partials(pd.concat([fp.parts for fp in local], ignore_index=True),
                                    FlowOptions())
    pd.testing.assert_frame_equal(merged.parts, expected)
    assert len(merged.candidates) == sum(len(fp.candidates) for fp in local)


@cluster_warnings
def test_a_cluster_with_some_files_cached_gives_the_local_flows(address, tmp_path):
    local = one_core([RING], cache_dir=str(tmp_path))
    for entry in sorted((tmp_path / "entries").iterdir())[:2]:
        cache_mod.shutil.rmtree(entry)
    remote = stream_flows([RING], engine=EngineOptions(scheduler=address, cache_dir=str(tmp_path)))
    assert (remote.report.where, remote.report.files, remote.report.cached) == ("dask", 4, 2)
    assert_same(remote, local)
    assert remote.table.files == local.table.files


@cluster_warnings
@pytest.mark.tshark
def test_file_urls_read_by_the_workers_give_the_local_flows_and_findings(address):
    from auditor import audit_captures, load_catalogue, load_inventory
    from auditor.options import PipelineOptions

    urls = [p.resolve().as_uri() for p in reversed(FILES)]  # any order: time puts them right
    remote = stream_flows(urls, engine=EngineOptions(scheduler=address))
    local = one_core([RING])
    assert remote.report.where == "dask" and remote.report.files == 4
    assert_same(remote, local)
    assert [f.path for f in remote.table.files] == [p.resolve().as_uri() for p in FILES]
    inventory, catalogue = load_inventory(PILOT / "inventory.yaml"), load_catalogue()
    there = audit_captures(urls, inventory, catalogue,
                           PipelineOptions(engine=EngineOptions(scheduler=address)))
    here = audit_captures([RING], inventory, catalogue,
                          PipelineOptions(engine=EngineOptions(workers=1)))
    pd.testing.assert_frame_equal(there.findings, here.findings)
    pd.testing.assert_frame_equal(there.rpc.drop(columns="captures"),
                                  here.rpc.drop(columns="captures"))


def test_a_memory_url_is_fetched_and_read_in_this_process():
    fsspec = pytest.importorskip("fsspec")
    urls = []
    for p in FILES[::-1]:
        url = f"memory://auditor-test/ring/{p.name}"
        with fsspec.open(url, "wb") as fh:
            fh.write(p.read_bytes())
        urls.append(url)
    try:
        got = one_core(urls)
    finally:
        fsspec.filesystem("memory").rm("/auditor-test", recursive=True)
    assert_same(got, one_core([RING]))
    assert [f.path for f in got.table.files] == [f"memory://auditor-test/ring/{p.name}"
                                                  for p in FILES]
    assert got.report.cached == 0


def test_urls_and_paths_are_told_apart():
    assert is_url("s3://bucket/ring/a.pcapng") and is_url("file:///srv/a.pcap")
    assert is_url("simplecache::s3://bucket/a.pcap")
    assert not is_url("/srv/a.pcap") and not is_url("C:\\caps\\a.pcap") and not is_url("a.pcap")
    assert url_name("s3://bucket/ring/a.pcapng?versionId=3") == "a.pcapng"


def test_a_url_without_fsspec_is_one_clear_error_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec raises ImportError
    got = CliRunner().invoke(cli, ["flows", "s3://bucket/ring/a.pcapng", "--no-cache"])
    assert got.exit_code == 2
    assert got.stderr.splitlines() == [
        "auditor: error: capture URLs need fsspec: pip install 'auditor[remote]' (and the "
        "protocol's package, e.g. s3fs for s3://)"]


def test_a_missing_or_unknown_url_names_the_url():
    pytest.importorskip("fsspec")
    got = CliRunner().invoke(cli, ["flows", "memory://auditor-test/none.pcap", "--no-cache"])
    assert got.exit_code == 2
    assert got.stderr.startswith("auditor: error: memory://auditor-test/none.pcap: cannot open")
    assert len(got.stderr.splitlines()) == 1
    got = CliRunner().invoke(cli, ["flows", "nosuchproto://x/a.pcap", "--no-cache"])
    assert got.exit_code == 2 and "nosuchproto://x/a.pcap: cannot open this URL" in got.stderr


def test_stderr_says_how_many_worker_processes_read_how_many_files(tmp_path):
    got = CliRunner().invoke(cli, ["flows", str(RING), "--workers", "2", "--no-cache",
                                   "--format", "csv", "-o", str(tmp_path / "flows.csv")])
    assert got.exit_code == 0, got.stderr
    assert "auditor: read 4 files on 2 worker processes" in got.stderr
