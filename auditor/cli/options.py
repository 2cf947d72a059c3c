"""Option groups shared by the commands (sqlite-utils' output_options style)."""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

FORMATS = ("table", "csv", "json", "parquet")


def stdout_dash(ctx, param, value):
    """`-o -` is standard output, as for every Unix tool (it wrote a file named '-')."""
    return None if value is not None and str(value) == "-" else value


def output_options(formats=FORMATS, default="table"):
    """The shared --format/-o options (sqlite-utils' output_options)."""

    def decorator(func):
        func = click.option(
            "-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
            callback=stdout_dash,
            help="Write to this file instead of standard output ('-': standard output).",
        )(func)
        func = click.option(
            "--format", "fmt", type=click.Choice(formats), default=default, show_default=True,
            help="Output format.",
        )(func)
        return func

    return decorator


class CaptureTime(click.ParamType):
    """An instant: ISO 8601 (UTC unless it says otherwise) or seconds since the epoch -> ns."""

    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(round(float(text) * 1e9))
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            self.fail(f"{text!r} is not an ISO 8601 time (2024-01-31T09:30:00Z) nor epoch "
                      "seconds", param, ctx)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def captures_argument(func):
    """CAPTURE... (files, folders, globs, zip/tar archives) and the --since/--until window."""

    @functools.wraps(func)
    def with_window(*args, captures, since, until, **kwargs):
        if since is not None and until is not None and since > until:
            raise click.BadParameter("--since is after --until", param_hint="--since")
        if since is not None or until is not None:
            from auditor.capture.sets import CaptureSet  # numpy loads only when captures are read

            captures = CaptureSet(tuple(captures), since, until)
        return func(*args, captures=captures, **kwargs)

    with_window = click.option(
        "--until", type=CaptureTime(), default=None,
        help="Leave out packets after this time (ISO 8601, UTC by default, or epoch seconds); "
             "files that start later are not read.")(with_window)
    with_window = click.option(
        "--since", type=CaptureTime(), default=None,
        help="Leave out packets before this time; files that end earlier are not read.")(with_window)
    return click.argument("captures", nargs=-1, required=True,
                          type=_CapturePath(path_type=Path))(with_window)


class _CapturePath(click.Path):
    """A path, or an fsspec URL (s3://..., file://...) kept as text (engine/remote.py)."""

    def convert(self, value, param, ctx):
        from auditor.engine.remote import is_url

        if isinstance(value, str) and is_url(value):
            return value
        return super().convert(value, param, ctx)


def progress_bar():
    """A progress callback drawing a bar on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    state = {"bar": None}

    def update(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=max(total, 1), label="reading", file=sys.stderr)
            state["bar"].__enter__()
        bar = state["bar"]
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)

    return update


def catalogue_options(func):
    """--catalogue NAME|FILE (repeatable) and --replace-catalogue; shared by audit, catalogue,
    firewall, plot and verify.  A bundled name (exchange2010, exchange2013, exchange2016,
    coexistence) takes the place of the default exchange2010; a file adds its rules."""
    func = click.option(
        "--replace-catalogue", is_flag=True,
        help="Use only the --catalogue names/files, not the default exchange2010 catalogue.",
    )(func)
    return click.option(
        "--catalogue", "catalogues", multiple=True, metavar="NAME|FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A bundled catalogue by name (exchange2010, exchange2013, exchange2016, coexistence; "
             "`auditor catalogue --list`) or a catalogue YAML file (repeatable). A name replaces "
             "the default exchange2010; a file adds to it.",
    )(func)


def inventory_option(required: bool = True):
    """--inventory FILE: hosts and networks with their roles (YAML or CSV)."""
    extra = "" if required else (" Without it, one is proposed from the captures and the audit "
                                 "uses it (review it with `auditor roles`).")
    return click.option(
        "--inventory", type=click.Path(dir_okay=False, path_type=Path), required=required,
        help="Inventory of hosts/networks and their roles (YAML or CSV)." + extra,
    )


def _rpc_packets(ctx: click.Context, _param, value: str | None):
    if value is None:
        return
    if value != "all" and not (value.isdigit() and int(value) > 0):
        raise click.BadParameter("a number of packets, or 'all'", param_hint="--rpc-packets")
    ctx.meta["rpc_packets"] = value


def rpc_options(func):
    """--no-rpc, --legacy-rpc-range and --rpc-packets."""
    func = click.option(
        "--rpc-packets", metavar="N|all", callback=_rpc_packets, expose_value=False,
        help="Packets RPC discovery hands to tshark (default 4000); 'all' also reads every "
             "sampled-out conversation. Warnings say when a limit left something unread.",
    )(func)
    func = click.option(
        "--legacy-rpc-range", is_flag=True,
        help="Also accept 1025-5000 (Windows 2003) as the dynamic RPC range.",
    )(func)
    return click.option(
        "--no-rpc", is_flag=True,
        help="Skip dynamic-RPC discovery and host naming (no tshark needed).",
    )(func)


def load_catalogues(catalogues, replace):
    from auditor.catalogue.loader import load_catalogue

    if replace and not catalogues:
        raise click.UsageError("--replace-catalogue needs at least one --catalogue FILE")
    return load_catalogue(list(catalogues), replace=replace)


def pipeline_options(no_rpc: bool, legacy_rpc_range: bool):
    from auditor.options import AuditOptions, PipelineOptions, RpcOptions, unlimited_rpc_options

    ctx = click.get_current_context(silent=True)
    packets = ctx.meta.get("rpc_packets") if ctx is not None else None
    rpc = (unlimited_rpc_options() if packets == "all" else
           RpcOptions(max_packets=int(packets)) if packets else RpcOptions())
    return PipelineOptions(audit=AuditOptions(legacy_rpc_range=legacy_rpc_range), rpc=not no_rpc,
                           rpc_options=rpc)


FINDING_KIND_CHOICES = ("unexpected", "rejected", "unanswered", "missing", "any")


def fail_on_kinds(text: str | None) -> set[str]:
    if not text:
        return set()
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    bad = kinds - set(FINDING_KIND_CHOICES)
    if bad:
        raise click.BadParameter(f"unknown kind(s) {', '.join(sorted(bad))}; use "
                                 + ", ".join(FINDING_KIND_CHOICES), param_hint="--fail-on")
    return {"unexpected", "rejected", "unanswered", "missing"} if "any" in kinds else kinds


# ---- audit ----------------------------------------------------------------------------------
