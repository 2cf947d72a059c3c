"""tshark started before anything else: its display filter and the prestart, with no pandas.

Loading tshark's dissectors costs about 0.4 s of CPU. `auditor audit` starts it before it imports
numpy, pandas and pyarrow (half a second on one core, with the other idle), so that the loading
runs beside the imports instead of beside the capture's reader processes (`cli/audit_cmds.py`).
This module imports only the standard library and the tshark runner, so the start costs nothing
the command would not pay anyway.
"""

from __future__ import annotations

import contextlib

from auditor.dissect.names import NAMES_FILTER
from auditor.dissect.tshark import PrestartedTshark
from auditor.errors import DissectError

_BIND, _BIND_ACK, _BIND_NAK, _ALTER, _ALTER_RESP = 11, 12, 13, 14, 15

# Plain `||` chains: the set syntax changed between tshark 3.x ({a b}) and 4.x ({a, b}).
RPC_FILTER = " || ".join(
    ["epm", "dcom.dualstringarray.network_addr", "isystemactivator", "remact", "dcerpc.ver == 4"]
    + [f"dcerpc.pkt_type == {t}" for t in (_BIND, _BIND_ACK, _BIND_NAK, _ALTER, _ALTER_RESP)]
)


def display_filter_for(names: bool) -> str:
    """The tshark display filter dissect_capture uses (RPC evidence, and host names if asked)."""
    return f"({RPC_FILTER}) || ({NAMES_FILTER})" if names else RPC_FILTER


@contextlib.contextmanager
def prestarted_tshark(names: bool, given: PrestartedTshark | None = None):
    """tshark loading its dissectors while the capture is read (`given`: one started earlier,
    which its starter closes); None when it cannot start (discovery then starts its own tshark,
    or reports why it cannot)."""
    if given is not None:
        yield given
        return
    tshark = early_tshark(names)
    if tshark is None:
        yield None
        return
    with tshark:
        yield tshark


def early_tshark(names: bool) -> PrestartedTshark | None:
    """A tshark started now for a later discovery, or None when it cannot start (the discovery
    then tries again, and says why it cannot). The caller closes it (a context manager)."""
    try:
        return PrestartedTshark(display_filter_for(names))
    except (OSError, DissectError):
        return None
