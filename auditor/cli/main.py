"""The `auditor` command group: each command lives in the module of its concern.

Command modules load when their command runs (or help lists them): `auditor diff` never pays
for what `auditor flows` needs, and nothing here imports pandas, pyarrow, yaml or matplotlib.
"""

from __future__ import annotations

import importlib

import click

from auditor.cli.errors import ExitStatus
from auditor.cli.interrupts import catch_signals

__all__ = ["ExitStatus", "cli"]

# command name -> the module defining it (the function has the command's name)
COMMANDS = {
    "flows": "auditor.cli.observe_cmds",
    "audit": "auditor.cli.audit_cmds",
    "rpc": "auditor.cli.observe_cmds",
    "catalogue": "auditor.cli.audit_cmds",
    "roles": "auditor.cli.observe_cmds",
    "plot": "auditor.cli.audit_cmds",
    "firewall": "auditor.cli.firewall_cmds",
    "verify": "auditor.cli.verify_cmds",
    "diff": "auditor.cli.verify_cmds",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is asked for (click's
    documented lazy-loading pattern)."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            command = getattr(importlib.import_module(self.lazy[cmd_name]), cmd_name)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
@click.version_option(package_name="auditor")
def cli(traceback: bool) -> None:
    """Audit Exchange 2010 traffic in packet captures."""
    catch_signals(click.get_current_context())
