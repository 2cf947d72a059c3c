"""Ctrl-C and SIGTERM: unwind like an exception, so every `with` block cleans up.

Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the process on the spot, which
would leave tshark running and its FIFO and temp files behind. Both signals raise `Interrupted`
(a KeyboardInterrupt) instead: tshark is killed and temp folders removed by the context
managers that own them, and `handle_errors` prints one line and exits 130.
"""

from __future__ import annotations

import signal
import threading

import click

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signame` says which."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def _raise(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def catch_signals(ctx: click.Context) -> None:
    """Raise Interrupted on SIGINT/SIGTERM until ctx closes (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    old = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    ctx.call_on_close(restore)


def interrupted_line(exc: KeyboardInterrupt) -> str:
    """The one line printed for an interrupt."""
    return f"auditor: interrupted by {getattr(exc, 'signame', 'SIGINT')}"
