"""The command line: parses options, calls the library, renders (`auditor --help`)."""

from auditor.cli.main import cli

__all__ = ["cli"]
