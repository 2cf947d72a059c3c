"""Exit codes and the one place library errors become one-line messages."""

from __future__ import annotations

import enum
import functools
import warnings

import click

from auditor.cli.interrupts import EXIT_INTERRUPTED, interrupted_line, raise_pending
from auditor.errors import AuditorError, OutputError


class ExitStatus(enum.IntEnum):
    """Exit codes of the `auditor` command."""

    OK = 0
    ERROR = 1  # the library reported an error other than bad input
    BAD_INPUT = 2  # usage errors (click) and unreadable captures, inventories, catalogues
    FINDINGS = 3  # --fail-on was given and a finding of those kinds was found
    INTERRUPTED = EXIT_INTERRUPTED  # SIGINT or SIGTERM (tshark stopped, temp files removed)


def handle_errors(func):
    """Turn library errors into one-line messages and named exit codes (unless --traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = ctx.find_root().params.get("traceback", False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = func(*args, **kwargs)
                raise_pending()  # an interrupt swallowed in a callback (cli/interrupts.py)
                return result
            except OutputError as exc:  # not bad input: the disk, permissions
                if debug:
                    raise
                click.echo(f"auditor: error: {_one_line(exc)}", err=True)
                ctx.exit(ExitStatus.ERROR)
            except AuditorError as exc:
                if debug:
                    raise
                click.echo(f"auditor: error: {_one_line(exc)}", err=True)
                ctx.exit(ExitStatus.BAD_INPUT)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except KeyboardInterrupt as exc:  # SIGINT or SIGTERM: `with` blocks have cleaned up
                if debug:
                    raise
                caught.clear()  # one line: the warnings of a cut-short run say little
                click.echo(interrupted_line(exc), err=True)
                ctx.exit(ExitStatus.INTERRUPTED)
            except MemoryError:  # a limit (ulimit -v, the machine), not a bug: say so
                if debug:
                    raise
                click.echo(f"auditor: error: out of memory ({_peak_mib()} MiB at the peak): "
                           "read fewer capture files at a time, or a --since/--until window",
                           err=True)
                ctx.exit(ExitStatus.ERROR)
            except Exception as exc:  # a bug: still one line, and the way to see more
                if debug:
                    raise
                click.echo(f"auditor: internal error: {type(exc).__name__}: {_one_line(exc)} "
                           "(run with --traceback to see where)", err=True)
                ctx.exit(ExitStatus.ERROR)
            finally:
                for w in caught:
                    click.echo(f"auditor: warning: {_one_line(w.message)}", err=True)

    return wrapper


def _peak_mib() -> int:
    """This process's peak resident memory in MiB (Linux counts ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _one_line(message: object) -> str:
    """A message as one terminal-safe line: it may quote capture strings (names, paths)."""
    text = str(message)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
