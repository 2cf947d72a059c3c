"""The command line: parses options, calls the library, renders (`auditor --help`).

- `audit_cmds`: Commands that compare with the catalogue: audit, catalogue, plot.
- `engine_opts`: --cache/--no-cache/--cache-size, --workers and --scheduler: where the capture files
  are read.
- `errors`: Exit codes and the one place library errors become one-line messages.
- `firewall_cmds`: The firewall command: requests from the catalogue or the capture.
- `interrupts`: Ctrl-C and SIGTERM: unwind like an exception, so every `with` block cleans up.
- `main`: The `auditor` command group: each command lives in the module of its concern.
- `memo`: `auditor audit` run again on unchanged inputs prints its first output again
  (engine.results).
- `observe_cmds`: Commands that look at captures: flows, rpc, roles.
- `options`: Option groups shared by the commands (sqlite-utils' output_options style).
- `output`: Writing frames and text to stdout or a file.
- `verify_cmds`: The firewall team's loop: verify a ruleset against captures, diff two audits.
"""
from auditor.cli.main import cli

__all__ = ["cli"]
