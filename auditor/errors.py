"""The exceptions the library raises; `auditor.cli.errors` turns them into one-line messages."""


class AuditorError(Exception):
    """Base class for every error the auditor reports to its user."""


class CaptureError(AuditorError):
    """A capture file cannot be read (not a capture, corrupt, unsupported)."""


class InventoryError(AuditorError):
    """An inventory file is malformed or contradicts itself."""


class CatalogueError(AuditorError):
    """A catalogue (rules) file is malformed."""


class DissectError(AuditorError):
    """tshark could not dissect the selected packets (missing, or it failed)."""


class CaptureWarning(UserWarning):
    """Part of a capture was skipped; the rest was read."""


class DissectWarning(UserWarning):
    """Deep dissection was skipped or incomplete; the rest of the audit ran."""


class RulesetError(AuditorError):
    """A firewall ruleset file to verify is malformed (names file and line)."""


class AuditDocumentError(AuditorError):
    """A JSON document given to `diff` is not an audit document (names file and line)."""


class OutputError(AuditorError):
    """An output file cannot be written (disk full, no permission); the old file is kept."""
