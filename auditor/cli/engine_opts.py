"""--cache/--no-cache/--cache-size, --workers and --scheduler: where the capture files are read."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import sys
import time
from pathlib import Path

import click


def engine_options(func=None, *, preload: bool = True):
    """Add the engine options; the command receives one `engine` (options.EngineOptions).

    With `preload` the engine is imported before the command runs (with the collector paused);
    `audit` imports it itself, only when its memo has no entry (cli/memo.py).
    """
    if func is None:
        return functools.partial(engine_options, preload=preload)

    @functools.wraps(func)
    def wrapper(*args, cache_dir, no_cache, workers, scheduler, cache_size, **kwargs):
        if preload:
            with imports_without_gc():  # the engine brings numpy, pandas and pyarrow
                import auditor.engine.run  # noqa: F401
        engine = engine_settings(None if no_cache else (cache_dir or True), workers, scheduler)
        kwargs["engine"] = engine
        started = time.time()
        try:
            with _report_on_stderr():
                return func(*args, **kwargs)
        finally:
            if engine.cache_dir is not None:
                _trim(engine.cache_dir, cache_size, started)

    wrapper = click.option(
        "--scheduler", metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS",
        help="Read the capture files on this Dask cluster (tcp://host:8786; needs "
             "'auditor[dask]'; default $DASK_SCHEDULER_ADDRESS).")(wrapper)
    wrapper = click.option(
        "--workers", type=click.IntRange(min=0), default=0, show_default=True,
        help="Worker processes reading the files of a set and byte ranges of large files "
             "(0: one per core, and one for a big set on one core; 1: this process).")(wrapper)
    wrapper = click.option(
        "--cache-size", metavar="SIZE", default="4G", show_default=True, callback=_size,
        help="Trim the cache folder to this size after the command, least recently used "
             "entries first (K, M, G, T: powers of 1024).")(wrapper)
    wrapper = click.option(
        "--no-cache", is_flag=True,
        help="Neither read nor store the per-file cache of flow aggregates.")(wrapper)
    return click.option(
        "--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
        help="Cache folder for per-file flow aggregates (default: $XDG_CACHE_HOME/auditor).",
    )(wrapper)


def _size(ctx, param, value) -> int:
    from auditor.engine.eviction import parse_size

    try:
        return parse_size(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size (4G, 500M, 0)") from None


def _trim(cache_dir: str, max_bytes: int, started: float) -> None:
    """Trim the cache folder (engine/eviction.py), keeping what this command used; a folder
    that cannot be trimmed is left as it is."""
    from auditor.engine.eviction import evict

    try:
        evict(cache_dir, max_bytes, keep_since=started - 1.0)  # mtimes tick coarser than time()
    except OSError:
        pass


def engine_settings(cache, workers: int, scheduler: str | None):
    """EngineOptions from the command line: cache True (the XDG folder), a folder, or None (off);
    the scheduler defaults to $DASK_SCHEDULER_ADDRESS."""
    from auditor.engine.cachebase import default_cache_dir
    from auditor.options import EngineOptions

    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    cache_dir = str(default_cache_dir()) if cache is True else str(Path(cache)) if cache else None
    return EngineOptions(workers=workers, cache_dir=cache_dir, scheduler=scheduler)


@contextlib.contextmanager
def imports_without_gc():
    """Import with the cyclic garbage collector paused: the hundreds of collections that module
    loading triggers find nothing to free (modules live on) and cost a tenth of the imports.

    The first time (the libraries not loaded yet: a command-line run), the objects the imports
    made are then frozen (`gc.freeze`): modules, classes and functions live until exit, yet left
    in the young generations every later collection would walk them again (some 0.15-0.2 s of
    an audit of the 1M-packet benchmark capture). A process that had them already (a notebook,
    the tests) keeps its collector as it was: freezing would keep its garbage forever."""
    was = gc.isenabled()
    first = "pandas" not in sys.modules
    gc.disable()
    try:
        yield
    finally:
        if first:
            gc.freeze()
        if was:
            gc.enable()


@contextlib.contextmanager
def _report_on_stderr():
    """Show the engine's one line (files, workers, cache hits) on stderr while the command runs."""
    log = logging.getLogger("auditor.engine")
    handler = _EchoHandler()
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old)


class _EchoHandler(logging.Handler):
    """Write records with click.echo to whatever stderr is now (CliRunner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"auditor: {record.getMessage()}", err=True)
