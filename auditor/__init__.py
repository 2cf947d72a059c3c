"""auditor: a packet-capture traffic auditor for Microsoft Exchange 2010 environments."""

from auditor.capture import CaptureFile, PacketTable, expand_sources, read_packets, write_packets
from auditor.errors import (
    AuditorError,
    CaptureError,
    CaptureWarning,
    CatalogueError,
    DissectError,
    DissectWarning,
    InventoryError,
)
from auditor.flows import FlowOptions, build_flows, build_flows_labelled, flows_summary

__version__ = "0.1.0"

__all__ = [
    "CaptureFile",
    "FlowOptions",
    "PacketTable",
    "build_flows",
    "build_flows_labelled",
    "expand_sources",
    "flows_summary",
    "read_packets",
    "write_packets",
    "AuditorError",
    "CaptureError",
    "CaptureWarning",
    "CatalogueError",
    "DissectError",
    "DissectWarning",
    "InventoryError",
    "__version__",
]
