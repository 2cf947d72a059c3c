"""Ctrl-C and SIGTERM: unwind like an exception, so every `with` block cleans up.

Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the process on the spot, which
would leave tshark running and its FIFO and temp files behind. Both signals raise `Interrupted`
(a KeyboardInterrupt) instead: tshark is killed and temp folders removed by the context
managers that own them, and `handle_errors` prints one line and exits 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signame` says which."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


# an Interrupted Python swallowed and `_resend_swallowed` is sending again: (signame, timer)
_pending: list[tuple[str, threading.Timer]] = []


def _raise(signum, frame):
    _cancel_pending()  # (the one raised now stands for it)
    raise Interrupted(signal.Signals(signum).name)


def _cancel_pending() -> None:
    while _pending:
        _pending.pop()[1].cancel()


def raise_pending() -> None:
    """Raise the Interrupted Python swallowed, if its resending has not raised it yet (a command
    that ended within RESEND_AFTER_S of it)."""
    if _pending:
        signame = _pending[-1][0]
        _cancel_pending()
        raise Interrupted(signame)


RESEND_AFTER_S = 0.01  # an interrupt Python swallowed is sent again this much later


def _resend_swallowed(previous):
    """A sys.unraisablehook: an Interrupted raised where Python only prints exceptions (a weakref
    callback such as an import's module-lock one, a __del__) is sent again a moment later, from
    a thread, so it lands where it unwinds the command; anything else goes to `previous`."""

    def hook(unraisable) -> None:
        exc = unraisable.exc_value
        if not isinstance(exc, Interrupted):
            previous(unraisable)
            return
        timer = threading.Timer(RESEND_AFTER_S, os.kill,
                                (os.getpid(), signal.Signals[exc.signame]))
        timer.daemon = True
        _pending.append((exc.signame, timer))
        timer.start()

    return hook


def catch_signals(ctx: click.Context) -> None:
    """Raise Interrupted on SIGINT/SIGTERM until ctx closes (main thread only).

    A signal that arrives while Python runs a callback whose exceptions it swallows would be
    lost (the command ran on and exited 0): `_resend_swallowed` sends it again, and a command
    that ends first raises it on its way out (`raise_pending`, in cli/errors.handle_errors)."""
    if threading.current_thread() is not threading.main_thread():
        return
    old = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}
    old_hook = sys.unraisablehook
    sys.unraisablehook = _resend_swallowed(old_hook)

    def restore() -> None:
        _cancel_pending()  # never a signal sent after the handlers are restored
        for sig, handler in old.items():
            signal.signal(sig, handler)
        sys.unraisablehook = old_hook

    ctx.call_on_close(restore)


def interrupted_line(exc: KeyboardInterrupt) -> str:
    """The one line printed for an interrupt."""
    return f"auditor: interrupted by {getattr(exc, 'signame', 'SIGINT')}"
