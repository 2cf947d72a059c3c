"""Run tshark over a (small) capture and hand back each packet as plain JSON trees.

tshark runs directly (`tshark -T json --no-duplicate-keys`): repeated keys (several towers,
several PDUs in a segment) become JSON lists, so readers walk the trees generically with
`_nodes`, `_values` and `_first`. What the trees mean (RPC facts, host names) is dcerpc.py's.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from auditor.errors import DissectError


@dataclass(frozen=True)
class _Packet:
    number: int
    ts_ns: int
    src: str
    dst: str
    sport: int
    dport: int
    stream: int  # tcp.stream, -1 for UDP
    layers: dict[str, list[dict]]  # layer name -> JSON trees (several when a PDU repeats)


# Watchdog: tshark dissects thousands of packets a second; a run much slower than that is hung.
TIMEOUT_BASE_S = 30.0  # start-up (loading dissectors) and a margin for a loaded machine
TIMEOUT_PER_PACKET_S = 0.02  # 50 packets a second, ~100 times slower than tshark really is
TIMEOUT_UNKNOWN_S = 600.0  # a run whose packet count is not known


def watchdog_s(packets: int, base_s: float = TIMEOUT_BASE_S,
               per_packet_s: float = TIMEOUT_PER_PACKET_S) -> float:
    """Seconds tshark may take over `packets` packets before it is stopped as hung."""
    return base_s + per_packet_s * max(packets, 0)


def _tshark(tshark_path: str | None) -> str:
    found = shutil.which(tshark_path or "tshark")
    if found is None:
        raise DissectError(f"{tshark_path or 'tshark'}: tshark not found: install it "
                           "(apt-get install tshark)")
    return found


def _command(tshark_path: str | None, path, display_filter: str) -> list[str]:
    # --no-duplicate-keys turns repeated keys (several towers, several PDUs) into JSON lists
    return [_tshark(tshark_path), "-n", "-r", str(path), "-Y", display_filter, "-T", "json",
            "--no-duplicate-keys"]


def _packets(source, display_filter: str, tshark_path: str | None) -> Iterator[_Packet]:
    """Yield the packets of a capture (a path, or a PrestartedTshark) matching the filter."""
    if hasattr(source, "packets"):  # a PrestartedTshark or a TsharkFile
        yield from source.packets()
        return
    yield from TsharkFile(source, display_filter, tshark_path=tshark_path).packets()


class TsharkFile:
    """tshark run over a capture file under a watchdog (`timeout_s`, see watchdog_s)."""

    def __init__(self, path, display_filter: str, *, tshark_path: str | None = None,
                 timeout_s: float = TIMEOUT_UNKNOWN_S):
        self.path, self.display_filter = Path(path), display_filter
        self.tshark_path, self.timeout_s = tshark_path, timeout_s

    def packets(self) -> Iterator[_Packet]:
        """Run tshark (killed if past the watchdog) and yield its packets."""
        path = self.path
        if not path.is_file():
            raise DissectError(f"{path}: no such capture file")
        try:
            done = subprocess.run(_command(self.tshark_path, path, self.display_filter),
                                  capture_output=True, stdin=subprocess.DEVNULL, check=False,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise DissectError(f"{path}: tshark did not finish within {self.timeout_s:.0f} s; "
                               "stopped it") from None
        except OSError as exc:
            raise DissectError(f"{path}: tshark failed: {exc}") from exc
        yield from _parse(path, done.returncode, done.stdout, done.stderr)


def _parse(path, returncode: int, stdout: bytes, stderr: bytes) -> Iterator[_Packet]:
    """tshark's JSON output as packets, or one DissectError line saying what went wrong."""
    if returncode != 0:
        lines = [line for line in stderr.decode(errors="replace").splitlines()
                 if line.strip() and not line.startswith("Running as user")]
        if returncode < 0:  # killed by a signal: a crash, whatever it printed before
            try:
                why = f"killed by {signal.Signals(-returncode).name}"
            except ValueError:
                why = f"killed by signal {-returncode}"
        else:
            why = lines[-1].strip() if lines else f"exit status {returncode}"
        raise DissectError(f"{path}: tshark failed: {why}")
    try:
        docs = json.loads(stdout or b"[]")
    except ValueError as exc:
        raise DissectError(f"{path}: tshark's JSON output is cut or malformed ({exc})") from None
    if not isinstance(docs, list):
        raise DissectError(f"{path}: tshark's JSON output is not a list of packets "
                           f"(a {type(docs).__name__})")
    for i, doc in enumerate(docs):
        layers = doc.get("_source", {}).get("layers") if isinstance(doc, dict) else None
        if not isinstance(layers, dict):
            raise DissectError(f"{path}: tshark's JSON packet {i} has no _source.layers "
                               "object (an unexpected tshark version?)")
        yield _plain(layers)


class PrestartedTshark:
    """tshark started before its input exists, reading a FIFO.

    Loading tshark's dissectors takes ~0.3 s; started first, that overlaps reading the capture
    and building flows. Output goes to a file, not a pipe, so a large answer cannot block tshark
    while the input is still being written. Use as a context manager: close() ends tshark if no
    input ever came.
    """

    def __init__(self, display_filter: str, *, tshark_path: str | None = None,
                 workdir: str | Path | None = None):
        program = _tshark(tshark_path)  # fails before anything is created
        self._dir = Path(tempfile.mkdtemp(prefix="auditor-tshark-", dir=workdir))
        self.path = self._dir / "selected.pcap"
        try:
            os.mkfifo(self.path)
            self._out = open(self._dir / "out.json", "w+b")  # closed in close()
            self._err = open(self._dir / "err.txt", "w+b")
            self._proc = subprocess.Popen(_command(program, self.path, display_filter),
                                          stdin=subprocess.DEVNULL, stdout=self._out,
                                          stderr=self._err)
        except OSError:
            for fh in (getattr(self, "_out", None), getattr(self, "_err", None)):
                if fh is not None:
                    fh.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def open_input(self, timeout_s: float = 60.0) -> BinaryIO:
        """The FIFO opened for writing, once tshark reads it (DissectError if tshark died)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:  # non-blocking: a plain open() would hang forever if tshark had died
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise DissectError(f"{self.path}: cannot feed tshark: {exc}") from exc
            if self._proc.poll() is not None or time.monotonic() > deadline:
                list(self.packets())  # raises tshark's own error line
                raise DissectError(f"{self.path}: tshark did not start reading")
            time.sleep(0.005)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "wb")

    timeout_s: float = TIMEOUT_UNKNOWN_S  # watchdog for packets(); the feeder sets it per run

    def feed(self, write: Callable[[BinaryIO], object]) -> None:
        """Hand tshark its input through `write(fifo)`; DissectError if tshark stops reading."""
        try:
            with self.open_input(self.timeout_s) as fifo:
                write(fifo)
        except BrokenPipeError:  # tshark died while reading: say why, in its words
            list(self.packets())
            raise DissectError(f"{self.path}: tshark stopped reading its input") from None
        except OSError as exc:
            raise DissectError(f"{self.path}: cannot feed tshark: {exc}") from None

    def packets(self) -> Iterator[_Packet]:
        """Wait for tshark (at most timeout_s) to finish its input and yield its packets."""
        try:
            returncode = self._proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise DissectError(f"{self.path}: tshark did not finish within "
                               f"{self.timeout_s:.0f} s; stopped it") from None
        self._out.seek(0)
        self._err.seek(0)
        yield from _parse(self.path, returncode, self._out.read(), self._err.read())

    def close(self) -> None:
        """End tshark if it is still waiting, and remove the FIFO and output files."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.close()
        self._err.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrestartedTshark:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# What a tshark too old or too new for the tree readers makes them raise.
_NOT_UNDERSTOOD = (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError)


def understood(read: Callable, source, **kwargs):
    """Call read(source, **kwargs); trees it cannot read become one DissectError line."""
    try:
        return read(source, **kwargs)
    except _NOT_UNDERSTOOD as exc:
        where = getattr(source, "path", source)
        raise DissectError(f"{where}: tshark's output was not understood ({type(exc).__name__}: "
                           f"{str(exc)[:120]}); is this tshark version supported?") from None


def _plain(tree: dict) -> _Packet:
    layers = {name: value if isinstance(value, list) else [value] for name, value in tree.items()}
    frame = layers.get("frame", [{}])[0]
    prefix = "ip" if "ip" in layers else "ipv6"
    ip = layers.get(prefix, [{}])[0]
    l4 = "tcp" if "tcp" in layers else "udp"
    l4tree = layers.get(l4, [{}])[0]
    return _Packet(
        number=_int(frame.get("frame.number")),
        ts_ns=_epoch_ns(frame.get("frame.time_epoch", "0")),
        src=ip.get(f"{prefix}.src", ""),
        dst=ip.get(f"{prefix}.dst", ""),
        sport=_int(l4tree.get(f"{l4}.srcport")),
        dport=_int(l4tree.get(f"{l4}.dstport")),
        stream=_int(l4tree.get("tcp.stream"), -1) if l4 == "tcp" else -1,
        layers=layers,
    )


def _epoch_ns(text: str) -> int:
    # float() would drop the nanoseconds of "1710370252.386597943"
    sec, _, frac = str(text).partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


# --- JSON tree helpers ----------------------------------------------------------------------------


def _nodes(tree) -> Iterator[dict]:
    """Every dict in a JSON tree, parents before children, in document order."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)


def _values(tree, key: str) -> list:
    """All values of `key` anywhere in the tree, in document order (lists flattened)."""
    out: list = []
    for node in _nodes(tree):
        if key in node:
            value = node[key]
            out.extend(value if isinstance(value, list) else [value])
    return out


def _first(tree, key: str, default=None):
    found = _values(tree, key)
    return found[0] if found else default


def _int(value, default: int = 0) -> int:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return default
    try:
        return int(str(value), 0)
    except ValueError:
        return default
