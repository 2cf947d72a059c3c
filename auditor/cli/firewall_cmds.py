"""The firewall command: requests from the catalogue or the capture."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from auditor.cli.errors import handle_errors
from auditor.cli.options import (
    catalogue_options,
    inventory_option,
    load_catalogues,
    pipeline_options,
    progress_bar,
    rpc_options,
)


@click.command()
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
@handle_errors
def firewall(inventory, catalogues, replace_catalogue, from_captures, fmt, output, no_merge,
             no_rpc, legacy_rpc_range):
    """Turn the catalogue (design) or observed traffic (as-built) into firewall rule requests."""
    from auditor.firewall.requests import asbuilt_requests, design_requests, merge_requests, write_requests
    from auditor.inventory.roles import load_inventory

    cat = load_catalogues(catalogues, replace_catalogue)
    inv = load_inventory(inventory)
    if from_captures:
        from auditor.audit.pipeline import audit_captures

        result = audit_captures(from_captures, inv, cat,
                                pipeline_options(no_rpc, legacy_rpc_range), progress=progress_bar())
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
