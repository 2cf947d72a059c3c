"""A stand-in for tshark that fails the way a real one can; FAKE_TSHARK picks how.

Tests put a `tshark` script running this first on PATH. Modes: exit (fails before reading),
exit_after_read, crash (cut JSON, then SIGSEGV), hang (reads, then sleeps), hang_before_read,
truncated (cut JSON, exit 0), shape (JSON that is not a packet list), old (real tshark's output
with fields removed, as an older version would print), slow (reads, then sleeps FAKE_TSHARK_SLEEP
seconds before real tshark's answer). FAKE_TSHARK_PIDFILE, if set, receives this process's
pid; FAKE_TSHARK_MARK is created once the input is read (old, slow).
"""

import json
import os
import signal
import subprocess
import sys
import time

mode = os.environ.get("FAKE_TSHARK", "exit")
if os.environ.get("FAKE_TSHARK_PIDFILE"):
    with open(os.environ["FAKE_TSHARK_PIDFILE"], "a") as fh:
        fh.write(f"{os.getpid()}\n")
args = sys.argv[1:]
if "-v" in args or "--version" in args:
    print("TShark (Wireshark) 2.6.0 (fake)")
    sys.exit(0)
path = args[args.index("-r") + 1] if "-r" in args else None


def read_input() -> bytes:
    with open(path, "rb") as fh:  # a FIFO: blocks until the auditor writes, reads to EOF
        return fh.read()


def real() -> bytes:
    return subprocess.run([os.environ["FAKE_TSHARK_REAL"], *args], capture_output=True,
                          check=False).stdout


if mode == "exit":
    print(f'tshark: The file "{path}" appears to be damaged or corrupt.', file=sys.stderr)
    sys.exit(2)
if mode == "hang_before_read":
    time.sleep(3600)
if mode == "old" or mode == "slow":
    # the input is a FIFO: keep a copy, so the real tshark can read it as a file
    data = read_input()
    if os.environ.get("FAKE_TSHARK_MARK"):  # tells a test the input was read: now dissecting
        open(os.environ["FAKE_TSHARK_MARK"], "w").close()
    copy = path + ".copy"
    with open(copy, "wb") as fh:
        fh.write(data)
    args[args.index("-r") + 1] = copy
    if mode == "slow":
        time.sleep(float(os.environ.get("FAKE_TSHARK_SLEEP", "30")))
    out = real()
    os.unlink(copy)
    if mode == "old":
        gone = tuple(os.environ.get("FAKE_TSHARK_DROP", "epm.;dcerpc.cn_;tcp.stream").split(";"))

        def strip(tree):
            if isinstance(tree, dict):
                return {k: strip(v) for k, v in tree.items() if not k.startswith(gone)}
            if isinstance(tree, list):
                return [strip(v) for v in tree]
            return tree

        out = json.dumps(strip(json.loads(out or b"[]"))).encode()
    sys.stdout.buffer.write(out)
    sys.exit(0)
read_input()
if mode == "exit_after_read":
    print("tshark: Unrecognized libpcap format or not libpcap data.", file=sys.stderr)
    sys.exit(1)
if mode == "crash":
    sys.stdout.write('[\n  {\n    "_index": "packets-2026",\n    "_source": {\n      "layers": {')
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "hang":
    time.sleep(3600)
if mode == "truncated":
    sys.stdout.write('[{"_source": {"layers": {"frame": {"frame.number": "1"')
    sys.exit(0)
if mode == "shape":
    sys.stdout.write('{"error": "not what tshark prints"}')
    sys.exit(0)
sys.exit(0)
