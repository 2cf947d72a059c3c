"""Formats only tshark's wiretap reads (snoop, ERF, NetMon 1.x, NetXRay, ...), via editcap.

editcap converts the capture to pcapng on its standard output; the reader streams that pipe into
its pcapng walker, so there is one code path downstream and no temporary copy. A file editcap can
open itself (plain, gzip, zstd, lz4) is named on its command line; anything else (an archive
member, bzip2 or xz) is fed to its standard input by a thread. `captype` names the format for the
one-line warning.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from typing import BinaryIO

from auditor.errors import CaptureError

WIRETAP_READS_ITSELF = (None, "gzip", "zstd", "lz4")  # compressions wiretap opens on its own


class Converted:
    """editcap's pcapng output for one capture, read from its pipe about `room` bytes at a time."""

    def __init__(self, label: str, path: str | None, feed=None, *, ethernet: bool = False):
        """Convert the file at `path`, or (path None) the stream `feed` (has `read(room)`).

        `ethernet` has editcap write the frames as Ethernet (-T ether), for wiretap-only
        encapsulations of Ethernet frames that pcapng has no link type for.
        """
        editcap = shutil.which("editcap")
        if editcap is None:
            raise CaptureError(f"{label}: not a pcap, pcapng or NetMon 2.x file, and editcap "
                               "(Wireshark) is not installed to convert it")
        self.label = label
        self.format: str | None = None
        self.error: str | None = None
        self.eof = False
        self._read = 0
        cmd = [editcap, *(["-T", "ether"] if ethernet else []), "-F", "pcapng", path or "-", "-"]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL if path else subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self._feeder = None
        if feed is not None:
            self._feeder = threading.Thread(target=_feed, args=(feed, self._proc.stdin), daemon=True)
            self._feeder.start()

    def read(self, room: int) -> list[bytes]:
        """About `room` more bytes of pcapng; [] at the end (then `error` says what went wrong)."""
        out = self._proc.stdout.read(room) if not self.eof else b""
        if out:
            self._read += len(out)
            if len(out) < room:  # a buffered read returns short only at the end of the pipe
                self.eof = True
                self._finish()
            return [out]
        if not self.eof:
            self.eof = True
            self._finish()
        return []

    def _finish(self) -> None:
        rc = self._proc.wait()
        if self._feeder is not None:
            self._feeder.join()
        text = self._proc.stderr.read().decode("utf-8", "replace").strip()
        first = text.splitlines()[0] if text else ""
        first = first.removeprefix("editcap: ")
        if rc != 0 or first:
            self.error = first or f"editcap exited with status {rc}"

    def tell(self) -> int:
        """Bytes of pcapng read so far (the input's own progress is not known)."""
        return self._read

    def close(self) -> None:
        """End editcap if it still runs, and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr, self._proc.stdin):
            if pipe is not None:
                pipe.close()
        if self._feeder is not None:
            self._feeder.join(timeout=5)


def _feed(stream, pipe: BinaryIO) -> None:
    """Copy a stream into editcap's standard input (a thread), until it ends or editcap quits."""
    try:
        while True:
            parts = stream.read(1 << 20)
            if not parts:
                break
            for part in parts:
                pipe.write(part)
    except (BrokenPipeError, OSError, ValueError):
        pass  # editcap stopped reading: its exit status tells why
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def captype(path: str) -> tuple[str | None, str | None]:
    """(wiretap's short name for the file's format, e.g. "snoop", or None; why not, if known)."""
    exe = shutil.which("captype")
    if exe is None:
        return None, None
    try:
        done = subprocess.run([exe, path], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None, None
    name = done.stdout.rsplit(":", 1)[-1].strip() if ":" in done.stdout else ""
    if name and name != "unknown":
        return name, None
    why = done.stderr.strip().splitlines()
    why = [w for w in why if not w.startswith("Running as user")]
    return None, (why[0].removeprefix("captype: ") if why else None)


def encapsulation(path: str) -> str | None:
    """wiretap's short name for the file's link-layer encapsulation (capinfos -E), or None."""
    exe = shutil.which("capinfos")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-E", "-T", "-r", path], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    last = done.stdout.strip().splitlines()[-1:] or [""]
    return last[0].rsplit("\t", 1)[-1].strip() or None
