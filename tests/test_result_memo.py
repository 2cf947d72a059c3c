"""The audit's result memo (engine/results.py, cli/memo.py): the same `auditor audit` on unchanged
inputs prints exactly its first output, warnings and exit code without auditing again; any
changed input (capture, inventory, catalogue, option, format) audits again, `--no-cache` neither
reads nor stores it, and a damaged or foreign entry is never used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.cli.main import ExitStatus
from auditor.engine import results

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"

pytestmark = [pytest.mark.tshark]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def audit(cache, *more, capture=PILOT / "pilot.pcapng", inventory=PILOT / "inventory.yaml"):
    return run("audit", capture, "--inventory", inventory, "--workers", "1", "--cache", cache,
               *more)


def memo_entries(cache) -> list[Path]:
    where = Path(cache) / "results"
    return sorted(p for p in where.iterdir() if not p.name.startswith(".")) if where.exists() else []


def forbid_auditing(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("audited again")

    monkeypatch.setattr("auditor.audit.pipeline.audit_captures", no)


def same_run(got, want):
    assert (got.exit_code, got.stdout, got.stderr) == (want.exit_code, want.stdout, want.stderr)


def test_the_same_audit_again_prints_its_first_output_without_auditing(tmp_path, monkeypatch):
    args = ("--format", "json", "--rpc-packets", "3", "--fail-on", "any")
    first = audit(tmp_path, *args)
    assert first.exit_code == ExitStatus.FINDINGS
    assert "auditor: warning: " in first.stderr  # the tiny RPC budget warns
    assert len(memo_entries(tmp_path)) == 1
    forbid_auditing(monkeypatch)
    same_run(audit(tmp_path, *args), first)
    # the table format too, with and without --all (each its own entry)
    monkeypatch.undo()
    table, every = audit(tmp_path), audit(tmp_path, "--all")
    assert len(memo_entries(tmp_path)) == 3  # the pilot has under 40 findings: same text
    forbid_auditing(monkeypatch)
    same_run(audit(tmp_path), table)
    same_run(audit(tmp_path, "--all"), every)


def test_output_from_the_memo_equals_an_audit_without_any_cache(tmp_path):
    audit(tmp_path, "--format", "json")
    again = audit(tmp_path, "--format", "json")
    plain = run("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml",
                "--workers", "1", "--no-cache", "--format", "json")
    assert again.stdout == plain.stdout and again.stderr == plain.stderr


def test_another_inventory_catalogue_option_or_format_audits_again(tmp_path, monkeypatch):
    audit(tmp_path, "--format", "json")
    other = tmp_path / "inventory.yaml"
    other.write_text((PILOT / "inventory.yaml").read_text().replace("name: MBX2", "name: MBX9"))
    changes = [
        dict(inventory=other),
        dict(more=("--catalogue", "exchange2016")),
        dict(more=("--legacy-rpc-range",)),
        dict(more=("--rpc-packets", "all")),
        dict(more=("--no-rpc",)),
        dict(more=("--format", "table")),
    ]
    calls = []
    import auditor.audit.pipeline as pipeline

    real = pipeline.audit_captures
    monkeypatch.setattr(pipeline, "audit_captures",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    for change in changes:  # each audits: an option that changes nothing here still misses
        more = ("--format", "json", *change.get("more", ()))
        got = audit(tmp_path, *more, inventory=change.get("inventory", PILOT / "inventory.yaml"))
        assert got.exit_code == 0
    assert len(calls) == len(changes)
    memoised = audit(tmp_path, "--format", "json", inventory=other)
    assert len(calls) == len(changes)  # that one was memoised by then
    plain = run("audit", PILOT / "pilot.pcapng", "--inventory", other, "--workers", "1",
                "--no-cache", "--format", "json")
    assert memoised.stdout == plain.stdout


def test_a_changed_capture_audits_again(tmp_path):
    capture = tmp_path / "a.pcapng"
    shutil.copy(PILOT / "ring" / "pilot_00.pcapng", capture)
    first = audit(tmp_path / "cache", "--format", "json", capture=capture)
    shutil.copy(PILOT / "ring" / "pilot_01.pcapng", capture)
    again = audit(tmp_path / "cache", "--format", "json", capture=capture)
    plain = run("audit", capture, "--inventory", PILOT / "inventory.yaml", "--workers", "1",
                "--no-cache", "--format", "json")
    assert again.stdout == plain.stdout != first.stdout


def test_no_cache_neither_reads_nor_stores_the_memo(tmp_path, monkeypatch):
    run("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml", "--no-cache",
        "--format", "json")
    audit(tmp_path, "--format", "json")
    (entry,) = memo_entries(tmp_path)
    forbid_auditing(monkeypatch)
    got = run("audit", PILOT / "pilot.pcapng", "--inventory", PILOT / "inventory.yaml",
              "--cache", tmp_path, "--no-cache", "--format", "json")
    assert "audited again" in got.stderr  # it audited (the CLI made the assertion one line)
    assert memo_entries(tmp_path) == [entry]


def test_reports_csv_and_a_proposed_inventory_are_not_memoised(tmp_path):
    audit(tmp_path, "--format", "csv")
    audit(tmp_path, "--format", "json", "--report", tmp_path / "r.md")
    run("audit", PILOT / "pilot.pcapng", "--workers", "1", "--cache", tmp_path, "--format", "json")
    assert memo_entries(tmp_path) == []


def test_a_damaged_foreign_or_orphaned_entry_is_never_used(tmp_path, monkeypatch):
    first = audit(tmp_path, "--format", "json")
    (entry,) = memo_entries(tmp_path)
    data = bytearray(entry.read_bytes())
    data[-10] ^= 0x01  # one flipped bit in the text
    entry.write_bytes(bytes(data))
    same_run(audit(tmp_path, "--format", "json"), first)
    assert entry.read_bytes() != bytes(data)  # removed and stored again
    # another command's entry copied under this one's name
    table = audit(tmp_path, "--format", "table")
    other = next(p for p in memo_entries(tmp_path) if p != entry)
    shutil.copy(other, entry)
    same_run(audit(tmp_path, "--format", "json"), first)
    assert entry.read_bytes() != other.read_bytes()
    # an entry whose observation is gone is not used either (the capture set is read again)
    shutil.rmtree(tmp_path / "observations")
    calls = []
    import auditor.audit.pipeline as pipeline

    real = pipeline.audit_captures
    monkeypatch.setattr(pipeline, "audit_captures",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    same_run(audit(tmp_path, "--format", "table"), table)
    assert calls == [1]


def test_the_key_sees_every_field_and_refuses_what_it_cannot_see():
    from auditor import load_inventory

    inventory = load_inventory(PILOT / "inventory.yaml")
    data = results.canonical(inventory)
    assert "198.18.1.21" in str(data) and "mailbox" in str(data)
    with pytest.raises(TypeError):
        results.canonical({"x": object()})


def test_a_memo_hit_loads_neither_pandas_nor_the_engine(tmp_path):
    """The quick index answers from the command line: nothing but the standard library loads."""
    import subprocess
    import sys

    first = audit(tmp_path, "--format", "json")
    args = ["audit", str(PILOT / "pilot.pcapng"), "--inventory", str(PILOT / "inventory.yaml"),
            "--workers", "1", "--cache", str(tmp_path), "--format", "json"]
    script = ("import sys\nfrom auditor.cli import cli\n"
              "try:\n    cli(sys.argv[1:], standalone_mode=False)\n"
              "finally:\n    print(' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    got = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert got.stdout == first.stdout
    loaded = set(got.stderr.split())
    heavy = {m for m in loaded if m.split(".")[0] in ("numpy", "pandas", "pyarrow", "yaml")}
    assert not heavy
    assert not {m for m in loaded if m.startswith(("auditor.engine.run", "auditor.audit",
                                                   "auditor.engine.observed"))}


def _count_audits(monkeypatch) -> list:
    import auditor.audit.pipeline as pipeline

    calls, real = [], pipeline.audit_captures
    monkeypatch.setattr(pipeline, "audit_captures",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def _edit(path: Path, old: str, new: str) -> None:
    """Rewrite a file in place (same path, same inode), its mtime set back as `cp -p` would."""
    import os

    st = path.stat()
    text = path.read_text()
    assert old in text
    with open(path, "r+") as fh:
        fh.write(text.replace(old, new, 1))
        fh.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("change", ["inventory", "catalogue", "tool", "tshark", "libraries"])
def test_an_input_changed_in_place_audits_again(tmp_path, monkeypatch, change):
    """Each input the output depends on, changed under the same name, misses both the quick
    index and the full key; the output equals a run without any cache."""
    from auditor.engine import cachebase, observed

    inventory = tmp_path / "inventory.yaml"
    shutil.copy(PILOT / "inventory.yaml", inventory)
    catalogue = tmp_path / "rules.yaml"
    shutil.copy(ROOT / "rules" / "exchange2010.yaml", catalogue)
    more = ("--format", "json", "--no-rpc", "--replace-catalogue", "--catalogue", catalogue)
    if change == "tshark":
        more = more[:2] + more[3:]
    cache = tmp_path / "cache"
    first = audit(cache, *more, inventory=inventory)
    assert first.exit_code == 0 and len(memo_entries(cache)) == 1
    calls = _count_audits(monkeypatch)
    same_run(audit(cache, *more, inventory=inventory), first)
    assert calls == []  # unchanged: memoised
    if change == "inventory":
        _edit(inventory, "roles: [unified_messaging]", "roles: [mailbox]")
    elif change == "catalogue":
        _edit(catalogue, "expected: false", "expected: true")
    elif change == "tool":
        for module in (cachebase, observed):
            monkeypatch.setattr(module, "code_version", lambda: "another auditor")
    elif change == "tshark":
        for module in (cachebase, observed):
            monkeypatch.setattr(module, "tshark_identity", lambda: "another tshark")
    else:
        for module in (cachebase, observed, results):
            monkeypatch.setattr(module, "libraries_stamp", lambda: "another pandas")
    again = audit(cache, *more, inventory=inventory)
    assert calls == [1]
    plain = run("audit", PILOT / "pilot.pcapng", "--inventory", inventory, "--workers", "1",
                "--no-cache", *more)
    assert (again.stdout, again.stderr) == (plain.stdout, plain.stderr)
    if change in ("inventory", "catalogue"):
        assert again.stdout != first.stdout


def test_a_capture_rewritten_in_place_with_its_old_mtime_audits_again(tmp_path, monkeypatch):
    import os

    capture = tmp_path / "a.pcapng"
    shutil.copy(PILOT / "ring" / "pilot_00.pcapng", capture)
    more = ("--format", "json", "--no-rpc")
    first = audit(tmp_path / "cache", *more, capture=capture)
    st = capture.stat()
    capture.write_bytes((PILOT / "ring" / "pilot_01.pcapng").read_bytes())
    os.utime(capture, ns=(st.st_atime_ns, st.st_mtime_ns))
    calls = _count_audits(monkeypatch)
    again = audit(tmp_path / "cache", *more, capture=capture)
    assert calls == [1] and again.stdout != first.stdout


def test_the_quick_index_names_only_entries_that_exist(tmp_path, monkeypatch):
    """An index file whose entry was evicted, or that names something odd, is a miss."""
    first = audit(tmp_path, "--format", "json", "--no-rpc")
    (index,) = sorted((tmp_path / "quick").iterdir())
    for entry in memo_entries(tmp_path):
        entry.unlink()
    calls = _count_audits(monkeypatch)
    same_run(audit(tmp_path, "--format", "json", "--no-rpc"), first)
    assert calls == [1]
    index.write_text('{"result": "../../etc/passwd", "observation": "x"}')
    same_run(audit(tmp_path, "--format", "json", "--no-rpc"), first)
    assert calls == [1]  # the full key found the entry again, and the index was rewritten
    assert "../" not in index.read_text()
