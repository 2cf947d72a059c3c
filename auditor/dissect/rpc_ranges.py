"""Dynamic RPC port ranges: per server, the ports in use against the documented default range.

`dynamic_ranges` judges the endpoints `rpc.discover_endpoints` found: which ports fall outside
the range the server's Windows (or Exchange CAS) version uses, which look pinned (the same port
in captures far apart), and the documented settings that pin each interface's port.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from auditor.dissect.select import EPM_PORTS
from auditor.schema import RPC_RANGE_COLUMNS, empty_frame, typed_frame

# Exchange's fixed ncacn_http endpoints (RPC over HTTP back end): static, never "dynamic".
FIXED_RPC_PORTS = (6001, 6002, 6004)

RANGE_2008 = (49152, 65535)  # Windows Vista / 2008 and later (KB929851)
RANGE_2003 = (1025, 5000)  # Windows 2000 / XP / 2003 (KB929851)
RANGE_CAS = (6005, 59530)  # Exchange 2010 Client Access server (TechNet Wiki 864)
CAS_INTERFACES = ("EMSMDB", "AsyncEMSMDB", "RFR")
PINNED_SPAN = pd.Timedelta(hours=12)

# The documented settings that pin an interface's port (docs/ports.md, "Exchange-specific
# pinning (2010)"), by the interface names they cover; NSPI is pinned by NTDS on a DC and by
# MSExchangeAB on a CAS.
_SERVICES = "HKLM\\SYSTEM\\CurrentControlSet\\Services"
_PINNING = (
    (("EMSMDB", "AsyncEMSMDB"), f'RPC Client Access: {_SERVICES}\\MSExchangeRPC\\ParametersSystem'
     ' "TCP/IP Port" (REG_DWORD), then restart MSExchangeRPC'),
    (("RFR", "NSPI@cas"), f'Address Book: {_SERVICES}\\MSExchangeAB\\Parameters "RpcTcpPort"'
     " (REG_SZ; Exchange 2010 SP1 and later - RTM used RpcTcpPort in"
     " Microsoft.Exchange.AddressBook.Service.exe.config), then restart MSExchangeAB"),
    (("DRSUAPI", "NSPI@dc"), f'AD replication: {_SERVICES}\\NTDS\\Parameters "TCP/IP Port"'),
    (("NETLOGON",), f'Netlogon: {_SERVICES}\\Netlogon\\Parameters "DCTcpipPort"'),
    (("FRS",), f'FRS: {_SERVICES}\\NTFRS\\Parameters "RPC TCP/IP Port Assignment"'),
)
_PIN_GENERIC = (
    "no per-service setting is documented for {names}: narrow the RPC range with"
    ' HKLM\\Software\\Microsoft\\Rpc\\Internet "Ports" (KB154596) or'
    " netsh int ipv4 set dynamicport tcp start=<n> num=<count> (KB929851)"
)
# Windows 2003 has no `netsh int ipv4 ... dynamicport` (that came with Vista/2008): its range is
# 1025-5000 by default (the MaxUserPort ceiling), narrowed only through the Rpc\Internet keys.
_PIN_GENERIC_2003 = (
    "no per-service setting is documented for {names}: on Windows 2003 narrow the RPC range with"
    ' HKLM\\Software\\Microsoft\\Rpc\\Internet "Ports", "PortsInternetAvailable" and'
    ' "UseInternetPorts" (KB154596); netsh dynamicport does not exist before Windows 2008'
)
_LEGACY = (
    "this host answers RPC in the Windows 2003 range 1025-5000: audit with --legacy-rpc-range"
    " (in the library, the audit option legacy_rpc_range) so that range counts as dynamic RPC"
    " where discovery saw no port; after an upgrade to 2008 or later it moves to 49152-65535"
)
_UNSUPPORTED = (
    "note: Microsoft does not support filtering between Exchange servers or between Exchange and"
    " domain controllers, so treat a firewall on such a link as advisory"
)


def dynamic_ranges(endpoints: pd.DataFrame, *,
                   captures: Sequence[pd.DataFrame] | None = None) -> pd.DataFrame:
    """Per server: dynamic ports in use, the expected default range, outliers, pinning advice.

    `captures` are endpoint frames of separate captures (e.g. one per day); without them the
    `captures` column of `endpoints` tells in how many files each (port, interface) was seen,
    counted only when its evidence spans PINNED_SPAN (12 h) or more.
    Only epm/bind/dcom evidence counts; inferred ports are too uncertain to judge a range by.
    """
    dyn = _dynamic(endpoints)
    if dyn.empty:
        return empty_frame(RPC_RANGE_COLUMNS)
    seen = _files_per_port(dyn, captures)
    rows = []
    for server, group in dyn.groupby("server_ip", sort=True):
        ports = sorted(set(group["port"].astype(int)))
        names = sorted({n for n in group["interface"] if n})
        lo, hi, basis = _expected_range(ports, names)
        outside = [p for p in ports if not lo <= p <= hi]
        repeated = seen[(seen["server_ip"] == server) & (seen["files"] >= 2)]["port"]
        pinned = sorted(set(outside) | set(repeated.astype(int)))
        rows.append({
            "server_ip": server, "lowest_port": ports[0], "highest_port": ports[-1],
            "ports": len(ports), "interfaces": ";".join(names),
            "expected_range": f"{lo}-{hi}", "expected_basis": basis,
            "outside_ports": ";".join(map(str, outside)),
            "pinned_ports": ";".join(map(str, pinned)),
            "recommendation": _recommendation(names, dc="DRSUAPI" in names,
                                              legacy=(lo, hi) == RANGE_2003),
        })
    return typed_frame(rows, RPC_RANGE_COLUMNS)


def _dynamic(endpoints: pd.DataFrame) -> pd.DataFrame:
    if endpoints.empty:
        return endpoints
    port = endpoints["port"].astype(np.int64)
    keep = ((endpoints["proto"] == "tcp") & (port >= 1024) & ~port.isin(EPM_PORTS)
            & ~port.isin(FIXED_RPC_PORTS) & (endpoints["evidence"] != "inferred"))
    return endpoints[keep]


def _files_per_port(dyn: pd.DataFrame, captures: Iterable[pd.DataFrame] | None) -> pd.DataFrame:
    """In how many captures each (server, port, interface) appeared."""
    key = ["server_ip", "port", "interface_uuid"]
    if captures is not None:
        parts = [_dynamic(frame)[key].drop_duplicates().assign(file=i)
                 for i, frame in enumerate(captures)]
        seen = pd.concat(parts) if parts else pd.DataFrame(columns=key + ["file"])
    else:
        # consecutive files of one recording (a ring buffer) say nothing about restarts: the
        # files must also lie PINNED_SPAN apart, long enough for a reboot to have moved the port
        spread = (dyn["last_seen"] - dyn["first_seen"]) >= PINNED_SPAN
        seen = dyn.loc[spread, key + ["captures"]]
        seen = seen.assign(file=seen["captures"].str.split(";")).explode("file")
        seen = seen[seen["file"].fillna("") != ""][key + ["file"]]
    if seen.empty:
        return pd.DataFrame({"server_ip": [], "port": [], "files": []})
    files = seen.drop_duplicates().groupby(key).size().rename("files").reset_index()
    return files.groupby(["server_ip", "port"])["files"].max().reset_index()


def _expected_range(ports: list[int], names: list[str]) -> tuple[int, int, str]:
    cas = any(n in CAS_INTERFACES for n in names) or ("NSPI" in names and "DRSUAPI" not in names)
    if cas:
        return (*RANGE_CAS, "Exchange 2010 Client Access server (RPC Client Access / Address Book)")
    legacy = sum(RANGE_2003[0] <= p <= RANGE_2003[1] for p in ports)
    if legacy > len(ports) / 2:
        return (*RANGE_2003, "Windows 2003 or earlier (most ports below 5001)")
    return (*RANGE_2008, "Windows Server 2008 or later")


def _recommendation(names: list[str], dc: bool, legacy: bool = False) -> str:
    tags = {("NSPI@dc" if dc else "NSPI@cas") if n == "NSPI" else n for n in names}
    advice = [text for covers, text in _PINNING if tags & set(covers)]
    covered = {name.split("@")[0] for covers, _ in _PINNING for name in covers}
    others = [n for n in names if n not in covered]
    if others or not names:
        generic = _PIN_GENERIC_2003 if legacy else _PIN_GENERIC
        advice.append(generic.format(names=", ".join(others) or "unnamed interfaces"))
    if legacy:
        advice.append(_LEGACY)
    if dc or tags & {"EMSMDB", "AsyncEMSMDB", "RFR", "NSPI@cas"}:
        advice.append(_UNSUPPORTED)
    return "; ".join(advice)
