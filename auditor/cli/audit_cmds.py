"""Commands that compare with the catalogue: audit, catalogue, plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from auditor.cli.engine_opts import engine_options, imports_without_gc
from auditor.cli.errors import ExitStatus, handle_errors
from auditor.cli.memo import audit_memo
from auditor.cli.options import (
    captures_argument,
    catalogue_options,
    fail_on_kinds,
    inventory_option,
    load_catalogues,
    output_options,
    pipeline_options,
    progress_bar,
    rpc_options,
)
from auditor.cli.output import emit, table_text, write_frame


@click.command()
@captures_argument
@inventory_option(required=False)
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
@engine_options(preload=False)
@handle_errors
def audit(captures, inventory, catalogues, replace_catalogue, fmt, output, fail_on, reports,
          show_all, no_rpc, legacy_rpc_range, engine):
    """Compare the traffic in CAPTURE... with the catalogue of documented Exchange paths."""
    kinds = fail_on_kinds(fail_on)
    options = dataclasses.replace(pipeline_options(no_rpc, legacy_rpc_range), engine=engine)
    tshark = None
    memo = audit_memo(captures, inventory, catalogues, replace_catalogue, options, fmt=fmt,
                      show_all=show_all, reports=reports)
    if memo.hit is None and options.rpc:  # tshark loads beside the imports (dissect/prestart.py)
        from auditor.dissect.prestart import early_tshark

        tshark = early_tshark(options.rpc_options.names)
        if tshark is not None:
            click.get_current_context().with_resource(tshark)
    if memo.hit is None:  # the command line names no entry: parse, and ask by the full key
        with imports_without_gc():  # the engine brings numpy, pandas and pyarrow
            from auditor.audit.pipeline import audit_captures
            from auditor.inventory.roles import load_inventory
            from auditor.options import audit_read_options

        cat = load_catalogues(catalogues, replace_catalogue)
        inv = load_inventory(inventory) if inventory is not None else None
        memo.parsed(captures, inv, cat, audit_read_options(options, inv is not None))
    if memo.hit is not None:  # the same command on unchanged inputs: its output again
        emit(memo.replay(), output)
        if kinds and memo.found(kinds):
            click.get_current_context().exit(ExitStatus.FINDINGS)
        return
    with memo.recording():
        result = audit_captures(captures, inv, cat, options, progress=progress_bar(),
                                tshark=tshark)
    if inv is None:
        from auditor.audit.proposed import proposal_note

        click.echo(f"auditor: {proposal_note(result, captures)}", err=True)
    if fmt == "json":
        from auditor.render.json_export import result_to_json

        emit(memo.keep(result_to_json(result), result), output)
    elif fmt == "csv":
        write_frame(result.findings, "csv", output)
    else:
        from auditor.render.text import audit_text

        emit(memo.keep(audit_text(result, limit=None if show_all else 40), result), output)
    for path in reports:
        from auditor.render.report import write_report

        write_report(result, path, catalogue=cat)
        click.echo(f"wrote {path}", err=True)
    if kinds and result.findings["kind"].isin(kinds).any():
        ctx = click.get_current_context()
        ctx.exit(ExitStatus.FINDINGS)


# ---- rpc ------------------------------------------------------------------------------------


@click.command()
@catalogue_options
@click.option("--role", help="Only rules with this role at either end.")
@click.option("--check", "check_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Validate this catalogue file and exit (errors name file and line).")
@click.option("--list", "list_bundled", is_flag=True,
              help="Name the bundled catalogues (versions, rules, description) and exit.")
@output_options(formats=("table", "csv", "json"))
@handle_errors
def catalogue(catalogues, replace_catalogue, role, check_file, list_bundled, fmt, output):
    """List the catalogue of documented Exchange paths (--catalogue NAME|FILE), --list the
    bundled ones, or --check a file."""
    import json

    from auditor.catalogue.loader import (
        bundled_catalogues,
        catalogue_frame,
        check_catalogue,
    )

    if check_file is not None:
        cat = check_catalogue(check_file)
        click.echo(f"{check_file}: {len(cat.rules)} rules, ok")
        return
    if list_bundled:
        import pandas as pd

        rows = bundled_catalogues()
        if fmt == "json":
            emit(json.dumps(rows, indent=1) + "\n", output)
            return
        frame = pd.DataFrame(rows).assign(versions=lambda f: f["versions"].map(",".join))
        if fmt == "csv":
            write_frame(frame, "csv", output)
        else:
            emit(table_text(frame[["name", "versions", "rules", "description"]],
                            f"{len(frame)} bundled catalogues"), output)
        return
    frame = catalogue_frame(load_catalogues(catalogues, replace_catalogue), role)
    if fmt == "table":
        cols = ["id", "source", "destination", "proto", "ports", "service", "expected", "scope",
                "status", "interfaces", "app_protocol", "icmp_types"]
        emit(table_text(frame[cols], f"{len(frame)} rules"), output)
    else:
        from auditor.schema import RULE_COLUMNS

        write_frame(frame, fmt, output, RULE_COLUMNS)


# ---- roles ----------------------------------------------------------------------------------


@click.command()
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
@handle_errors
def plot(kind, captures, inventory, catalogues, replace_catalogue, output, value, by, no_rpc,
         legacy_rpc_range):
    """Draw the role MATRIX or the role DIAGRAM (without CAPTURE: the catalogue's design view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auditor.render import plots
    from auditor.render.diagram import plot_role_diagram

    cat = load_catalogues(catalogues, replace_catalogue)
    result = None
    if captures:
        from auditor.audit.pipeline import audit_captures
        from auditor.inventory.roles import load_inventory

        inv = load_inventory(inventory) if inventory is not None else None
        result = audit_captures(captures, inv, cat, pipeline_options(no_rpc, legacy_rpc_range),
                                progress=progress_bar())
        if inv is None:
            from auditor.audit.proposed import proposal_note

            click.echo(f"auditor: {proposal_note(result, captures)}", err=True)
    elif kind == "matrix":
        raise click.UsageError("plot matrix needs CAPTURE...")
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
    from auditor.atomic import atomic_path

    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)
    click.echo(f"wrote {output}", err=True)


# ---- firewall -------------------------------------------------------------------------------
