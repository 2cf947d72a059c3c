"""Compare observed flows with the catalogue: verdict per flow, findings, rule status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit produced; every frame follows its schema in `schema.py`."""

    flows: pd.DataFrame  # schema.AUDIT_FLOW_COLUMNS
    findings: pd.DataFrame  # schema.FINDING_COLUMNS
    rules: pd.DataFrame  # schema.RULE_STATUS_COLUMNS
    rpc: pd.DataFrame  # rpc endpoints (rpc.py's RPC_ENDPOINT_COLUMNS)
    rpc_ranges: pd.DataFrame  # per-server dynamic range summary (rpc.dynamic_ranges)
    hosts: pd.DataFrame  # ip, name, roles (';'-separated), flows, bytes: the per-host view
    captures: tuple = ()  # capture.CaptureFile of every file read
    warnings: tuple[str, ...] = ()  # what was skipped and why (one line each)
    summary: Mapping[str, object] = field(default_factory=dict)  # counts per finding kind etc.
