"""SIGINT or SIGTERM during a real run (a subprocess) while it reads or while tshark dissects:
exit 130 with one line, and no tshark process, FIFO or temp file left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fuzz import capbuild as cb

ROOT = Path(__file__).resolve().parents[1]
RPC = ROOT / "fixtures" / "pcaps" / "rpc" / "epm_fragmented.pcap"
INV = ROOT / "fixtures" / "pcaps" / "pilot" / "inventory.yaml"
FAKE = Path(__file__).with_name("fake_tshark.py")


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split()[2] != "Z":
                    out.append(pid)
        except FileNotFoundError:
            pass
    return out


def _processes_naming(text: str) -> list[int]:
    """Processes whose command line mentions text (our temp dir: tshark reads a FIFO there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _written(path: Path) -> bool:
    # the fake tshark's open() creates its pid file before it writes the pid line into it
    try:
        return path.read_text().endswith("\n")
    except FileNotFoundError:
        return False


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s=60.0, line=False) -> None:
    """Until path exists (line=True: holds a whole line)."""
    deadline = time.monotonic() + timeout_s
    while not (_written(path) if line else path.exists()):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _start(tmp_path, capture: Path) -> tuple[subprocess.Popen, Path, Path, Path]:
    bin_dir, temp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    temp.mkdir()
    script = bin_dir / "tshark"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(0o755)
    env = dict(os.environ, TMPDIR=str(temp), PATH=f"{bin_dir}:{os.environ['PATH']}",
               FAKE_TSHARK="slow", FAKE_TSHARK_SLEEP="60",
               FAKE_TSHARK_PIDFILE=str(tmp_path / "pids"), FAKE_TSHARK_MARK=str(tmp_path / "read"))
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "audit", str(capture),
                             "--inventory", str(INV)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, temp, tmp_path / "pids", tmp_path / "read"


def _check_clean(proc, sig, temp, pidfile):
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.splitlines() == [f"auditor: interrupted by {signal.Signals(sig).name}"]
    pids = [int(p) for p in pidfile.read_text().split()]
    assert pids and _alive(pids) == []  # tshark was stopped
    assert _processes_naming(str(temp)) == []
    assert list(temp.iterdir()) == []  # no FIFO, no temp folder, no partial output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_tshark_dissects_leaves_nothing_behind(tmp_path, sig):
    proc, temp, pidfile, read = _start(tmp_path, RPC)
    _wait_for(read, proc)  # the fake tshark has its input: the run is in the dissection
    proc.send_signal(sig)
    _check_clean(proc, sig, temp, pidfile)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_reading_the_capture_leaves_nothing_behind(tmp_path, sig):
    big = tmp_path / "big.pcap"  # ~60 MB: reading it takes a while after tshark is started
    frames = cb.sample_packets(__import__("random").Random(3), 200)
    cap = cb.pcap_of(frames * 4000)
    big.write_bytes(cap.encode())
    proc, temp, pidfile, read = _start(tmp_path, big)
    _wait_for(pidfile, proc, line=True)  # tshark is started before the capture is read
    proc.send_signal(sig)
    _check_clean(proc, sig, temp, pidfile)
    assert not read.exists()  # the signal came before anything was handed to tshark


def test_a_signal_python_swallows_in_a_callback_is_sent_again():
    """A SIGINT that lands in a weakref callback (as in importlib's module-lock one, seen once
    under load: the run went on and exited 0) is sent again and then interrupts the command."""
    import weakref

    import click

    from auditor.cli import interrupts

    class Thing:
        pass

    def callback(_ref):
        os.kill(os.getpid(), signal.SIGINT)  # delivered here, inside the callback
        for _ in range(1000):  # the handler runs between these bytecodes: its raise is lost
            pass

    with click.Context(click.Command("x")) as ctx:
        interrupts.catch_signals(ctx)
        thing = Thing()
        ref = weakref.ref(thing, callback)
        with pytest.raises(interrupts.Interrupted) as got:
            del thing  # the callback runs; Python prints its exception and goes on
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
        assert got.value.signame == "SIGINT" and ref() is None
    assert signal.getsignal(signal.SIGINT) is not interrupts._raise  # restored on close


def test_a_command_that_ends_before_the_resend_still_exits_interrupted():
    """Swallowed, then the command ends within RESEND_AFTER_S: handle_errors raises it on the
    way out (exit 130, one line), and no signal is sent after the handlers are restored."""
    import weakref

    import click
    from click.testing import CliRunner

    from auditor.cli import interrupts
    from auditor.cli.errors import handle_errors

    class Thing:
        pass

    @click.command()
    @handle_errors
    def quick():
        thing = Thing()
        ref = weakref.ref(thing, lambda _ref: interrupts._raise(signal.SIGTERM, None))
        del thing  # the callback raises; Python prints nothing (the hook took it) and goes on
        click.echo(f"done ({ref() is None})")

    @click.group()
    def group():
        interrupts.catch_signals(click.get_current_context())

    group.add_command(quick)
    old = interrupts.RESEND_AFTER_S
    interrupts.RESEND_AFTER_S = 60.0  # the command ends long before the resend
    try:
        got = CliRunner().invoke(group, ["quick"])
    finally:
        interrupts.RESEND_AFTER_S = old
    assert got.exit_code == 130 and got.stderr.strip() == "auditor: interrupted by SIGTERM"
    assert not interrupts._pending  # the timer was cancelled, nothing is sent later
