"""The `auditor` command line: parse options, call the library, render. Nothing else lives here."""

from __future__ import annotations

import enum
import functools
import sys
import warnings
from pathlib import Path

import click
import numpy as np
import pandas as pd

from auditor.errors import AuditorError
from auditor.report_text import audit_text, rpc_text


class ExitStatus(enum.IntEnum):
    """Exit codes of the `auditor` command."""

    OK = 0
    ERROR = 1  # the library reported an error other than bad input
    BAD_INPUT = 2  # usage errors (click) and unreadable captures, inventories, catalogues
    FINDINGS = 3  # --fail-on was given and a finding of those kinds was found


FORMATS = ("table", "csv", "json", "parquet")


def _handle_errors(func):
    """Turn library errors into one-line messages and named exit codes (unless --traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = ctx.find_root().params.get("traceback", False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return func(*args, **kwargs)
            except AuditorError as exc:
                if debug:
                    raise
                click.echo(f"auditor: error: {exc}", err=True)
                ctx.exit(ExitStatus.BAD_INPUT)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except Exception as exc:  # a bug: still one line, and the way to see more
                if debug:
                    raise
                click.echo(f"auditor: internal error: {type(exc).__name__}: {exc} "
                           "(run with --traceback to see where)", err=True)
                ctx.exit(ExitStatus.ERROR)
            finally:
                for w in caught:
                    click.echo(f"auditor: warning: {w.message}", err=True)

    return wrapper


def output_options(formats=FORMATS, default="table"):
    """The shared --format/-o options (sqlite-utils' output_options)."""

    def decorator(func):
        func = click.option(
            "-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
            help="Write to this file instead of standard output.",
        )(func)
        func = click.option(
            "--format", "fmt", type=click.Choice(formats), default=default, show_default=True,
            help="Output format.",
        )(func)
        return func

    return decorator


def captures_argument(func):
    """CAPTURE... : files or folders (ring-buffer sets), read as one capture."""
    return click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path))(func)


def _progress():
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


def write_frame(frame: pd.DataFrame, fmt: str, output: Path | None) -> None:
    """Write a frame as csv, json or parquet to a file or standard output."""
    if fmt == "parquet":
        if output is None:
            raise click.UsageError("--format parquet needs -o FILE")
        frame.to_parquet(output, index=False)
        return
    if fmt == "csv":
        _write_csv(frame, output)
        return
    else:
        text = _iso_times(frame).to_json(orient="records", indent=1) + "\n"
    _emit(text, output)


def _write_csv(frame: pd.DataFrame, output: Path | None) -> None:
    """CSV through pyarrow's writer (about ten times faster than DataFrame.to_csv)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.Table.from_pandas(_iso_times(frame), preserve_index=False)
    if output is None:
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink)
        click.echo(sink.getvalue().to_pybytes().decode("utf-8"), nl=False)
    else:
        pa_csv.write_csv(table, str(output))
        click.echo(f"wrote {output}", err=True)


def _iso_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Datetime columns as ISO-8601 UTC text (numpy's formatter is ~50x faster than pandas')."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            values = out[col].dt.tz_convert(None).to_numpy()
            out[col] = np.datetime_as_string(values, unit="us", timezone="UTC")
    return out


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def _table_text(frame: pd.DataFrame, title: str) -> str:
    """A plain-text rendering of a small frame under a title."""
    body = frame.to_string(index=False) if not frame.empty else "(none)"
    return f"{title}\n{body}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
@click.version_option(package_name="auditor")
def cli(traceback: bool) -> None:
    """Audit Exchange 2010 traffic in packet captures."""


@cli.command()
@captures_argument
@output_options()
@click.option("--tcp-idle-timeout", type=float, default=3600.0, show_default=True,
              help="Seconds of silence after which a TCP 5-tuple starts a new flow.")
@click.option("--udp-idle-timeout", type=float, default=300.0, show_default=True,
              help="Seconds of silence after which a UDP/ICMP 5-tuple starts a new flow.")
@_handle_errors
def flows(captures, fmt, output, tcp_idle_timeout, udp_idle_timeout):
    """Build the flow table of CAPTURE... (files or folders, read as one capture)."""
    from auditor.capture import read_packets
    from auditor.flows import FlowOptions, build_flows, flows_summary

    table = read_packets(captures, progress=_progress())
    frame = build_flows(table, FlowOptions(tcp_idle_timeout, udp_idle_timeout))
    if fmt != "table":
        write_frame(frame, fmt, output)
        return
    summary = flows_summary(frame)
    packets = int(frame["src_packets"].sum() + frame["dst_packets"].sum())
    head = (
        f"{len(frame)} flows, {packets} packets from {len(table.files)} file(s): "
        + ", ".join(f"{f.name} ({f.format}, {f.records} records"
                    + (f", {f.non_ip} not IP" if f.non_ip else "")
                    + (f", {sum(f.skipped.values())} skipped" if f.skipped else "") + ")"
                    for f in table.files)
        + "\n\n"
    )
    text = head + _table_text(summary["states"], "Flows by state") + "\n"
    text += _table_text(summary["top_talkers"], "Top talkers (by bytes)")
    _emit(text, output)


# ---- shared option groups -------------------------------------------------------------------


def catalogue_options(func):
    """--catalogue FILE (repeatable) and --replace-catalogue."""
    func = click.option(
        "--replace-catalogue", is_flag=True,
        help="Use only the --catalogue files, not the bundled Exchange 2010 catalogue.",
    )(func)
    return click.option(
        "--catalogue", "catalogues", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
        help="Extra catalogue YAML (repeatable); adds to the bundled rules.",
    )(func)


def inventory_option(required: bool = True):
    """--inventory FILE: hosts and networks with their roles (YAML or CSV)."""
    return click.option(
        "--inventory", type=click.Path(dir_okay=False, path_type=Path), required=required,
        help="Inventory of hosts/networks and their roles (YAML or CSV).",
    )


def rpc_options(func):
    """--no-rpc and --legacy-rpc-range."""
    func = click.option(
        "--legacy-rpc-range", is_flag=True,
        help="Also accept 1025-5000 (Windows 2003) as the dynamic RPC range.",
    )(func)
    return click.option(
        "--no-rpc", is_flag=True,
        help="Skip dynamic-RPC discovery and host naming (no tshark needed).",
    )(func)


def _load_catalogue(catalogues, replace):
    from auditor.catalogue import load_catalogue

    if replace and not catalogues:
        raise click.UsageError("--replace-catalogue needs at least one --catalogue FILE")
    return load_catalogue(list(catalogues), replace=replace)


def _pipeline_options(no_rpc: bool, legacy_rpc_range: bool):
    from auditor.audit import AuditOptions
    from auditor.pipeline import PipelineOptions

    return PipelineOptions(audit=AuditOptions(legacy_rpc_range=legacy_rpc_range), rpc=not no_rpc)


FINDING_KIND_CHOICES = ("unexpected", "rejected", "unanswered", "missing", "any")


def _fail_on(text: str | None) -> set[str]:
    if not text:
        return set()
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    bad = kinds - set(FINDING_KIND_CHOICES)
    if bad:
        raise click.BadParameter(f"unknown kind(s) {', '.join(sorted(bad))}; use "
                                 + ", ".join(FINDING_KIND_CHOICES), param_hint="--fail-on")
    return {"unexpected", "rejected", "unanswered", "missing"} if "any" in kinds else kinds


# ---- audit ----------------------------------------------------------------------------------


@cli.command()
@captures_argument
@inventory_option()
@catalogue_options
@output_options(formats=("table", "json", "csv"))
@click.option("--fail-on", metavar="KINDS",
              help="Exit 3 when a finding of these kinds exists (comma-separated: unexpected, "
                   "rejected, unanswered, missing, or any).")
@click.option("--report", "reports", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a report: .html (self-contained), .xlsx or .md (repeatable).")
@click.option("--all", "show_all", is_flag=True,
              help="Table format: list every finding (default: the 40 most important).")
@rpc_options
@_handle_errors
def audit(captures, inventory, catalogues, replace_catalogue, fmt, output, fail_on, reports,
          show_all, no_rpc, legacy_rpc_range):
    """Compare the traffic in CAPTURE... with the catalogue of documented Exchange paths."""
    from auditor.pipeline import audit_captures
    from auditor.roles import load_inventory

    kinds = _fail_on(fail_on)
    cat = _load_catalogue(catalogues, replace_catalogue)
    inv = load_inventory(inventory)
    result = audit_captures(captures, inv, cat, _pipeline_options(no_rpc, legacy_rpc_range),
                            progress=_progress())
    if fmt == "json":
        from auditor.export import result_to_json

        _emit(result_to_json(result), output)
    elif fmt == "csv":
        write_frame(result.findings, "csv", output)
    else:
        _emit(audit_text(result, limit=None if show_all else 40), output)
    for path in reports:
        from auditor.report import write_report

        write_report(result, path, catalogue=cat)
        click.echo(f"wrote {path}", err=True)
    if kinds and result.findings["kind"].isin(kinds).any():
        ctx = click.get_current_context()
        ctx.exit(ExitStatus.FINDINGS)


# ---- rpc ------------------------------------------------------------------------------------


@cli.command()
@captures_argument
@output_options(formats=("table", "json", "csv"))
@_handle_errors
def rpc(captures, fmt, output):
    """Discover the dynamic RPC endpoints (EPM replies, binds, DCOM) in CAPTURE..."""
    from auditor.pipeline import PipelineOptions, observe
    from auditor.rpc import RpcOptions, dynamic_ranges

    seen = observe(captures, PipelineOptions(rpc_options=RpcOptions(names=False)),
                   progress=_progress())
    if seen.rpc is None:
        raise click.ClickException("RPC discovery could not run (see the warning above)")
    endpoints = seen.rpc.endpoints
    ranges = dynamic_ranges(endpoints)
    if fmt != "table":
        if fmt == "json":
            from auditor.export import RPC_FIELDS, _records

            doc = {"endpoints": _records(endpoints, tuple(endpoints.columns)),
                   "ranges": _records(ranges, tuple(ranges.columns)),
                   "fields": list(RPC_FIELDS)}
            import json

            _emit(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", output)
        else:
            write_frame(endpoints, "csv", output)
        return
    _emit(rpc_text(endpoints, ranges), output)


# ---- catalogue ------------------------------------------------------------------------------


@cli.command()
@catalogue_options
@click.option("--role", help="Only rules with this role at either end.")
@click.option("--check", "check_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Validate this catalogue file and exit (errors name file and line).")
@output_options(formats=("table", "csv", "json"))
@_handle_errors
def catalogue(catalogues, replace_catalogue, role, check_file, fmt, output):
    """List the reference catalogue of documented Exchange 2010 paths, or --check a file."""
    from auditor.catalogue import catalogue_frame, check_catalogue

    if check_file is not None:
        cat = check_catalogue(check_file)
        click.echo(f"{check_file}: {len(cat.rules)} rules, ok")
        return
    frame = catalogue_frame(_load_catalogue(catalogues, replace_catalogue), role)
    if fmt == "table":
        cols = ["id", "source", "destination", "proto", "ports", "service", "expected", "scope",
                "status"]
        _emit(_table_text(frame[cols], f"{len(frame)} rules"), output)
    else:
        write_frame(frame, fmt, output)


# ---- roles ----------------------------------------------------------------------------------


@cli.command()
@captures_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the proposed inventory YAML here instead of standard output.")
@click.option("--no-names", is_flag=True, help="Do not name hosts from DNS/SMTP/Kerberos/NetBIOS.")
@click.option("--internal", "internal", multiple=True, metavar="CIDR",
              help="Networks that are ours (repeatable); other hosts are proposed as internet. "
                   "Default: private, ULA and 198.18.0.0/15 ranges.")
@_handle_errors
def roles(captures, output, no_names, internal):
    """Propose an inventory (hosts and roles, with evidence) from what CAPTURE... shows."""
    from auditor.pipeline import PipelineOptions, observe
    from auditor.roles import inventory_to_yaml, propose_inventory

    seen = observe(captures, PipelineOptions(rpc=not no_names), progress=_progress())
    names = seen.rpc.names if seen.rpc is not None else None
    inv, evidence = propose_inventory(seen.flows, names, internal=list(internal) or None)
    _emit(inventory_to_yaml(inv, evidence), output)


# ---- plots ----------------------------------------------------------------------------------


@cli.command()
@click.argument("kind", type=click.Choice(["matrix", "diagram"]))
@click.argument("captures", nargs=-1, type=click.Path(path_type=Path))
@inventory_option(required=False)
@catalogue_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Image file to write (.png or .svg).")
@click.option("--value", type=click.Choice(["flows", "bytes"]), default="flows", show_default=True,
              help="What matrix cells count.")
@click.option("--by", type=click.Choice(["role", "service", "host"]), default="role",
              show_default=True, help="matrix: one role matrix, one per service, or per host.")
@rpc_options
@_handle_errors
def plot(kind, captures, inventory, catalogues, replace_catalogue, output, value, by, no_rpc,
         legacy_rpc_range):
    """Draw the role MATRIX or the role DIAGRAM (without CAPTURE: the catalogue's design view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auditor import plots
    from auditor.diagram import plot_role_diagram

    cat = _load_catalogue(catalogues, replace_catalogue)
    result = None
    if captures:
        if inventory is None:
            raise click.UsageError("--inventory is needed with captures")
        from auditor.pipeline import audit_captures
        from auditor.roles import load_inventory

        result = audit_captures(captures, load_inventory(inventory), cat,
                                _pipeline_options(no_rpc, legacy_rpc_range), progress=_progress())
    elif kind == "matrix":
        raise click.UsageError("plot matrix needs CAPTURE... and --inventory")
    if kind == "diagram":
        ax = plot_role_diagram(cat, result.flows if result else None,
                               result.findings if result else None)
        fig = ax.figure
    elif by == "service":
        fig = plots.plot_role_matrix_facets(result.flows, value=value)
    else:
        fig, ax = plt.subplots(figsize=(11, 8), layout="constrained")
        draw = plots.plot_host_matrix if by == "host" else plots.plot_role_matrix
        draw(result.flows, ax=ax, value=value)
    fig.savefig(output, dpi=130)
    plt.close(fig)
    click.echo(f"wrote {output}", err=True)


# ---- firewall -------------------------------------------------------------------------------


@cli.command()
@inventory_option()
@catalogue_options
@click.option("--from-capture", "from_captures", multiple=True,
              type=click.Path(path_type=Path),
              help="As-built mode: derive requests from the observed, successful traffic of "
                   "these captures (repeatable); without it: design mode from the catalogue.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "xlsx"]), default="csv",
              show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.option("--no-merge", is_flag=True, help="One row per rule instead of merged port ranges.")
@rpc_options
@_handle_errors
def firewall(inventory, catalogues, replace_catalogue, from_captures, fmt, output, no_merge,
             no_rpc, legacy_rpc_range):
    """Turn the catalogue (design) or observed traffic (as-built) into firewall rule requests."""
    from auditor.firewall import asbuilt_requests, design_requests, merge_requests, write_requests
    from auditor.roles import load_inventory

    cat = _load_catalogue(catalogues, replace_catalogue)
    inv = load_inventory(inventory)
    if from_captures:
        from auditor.pipeline import audit_captures

        result = audit_captures(from_captures, inv, cat,
                                _pipeline_options(no_rpc, legacy_rpc_range), progress=_progress())
        frame = asbuilt_requests(result, inv, cat)
    else:
        frame = design_requests(inv, cat, legacy_rpc_range=legacy_rpc_range)
    if not no_merge:
        frame = merge_requests(frame)
    if fmt == "xlsx" and output is None:
        raise click.UsageError("--format xlsx needs -o FILE")
    write_requests(frame, output if output is not None else sys.stdout, fmt)
    if output is not None:
        click.echo(f"wrote {output}", err=True)
