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
    "OutputError": "auditor.errors",
    # capture files -> packet arrays
    "CaptureFile": "auditor.capture.packets",
    "CaptureSet": "auditor.capture.sets",
    "PacketTable": "auditor.capture.packets",
    "expand_sources": "auditor.capture.packets",
    "read_packets": "auditor.capture.packets",
    "write_packets": "auditor.capture.packets",
    # packets -> flows
    "FlowOptions": "auditor.options",
    "build_flows": "auditor.flows.build",
    "build_flows_labelled": "auditor.flows.build",
    "flows_summary": "auditor.flows.build",
    # RPC discovery
    "RpcDiscovery": "auditor.dissect.rpc",
    "RpcOptions": "auditor.options",
    "annotate_flows": "auditor.dissect.rpc",
    "discover_endpoints": "auditor.dissect.rpc",
    "dynamic_ranges": "auditor.dissect.rpc_ranges",
    "interface_name": "auditor.dissect.rpc",
    # catalogue and roles
    "Catalogue": "auditor.catalogue.loader",
    "Rule": "auditor.catalogue.loader",
    "catalogue_frame": "auditor.catalogue.loader",
    "check_catalogue": "auditor.catalogue.loader",
    "load_catalogue": "auditor.catalogue.loader",
    "Reference": "auditor.catalogue.loader",
    "rule_ports_frame": "auditor.catalogue.loader",
    "bundled_catalogues": "auditor.catalogue.loader",
    "Host": "auditor.inventory.roles",
    "Network": "auditor.inventory.roles",
    "Inventory": "auditor.inventory.roles",
    "assign_roles": "auditor.inventory.roles",
    "inventory_to_yaml": "auditor.inventory.yaml_text",
    "load_inventory": "auditor.inventory.roles",
    "propose_inventory": "auditor.inventory.propose",
    "propose_from_observation": "auditor.inventory.propose",
    # audit
    "AuditOptions": "auditor.options",
    "AuditResult": "auditor.audit.verdicts",
    "audit_flows": "auditor.audit.verdicts",
    "Observation": "auditor.audit.pipeline",
    "PipelineOptions": "auditor.options",
    "audit_captures": "auditor.audit.pipeline",
    "audit_observation": "auditor.audit.pipeline",
    "observe": "auditor.audit.pipeline",
    "result_to_dict": "auditor.render.json_export",
    "result_to_json": "auditor.render.json_export",
    # pictures, reports, firewall requests
    "plot_host_matrix": "auditor.render.plots",
    "plot_role_matrix": "auditor.render.plots",
    "plot_role_matrix_facets": "auditor.render.plots",
    "plot_role_diagram": "auditor.render.diagram",
    "write_report": "auditor.render.report",
    "write_html": "auditor.render.report",
    "write_markdown": "auditor.render.report",
    "write_xlsx": "auditor.render.report",
    "control_messages": "auditor.audit.verdicts",
    "asbuilt_requests": "auditor.firewall.requests",
    "design_requests": "auditor.firewall.requests",
    "merge_requests": "auditor.firewall.requests",
    "write_requests": "auditor.firewall.requests",
    "RulesetError": "auditor.errors",
    "AuditDocumentError": "auditor.errors",
    "Ruleset": "auditor.firewall.ruleset",
    "load_ruleset": "auditor.firewall.ruleset",
    "parse_ruleset": "auditor.firewall.ruleset",
    "VerifyResult": "auditor.firewall.verify",
    "verify_flows": "auditor.firewall.verify",
    "verify_to_dict": "auditor.firewall.verify",
    "export_rules": "auditor.firewall.exports",
    "finding_packets": "auditor.dissect.drilldown",
    "conn_log_text": "auditor.render.zeek",
    "AuditDiff": "auditor.audit.diff",
    "diff_audits": "auditor.audit.diff",
    "diff_to_dict": "auditor.audit.diff",
    "load_audit_document": "auditor.audit.diff",
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
