"""The capture set's cached observation (engine/observed.py): a re-audit with another inventory
or catalogue runs neither the flow merge nor tshark, gets exactly the fresh observation, and a
changed file, option, tshark or auditor never reuses a stale entry."""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor import audit_captures, load_catalogue, load_inventory
from auditor.audit.pipeline import observe
from auditor.engine import cache as cache_mod
from auditor.engine import observed
from auditor.errors import DissectWarning
from auditor.options import EngineOptions, FlowOptions, PipelineOptions, RpcOptions

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"
RING = PILOT / "ring"

pytestmark = [pytest.mark.tshark,
              pytest.mark.filterwarnings("ignore::auditor.DissectWarning")]


def options(cache, **changes) -> PipelineOptions:
    return PipelineOptions(engine=EngineOptions(workers=1, cache_dir=str(cache)), **changes)


def entries(cache) -> list[str]:
    where = Path(cache) / "observations"
    return sorted(p.name for p in where.iterdir() if not p.name.startswith(".")) if where.exists() else []


def forbid_reading_and_tshark(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("the capture was read or tshark started again")

    monkeypatch.setattr("auditor.audit.pipeline.stream_flows", no)
    monkeypatch.setattr("auditor.audit.pipeline.PrestartedTshark", no)
    monkeypatch.setattr("auditor.dissect.rpc.TsharkFile", no)


def assert_same_observation(got, want):
    pd.testing.assert_frame_equal(got.flows, want.flows)
    pd.testing.assert_frame_equal(got.table.packets, want.table.packets)
    np.testing.assert_array_equal(got.labels, want.labels)
    assert got.table.files == want.table.files
    assert (got.rpc is None) == (want.rpc is None)
    if want.rpc is not None:
        pd.testing.assert_frame_equal(got.rpc.endpoints, want.rpc.endpoints)
        pd.testing.assert_frame_equal(got.rpc.names, want.rpc.names)
        for name in ("epm", "binds", "dcom", "cl_rpc"):
            pd.testing.assert_frame_equal(getattr(got.rpc.facts, name), getattr(want.rpc.facts, name))
        assert (got.rpc.packets, got.rpc.warnings) == (want.rpc.packets, want.rpc.warnings)
    assert got.warnings == want.warnings


def test_a_cached_observation_is_exactly_the_fresh_one_without_reading_or_tshark(tmp_path,
                                                                                  monkeypatch):
    fresh = observe([RING], options(tmp_path))
    assert len(entries(tmp_path)) == 1
    forbid_reading_and_tshark(monkeypatch)
    again = observe([RING], options(tmp_path))
    assert_same_observation(again, fresh)
    assert again.engine.cached == 4 and again.engine.files == 4


def test_a_reaudit_with_another_inventory_or_catalogue_runs_no_tshark(tmp_path, monkeypatch):
    inventory, catalogue = load_inventory(PILOT / "inventory.yaml"), load_catalogue()
    first = audit_captures([RING], inventory, catalogue, options(tmp_path))
    forbid_reading_and_tshark(monkeypatch)
    again = audit_captures([RING], inventory, catalogue, options(tmp_path))
    pd.testing.assert_frame_equal(again.findings, first.findings)
    pd.testing.assert_frame_equal(again.flows, first.flows)
    pd.testing.assert_frame_equal(again.rpc, first.rpc)
    assert again.captures == first.captures and again.warnings == first.warnings
    # another inventory (a host left out) audits the cached observation, and equals a fresh audit
    other = dataclasses.replace(inventory, hosts=inventory.hosts[1:])
    cached = audit_captures([RING], other, load_catalogue("exchange2016"), options(tmp_path))
    monkeypatch.undo()
    plain = audit_captures([RING], other, load_catalogue("exchange2016"),
                           PipelineOptions(engine=EngineOptions(workers=1)))
    pd.testing.assert_frame_equal(cached.findings, plain.findings)


def test_a_reaudit_takes_the_flows_rpc_annotation_from_the_cache_and_equals_a_fresh_audit(
        tmp_path, monkeypatch):
    inventory, catalogue = load_inventory(PILOT / "inventory.yaml"), load_catalogue()
    audit_captures([RING], inventory, catalogue, options(tmp_path))
    (entry,) = entries(tmp_path)
    assert (tmp_path / "observations" / entry / "annotation.arrow").is_file()
    other = dataclasses.replace(inventory, hosts=inventory.hosts[1:])
    forbid_reading_and_tshark(monkeypatch)
    monkeypatch.setattr("auditor.dissect.rpc.annotate_flows", lambda *a, **k: pytest.fail(
        "the RPC annotation was worked out again instead of read from the cache"))
    cached = audit_captures([RING], other, catalogue, options(tmp_path))
    monkeypatch.undo()
    plain = audit_captures([RING], other, catalogue, PipelineOptions(engine=EngineOptions(workers=1)))
    assert (cached.flows["rpc_evidence"] != "").any()  # the annotation says something here
    pd.testing.assert_frame_equal(cached.flows, plain.flows)
    pd.testing.assert_frame_equal(cached.findings, plain.findings)


def test_the_warnings_of_the_first_run_are_issued_again_from_the_cache(tmp_path):
    with warnings.catch_warnings(record=True) as first:
        warnings.simplefilter("always")
        observe([RING], options(tmp_path, rpc_options=RpcOptions(max_packets=3)))
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        observe([RING], options(tmp_path, rpc_options=RpcOptions(max_packets=3)))
    said = [(w.category, str(w.message)) for w in first]
    assert any(c is DissectWarning for c, _ in said)
    assert [(w.category, str(w.message)) for w in again] == list(dict.fromkeys(said))


def test_a_changed_file_option_or_name_misses(tmp_path):
    ring = tmp_path / "ring"
    shutil.copytree(RING, ring)
    cache = tmp_path / "cache"
    first = observe([ring], options(cache))
    changes = [
        dict(flows=FlowOptions(tcp_idle_timeout_s=1)),
        dict(rpc_options=RpcOptions(max_packets=10)),
        dict(rpc_options=RpcOptions(names=False)),
        dict(rpc=False),
    ]
    keys = {observed.observation_key([ring], options(cache))[0]}
    for change in changes:
        keys.add(observed.observation_key([ring], options(cache, **change))[0])
    assert len(keys) == 1 + len(changes)
    # a file with other bytes (another file's of the ring): the hash is of the content
    victim = sorted(ring.iterdir())[2]
    victim.write_bytes(sorted(ring.iterdir())[1].read_bytes())
    assert observed.observation_key([ring], options(cache))[0] not in keys
    # a renamed file: the RPC endpoints and warnings name their capture files
    before = observed.observation_key([ring], options(cache))[0]
    victim.rename(victim.with_name("pilot_02b.pcapng"))
    assert observed.observation_key([ring], options(cache))[0] != before
    got = observe([ring], options(cache))
    assert [f.name for f in got.table.files][2] == "pilot_02b.pcapng"
    plain = observe([ring], PipelineOptions(engine=EngineOptions(workers=1)))
    pd.testing.assert_frame_equal(got.flows, plain.flows)
    assert len(got.flows) != len(first.flows)


def test_another_tshark_or_another_auditor_misses(tmp_path, monkeypatch):
    key = observed.observation_key([RING], options(tmp_path))[0]
    # another tshark binary on PATH (a wrapper: another path, size and mtime)
    fake = tmp_path / "bin" / "tshark"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nexec {shutil.which('tshark')} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert str(fake) in observed.tshark_identity()
    assert observed.observation_key([RING], options(tmp_path))[0] != key
    monkeypatch.undo()
    assert observed.observation_key([RING], options(tmp_path))[0] == key
    # another auditor: the hash of its source changes the key
    monkeypatch.setattr(observed, "code_version", lambda: "another auditor")
    assert observed.observation_key([RING], options(tmp_path))[0] != key


def test_the_code_version_is_a_hash_of_the_source(tmp_path):
    assert len(observed.code_version()) == 16
    assert observed.code_version() == observed.code_version.__wrapped__()


def test_discovery_that_failed_is_not_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.warns(DissectWarning, match="skipped"):
        seen = observe([RING], options(tmp_path / "cache"))
    assert seen.rpc is None
    assert entries(tmp_path / "cache") == []


def test_a_broken_or_half_written_entry_is_a_miss_and_is_replaced(tmp_path, monkeypatch):
    fresh = observe([RING], options(tmp_path))
    (name,) = entries(tmp_path)
    (tmp_path / "observations" / name / "flows.arrow").write_bytes(b"not arrow")
    (tmp_path / "observations" / ".tmp-leftover").mkdir()  # a run killed while writing
    assert_same_observation(observe([RING], options(tmp_path)), fresh)
    forbid_reading_and_tshark(monkeypatch)
    assert_same_observation(observe([RING], options(tmp_path)), fresh)


def test_a_table_changed_in_place_or_a_foreign_entry_is_a_miss_and_is_replaced(tmp_path):
    fresh = observe([RING], options(tmp_path))
    (name,) = entries(tmp_path)
    flows = tmp_path / "observations" / name / "flows.arrow"
    data = bytearray(flows.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size: a valid-looking table
    flows.write_bytes(bytes(data))
    assert observed.load(tmp_path, name, [Path(p) for p in sorted(RING.iterdir())]) is None
    assert entries(tmp_path) == []  # removed, so the next run stores it again
    assert_same_observation(observe([RING], options(tmp_path)), fresh)
    # an entry stored under another key (copied or renamed by hand) is not this set's
    other = "0" * 40
    shutil.copytree(tmp_path / "observations" / name, tmp_path / "observations" / other)
    assert observed.load(tmp_path, other, [Path(p) for p in sorted(RING.iterdir())]) is None
    assert entries(tmp_path) == [name]


def test_without_a_cache_folder_there_is_no_key():
    assert observed.observation_key([RING], PipelineOptions()) is None


def test_a_damaged_file_entry_is_read_again_and_replaced(tmp_path):
    from auditor.engine.run import stream_flows

    engine = EngineOptions(workers=1, cache_dir=str(tmp_path))
    first = stream_flows([PILOT / "pilot.pcapng"], engine=engine)
    (entry,) = (tmp_path / "entries").iterdir()
    (entry / "parts.parquet").write_bytes(b"damaged")
    again = stream_flows([PILOT / "pilot.pcapng"], engine=engine)
    assert again.report.cached == 0
    pd.testing.assert_frame_equal(again.flows, first.flows)
    assert stream_flows([PILOT / "pilot.pcapng"], engine=engine).report.cached == 1


def test_a_file_rewritten_with_its_old_size_and_mtime_is_hashed_again(tmp_path):
    # cp -p, rsync -t or touch -r give a new content the old mtime; its ctime still moves
    path = tmp_path / "a.pcapng"
    path.write_bytes((PILOT / "ring" / "pilot_00.pcapng").read_bytes())
    before = path.stat()
    digest = cache_mod.content_hash(path, tmp_path / "cache")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    with open(path, "r+b") as fh:  # in place: same inode, same size
        fh.write(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    assert cache_mod.content_hash(path, tmp_path / "cache") != digest
    assert cache_mod.content_hash(path, tmp_path / "cache") == cache_mod.content_hash(
        path, tmp_path / "other-cache")
