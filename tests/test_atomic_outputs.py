"""Every file the CLI writes is written beside its target and renamed: a failed or interrupted
run (disk full, simulated) leaves the previous file intact, no partial one, and one line."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import OutputError
from auditor.atomic import atomic_path, write_text
from auditor.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "fixtures" / "pcaps" / "pilot"
SMALL = ROOT / "fixtures" / "pcaps" / "rpc" / "epm_fragmented.pcap"
INV = PILOT / "inventory.yaml"
OLD = b"previous run's file\n"

CASES = {  # output -> argv given the output path
    "flows.csv": lambda o: ["flows", str(SMALL), "--format", "csv", "-o", o],
    "flows.json": lambda o: ["flows", str(SMALL), "--format", "json", "-o", o],
    "flows.parquet": lambda o: ["flows", str(SMALL), "--format", "parquet", "-o", o],
    "audit.json": lambda o: ["audit", str(SMALL), "--inventory", str(INV), "--no-rpc",
                             "--format", "json", "-o", o],
    "report.html": lambda o: ["audit", str(SMALL), "--inventory", str(INV), "--no-rpc",
                              "--report", o],
    "report.md": lambda o: ["audit", str(SMALL), "--inventory", str(INV), "--no-rpc",
                            "--report", o],
    "report.xlsx": lambda o: ["audit", str(SMALL), "--inventory", str(INV), "--no-rpc",
                              "--report", o],
    "matrix.png": lambda o: ["plot", "matrix", str(SMALL), "--inventory", str(INV), "--no-rpc",
                             "-o", o],
    "requests.csv": lambda o: ["firewall", "--inventory", str(INV), "-o", o],
    "requests.xlsx": lambda o: ["firewall", "--inventory", str(INV), "--format", "xlsx", "-o", o],
    "requests.json": lambda o: ["firewall", "--inventory", str(INV), "--format", "json", "-o", o],
    "inventory.yaml": lambda o: ["roles", str(SMALL), "--no-names", "-o", o],
}


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("name", sorted(CASES))
def test_disk_full_keeps_the_previous_file_and_says_so_in_one_line(tmp_path, monkeypatch, name):
    out = tmp_path / name
    out.write_bytes(OLD)
    monkeypatch.setattr("auditor.atomic.os.replace", _disk_full)
    res = CliRunner().invoke(cli, CASES[name](str(out)))
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("auditor: error")]
    assert res.exit_code == 1, res.stderr
    assert errors == [f"auditor: error: {out}: cannot write (No space left on device); "
                      "any previous file is left as it was"]
    assert "Traceback" not in res.stderr
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_output_replaces_the_previous_file_whole(tmp_path, name):
    out = tmp_path / name
    out.write_bytes(OLD)
    res = CliRunner().invoke(cli, CASES[name](str(out)))
    assert res.exit_code == 0, res.stderr
    assert out.read_bytes() != OLD and out.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path):
    out = tmp_path / "report.md"
    out.write_bytes(OLD)
    with pytest.raises(KeyboardInterrupt), atomic_path(out) as tmp:
        tmp.write_text("half a rep")
        raise KeyboardInterrupt
    assert out.read_bytes() == OLD and list(tmp_path.iterdir()) == [out]


def test_unwritable_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="no-such-dir/x.csv: cannot write"):
        write_text(tmp_path / "no-such-dir" / "x.csv", "a\n")


def test_output_to_a_fifo_or_device_writes_to_it_and_leaves_it_in_place(tmp_path):
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_text(fifo, "flows\n")
    reader.join(10)
    assert got == [b"flows\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # not renamed over (as /dev/null once was)
    write_text(os.devnull, "nothing")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_cache_folder_appears_whole_or_not_at_all(tmp_path):
    from auditor.atomic import atomic_dir

    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "entry") as tmp:
        (tmp / "part.parquet").write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "entry") as tmp:
        (tmp / "meta.json").write_text("first")
    with atomic_dir(tmp_path / "entry") as tmp:  # another run stored it first: theirs stays
        (tmp / "meta.json").write_text("second")
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
    assert (tmp_path / "entry" / "meta.json").read_text() == "first"
