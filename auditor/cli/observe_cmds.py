"""Commands that look at captures: flows, rpc, roles."""

from __future__ import annotations

from pathlib import Path

import click

from auditor.cli.engine_opts import engine_options
from auditor.cli.errors import handle_errors
from auditor.cli.options import (
    captures_argument,
    output_options,
    progress_bar,
    stdout_dash,
)
from auditor.cli.output import emit, table_text, write_frame


@click.command()
@captures_argument
@output_options(formats=("table", "csv", "json", "parquet", "zeek"))
@click.option("--tcp-idle-timeout", type=float, default=3600.0, show_default=True,
              help="Seconds of silence after which a TCP 5-tuple starts a new flow.")
@click.option("--udp-idle-timeout", type=float, default=300.0, show_default=True,
              help="Seconds of silence after which a UDP/ICMP 5-tuple starts a new flow.")
@engine_options
@handle_errors
def flows(captures, fmt, output, tcp_idle_timeout, udp_idle_timeout, engine):
    """Build the flow table of CAPTURE... (files or folders, read as one capture)."""
    from auditor.engine.run import stream_flows
    from auditor.flows.build import flows_summary
    from auditor.options import FlowOptions, RpcOptions
    from auditor.schema import FLOW_COLUMNS

    if fmt == "zeek":  # Zeek's conn.log: the partials also fold its histories (flows/conn.py)
        _conn_log(captures, output, FlowOptions(tcp_idle_timeout, udp_idle_timeout, zeek=True),
                  engine)
        return
    from dataclasses import replace

    engine = replace(engine, flow_pieces=fmt in ("csv", "json"))  # written a piece at a time
    got = stream_flows(captures, FlowOptions(tcp_idle_timeout, udp_idle_timeout),
                       RpcOptions(candidates=False), engine=engine, progress=progress_bar())
    table, frame = got.table, got.flows
    if fmt != "table":
        write_frame(frame, fmt, output, FLOW_COLUMNS)
        return
    from auditor.render.text import printable

    summary = flows_summary(frame)
    packets = int(frame["src_packets"].sum() + frame["dst_packets"].sum())
    head = (
        f"{len(frame)} flows, {packets} packets from {len(table.files)} file(s): "
        + ", ".join(f"{printable(f.name)} ({f.format}, {f.records} records"
                    + (f", {f.non_ip} not IP" if f.non_ip else "")
                    + (f", {f.tunnelled} from inside tunnels" if f.tunnelled else "")
                    + (f", {sum(f.skipped.values())} skipped" if f.skipped else "")
                    + (f", {f.outside_window} outside --since/--until" if f.outside_window else "")
                    + ")"
                    for f in table.files)
        + (f"; {len(table.left_out)} file(s) wholly outside --since/--until not read"
           if table.left_out else "")
        + "\n\n"
    )
    text = head + table_text(summary["states"], "Flows by state") + "\n"
    text += table_text(summary["top_talkers"], "Top talkers (by bytes)")
    emit(text, output)


def _conn_log(captures, output, flow_options, engine) -> None:
    """Write the conn.log of CAPTURE... streamed (its pieces made on every core), or from the
    packet table when the engine had to sort every packet."""
    from dataclasses import replace

    from auditor.atomic import atomic_path
    from auditor.engine.run import stream_flows
    from auditor.options import RpcOptions
    from auditor.render.zeek import conn_log_chunks, conn_log_text

    got = stream_flows(captures, flow_options, RpcOptions(candidates=False),
                       engine=replace(engine, flow_pieces=True), progress=progress_bar())
    if not got.report.streamed:  # a full sort: the packet table is at hand
        emit(conn_log_text(got.table, got.flows, got.labels), output)
        return
    if output is None:
        for data in conn_log_chunks(got.flows):
            click.echo(data, nl=False)
        return
    with atomic_path(output) as tmp, open(tmp, "wb") as out:
        for data in conn_log_chunks(got.flows):
            out.write(data)
    click.echo(f"wrote {output}", err=True)


@click.command()
@captures_argument
@output_options(formats=("table", "json", "csv"))
@engine_options
@handle_errors
def rpc(captures, fmt, output, engine):
    """Discover the dynamic RPC endpoints (EPM replies, binds, DCOM) in CAPTURE..."""
    from auditor.audit.pipeline import observe
    from auditor.dissect.rpc_ranges import dynamic_ranges
    from auditor.options import PipelineOptions, RpcOptions

    seen = observe(captures, PipelineOptions(rpc_options=RpcOptions(names=False), engine=engine),
                   progress=progress_bar())
    if seen.rpc is None:
        raise click.ClickException("RPC discovery could not run (see the warning above)")
    endpoints = seen.rpc.endpoints
    ranges = dynamic_ranges(endpoints)
    if fmt != "table":
        if fmt == "json":
            from auditor.render.json_tables import rpc_document, to_json

            emit(to_json(rpc_document(endpoints, ranges)), output)
        else:
            write_frame(endpoints, "csv", output)
        return
    from auditor.render.text import rpc_text

    emit(rpc_text(endpoints, ranges), output)


# ---- catalogue ------------------------------------------------------------------------------


@click.command()
@captures_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              callback=stdout_dash,
              help="Write the proposed inventory here instead of standard output ('-': "
                   "standard output).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="yaml: an inventory file to review and pass to --inventory; json: the same with "
                   "the evidence as data (auditor/data/roles.schema.json).")
@click.option("--no-names", is_flag=True,
              help="Do not name hosts from the capture (DNS, SMTP, Kerberos, NetBIOS, ...).")
@click.option("--internal", "internal", multiple=True, metavar="CIDR",
              help="Networks that are ours (repeatable); other hosts are proposed as internet. "
                   "Default: private, ULA and 198.18.0.0/15 ranges.")
@engine_options
@handle_errors
def roles(captures, output, no_names, internal, fmt, engine):
    """Propose an inventory (hosts and roles, with evidence) from what CAPTURE... shows."""
    from auditor.audit.pipeline import observe
    from auditor.inventory.propose import inventory_to_yaml, propose_from_observation
    from auditor.options import PipelineOptions, RpcOptions

    options = PipelineOptions(rpc_options=RpcOptions(names=not no_names), engine=engine)
    seen = observe(captures, options, progress=progress_bar())
    inv, evidence = propose_from_observation(seen, internal=list(internal) or None)
    if fmt == "json":
        from auditor.render.json_tables import roles_document, to_json

        emit(to_json(roles_document(inv, evidence)), output)
    else:
        emit(inventory_to_yaml(inv, evidence), output)


# ---- plots ----------------------------------------------------------------------------------
