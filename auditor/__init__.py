"""auditor: a packet-capture traffic auditor for Microsoft Exchange 2010 environments."""

from auditor.errors import (
    AuditorError,
    CaptureError,
    CaptureWarning,
    CatalogueError,
    DissectError,
    DissectWarning,
    InventoryError,
)

__version__ = "0.1.0"

__all__ = [
    "AuditorError",
    "CaptureError",
    "CaptureWarning",
    "CatalogueError",
    "DissectError",
    "DissectWarning",
    "InventoryError",
    "__version__",
]
