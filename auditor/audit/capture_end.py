"""The capture's own limits: requests cut off by its end, and captures too short to miss things.

A SYN or a DNS query sent a second before the last packet could still have been answered: the
capture stopped, not the firewall. Such flows (not retried yet: a retried request was already
unanswered while the capture ran) get the verdict `cut_off` (an `info` finding) instead of
`unanswered`. A capture shorter than SHORT_CAPTURE_S cannot be expected to show
periodic paths, so its `missing` findings are `info`, and every `missing` finding states how
long the capture lasted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# How long a client keeps retrying before it gives up, per protocol and service, in seconds.
# TCP: Windows sends a SYN and two retransmissions (TcpMaxConnectRetransmissions = 2) 3 s and
# 6 s apart, giving up about 21 s after the first SYN; Linux retries for longer, so 21 s is the
# shortest window. UDP request services: the Windows DNS client waits 1, 1, 2, 4 and 2 s
# (10 s in all); Kerberos over UDP waits 3 s per KDC attempt; 10 s covers NTP and CLDAP too.
RETRY_WINDOW_S = {"tcp": 21.0, "udp": 10.0}
# Shorter captures (the default of AuditOptions.short_capture_s) may miss periodic paths: Group
# Policy refresh (every 90 +/- 30 min), time sync (hourly at most), inter-site replication
# (15 min by default), Kerberos ticket renewal.
SHORT_CAPTURE_S = 900.0
# A client retransmits after its first timeout (Linux TCP 1 s, Windows TCP 3 s, DNS 1 s): a flow
# whose attempts span at least this long was already retried, so its earlier attempts went
# unanswered while the capture was still running.
FIRST_RETRY_S = 1.0


def capture_span(flows: pd.DataFrame) -> tuple[pd.Timestamp | None, float]:
    """End of the capture set (its last packet) and its duration in seconds (0 when empty)."""
    if flows.empty:
        return None, 0.0
    end, start = flows["last_seen"].max(), flows["first_seen"].min()
    return end, max((end - start).total_seconds(), 0.0)


def cut_off_verdicts(flows: pd.DataFrame, verdict: np.ndarray) -> np.ndarray:
    """`unanswered` verdicts of requests sent within the retry window before the capture's end and
    not retried yet (the client had not given up on an answer): `cut_off`."""
    end, _ = capture_span(flows)
    if end is None:
        return verdict
    out = np.asarray(verdict).astype(object)
    rows = np.flatnonzero(out == "unanswered")  # only these can be cut off: few of all flows
    if not len(rows):
        return out
    sub = flows[["proto", "first_seen", "last_seen"]].iloc[rows]
    window = sub["proto"].map(RETRY_WINDOW_S).fillna(0.0).to_numpy(dtype=float)
    before_end = (end - sub["first_seen"]).dt.total_seconds().to_numpy(dtype=float)
    tried = (sub["last_seen"] - sub["first_seen"]).dt.total_seconds().to_numpy(dtype=float)
    out[rows[(before_end <= window) & (tried < FIRST_RETRY_S)]] = "cut_off"
    return out


def settle_findings(findings: pd.DataFrame, flows: pd.DataFrame, options=None) -> pd.DataFrame:
    """`cut_off` findings are info and say so; `missing` ones state the capture's duration."""
    if findings.empty:
        return findings
    end, span = capture_span(flows)
    short_s = getattr(options, "short_capture_s", SHORT_CAPTURE_S)
    out = findings.copy()
    cut = out["kind"] == "cut_off"
    if cut.any():
        left = (end - pd.to_datetime(out.loc[cut, "first_seen"], utc=True)).dt.total_seconds()
        out.loc[cut, "severity"] = "info"
        out.loc[cut, "detail"] = [
            f"{s} -> {d} on {p}/{pr} sent {x:.1f} s before the capture ended, within its "
            f"{RETRY_WINDOW_S.get(pr, 0):.0f} s retry window: cut off by the end of the capture, "
            f"not unanswered ({'documented by ' + r if r else 'undocumented path'})"
            for s, d, p, pr, x, r in zip(out.loc[cut, "src_role"], out.loc[cut, "dst_role"],
                                         out.loc[cut, "dst_port"], out.loc[cut, "proto"], left,
                                         out.loc[cut, "rule"], strict=True)]
    missing = out["kind"] == "missing"
    if missing.any():
        short = span < short_s
        out.loc[missing, "detail"] = out.loc[missing, "detail"] + (
            f"; the capture lasts {_duration(span)}"
            + (f", shorter than {_duration(short_s)}: info only" if short else ""))
        if short:
            out.loc[missing, "severity"] = "info"
    return out


def span_summary(flows: pd.DataFrame, options=None) -> dict[str, object]:
    """Summary entries: the capture's duration and, when short, why `missing` findings are info."""
    _, span = capture_span(flows)
    short_s = getattr(options, "short_capture_s", SHORT_CAPTURE_S)
    out: dict[str, object] = {"capture_seconds": round(span, 3)}
    if span < short_s:
        out["short_capture"] = (
            f"the capture lasts {_duration(span)}, shorter than {_duration(short_s)}: "
            "periodic paths may simply not have happened yet, so missing paths are info")
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
