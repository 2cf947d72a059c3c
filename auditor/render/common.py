"""Values every report writer shares: plain cells, times, summary and capture rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from auditor.audit.verdicts import AuditResult
from auditor.render.cells import FORMULA_START as FORMULA_START  # shared with the CSV writer


def plain(value):
    """A frame cell as a plain Python value: None for missing, int/float/bool/str/Timestamp."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    return value


def format_time(value) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM:SS' UTC; empty for missing."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return ""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def summary_rows(result: AuditResult) -> list[tuple[str, object]]:
    """The summary mapping flattened to (label, value) rows: nested counts as 'findings: missing'."""
    rows = []
    for key, value in result.summary.items():
        if isinstance(value, dict):
            rows += [(f"{key}: {k}", v) for k, v in value.items()]
        else:
            rows.append((str(key), value))
    return rows


def capture_rows(result: AuditResult) -> list[dict]:
    """One dict per capture file: its dataclass fields, times as text, skipped reasons joined."""
    rows = []
    for cap in result.captures:
        if dataclasses.is_dataclass(cap):
            row = dataclasses.asdict(cap)
        else:
            row = {"name": str(cap)}
        for key in ("first_ts_ns", "last_ts_ns"):
            if key in row:
                ts = row.pop(key)
                row[key.replace("_ts_ns", "_seen")] = format_time(
                    pd.Timestamp(ts, unit="ns", tz="UTC") if ts is not None else None)
        if isinstance(row.get("skipped"), dict):
            row["skipped"] = "; ".join(f"{k}: {v}" for k, v in row["skipped"].items())
        rows.append(row)
    return rows


def missing_rules(rules: pd.DataFrame | None) -> pd.DataFrame:
    """Catalogue rules a healthy deployment shows that this capture never did."""
    if rules is None or rules.empty or "status" not in rules.columns:
        return pd.DataFrame(columns=["id", "service", "source", "destination", "proto", "ports"])
    return rules[rules["status"] == "missing"]


def roles_with_versions(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings whose src_role/dst_role name the end's Exchange version ('mailbox 2016') when
    they hold more than one version (a coexistence audit); otherwise the findings unchanged."""
    if findings.empty or "src_version" not in findings or "dst_version" not in findings:
        return findings
    versions = (set(findings["src_version"]) | set(findings["dst_version"])) - {"", None}
    if len(versions) < 2:
        return findings
    out = findings.copy()
    for side in ("src", "dst"):
        out[f"{side}_role"] = [f"{r} {v}" if v else r for r, v in zip(
            out[f"{side}_role"], out[f"{side}_version"].fillna(""), strict=True)]
    return out


# What decided which side started a flow (`orientation`, schema.ORIENTATIONS, strongest first;
# auditor/flows/orient.py); reports show this legend next to every table with the column.
ORIENTATION_LEGEND = (
    ("handshake", "the TCP SYN (or SYN/ACK) is in the capture"),
    ("multicast", "the other end is a multicast or broadcast address, which never starts a flow"),
    ("payload", "the first payload bytes each way: a request against a response (DCE/RPC, TLS, "
                "SMTP, HTTP/SIP, SMB, LDAP, Kerberos, DNS/NBNS QR bit, NTP mode, DHCP, ICMP echo)"),
    ("listener", "one end answered a handshake- or payload-decided flow elsewhere in the captures"),
    ("epm", "one end is an RPC endpoint that an EPM reply, a bind or a DCOM binding advertised"),
    ("port", "one end's port is a service port and the other's is not (the flow began before "
             "the capture)"),
    ("first_packet", "the sender of the first captured packet (no evidence either way)"),
)
GUESSES = ("port", "first_packet")  # orientations that are guesses, marked as such in reports

# Where an endpoint's name came from (`src_name_source`/`dst_name_source`, as in JSON).
NAME_SOURCE_LEGEND = (
    ("inventory", "the inventory (always wins)"),
    ("cldap", "a CLDAP netlogon reply"), ("dns", "a DNS A/AAAA/PTR/SRV answer"),
    ("ldap", "a cleartext LDAP rootDSE dnsHostName"), ("nbns", "a NetBIOS name service packet"),
    ("browser", "a browser announcement"), ("smtp-ehlo", "the SMTP EHLO/HELO name"),
    ("smtp-banner", "the SMTP 220 greeting"), ("kerberos", "a Kerberos principal or realm"),
    ("smb", "an SMB2 tree path"), ("tls-certificate", "a TLS certificate subject or SAN"),
    ("tls-sni", "a TLS server name indication"), ("dhcp", "the DHCP host name option"),
    ("llmnr", "an LLMNR answer"), ("mdns", "an mDNS answer"),
)


def orientation_label(value) -> str:
    """An orientation for a report cell: the value as in JSON, '(guess)' after the guesses."""
    text = "" if plain(value) is None else str(plain(value))
    return f"{text} (guess)" if text in GUESSES else text
