"""The firewall team's loop: verify a ruleset against captures, diff two audits."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli.errors import ExitStatus, handle_errors
from auditor.cli.options import (
    captures_argument,
    catalogue_options,
    inventory_option,
    load_catalogues,
    output_options,
    pipeline_options,
    progress_bar,
    rpc_options,
)
from auditor.cli.output import emit, write_frame


def _safe_cells(frame):
    """Text cells a spreadsheet would run as formulas get a quote (names come from captures)."""
    from auditor.firewall.requests import neutralise_cell

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("str", "string"):
            out[col] = out[col].map(neutralise_cell)
    return out


@click.command()
@click.argument("ruleset", type=click.Path(dir_okay=False, path_type=Path))
@captures_argument
@inventory_option()
@catalogue_options
@output_options(formats=("table", "json", "csv", "md"))
@click.option("--fail-on", type=click.Choice(["would_block"]),
              help="Exit 3 when the ruleset would block an observed path (for CI gates).")
@click.option("--all", "show_all", is_flag=True, help="Table format: list every blocked path.")
@rpc_options
@handle_errors
def verify(ruleset, captures, inventory, catalogues, replace_catalogue, fmt, output, fail_on,
           show_all, no_rpc, legacy_rpc_range):
    """Test every flow in CAPTURE... against the firewall RULESET (CSV): what would it block?

    RULESET is the CSV `auditor firewall` writes, or any CSV with the columns
    source,destination,proto,ports[,action]; sources and destinations are addresses, CIDRs,
    'any' or inventory names. The first matching row decides; then an implicit deny.
    """
    from auditor.audit.pipeline import audit_captures
    from auditor.firewall.ruleset import load_ruleset
    from auditor.firewall.verify import verify_flows, verify_to_dict
    from auditor.inventory.roles import load_inventory

    cat = load_catalogues(catalogues, replace_catalogue)
    inv = load_inventory(inventory)
    rules = load_ruleset(ruleset, inv)
    result = audit_captures(captures, inv, cat, pipeline_options(no_rpc, legacy_rpc_range),
                            progress=progress_bar())
    checked = verify_flows(rules, result.flows, cat)
    if fmt == "json":
        import json

        doc = verify_to_dict(checked, [c.name for c in result.captures])
        emit(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", output)
    elif fmt == "csv":
        write_frame(_safe_cells(checked.paths), "csv", output)
    elif fmt == "md":
        from auditor.render.verify_text import verify_markdown

        emit(verify_markdown(checked), output)
    else:
        from auditor.render.verify_text import verify_text

        emit(verify_text(checked, limit=None if show_all else 40), output)
    if fail_on == "would_block" and not checked.would_block.empty:
        click.get_current_context().exit(ExitStatus.FINDINGS)


@click.command()
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@output_options(formats=("table", "json", "md"))
@click.option("--fail-on", type=click.Choice(["new"]),
              help="Exit 3 when the NEW audit has a finding the OLD one did not.")
@handle_errors
def diff(old, new, fmt, output, fail_on):
    """Compare two audits (`auditor audit --format json` documents): what changed from OLD to NEW."""
    from auditor.audit.diff import diff_audits, diff_to_dict, load_audit_document

    result = diff_audits(load_audit_document(old), load_audit_document(new), str(old), str(new))
    if fmt == "json":
        import json

        emit(json.dumps(diff_to_dict(result), indent=1, ensure_ascii=False) + "\n", output)
    elif fmt == "md":
        from auditor.render.diff_text import diff_markdown

        emit(diff_markdown(result), output)
    else:
        from auditor.render.diff_text import diff_text

        emit(diff_text(result), output)
    if fail_on == "new" and result.summary["findings"]["new"]:
        click.get_current_context().exit(ExitStatus.FINDINGS)
