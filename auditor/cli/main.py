"""The `auditor` command group: each command lives in the module of its concern."""

from __future__ import annotations

import click

from auditor.cli.audit_cmds import audit, catalogue, plot
from auditor.cli.errors import ExitStatus
from auditor.cli.firewall_cmds import firewall
from auditor.cli.interrupts import catch_signals
from auditor.cli.observe_cmds import flows, roles, rpc
from auditor.cli.verify_cmds import diff, verify

__all__ = ["ExitStatus", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
@click.version_option(package_name="auditor")
def cli(traceback: bool) -> None:
    """Audit Exchange 2010 traffic in packet captures."""
    catch_signals(click.get_current_context())


for _command in (flows, audit, rpc, catalogue, roles, plot, firewall, verify, diff):
    cli.add_command(_command)
