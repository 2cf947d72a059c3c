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
    stdout_dash,
)

# the dialects of auditor.firewall.exports.DIALECTS (not imported: it would load pandas at start-up)
DIALECTS = ("nftables", "iptables", "windows", "cisco")


@click.command()
@inventory_option()
@catalogue_options
@click.option("--from-capture", "from_captures", multiple=True,
              type=click.Path(path_type=Path),
              help="As-built mode: derive requests from the observed, successful traffic of "
                   "these captures (repeatable); without it: design mode from the catalogue.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "xlsx", *DIALECTS]),
              default="csv", show_default=True,
              help="Output format: requests as csv/json/xlsx, or rules for nftables, iptables, "
                   "windows (one PowerShell script per Exchange server) or cisco (IOS ACL).")
@click.option("-o", "--output", type=click.Path(path_type=Path), callback=stdout_dash,
              help="Write to this file instead of standard output ('-': standard output; "
                   "windows: a folder).")
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
    if fmt in DIALECTS:
        write_export(frame, fmt, output, inventory=inv, mode="as-built" if from_captures else "design")
        return
    if fmt == "xlsx" and output is None:
        raise click.UsageError("--format xlsx needs -o FILE")
    write_requests(frame, output if output is not None else sys.stdout, fmt)
    if output is not None:
        click.echo(f"wrote {output}", err=True)


def write_export(frame, dialect: str, output: Path | None, *, inventory, mode: str) -> None:
    """Rules in a firewall dialect to stdout, a file, or (windows) one script per host in a folder."""
    from auditor.atomic import write_text
    from auditor.firewall.exports import export_rules

    files = export_rules(frame, dialect, inventory=inventory, mode=mode)
    if output is None:
        if len(files) == 1:
            click.echo(next(iter(files.values())), nl=False)
        for name, text in files.items() if len(files) > 1 else ():
            click.echo(f"# ==== {name} ====")
            click.echo(text.replace("\r\n", "\n"), nl=False)
        return
    if dialect == "windows":
        output.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text(output / name, text, newline="")
            click.echo(f"wrote {output / name}", err=True)
        return
    if output.is_dir():
        raise click.UsageError(f"-o {output} is a folder; give a file name")
    write_text(output, next(iter(files.values())), newline="")
    click.echo(f"wrote {output}", err=True)
