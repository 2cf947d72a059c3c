"""The cache folder stays under --cache-size (engine/eviction.py): least recently used units go
first, a unit a run uses is marked used, and what the command itself used is kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.engine import eviction

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"


def unit(cache: Path, kind: str, name: str, size: int, used: float, folder: bool) -> Path:
    path = cache / kind / name
    if folder:
        path.mkdir(parents=True)
        (path / "meta.json").write_bytes(b"x" * size)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    os.utime(path, (used, used))
    return path


def test_least_recently_used_units_go_first_until_the_folder_fits(tmp_path):
    old = unit(tmp_path, "observations", "a" * 40, 64 * 1024, 1_000, folder=True)
    newer = unit(tmp_path, "results", "b" * 40, 64 * 1024, 2_000, folder=False)
    newest = unit(tmp_path, "entries", "c-d", 64 * 1024, 3_000, folder=True)
    busy = tmp_path / "observations" / ".tmp-abc"  # a store in progress: not counted nor removed
    busy.mkdir()
    (busy / "flows.arrow").write_bytes(b"x" * 1024 * 1024)
    sizes = {p: s for _, s, p in eviction.units(tmp_path)}
    assert list(sizes) == [old, newer, newest]
    total = sum(sizes.values())
    removed = eviction.evict(tmp_path, total - sizes[old])
    assert removed == [old] and not old.exists() and newer.exists() and newest.exists()
    assert eviction.evict(tmp_path, 10**12) == []
    assert eviction.evict(tmp_path, 0, keep_since=2_500) == [newer]
    assert newest.exists() and busy.exists()


def test_sizes_read_as_du_would_say_them():
    assert eviction.parse_size("4G") == 4 * 1024**3
    assert eviction.parse_size("500M") == eviction.parse_size("500MiB") == 500 * 1024**2
    assert eviction.parse_size("1.5k") == 1536 and eviction.parse_size("0") == 0
    for bad in ("", "-1G", "lots", "nan"):
        with pytest.raises(ValueError):
            eviction.parse_size(bad)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def audit(cache, capture, *more):
    return run("audit", capture, "--inventory", PILOT / "inventory.yaml", "--workers", "1",
               "--no-rpc", "--format", "json", "--cache", cache, *more)


def test_a_command_trims_the_cache_but_keeps_what_it_used(tmp_path):
    cache = tmp_path / "cache"
    first = audit(cache, PILOT / "ring" / "pilot_00.pcapng")
    assert first.exit_code == 0
    before = {p for _, _, p in eviction.units(cache)}
    for path in before:  # all used long ago
        os.utime(path, (1_000, 1_000))
    got = audit(cache, PILOT / "ring" / "pilot_01.pcapng", "--cache-size", "0")
    assert got.exit_code == 0
    after = {p for _, _, p in eviction.units(cache)}
    assert not before & after  # the first capture's entries went
    assert {p.parent.name for p in after} >= {"entries", "observations", "results", "quick",
                                             "stat"}
    # its memo still answers, and what answering used stays: the memo, its observation, the
    # quick index and the content hashes; the file's partials, which a hit does not read, go
    for path in after:  # used long ago too, so that keeping them never rests on the clock
        os.utime(path, (1_000, 1_000))
    again = audit(cache, PILOT / "ring" / "pilot_01.pcapng", "--cache-size", "0")
    assert again.stdout == got.stdout
    assert {p for _, _, p in eviction.units(cache)} == {
        p for p in after if p.parent.name != "entries"}


def test_a_memo_hit_marks_its_entries_used(tmp_path):
    cache = tmp_path / "cache"
    audit(cache, PILOT / "ring" / "pilot_00.pcapng")
    for _, _, path in eviction.units(cache):
        os.utime(path, (1_000, 1_000))
    audit(cache, PILOT / "ring" / "pilot_00.pcapng")
    used = {p.parent.name for t, _, p in eviction.units(cache) if t > 1_000}
    assert used >= {"observations", "results", "quick", "stat"}


def test_a_bad_cache_size_is_a_usage_error(tmp_path):
    got = audit(tmp_path, PILOT / "ring" / "pilot_00.pcapng", "--cache-size", "lots")
    assert got.exit_code == 2 and "--cache-size" in got.stderr


def test_a_trim_with_nothing_written_since_lists_no_unit(tmp_path, monkeypatch):
    # a day of use is ~10k units, and listing them cost ~0.3 s of every command: the ledger
    # answers when no unit was written since (a memo hit only marks its units used)
    stat = unit(tmp_path, "stat", "s" * 64, 64, 1_000, folder=False)
    unit(tmp_path, "entries", "e-1", 64 * 1024, 2_000, folder=True)
    for kind in ("stat", "entries"):  # written long ago (within seconds, they are listed again)
        os.utime(tmp_path / kind, (3_000, 3_000))
    assert eviction.evict(tmp_path, 10**9) == []
    assert (tmp_path / eviction.LEDGER).is_file()

    def no_folder_listed(path):
        raise AssertionError(f"listed {path}")

    monkeypatch.setattr(eviction.os, "scandir", no_folder_listed)
    eviction.touch(stat)  # used again: its folder does not change
    assert eviction.evict(tmp_path, 10**9) == []


def test_units_written_since_the_ledger_count_towards_the_limit(tmp_path):
    old = unit(tmp_path, "results", "r" * 40, 64 * 1024, 1_000, folder=False)
    assert eviction.evict(tmp_path, 10**9) == []
    before = sum(s for _, s, _ in eviction.units(tmp_path))
    new = unit(tmp_path, "observations", "o" * 40, 256 * 1024, eviction.now(), folder=True)
    after = sum(s for _, s, _ in eviction.units(tmp_path))
    assert after > before
    assert eviction.evict(tmp_path, after - 1) == [old]  # over: listed, oldest use first
    assert new.exists() and not old.exists()


def test_a_ledger_an_hour_old_or_unreadable_is_listed_again(tmp_path):
    old = unit(tmp_path, "results", "r" * 40, 64 * 1024, 1_000, folder=False)
    ledger = tmp_path / eviction.LEDGER
    stale = eviction.now() - 2 * 3600
    ledger.write_text(f"0 {stale!r} {stale!r}\n")  # says empty, but is old
    assert eviction.evict(tmp_path, 1) == [old]
    old = unit(tmp_path, "results", "q" * 40, 64 * 1024, 1_000, folder=False)
    ledger.write_text("lots\n")
    assert eviction.evict(tmp_path, 1) == [old]
