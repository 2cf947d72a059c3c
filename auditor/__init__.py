"""auditor: a packet-capture traffic auditor for Microsoft Exchange 2010 environments.

The public API is declared once, here. Names load lazily (PEP 562) so that `auditor flows` does
not pay for matplotlib, openpyxl or the RPC dissection it never uses.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "AuditorError": "auditor.errors",
    "CaptureError": "auditor.errors",
    "CaptureWarning": "auditor.errors",
    "CatalogueError": "auditor.errors",
    "DissectError": "auditor.errors",
    "DissectWarning": "auditor.errors",
    "InventoryError": "auditor.errors",
    # capture files -> packet arrays
    "CaptureFile": "auditor.capture",
    "PacketTable": "auditor.capture",
    "expand_sources": "auditor.capture",
    "read_packets": "auditor.capture",
    "write_packets": "auditor.capture",
    # packets -> flows
    "FlowOptions": "auditor.flows",
    "build_flows": "auditor.flows",
    "build_flows_labelled": "auditor.flows",
    "flows_summary": "auditor.flows",
    # RPC discovery
    "RpcDiscovery": "auditor.rpc",
    "RpcOptions": "auditor.rpc",
    "annotate_flows": "auditor.rpc",
    "discover_endpoints": "auditor.rpc",
    "dynamic_ranges": "auditor.rpc",
    "interface_name": "auditor.rpc",
    # catalogue and roles
    "Catalogue": "auditor.catalogue",
    "Rule": "auditor.catalogue",
    "catalogue_frame": "auditor.catalogue",
    "check_catalogue": "auditor.catalogue",
    "load_catalogue": "auditor.catalogue",
    "Reference": "auditor.catalogue",
    "rule_ports_frame": "auditor.catalogue",
    "Host": "auditor.roles",
    "Network": "auditor.roles",
    "Inventory": "auditor.roles",
    "assign_roles": "auditor.roles",
    "inventory_to_yaml": "auditor.roles",
    "load_inventory": "auditor.roles",
    "propose_inventory": "auditor.roles",
    # audit
    "AuditOptions": "auditor.audit",
    "AuditResult": "auditor.audit",
    "audit_flows": "auditor.audit",
    "Observation": "auditor.pipeline",
    "PipelineOptions": "auditor.pipeline",
    "audit_captures": "auditor.pipeline",
    "audit_observation": "auditor.pipeline",
    "observe": "auditor.pipeline",
    "result_to_dict": "auditor.export",
    "result_to_json": "auditor.export",
    # pictures, reports, firewall requests
    "plot_host_matrix": "auditor.plots",
    "plot_role_matrix": "auditor.plots",
    "plot_role_matrix_facets": "auditor.plots",
    "plot_role_diagram": "auditor.diagram",
    "write_report": "auditor.report",
    "write_html": "auditor.report",
    "write_markdown": "auditor.report",
    "write_xlsx": "auditor.report",
    "control_messages": "auditor.audit",
    "asbuilt_requests": "auditor.firewall",
    "design_requests": "auditor.firewall",
    "merge_requests": "auditor.firewall",
    "write_requests": "auditor.firewall",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'auditor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
